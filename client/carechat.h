/*
 * client/carechat.h: libcarechat, the C client library of CareChat.
 *
 *   struct carechat_config cfg = {
 *       .server_url = "ws://127.0.0.1:8080",
 *       .profile_dir = "/home/anna/.carechat",
 *   };
 *   struct carechat *c;
 *   if (carechat_open(&cfg, &c) != 0) ...;
 *   int rc = carechat_login(c, "anna@example.org", password);
 *   if (rc != 0) fprintf(stderr, "%s\n", carechat_error(c));
 *   carechat_close(c);
 *
 * A handle is one device of one account: its keys, ids and session live in the
 * profile directory (client/profile.h), created on the first Login or Register.
 * On the first Login from a fresh profile the library generates the device's
 * Ed25519 identity key and X25519 encryption key (signed by the identity key,
 * with a key id and an expiry), registers the device with the Login, stores the
 * ids and the session, and publishes the account's signed device list with the
 * new device added (version + 1). Later calls on a new handle resume the stored
 * session with Authenticate; an expired or revoked session is reported as
 * STATUS_UNAUTHENTICATED ("run carechat login"), never silently renewed.
 *
 * Requests and responses: every call below is one or more requests on one
 * WebSocket to carechatd (opened on first use, client/transport.h), each with
 * a fresh request id; the call blocks until the response with that id arrives
 * or request_timeout_ms passes. Requests the server makes meanwhile (session
 * revoked, replaced elsewhere, typing hints) are answered at once and queued as
 * events for carechat_next_event(); deliveries are answered at once and queued
 * for carechat_recv() (see "end-to-end encrypted messaging" below). A call that loses its
 * connection fails; the next call connects again.
 *
 * Errors: every function returns 0 or a negative STATUS_* (base/status.h). A
 * status the server answered is the wire status's STATUS_* (UNAUTHENTICATED,
 * FORBIDDEN, NOT_FOUND, ...), and carechat_error_kind() is then
 * CARECHAT_ERROR_SERVER. Local failures: STATUS_IO (cannot connect, connection lost, profile not
 * writable), STATUS_UNAVAILABLE (a deadline passed; also a server answer),
 * STATUS_UNAUTHENTICATED (no session stored, or it expired), STATUS_CORRUPT (a
 * signature from the server's data does not verify, or a malformed answer),
 * STATUS_FORBIDDEN (the profile is open to other users), STATUS_BAD_REQUEST
 * (invalid arguments). carechat_error() describes the last failure in one
 * English line, including the server's detail text.
 *
 * Secrets: passwords are borrowed and never stored; the encoded frames that
 * carried them are wiped. Keys and the session token stay in sodium_malloc
 * memory and in the profile (mode 0600).
 *
 * Threads: there is no thread inside. All network activity happens within the
 * calls, on the calling thread. A handle must be used by one thread at a time;
 * separate handles may be used by separate threads.
 */
#ifndef CLIENT_CARECHAT_H
#define CLIENT_CARECHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"
#include "client/filecrypt.h"

#define CARECHAT_DEFAULT_URL "ws://127.0.0.1:8080"
#define CARECHAT_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define CARECHAT_DEFAULT_REQUEST_TIMEOUT_MS 30000
/* Lifetime of a new device's encryption key. */
#define CARECHAT_ENCRYPTION_KEY_LIFETIME_MS (90LL * 24 * 3600 * 1000)
/* A device's encryption key is replaced once it is this old (on the first
 * authenticated call after that), long before it expires. */
#define CARECHAT_KEY_ROTATION_MS (7LL * 24 * 3600 * 1000)
/* A replaced private key is wiped this long after its replacement, once the
 * device has acknowledged its deliveries since. */
#define CARECHAT_OLD_KEY_GRACE_MS (14LL * 24 * 3600 * 1000)
#define CARECHAT_KEY_LEN 32
#define CARECHAT_MAX_CODE 64  /* invitation code bytes */
#define CARECHAT_MAX_NAME 128 /* display name bytes */
#define CARECHAT_MAX_LABEL 64 /* device label bytes */
#define CARECHAT_MAX_EMAIL 254

/* Numbers as on the wire (carechat.proto Role). */
enum carechat_role {
    CARECHAT_ROLE_UNSPECIFIED = 0,
    CARECHAT_ROLE_PATIENT = 1,
    CARECHAT_ROLE_PROVIDER = 2,
    CARECHAT_ROLE_ADMIN = 3,
    CARECHAT_ROLE_SYSADMIN = 4,
};

/* "patient", "provider", "admin", "sysadmin", or "unspecified". */
const char *carechat_role_name(enum carechat_role role);

/* Parses one of the names above (not "unspecified"). Returns 0, or
 * STATUS_BAD_REQUEST. */
int carechat_role_parse(const char *name, enum carechat_role *out);

struct carechat_config {
    /* wss://, or ws:// to a loopback address; NULL: the one the profile
     * remembers from its last login or registration (with its ca_file),
     * else CARECHAT_DEFAULT_URL */
    const char *server_url;
    const char *profile_dir; /* required; created (0700, parents too) on the first login */
    const char *ca_file;     /* wss: PEM file of trusted CAs; NULL: remembered, else system store */
    const char *device_label; /* label of a new device; NULL: "carechat CLI" */
    int connect_timeout_ms;   /* 0: CARECHAT_DEFAULT_CONNECT_TIMEOUT_MS */
    int request_timeout_ms;   /* 0: CARECHAT_DEFAULT_REQUEST_TIMEOUT_MS */
    /* carechat_login() asks for a session that stays signed in
     * (Login.stay_signed_in): it outlives its idle expiry up to its absolute
     * one, resumed under this device's identity key. For an app that locks
     * itself when its user is inactive (HIPAA's automatic logoff); the
     * profile then needs no password until the session's absolute expiry. */
    bool stay_signed_in;
};

struct carechat;

/* Reads the profile (nothing when it does not exist yet) and stores a handle in
 * *out (close with carechat_close()). Does not connect. Returns 0, or
 * STATUS_BAD_REQUEST (no profile_dir, or a bad server_url: not ws:// or
 * wss://, or ws:// to a host other than 127.x.x.x, ::1 or localhost, which
 * would carry passwords in plaintext), STATUS_FORBIDDEN
 * (the profile directory or file is open to other users or owned by another),
 * STATUS_CORRUPT (the profile does not parse), STATUS_IO (unreadable). */
int carechat_open(const struct carechat_config *cfg, struct carechat **out);

/* Closes the connection (if any) and frees the handle. The profile stays.
 * Accepts NULL. */
void carechat_close(struct carechat *c);

/* One line describing the last failure of a call on `c` ("" before any). The
 * string is owned by `c` and valid until the next call. */
const char *carechat_error(const struct carechat *c);

/* What kind of failure the last one was (for exit codes and retry decisions). */
enum carechat_error_kind {
    CARECHAT_ERROR_NONE = 0,
    CARECHAT_ERROR_ARGUMENT = 1,   /* invalid arguments to the call */
    CARECHAT_ERROR_SERVER = 2,     /* the server refused the request */
    CARECHAT_ERROR_CONNECTION = 3, /* cannot connect, connection lost, no answer in time */
    CARECHAT_ERROR_SESSION = 4,    /* not logged in, or the session expired or ended */
    CARECHAT_ERROR_PROFILE = 5,    /* the profile cannot be written or holds another device */
    CARECHAT_ERROR_PROTOCOL = 6,   /* a malformed answer, or signed data that does not verify */
    CARECHAT_ERROR_TRUST = 7,      /* an account's identity changed: confirm (carechat_trust) */
};

/* The kind of the last failure of a call on `c` (CARECHAT_ERROR_NONE before
 * any, and after a success). */
enum carechat_error_kind carechat_error_kind(const struct carechat *c);

/* The session of this handle, filled in by login, register and the first
 * authenticated call. */
struct carechat_session_info {
    struct id account_id;
    struct id device_id;
    enum carechat_role role;
    char display_name[CARECHAT_MAX_NAME + 1];
    int64_t expires_at;      /* absolute expiry, Unix ms */
    int64_t idle_expires_at; /* ends unless used before, Unix ms */
    /* The server requires a second factor of this account (--require-2fa
     * staff) and it has none: the session can only enrol
     * (carechat_totp_enroll(), carechat_totp_confirm()) or log out. */
    bool must_enrol_second_factor;
};

/* Copies the session to *out. Returns 0, or STATUS_UNAUTHENTICATED when this
 * handle has not logged in, registered or authenticated yet. */
int carechat_session(const struct carechat *c, struct carechat_session_info *out);

/* Logs in with `email` and `password` (borrowed; 1..1024 bytes: the server
 * sets the minimum length at registration, 10 bytes by default), from this
 * profile's device, or as a new device when the profile has none (see the top
 * of this file), then makes sure the device is in the account's published
 * device list. Stores the session. Returns 0; from the server UNAUTHENTICATED
 * (wrong email or password, or deactivated), NOT_FOUND (the profile's device
 * was removed from the account), RATE_LIMITED, ...; or a local failure. When
 * the login succeeded but publishing the device list failed, the session is
 * kept, that failure is returned, and the next authenticated call retries. */
int carechat_login(struct carechat *c, const char *email, const char *password);

/* carechat_login() with the second factor of an account that has two-factor
 * sign-in: `second_factor` (borrowed; NULL or "" for none) is the 6-digit code
 * of the user's authenticator app or an unused recovery code. carechat_login()
 * is this with NULL. The server answers UNAUTHENTICATED when one is needed and
 * missing (detail "second factor required") or wrong, already used or spent
 * ("wrong second factor"); carechat_error() includes the detail. When the
 * session must enrol first (carechat_session_info.must_enrol_second_factor),
 * returns 0 without publishing the device list or rotating keys:
 * carechat_totp_confirm() does that once enrolled. */
int carechat_login_2fa(struct carechat *c, const char *email, const char *password,
                       const char *second_factor);

#define CARECHAT_TOTP_SECRET_B32 32 /* base32 characters of a TOTP secret */
#define CARECHAT_TOTP_URI_MAX 255
#define CARECHAT_RECOVERY_CODES 10    /* recovery codes per enrolment */
#define CARECHAT_RECOVERY_CODE_LEN 19 /* four groups of four, e.g. 7K3Q-M2XD-5HPW-4RTE */

/* A pending two-factor secret, for the user's authenticator app. Secret:
 * wipe it after display. */
struct carechat_totp_enrollment {
    char secret[CARECHAT_TOTP_SECRET_B32 + 1];   /* RFC 4648 base32, no padding */
    char otpauth_uri[CARECHAT_TOTP_URI_MAX + 1]; /* otpauth://totp/CareChat:...; for a QR code */
};

/* Starts two-factor sign-in (TOTP, RFC 6238): the server draws a new secret
 * (replacing a pending one) and keeps it pending until
 * carechat_totp_confirm(). Fills *out and returns 0; from the server
 * CONFLICT (already active: disable first); or a local failure. */
int carechat_totp_enroll(struct carechat *c, struct carechat_totp_enrollment *out);

/* Activates the pending secret with a current `code` (6 digits) of the
 * user's app, and copies the 10 single-use recovery codes to `codes` (shown
 * once: the server keeps only their hashes; wipe them after display). A
 * session that had to enrol then publishes the device list as a login does.
 * Returns 0; from the server FORBIDDEN (wrong code), CONFLICT (nothing
 * pending), BAD_REQUEST; or a local failure. */
int carechat_totp_confirm(struct carechat *c, const char *code,
                          char codes[CARECHAT_RECOVERY_CODES][CARECHAT_RECOVERY_CODE_LEN + 1]);

/* Turns two-factor sign-in off, given the `password` and a current code or
 * an unused recovery code (`second_factor`; both borrowed). Returns 0; from
 * the server UNAUTHENTICATED (wrong password or code: counts as a failed
 * sign-in), FORBIDDEN (staff on a server that requires two factors),
 * CONFLICT (not active), RATE_LIMITED; or a local failure. */
int carechat_totp_disable(struct carechat *c, const char *password, const char *second_factor);

/* Creates an account from the invitation `code` with `email`, `password`,
 * `birthdate` ("YYYY-MM-DD") and `display_name` (all borrowed), with this
 * profile's device as its first device, logs in and publishes the device
 * list. Returns 0; STATUS_CONFLICT (local) when the profile already holds a
 * device of an account; from the server BAD_REQUEST (weak password, bad date),
 * FORBIDDEN (under 13), NOT_FOUND (unknown, used or expired code, or another
 * email), RATE_LIMITED; or a local failure. */
int carechat_register(struct carechat *c, const char *code, const char *email, const char *password,
                      const char *birthdate, const char *display_name);

/* Invites `email` (borrowed) as `role`. On success copies the code
 * (NUL-terminated; empty when the server mailed it to the invitee instead,
 * which it does whenever it has a mail relay and no --dev-invite-codes) to
 * `code_out` and its expiry to *expires_at (may be NULL) and returns 0; from the server FORBIDDEN
 * (the caller's role may not invite this role), CONFLICT (an account with this email exists), ...;
 * or a local failure (STATUS_UNAUTHENTICATED: not logged in). */
int carechat_invite(struct carechat *c, const char *email, enum carechat_role role,
                    char code_out[CARECHAT_MAX_CODE + 1], int64_t *expires_at);

/* One device of the caller's account. */
struct carechat_device {
    struct id device_id;
    uint8_t identity_key[CARECHAT_KEY_LEN];
    uint8_t encryption_key[CARECHAT_KEY_LEN];
    uint32_t encryption_key_id;
    int64_t encryption_key_expires_at;
    int64_t created_at;
    char label[CARECHAT_MAX_LABEL + 1];
    bool this_device; /* the device of this profile */
    bool listed;      /* in the account's signed device list */
    bool key_valid;   /* the encryption key's signature verifies and it has not expired */
};

struct carechat_devices {
    uint64_t list_version; /* 0 before the first publish */
    size_t n;
    struct carechat_device *devices; /* n entries, in the server's order */
};

/* Lists the devices of the caller's account. The signed device list is
 * verified (signer in the list, signature over carechat.proto's layout, own
 * account) before anything is returned. Stores the result in *out (free with
 * carechat_devices_free()) and returns 0; STATUS_CORRUPT when the list's
 * signature does not verify or the answer is malformed; a server status; or a
 * local failure. */
int carechat_devices(struct carechat *c, struct carechat_devices **out);

/* Frees a result of carechat_devices(). Accepts NULL. */
void carechat_devices_free(struct carechat_devices *d);

/* What the server shows of another account. */
struct carechat_account {
    struct id account_id;
    enum carechat_role role;
    char display_name[CARECHAT_MAX_NAME + 1];
    bool active;
    char email[CARECHAT_MAX_EMAIL + 1]; /* only for ADMIN and SYSADMIN callers; else "" */
};

/* Finds the account with `email` (borrowed). Fills *out and returns 0; from the
 * server NOT_FOUND (none, or one the caller may not contact); or a local
 * failure. */
int carechat_lookup(struct carechat *c, const char *email, struct carechat_account *out);

/* Removes `device`, another device of this account (a lost phone): first
 * publishes the account's signed list without it (signed by this device, so
 * peers see an approved successor, not an identity change), then has the
 * server remove it, ending its sessions. Returns 0; from the server
 * NOT_FOUND, CONFLICT (the last device); BAD_REQUEST (this device: use
 * carechat_forget_device()); or a local failure. */
int carechat_remove_device(struct carechat *c, const struct id *device);

/* Renames `device` of this account (label: 1..CARECHAT_MAX_LABEL bytes of
 * UTF-8 without control characters). Returns 0; from the server BAD_REQUEST,
 * NOT_FOUND; or a local failure. */
int carechat_rename_device(struct carechat *c, const struct id *device, const char *label);

/* Removes this device from its account, freeing its slot (at most 6 per
 * account): has the server remove it (its session ends; the account's next
 * signed list, published by another of its devices, leaves it out), and
 * wipes the profile's keys, ids and session (the server it remembers stays).
 * Use a new handle afterwards. Returns 0; CONFLICT when it is the account's
 * only approved device (approve another first) or its last device; or a
 * local failure. */
int carechat_forget_device(struct carechat *c);

/* Ends this device's session on the server and forgets it in the profile (the
 * device and its keys stay). Returns 0; STATUS_UNAUTHENTICATED when there is
 * no session (the local copy is dropped too); or a local failure. */
int carechat_logout(struct carechat *c);

/* Replaces the account's password (the session must be live): `current` is
 * checked by the server, `next` must meet its minimum length. Every other
 * session of the account ends (their connections are closed); this one goes
 * on. Returns 0, or UNAUTHENTICATED (wrong current password), BAD_REQUEST
 * (new password too short or the same), RATE_LIMITED, or a connection
 * status; the passwords never appear in an error text. */
int carechat_change_password(struct carechat *c, const char *current, const char *next);

/* Asks the server to email a password reset code to `email` (on a fresh
 * connection, no session needed). The server answers the same whether or not
 * the email has an account. Returns 0, or BAD_REQUEST, RATE_LIMITED,
 * UNAVAILABLE (no mail on the server), or a connection status. */
int carechat_request_password_reset(struct carechat *c, const char *email);

/* Sets the password of the account of `email` to `next` with the emailed
 * `code` (on a fresh connection, no session needed): every session of the
 * account ends, this profile's too; log in again. Returns 0, or FORBIDDEN
 * (wrong, used, dead, expired or unknown code), BAD_REQUEST (the new
 * password's length), RATE_LIMITED, or a connection status; the code and the
 * password never appear in an error text. */
int carechat_reset_password(struct carechat *c, const char *email, const char *code,
                            const char *next);

/* Why the server ended a session. Numbers as on the wire (carechat.proto
 * RevokeReason). */
enum carechat_revoke_reason {
    CARECHAT_REVOKE_UNSPECIFIED = 0,
    CARECHAT_REVOKE_EXPIRED = 1,             /* absolute or idle expiry reached */
    CARECHAT_REVOKE_LOGGED_OUT = 2,          /* Logout from this device */
    CARECHAT_REVOKE_DEVICE_REMOVED = 3,      /* the device left the account's device list */
    CARECHAT_REVOKE_ACCOUNT_DEACTIVATED = 4, /* the account was deactivated (carechat_deactivate) */
};

/* "expired", "logged out", "device removed", "account deactivated", or
 * "unspecified" for any other number. The string is static. */
const char *carechat_revoke_reason_name(int reason);

/* Requests the server made (and delivery items that are not messages) that
 * the application should know about. */
enum carechat_event_kind {
    /* The session ended (reason in `revoke_reason`, an enum
     * carechat_revoke_reason: CARECHAT_REVOKE_ACCOUNT_DEACTIVATED when the
     * account was deactivated); the profile no longer holds it, and a call
     * that loses the connection to it fails with STATUS_UNAUTHENTICATED
     * (CARECHAT_ERROR_SESSION) naming the reason. */
    CARECHAT_EVENT_SESSION_REVOKED = 1,
    /* The same device connected elsewhere; this connection was closed. Do not
     * reconnect automatically. */
    CARECHAT_EVENT_REPLACED_ELSEWHERE = 2,
    /* Another member recorded a receipt for a message this account sent
     * (conversation_id, message_id, account_id, receipt, at). */
    CARECHAT_EVENT_RECEIPT = 3,
    /* Another member is (typing true) or stopped (false) typing
     * (conversation_id, account_id, typing). Ephemeral, may be lost. */
    CARECHAT_EVENT_TYPING = 4,
    /* A message was recalled (conversation_id, message_id, at):
     * `signed_by_sender` tells whether the sender's device signed the recall;
     * otherwise `by_verified` tells whether a device of account
     * `by_account_id` (an administrator, or the sender on another device)
     * signed its removal; neither: the server's claim, nobody's known doing. */
    CARECHAT_EVENT_RECALL = 5,
    /* A recipient acknowledged an urgent message this account sent
     * (conversation_id, message_id, account_id, at). */
    CARECHAT_EVENT_URGENT_ACK = 6,
    /* The membership of account_id in channel conversation_id changed
     * (membership, by_account_id: who changed it, at). Sent to the devices of
     * the active members after the change and, for REMOVED and LEFT, to the
     * departing account's devices. The handle forgets its cached member set of
     * the conversation, so the next send fetches it (and any new member's
     * device list) again. */
    CARECHAT_EVENT_MEMBERSHIP = 7,
    /* The server showed a device list of account_id that is not the signed
     * successor of the one this device pinned (a device added without the
     * approval of a listed device, a list replaced, or an administrator's
     * reset): sending to the account stops until the user compares safety
     * numbers and confirms with carechat_trust(). */
    CARECHAT_EVENT_IDENTITY_CHANGED = 8,
    /* The first device list of account_id this device saw was pinned as it
     * was: trust on first use (compare safety numbers to be sure). */
    CARECHAT_EVENT_TRUST_FIRST_USE = 9,
};

/* Numbers as on the wire (carechat.proto MembershipChange). */
enum carechat_membership_change {
    CARECHAT_MEMBERSHIP_UNSPECIFIED = 0,
    CARECHAT_MEMBERSHIP_JOINED = 1,  /* added as, or approved to, an active member */
    CARECHAT_MEMBERSHIP_PENDING = 2, /* added, awaiting the channel patient's approval */
    CARECHAT_MEMBERSHIP_LEFT = 3,
    CARECHAT_MEMBERSHIP_REMOVED = 4,
};

/* Numbers as on the wire (carechat.proto ReceiptKind). */
enum carechat_receipt {
    CARECHAT_RECEIPT_DELIVERED = 1, /* the device decrypted the message */
    CARECHAT_RECEIPT_READ = 2,      /* the user saw it */
};

struct carechat_event {
    enum carechat_event_kind kind;
    int revoke_reason; /* enum carechat_revoke_reason */
    struct id conversation_id;
    struct id message_id;
    struct id account_id;
    enum carechat_receipt receipt;
    bool typing;
    int64_t at; /* Unix ms, when the server says */
    enum carechat_membership_change membership;
    struct id by_account_id;
    bool signed_by_sender; /* CARECHAT_EVENT_RECALL */
    bool by_verified;      /* CARECHAT_EVENT_RECALL: by_account_id signed the removal */
};

/* Most events kept; older ones are dropped first. */
#define CARECHAT_MAX_EVENTS 16

/* Takes the oldest queued event into *out and returns 0, or returns
 * STATUS_NOT_FOUND when none is queued. Events arrive only while a call is
 * talking to the server. */
int carechat_next_event(struct carechat *c, struct carechat_event *out);

/* ---- end-to-end encrypted messaging ----
 *
 * Encryption (DESIGN.md "End-to-end encryption", client/envelope.h): a body is
 * encrypted once with XChaCha20-Poly1305 under a fresh key, which is wrapped
 * with HPKE for every current device of every member (the sender's own devices
 * included, this one too, so that History can show what it sent), and signed
 * with this device's identity key. Device lists are fetched with ListDevices,
 * their signatures and every device's signed encryption key verified, and kept
 * in the handle; a list whose version goes down is refused (STATUS_CORRUPT).
 * The plaintext is a MessageContent (carechat.proto; PROTOCOL.md section 10):
 * text, attachments (files encrypted with client/filecrypt.h, whose keys
 * travel here) and a reply reference. The server never sees plaintext;
 * neither does the log.
 *
 * Delivery (PROTOCOL.md section 4): the first carechat_recv() (or
 * carechat_sync()) on a connection sends Sync after the last cursor this
 * device acknowledged (kept in the profile); the server replays the inbox,
 * sends QueueEmpty, then delivers live. Deliveries that arrive during any
 * call are answered at once and queued in the handle (at most
 * CARECHAT_MAX_QUEUED; beyond that the connection is closed and the server
 * replays the rest after the next Sync, so nothing is lost). Delivery is at
 * least once: the handle skips message ids it has already returned (the last
 * CARECHAT_DEDUP_IDS of them), and carechat_ack() makes the server drop what was
 * processed. Every message that verifies is recorded in the profile's replay
 * ledger (client/ledger.h): a signed envelope the server hands on again under
 * a new message id is recognised after restarts too, and skipped. */

/* Largest encoded message content in bytes (the server's 64 KiB envelope body
 * limit less the inner signature, the tag and the length prefix of the
 * padding: client/envelope.h): a text can
 * be up to a few bytes shorter (carechat_send()). */
#define CARECHAT_MAX_MESSAGE (64 * 1024 - 84)
/* Longest text carechat_send() takes: its content's encoding adds 6 bytes
 * (kind, and the text's tag and length). */
#define CARECHAT_MAX_TEXT (CARECHAT_MAX_MESSAGE - 6)
/* Limits of what a message carries (carechat.proto MessageContent). */
#define CARECHAT_MAX_ATTACHMENTS 32
#define CARECHAT_MAX_FILE_NAME 255  /* bytes of UTF-8 */
#define CARECHAT_MAX_MEDIA_TYPE 127 /* bytes of UTF-8 */
#define CARECHAT_MAX_QUEUED 1024
#define CARECHAT_DEDUP_IDS 4096

/* Numbers as on the wire (carechat.proto ConversationKind). */
enum carechat_conversation_kind {
    CARECHAT_CONVERSATION_DIRECT = 1,
    CARECHAT_CONVERSATION_CARE_TEAM = 2,
};

struct carechat_member {
    struct id account_id;
    enum carechat_role role;
    int state; /* carechat.proto MemberState: 1 active, 2 pending, 3 left, 4 removed */
    char display_name[CARECHAT_MAX_NAME + 1];
};

struct carechat_conversation {
    struct id conversation_id;
    enum carechat_conversation_kind kind;
    char name[CARECHAT_MAX_NAME + 1]; /* care-team channels; "" for direct */
    int64_t created_at;
    uint64_t last_seq; /* highest sequence so far, 0 when empty */
    size_t n_members;
    struct carechat_member *members; /* n_members entries, owned (malloc) */
};

/* Frees the members of `conv` and leaves it empty. Accepts NULL. */
void carechat_conversation_cleanup(struct carechat_conversation *conv);

/* The direct conversation with the account whose email is `peer_email`
 * (borrowed; looked up with carechat_lookup()), created if it does not exist
 * yet. Fills *out (release with carechat_conversation_cleanup()) and returns
 * 0; from the server NOT_FOUND (no contactable account with this email),
 * FORBIDDEN (peer deactivated), BAD_REQUEST (the peer is the caller); or a
 * local failure. *out is written only on success. */
int carechat_open_direct(struct carechat *c, const char *peer_email,
                         struct carechat_conversation *out);

/* As carechat_open_direct(), with the peer's account id. */
int carechat_open_direct_id(struct carechat *c, const struct id *peer_account_id,
                            struct carechat_conversation *out);

/* The conversation `conversation_id` with its members. Fills *out (release
 * with carechat_conversation_cleanup()) and returns 0; NOT_FOUND (unknown or
 * not a member); or a local failure. */
int carechat_get_conversation(struct carechat *c, const struct id *conversation_id,
                              struct carechat_conversation *out);

struct carechat_conversations {
    size_t n;
    struct carechat_conversation *items; /* most recently active first */
};

/* The caller's conversations (every page, at most 10000). Stores them in *out
 * (free with carechat_conversations_free()) and returns 0, or a server status
 * or a local failure. */
int carechat_conversations(struct carechat *c, struct carechat_conversations **out);

/* Frees a result of carechat_conversations(). Accepts NULL. */
void carechat_conversations_free(struct carechat_conversations *list);

/* What Send answered. */
struct carechat_sent {
    struct id message_id;
    struct id client_msg_id; /* the idempotency key used (given or random) */
    uint64_t seq;
    int64_t sent_at; /* server time, Unix ms */
    /* How many times the server answered CONFLICT (device set changed) before
     * the message was accepted: 0, or 1 after refreshing the device lists. */
    int device_conflicts;
};

/* One end-to-end encrypted file a message carries (carechat.proto
 * Attachment): what a recipient needs to fetch the ciphertext (file.file_id),
 * decrypt and check it (client/filecrypt.h: file.key, version, sha256, size).
 * file.key is a secret: carechat_message_cleanup() wipes received ones. */
struct carechat_attachment {
    struct filecrypt_file file;
    char file_name[CARECHAT_MAX_FILE_NAME + 1];   /* UTF-8; to show, never a path to use as is */
    char media_type[CARECHAT_MAX_MEDIA_TYPE + 1]; /* UTF-8, e.g. "image/jpeg"; may be "" */
};

/* What a message says (carechat.proto MessageContent of kind MESSAGE); every
 * pointer borrowed. */
struct carechat_content {
    const char *text; /* text_len bytes of UTF-8 without NUL; may be empty with attachments */
    size_t text_len;
    const struct carechat_attachment *attachments; /* n_attachments, at most 32 */
    size_t n_attachments;
    const struct id *reply_to; /* the message this one answers, or NULL */
};

/* Sends `content` (encoded as carechat.proto MessageContent, the plaintext
 * every client agrees on; PROTOCOL.md section 10), as carechat_send() does,
 * with Send.urgent = `urgent`. Returns what carechat_send() returns;
 * STATUS_BAD_REQUEST also for content breaking carechat_content's rules (text
 * or names not UTF-8 or holding NUL, a name over its limit, an attachment of
 * another version or over FILECRYPT_MAX_SIZE, more than
 * CARECHAT_MAX_ATTACHMENTS, nothing to send), STATUS_TOO_LARGE when the
 * encoded content is over CARECHAT_MAX_MESSAGE. */
int carechat_send_content(struct carechat *c, const struct id *conversation_id,
                          const struct carechat_content *content, const struct id *client_msg_id,
                          bool urgent, struct carechat_sent *out);

/* Sends a text message: carechat_send_content() of the `len` bytes of UTF-8
 * at `body` (borrowed; 1 or more, no NUL; the encoded content at most
 * CARECHAT_MAX_MESSAGE) for every current device of every active member of
 * `conversation_id`. `client_msg_id` is the
 * idempotency key: NULL means a fresh random one; giving the id of an earlier
 * send (from carechat_sent.client_msg_id, after a lost answer or a crash)
 * returns that first result and stores nothing twice.
 * The members' device lists come from the handle's cache, fetched and verified
 * when missing; when the server answers CONFLICT (DeviceMismatch), the lists
 * are fetched again and the message is wrapped and sent once more with the
 * same client_msg_id; when the connection is lost before the answer, the
 * handle reconnects and sends once more with the same client_msg_id.
 * Fills *out (may be NULL) and returns 0; STATUS_BAD_REQUEST (empty or NULL
 * body, or not UTF-8, or holding a NUL byte: nothing is sent);
 * STATUS_TOO_LARGE (the encoded content over CARECHAT_MAX_MESSAGE); STATUS_CORRUPT (a
 * member's device list or key does not verify, or its version went down);
 * STATUS_CONFLICT (from the server: the device set changed again after the
 * refresh); from the server FORBIDDEN (not an active member), NOT_FOUND,
 * RATE_LIMITED, UNAVAILABLE; or a local failure. */
int carechat_send(struct carechat *c, const struct id *conversation_id, const uint8_t *body,
                  size_t len, const struct id *client_msg_id, struct carechat_sent *out);

/* A message as this device received it (carechat_recv(), carechat_history()). */
enum carechat_message_state {
    CARECHAT_MESSAGE_OK = 0,       /* verified, decrypted, decoded: text and attachments */
    CARECHAT_MESSAGE_RECALLED = 1, /* the sender recalled it: no content */
    CARECHAT_MESSAGE_NO_KEY = 2,   /* no key for this device (sent before it joined) */
    CARECHAT_MESSAGE_INVALID = 3,  /* signature, wrap or body does not verify: no content */
    /* Verified and decrypted, but not a MessageContent this library accepts
     * (does not decode, strings not UTF-8, limits, no kind): no content. */
    CARECHAT_MESSAGE_MALFORMED = 4,
    /* A MessageContent of a kind this library does not know (a newer
     * client's): no content; show "needs a newer version". */
    CARECHAT_MESSAGE_UNSUPPORTED = 5,
    /* A signed message this device already accepted under another message
     * id (the same client_msg_id or counter of the same sender device):
     * replayed by the server. No content; carechat_recv() skips it. */
    CARECHAT_MESSAGE_REPLAYED = 6,
    /* Recalled, but not by the sender's signed recall: removed by
     * `removed_by` when `removed_by_verified` (an administrator, or the
     * sender from another device, signed it), else by nobody known (the
     * server's claim). Never show it as the sender's recall. No content. */
    CARECHAT_MESSAGE_REMOVED = 7,
};

struct carechat_message {
    struct id message_id;
    struct id conversation_id;
    struct id client_msg_id;
    struct id sender_account_id;
    struct id sender_device_id;
    uint64_t seq;
    int64_t sent_at; /* server time, Unix ms */
    bool urgent;     /* as the sender signed it (state OK); else as the server says */
    enum carechat_message_state state;
    /* With state OK, signed by the sender: its clock when it sent (Unix ms),
     * its counter in this conversation, whether numbers before it never
     * arrived here (messages withheld), and how many devices it was wrapped
     * for. */
    int64_t signed_sent_at;
    uint64_t counter;
    bool counter_gap;
    size_t n_recipients;
    /* With state REMOVED (above). */
    struct id removed_by;
    bool removed_by_verified;
    /* The content, only when state is OK; all owned (malloc): */
    char *text; /* text_len bytes of UTF-8 (no NUL) plus a NUL; "" when none */
    size_t text_len;
    struct carechat_attachment *attachments; /* n_attachments entries (keys are secret) */
    size_t n_attachments;
    bool has_reply_to;
    struct id reply_to; /* the message this one answers, when has_reply_to */
};

/* Wipes and frees the content of `m`. Accepts NULL. */
void carechat_message_cleanup(struct carechat_message *m);

/* Starts delivery on this connection if it has not started: Sync after the
 * last acknowledged cursor in the profile (connecting and authenticating
 * first). Does not wait for the replay. Returns 0, or a server status or a
 * local failure. Calling it again on the same connection restarts the replay
 * from the last acknowledged cursor. */
int carechat_sync(struct carechat *c);

/* Takes the next message for this device into *m (release with
 * carechat_message_cleanup()): from the queue if one is there, else waiting
 * for the server. Starts delivery first if needed (carechat_sync()). Messages
 * that do not verify or that this device has no key for are returned too
 * (state says so), never silently dropped; other delivery items become
 * events (carechat_next_event()); repeated message ids are skipped.
 * Returns 0 with a message; STATUS_NOT_FOUND when the server has said the
 * replay is complete (QueueEmpty) and nothing more arrived for `wait_ms`
 * milliseconds after that (0: do not wait); STATUS_UNAVAILABLE when the replay
 * did not complete within request_timeout_ms + wait_ms; or a local failure.
 * A connection lost while waiting (a server restarting closes with 1001) is
 * made again, pausing 250 ms doubling to 2 s, and delivery resumes from the
 * last acknowledged cursor (messages already returned are skipped), until
 * wait_ms after the queue was last empty; with wait_ms 0, or when the server
 * ended the connection (ReplacedElsewhere, SessionRevoked), the loss is
 * returned (call again to reconnect). *m is written only on success. */
int carechat_recv(struct carechat *c, int wait_ms, struct carechat_message *m);

/* Acknowledges (cumulatively) every delivery carechat_recv() has taken so far
 * on this connection, including the items it turned into events or skipped,
 * and stores the cursor in the profile, so a later Sync starts after it.
 * Call it once what carechat_recv() returned is processed. Returns 0 (also
 * when there is nothing new to acknowledge); from the server BAD_REQUEST or
 * CONFLICT (a cursor it never delivered); or a local failure. */
int carechat_ack(struct carechat *c);

struct carechat_messages {
    size_t n;
    struct carechat_message *items; /* oldest first */
    bool more;                      /* older messages exist */
};

/* The newest `limit` messages (1..100; 0 means 50) of `conversation_id`
 * with seq below `before_seq` (0: the newest), decrypted as carechat_recv()
 * does. Stores them in *out (free with carechat_messages_free()) and returns
 * 0; from the server NOT_FOUND (unknown or not a member), FORBIDDEN
 * (lifecycle); or a local failure. */
int carechat_history(struct carechat *c, const struct id *conversation_id, uint64_t before_seq,
                     unsigned limit, struct carechat_messages **out);

/* Frees a result of carechat_history(), wiping the bodies. Accepts NULL. */
void carechat_messages_free(struct carechat_messages *list);

/* Records `kind` receipts for the `n` messages at `message_ids` (1..100) of
 * `conversation_id`. Returns 0; from the server NOT_FOUND, BAD_REQUEST; or a
 * local failure. */
int carechat_send_receipt(struct carechat *c, const struct id *conversation_id,
                          enum carechat_receipt kind, const struct id *message_ids, size_t n);

/* Tells the other members' connected devices that this user is (or stopped)
 * typing in `conversation_id`. Returns 0; from the server NOT_FOUND,
 * RATE_LIMITED; or a local failure. */
int carechat_typing(struct carechat *c, const struct id *conversation_id, bool typing);

/* As carechat_send(), with the urgent flag: every recipient account must
 * acknowledge the message (carechat_ack_urgent()); the sender and admins see
 * who has (carechat_urgent_status()). */
int carechat_send_urgent(struct carechat *c, const struct id *conversation_id, const uint8_t *body,
                         size_t len, const struct id *client_msg_id, struct carechat_sent *out);

/* ---- Care-team channels, recall, urgent messages ----
 *
 * A channel is a conversation about one patient: its id works wherever a
 * conversation id does (carechat_send(), carechat_history()). Providers and
 * admins create channels and add and remove members; staff become active at
 * once, anyone else (a family member acting for the patient) is pending until
 * the channel's patient approves and receives nothing until then. A member
 * sees the history from the moment of joining; a removed member sees nothing
 * of the channel any more (NOT_FOUND). */

/* Creates a channel named `name` (1..128 bytes of UTF-8; personal data,
 * never logged) about the patient whose email is `patient_email`; the caller
 * and the patient are its first members. Fills *out (release with
 * carechat_conversation_cleanup()) and returns 0; from the server FORBIDDEN
 * (the caller is not a provider or admin), NOT_FOUND (no such patient),
 * BAD_REQUEST; or a local failure. */
int carechat_channel_create(struct carechat *c, const char *patient_email, const char *name,
                            struct carechat_conversation *out);

/* Membership changes of channel `channel` for the account `account_id`.
 * Each returns 0; from the server FORBIDDEN (not allowed for the caller: a
 * patient adds and removes nobody, only the channel's patient approves, the
 * patient cannot be removed), NOT_FOUND (no such channel or member), CONFLICT
 * (add: already a member; approve: not pending), TOO_LARGE (member limit);
 * or a local failure. */
int carechat_channel_add(struct carechat *c, const struct id *channel, const struct id *account_id);
int carechat_channel_remove(struct carechat *c, const struct id *channel,
                            const struct id *account_id);
int carechat_channel_approve(struct carechat *c, const struct id *channel,
                             const struct id *account_id);
/* The caller leaves channel `channel`. Same returns. */
int carechat_channel_leave(struct carechat *c, const struct id *channel);

struct carechat_members {
    size_t n;
    struct carechat_member *items; /* every member, also those who left or were removed */
};

/* The members of `conversation` (the caller an active member, or an admin).
 * Stores them in *out (free with carechat_members_free()) and returns 0; from
 * the server NOT_FOUND; or a local failure. */
int carechat_members(struct carechat *c, const struct id *conversation,
                     struct carechat_members **out);
/* Accepts NULL. */
void carechat_members_free(struct carechat_members *m);

/* Recalls message `message_id` of `conversation` (the sender, or an admin):
 * the server deletes its envelope and every device gets a tombstone
 * (CARECHAT_EVENT_RECALL). The recall is signed by this device
 * (protocol/transcript.h): when this device sent the message, recipients
 * show it as the sender's recall (CARECHAT_MESSAGE_RECALLED); otherwise (an
 * admin, or another device of the sender) as removed by this account
 * (CARECHAT_MESSAGE_REMOVED with removed_by). Returns 0;
 * from the server FORBIDDEN (not the sender), NOT_FOUND, CONFLICT (already
 * recalled); or a local failure. */
int carechat_recall(struct carechat *c, const struct id *conversation, const struct id *message_id);

/* Acknowledges the urgent message `message_id` (the caller a recipient).
 * Repeats are harmless. Returns 0; from the server NOT_FOUND (no such message
 * or not a recipient), CONFLICT (not urgent); or a local failure. */
int carechat_ack_urgent(struct carechat *c, const struct id *conversation,
                        const struct id *message_id);

struct carechat_urgent_recipient {
    struct id account_id;
    bool acknowledged;
    int64_t acknowledged_at; /* Unix ms; 0 while not acknowledged */
};

struct carechat_urgent_report {
    size_t n;
    struct carechat_urgent_recipient *items; /* every recipient account */
};

/* Who has and has not acknowledged the urgent message `message_id` (the
 * sender or an admin). Stores the report in *out (free with
 * carechat_urgent_report_free()) and returns 0; from the server FORBIDDEN,
 * NOT_FOUND, CONFLICT (not urgent); or a local failure. */
int carechat_urgent_status(struct carechat *c, const struct id *conversation,
                           const struct id *message_id, struct carechat_urgent_report **out);
/* Accepts NULL. */
void carechat_urgent_report_free(struct carechat_urgent_report *r);

/* ---- Files (end-to-end encrypted, resumable) ----
 *
 * A file is encrypted on this device (client/filecrypt.h: secretstream under
 * a fresh key, padded), uploaded as opaque ciphertext bound to one
 * conversation, and sent to the members as an attachment of a message
 * (carechat_send_content()): the key, digest, size, name and media type travel
 * only inside the end-to-end message. Uploads and downloads resume where they
 * stopped: an upload's state (file id, key, digest, and the ciphertext) lives
 * in the profile directory under uploads/ until it completes; a download
 * keeps its ciphertext in OUT.part until it is verified and decrypted. */

/* Chunks the library uploads and downloads; requests kept in flight. */
#define CARECHAT_FILE_CHUNK (128u * 1024)
#define CARECHAT_FILE_WINDOW 8

/* Called as a transfer proceeds with the ciphertext bytes `done` (durable on
 * the server, or received) of `total`. Returning false cancels the transfer:
 * the call then fails with STATUS_UNAVAILABLE ("cancelled") and a later call
 * with the same arguments resumes. */
typedef bool (*carechat_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct carechat_transfer {
    carechat_progress_fn progress; /* NULL: none */
    void *ctx;
};

/* Encrypts the file at `path` (borrowed) and uploads it for
 * `conversation_id`, resuming an interrupted upload of the same file (same
 * path, size and modification time) to the same conversation. On success
 * fills *out (file id, key, digest, size, and `file_name`, `media_type`,
 * either NULL for "" ; the key is secret: wipe *out after sending) and
 * returns 0; STATUS_BAD_REQUEST (arguments, a name over its limit, an
 * unreadable file: nothing is uploaded), STATUS_TOO_LARGE (over
 * FILECRYPT_MAX_SIZE, or from the server: over its file size limit or the
 * account's quota), STATUS_UNAVAILABLE when cancelled; from the server
 * NOT_FOUND (no such conversation, or not a member), RATE_LIMITED,
 * UNAVAILABLE; or a local failure (STATUS_IO for the profile's upload state). */
int carechat_upload_file(struct carechat *c, const struct id *conversation_id, const char *path,
                         const char *file_name, const char *media_type,
                         const struct carechat_transfer *transfer, struct carechat_attachment *out);

/* Completes an upload whose bytes were sent another way (tus over HTTP, e.g.
 * by a mobile OS's background transfer) without a declared sha256:
 * UploadComplete with `file`'s id and digest. This device must be the
 * uploader (the one whose session token the tus requests carried); a later
 * carechat_send_content() with the file binds it to its message. Returns 0;
 * from the server CONFLICT (bytes missing, or another digest), NOT_FOUND; or a
 * local failure. */
int carechat_complete_upload(struct carechat *c, const struct filecrypt_file *file);

/* Downloads the attachment `a` (from a received message), verifies its
 * digest and decrypts it to `out_path` (replaced; written to out_path.tmp and
 * renamed only once everything verified), resuming from out_path.part. Returns
 * 0; STATUS_CORRUPT (the ciphertext does not verify: truncated, altered, or
 * another file; nothing is written and the partial download is dropped);
 * STATUS_UNAVAILABLE when cancelled; from the server NOT_FOUND (no such file,
 * or not a member of its conversation); or a local failure (STATUS_IO). */
int carechat_download_file(struct carechat *c, const struct carechat_attachment *a,
                           const char *out_path, const struct carechat_transfer *transfer);

/* ---- Trust: pinned device lists, approval of new devices, safety numbers ----
 *
 * Every account's signed device list is pinned in the profile (client/pins.h)
 * the first time it is seen (trust on first use, CARECHAT_EVENT_TRUST_FIRST_USE).
 * Later lists are accepted only as the next version, naming the pinned list's
 * hash and signed by a pinned device; a lower version is refused
 * (STATUS_CORRUPT), anything else raises CARECHAT_EVENT_IDENTITY_CHANGED and
 * blocks sending to that account (STATUS_CONFLICT, CARECHAT_ERROR_TRUST)
 * until carechat_trust(). A new device of an account is listed only when an
 * existing device approves it (carechat_approve() with the code the new
 * device shows), or, when none is left, after an administrator's reset
 * (carechat_reset_device_list()), which every peer sees as a changed
 * identity. */

/* Digits of an approval code ("12345-67890-12345-67890") and of a safety
 * number (12 groups of 5 digits separated by spaces). */
#define CARECHAT_DEVICE_CODE_LEN 23
#define CARECHAT_SAFETY_NUMBER_LEN 71

/* This device's approval code (NUL-terminated), derived from its identity
 * key: shown on the new device, typed on an existing one. Returns 0, or
 * STATUS_BAD_REQUEST when the profile has no keys yet. */
int carechat_device_code(struct carechat *c, char out[CARECHAT_DEVICE_CODE_LEN + 1]);

/* True when this device logged in but no device of its account approved it
 * yet (it receives nothing and cannot send until then). */
bool carechat_awaiting_approval(const struct carechat *c);

/* Approves the device of the caller's account whose approval code is `code`
 * (as carechat_device_code() printed it on that device): publishes the next
 * version of the signed list with it added, signed by this device. Returns 0;
 * STATUS_NOT_FOUND (no unlisted device of the account has this code);
 * STATUS_FORBIDDEN (this device is not in the list itself); a server status;
 * or a local failure. */
int carechat_approve(struct carechat *c, const char *code);

/* Confirms the changed identity of `account_id` (after comparing safety
 * numbers): the pending list becomes the pin, and sending to the account
 * resumes. Returns 0; STATUS_NOT_FOUND when no change is pending; or a local
 * failure. */
int carechat_trust(struct carechat *c, const struct id *account_id);

/* The safety number of this account and `account_id` (NUL-terminated): the
 * same digits on both sides while both have pinned the same lists; it changes
 * with any device of either account. Fetches and pins the lists when needed.
 * *verified (may be NULL) tells whether the user marked the peer verified
 * since its last change. Returns 0, a server status or a local failure. */
int carechat_safety_number(struct carechat *c, const struct id *account_id,
                           char out[CARECHAT_SAFETY_NUMBER_LEN + 1], bool *verified);

/* Marks the pinned list of `account_id` verified (the user compared safety
 * numbers) or not; a later change of its devices clears it. Returns 0, or
 * STATUS_NOT_FOUND when nothing is pinned for it. */
int carechat_set_verified(struct carechat *c, const struct id *account_id, bool verified);

/* Administrators: lets the account with `email` publish a device list signed
 * by any of its devices (recovery when none of its devices is left), with an
 * audit record; its peers see a changed identity. Returns 0; from the server
 * FORBIDDEN, NOT_FOUND; or a local failure. */
int carechat_reset_device_list(struct carechat *c, const char *email);

/* ---- Accounts and their retention (providers, administrators, system
 * administrators) ----
 *
 * Deactivating an account starts its retention lifecycle (DESIGN.md
 * "Retention lifecycle"): REVIEW for 30 days (care-team providers and admins
 * may read), then RESTRICTED for a year (system administrators only), then
 * PURGED. Every live connection of the account is told SessionRevoked
 * { ACCOUNT_DEACTIVATED } and closed; its Login and Authenticate are refused
 * from then on (UNAUTHENTICATED, as for a wrong password). */

/* Numbers as on the wire (carechat.proto RetentionState). */
enum carechat_retention_state {
    CARECHAT_RETENTION_UNSPECIFIED = 0,
    CARECHAT_RETENTION_ACTIVE = 1,
    CARECHAT_RETENTION_REVIEW = 2,
    CARECHAT_RETENTION_RESTRICTED = 3,
    CARECHAT_RETENTION_PURGED = 4,
};

/* "active", "review", "restricted", "purged", or "unspecified". The string is
 * static. */
const char *carechat_retention_state_name(enum carechat_retention_state state);

/* Where an account is in the retention lifecycle. */
struct carechat_retention {
    struct id account_id;
    enum carechat_retention_state state;
    int64_t deactivated_at; /* entered REVIEW, Unix ms; 0 while ACTIVE */
    int64_t restricted_at;  /* REVIEW ends and RESTRICTED begins, Unix ms; 0 while ACTIVE */
    int64_t purge_at;       /* the records are purged, Unix ms; 0 while ACTIVE */
    /* A legal hold stops the clock: nothing is restricted or purged while it
     * holds, and releasing it moves the dates still ahead on by the held
     * time. */
    bool legal_hold;
    int64_t legal_hold_since; /* Unix ms; 0 without a hold */
};

/* Deactivates the account with `email` (borrowed; found with
 * carechat_lookup(), so NOT_FOUND covers an account the caller may not see
 * too). A provider may deactivate a patient they invited or share an active
 * care-team channel with; an admin patients and providers; a system
 * administrator anyone else. Fills *out (written only on success) and returns
 * 0; from the server FORBIDDEN (not the caller's to deactivate: a patient
 * deactivates nobody), NOT_FOUND (no such account), CONFLICT (already
 * deactivated), BAD_REQUEST (the caller's own account); STATUS_CORRUPT when
 * the answer names another account; or a local failure (STATUS_BAD_REQUEST:
 * NULL arguments; STATUS_UNAUTHENTICATED: not logged in). */
int carechat_deactivate(struct carechat *c, const char *email, struct carechat_retention *out);

/* The calls below find the account by `email` (borrowed) with
 * carechat_lookup() first, as carechat_deactivate() does: a purged account
 * has no email any more and is NOT_FOUND. The email goes to the server in the
 * lookup and nowhere else (never into carechat_error()). Each fills *out
 * (written only on success) with the account's RetentionInfo as the server
 * answered it and returns 0; STATUS_CORRUPT when the answer names another
 * account or is malformed; from the server (after the lookup's own NOT_FOUND,
 * "no account you may contact has this email") the statuses named; or a
 * local failure (STATUS_BAD_REQUEST: NULL arguments; STATUS_UNAUTHENTICATED:
 * not logged in). */

/* Where the account with `email` stands (admins, system administrators).
 * From the server FORBIDDEN (the caller's role), NOT_FOUND. */
int carechat_get_retention(struct carechat *c, const char *email, struct carechat_retention *out);

/* Brings the account with `email` back to ACTIVE (admins during REVIEW;
 * system administrators during REVIEW or RESTRICTED): it may log in again.
 * From the server FORBIDDEN (a provider or patient; an admin and a
 * RESTRICTED account), NOT_FOUND, CONFLICT (the account is ACTIVE, or
 * PURGED). */
int carechat_reactivate(struct carechat *c, const char *email, struct carechat_retention *out);

/* Reasons for a legal hold: 1..CARECHAT_MAX_REASON bytes of UTF-8. */
#define CARECHAT_MAX_REASON 256

/* Sets (`hold` true) or releases (false) a legal hold on the account with
 * `email` (system administrators only). `reason` (borrowed) says why: 1..
 * CARECHAT_MAX_REASON bytes of UTF-8, required to set a hold, ignored (may be
 * NULL) to release one. The server keeps it with the account; it never
 * appears in an answer, the audit log or a log, and this library never puts
 * it into carechat_error(). Checked before anything is sent:
 * STATUS_BAD_REQUEST (CARECHAT_ERROR_ARGUMENT) for a missing, empty, too long
 * or ill-formed reason. From the server FORBIDDEN (not a system
 * administrator), NOT_FOUND, CONFLICT (already held, or not held, or PURGED),
 * BAD_REQUEST. */
int carechat_legal_hold(struct carechat *c, const char *email, bool hold, const char *reason,
                        struct carechat_retention *out);

/* Forgets the failed sign-ins of the account with `email` from every network
 * (admins, system administrators), so that its owner can sign in at once
 * instead of waiting out the backoff; audited by the server before it takes
 * effect. (A network's own backoff, across accounts, stays.) Writes the
 * account's id to *account (may be NULL) and returns 0; from the server
 * FORBIDDEN, NOT_FOUND, UNAVAILABLE (the audit record cannot be written); or
 * a local failure. */
int carechat_unlock_login(struct carechat *c, const char *email, struct id *account);

/* An opaque position in a listing, from the server; len 0: the start (as an
 * argument), or no more pages (in an answer). */
#define CARECHAT_MAX_PAGE_TOKEN 64
struct carechat_page_token {
    size_t len;
    uint8_t b[CARECHAT_MAX_PAGE_TOKEN];
};

/* One account of carechat_list_accounts(). */
struct carechat_account_summary {
    struct carechat_account account; /* email included: only admins list */
    int64_t created_at;              /* Unix ms */
    struct carechat_retention retention;
};

#define CARECHAT_MAX_ACCOUNT_PAGE 100

struct carechat_account_page {
    size_t n;
    struct carechat_account_summary *items; /* n entries, in the server's order (by id) */
    struct carechat_page_token next;        /* len 0: this was the last page */
};

/* One page of the accounts (admins, system administrators), in a stable
 * order, each with role, name, email and retention; purged accounts are not
 * listed. `role` CARECHAT_ROLE_UNSPECIFIED lists every role, another only
 * that one; `limit` is the page's size, 1..CARECHAT_MAX_ACCOUNT_PAGE (0: the
 * server's 50); `after` (may be NULL, or len 0: the first page) is the `next`
 * of the page before. Stores the page in *out (free with
 * carechat_account_page_free()) and returns 0; STATUS_BAD_REQUEST (local) for
 * a bad role or limit; STATUS_CORRUPT when the answer is malformed (more
 * accounts than asked for, a summary without its retention or about another
 * account, a token over CARECHAT_MAX_PAGE_TOKEN bytes or equal to `after`,
 * so that following the tokens always ends); from the server
 * FORBIDDEN (a provider or patient), BAD_REQUEST (a token it did not give);
 * or a local failure. */
int carechat_list_accounts(struct carechat *c, enum carechat_role role, unsigned limit,
                           const struct carechat_page_token *after,
                           struct carechat_account_page **out);

/* Frees a result of carechat_list_accounts(). Accepts NULL. */
void carechat_account_page_free(struct carechat_account_page *p);

/* ---- Pending invitations (providers, admins, system administrators) ------ */

#define CARECHAT_INVITE_ID_LEN 32  /* the SHA-256 of the code */
#define CARECHAT_MAX_INVITES 10000 /* carechat_list_invites() gathers at most */

struct carechat_invite {
    uint8_t id[CARECHAT_INVITE_ID_LEN];
    char email[CARECHAT_MAX_EMAIL + 1];
    enum carechat_role role;
    struct id inviter;
    int64_t created_at, expires_at; /* Unix ms */
};

struct carechat_invites {
    size_t n;
    struct carechat_invite *items;
};

/* Every pending invitation the caller may see (its own; everyone's for
 * admins and system administrators), following the server's pages. Stores
 * them in *out (free with carechat_invites_free()) and returns 0; from the
 * server FORBIDDEN (a patient); or a local failure. */
int carechat_list_invites(struct carechat *c, struct carechat_invites **out);
void carechat_invites_free(struct carechat_invites *l);

/* Revokes the pending invitation `id` (its code stops working). Returns 0;
 * from the server NOT_FOUND (unknown, used, expired, or another's for a
 * provider), FORBIDDEN; or a local failure. */
int carechat_revoke_invite(struct carechat *c, const uint8_t id[CARECHAT_INVITE_ID_LEN]);

/* ---- Breach notification (system administrators) ------------------------ */

#define CARECHAT_MAX_BREACH_ACCOUNTS 1024
#define CARECHAT_MAX_DESCRIPTION 4096

/* A declaration: the affected accounts by email (at most
 * CARECHAT_MAX_BREACH_ACCOUNTS), or else a window [from, until) of the audit
 * log (until 0: now) with an optional accessor email, whose accessed patients
 * the server finds. */
struct carechat_breach_declaration {
    const struct id *incident; /* NULL: a new random one */
    int64_t discovered_at;     /* Unix ms; 0: now */
    const char *description;   /* the operators' note, 0..4096 bytes; sensitive */
    const char *const *emails; /* n_emails affected accounts */
    size_t n_emails;
    int64_t from, until;        /* the window, when n_emails is 0 */
    const char *accessor_email; /* NULL: anyone's accesses */
};

struct carechat_breach {
    struct id incident;
    uint32_t queued; /* notices this declaration queued */
    int64_t discovered_at, deadline;
};

/* Declares a breach: one content-free notice per affected person goes out by
 * email through the server's outbox. Stores the incident in *out and returns
 * 0; STATUS_BAD_REQUEST (local: no accounts and no window, a description
 * over 4096 bytes or not UTF-8); from the server FORBIDDEN (not a system
 * administrator), NOT_FOUND (an unknown account), TOO_LARGE; or a local
 * failure. The description never appears in an error text. */
int carechat_breach_declare(struct carechat *c, const struct carechat_breach_declaration *d,
                            struct carechat_breach *out);

/* Breach notice states, numbered as carechat.v1 BreachNoticeState. */
enum carechat_notice_state {
    CARECHAT_NOTICE_PENDING = 1,
    CARECHAT_NOTICE_SENT = 2,
    CARECHAT_NOTICE_FAILED = 3,
};

struct carechat_breach_notice {
    struct id account;
    enum carechat_notice_state state;
    int64_t queued_at, settled_at; /* Unix ms; settled_at 0 while pending */
};

struct carechat_breach_status {
    struct id incident;
    int64_t discovered_at, deadline;
    uint32_t total, overdue;
    size_t n;
    struct carechat_breach_notice *notices; /* every page, by account id */
};

/* Where every notice of `incident` stands (all pages). Stores it in *out
 * (free with carechat_breach_status_free()) and returns 0; from the server
 * NOT_FOUND (no such incident), FORBIDDEN; or a local failure. */
int carechat_breach_status(struct carechat *c, const struct id *incident,
                           struct carechat_breach_status **out);
void carechat_breach_status_free(struct carechat_breach_status *s);

/* ---- Audit log (administrators and system administrators) ---------------- */

/* One record of the server's hash-chained audit log. */
struct carechat_audit_record {
    uint64_t index;
    int64_t time; /* ms since the epoch */
    bool has_actor, has_device, has_patient;
    struct id actor, device, patient;
    char action[64]; /* dotted ("session.login", "message.read") */
    uint8_t object[32];
    size_t object_len;
    int outcome; /* carechat.v1 Status number (0: OK) */
    char source[64];
    uint8_t prev_hash[32], hash[32];
    uint32_t repeated; /* a coalesced read repeated this many times (0: one access) */
    /* Display names of the actor and the patient, for reading (not part of
     * the hashed record): "" when unknown or no longer readable (purged). */
    char actor_name[CARECHAT_MAX_NAME + 1], patient_name[CARECHAT_MAX_NAME + 1];
};

struct carechat_audit_records {
    size_t n;
    struct carechat_audit_record *items;
};

/* Filters of carechat_audit_query(); zero / NULL: no filter. */
struct carechat_audit_filter {
    int64_t since, until; /* time >= since, time < until (ms) */
    const struct id *actor;
    const struct id *patient;
};

#define CARECHAT_AUDIT_MAX 100000 /* records carechat_audit_query() gathers at most */

/* The carechat.v1 Status name of an audit record's outcome ("OK",
 * "FORBIDDEN"), or "UNKNOWN" for a number the library does not know. */
const char *carechat_status_name(int outcome);

/* Every record matching `f`, oldest first, following the server's pages
 * (at most CARECHAT_AUDIT_MAX records). Stores them in *out (free with
 * carechat_audit_records_free()) and returns 0; from the server FORBIDDEN
 * (not an administrator) or BAD_REQUEST; STATUS_TOO_LARGE past the cap; or a
 * local failure. */
int carechat_audit_query(struct carechat *c, const struct carechat_audit_filter *f,
                         struct carechat_audit_records **out);

/* Accepts NULL. */
void carechat_audit_records_free(struct carechat_audit_records *r);

/* Asks the server to walk the audit chain. Returns 0 with *ok, *first_bad
 * (when !*ok: the first index that does not verify) and *checked; from the
 * server FORBIDDEN; or a local failure. */
int carechat_audit_verify(struct carechat *c, bool *ok, uint64_t *first_bad, uint64_t *checked);

/* ---- Notifications (any account) --------------------------------------------
 *
 * Offline accounts get a content-free email and devices a content-free push
 * (protocol/PROTOCOL.md "Notifications"); these calls read and change the
 * account's settings and register this device for push. Tokens and
 * endpoints are personal data: never put them in logs. */

struct carechat_notify_settings {
    bool email; /* email notices ("you have a new secure message") */
    bool push;  /* push notices to the account's registered devices */
    /* Quiet hours: new-message notices wait from quiet_from_min to
     * quiet_until_min (minutes after midnight, 0..1439; equal: none) in the
     * zone utc_offset_min (-720..840) from UTC. */
    unsigned quiet_from_min, quiet_until_min;
    int utc_offset_min;
};

/* The account's settings into *out (both on until changed). Returns 0 or a
 * failure (STATUS_UNAUTHENTICATED: not logged in). */
int carechat_notify_get(struct carechat *c, struct carechat_notify_settings *out);

/* Replaces the account's settings with *in; the stored ones into *out.
 * Returns 0 or a failure. */
int carechat_notify_set(struct carechat *c, const struct carechat_notify_settings *in,
                        struct carechat_notify_settings *out);

enum carechat_push_kind {
    CARECHAT_PUSH_APNS = 1,
    CARECHAT_PUSH_FCM = 2,
    CARECHAT_PUSH_WEBPUSH = 3,
};

/* What this device registers (the fields of `kind`; strings borrowed). */
struct carechat_push_target {
    enum carechat_push_kind kind;
    const uint8_t *apns_token; /* APNS: the device token, 32..100 bytes */
    size_t apns_token_len;
    bool apns_sandbox;            /* APNS: a development build */
    const char *fcm_token;        /* FCM: the registration token */
    const char *webpush_endpoint; /* WEBPUSH: the subscription's https endpoint */
    uint8_t webpush_p256dh[65];   /* WEBPUSH: the subscription's public key */
    uint8_t webpush_auth[16];     /* WEBPUSH: its authentication secret */
};

/* Registers this device for push (replacing its earlier registration of the
 * same kind); the registration's id into *registration_out. Returns 0; from
 * the server BAD_REQUEST (a token or subscription the server's notifier would
 * not accept); or a local failure. */
int carechat_push_register(struct carechat *c, const struct carechat_push_target *t,
                           struct id *registration_out);

/* Removes a registration of one of the account's devices. Returns 0; from the
 * server NOT_FOUND (no such registration, e.g. removed when the provider said
 * the token was dead); or a local failure. */
int carechat_push_unregister(struct carechat *c, const struct id *registration);

/* ---- History on a new device: the account's end-to-end encrypted key backup ----
 *
 * A device that joins an account later (a new phone) gets no key for the
 * messages sent before it: each message's content key is wrapped only for the
 * devices of its time. The key backup brings those keys to a new device
 * without the server being able to read them, and works without the old
 * device (a lost phone): the account's devices keep the content keys of the
 * messages they read or send in numbered segments on the server, encrypted
 * under a key derived from a recovery key that only the person holds
 * (PROTOCOL.md "Key backup", client/keybackup.h). Once turned on, the
 * library backs up what this device reads or sends by itself, after History,
 * Send and Ack; a device that restored the backup does the same.
 */

/* The recovery key as shown: 36 letters and digits in 9 groups of 4. */
#define CARECHAT_RECOVERY_KEY_LEN 44

struct carechat_key_backup_status {
    bool enabled;           /* this device keeps the backup (its profile holds the key) */
    size_t local_keys;      /* message keys on this device (DIR/history_keys) */
    size_t pending_keys;    /* of them, learned here and not yet in the backup */
    size_t segments;        /* on the server */
    uint64_t bytes;         /* ... their size */
    int64_t last_backup_at; /* the newest segment's time, Unix ms (0: none) */
    uint32_t max_segments;  /* the server's limits */
    uint64_t max_bytes;
    /* Why the last automatic backup failed ("" when it did not): a note for
     * people, never key material. */
    char last_error[256];
};

/* Turns the key backup on for the account: draws a recovery key (160 random
 * bits), keeps the backup key derived from it in the profile (the recovery
 * key itself is stored nowhere), gathers the keys of every message this
 * device can read now (its conversations' history) and uploads them. Copies
 * the recovery key to `recovery_key` (show it once, then wipe it) and the
 * number of message keys in the backup to *keys (may be NULL). Returns 0
 * (also when uploading failed for now: the keys then stay pending, and
 * `carechat_key_backup_status()` says why); CONFLICT (local) when this device
 * keeps a backup already, or from the account's segments on the server (a
 * backup made elsewhere: restore it with its recovery key, or disable it
 * first); or a local or server failure. */
int carechat_key_backup_enable(struct carechat *c, char recovery_key[CARECHAT_RECOVERY_KEY_LEN + 1],
                               size_t *keys);

/* Reads the account's backup with `recovery_key` (as the person types it:
 * case, spaces and dashes do not matter) and keeps its keys on this device,
 * which then reads every earlier message its history shows, and keeps the
 * backup from then on (as carechat_key_backup_enable()). The key is checked
 * on the device first: a typo is BAD_REQUEST (CARECHAT_ERROR_ARGUMENT,
 * nothing sent). Copies the number of message keys restored to *keys (may be
 * NULL). Returns 0; FORBIDDEN (CARECHAT_ERROR_ARGUMENT) when the key does not
 * open the account's backup; NOT_FOUND when the account has none; CORRUPT
 * when a segment does not open (altered); CONFLICT when this device keeps
 * another backup; or a server or local failure. Nothing changes on failure. */
int carechat_key_backup_restore(struct carechat *c, const char *recovery_key, size_t *keys);

/* Uploads the keys this device learned since the last backup now (the
 * library also does after History, Send and Ack). Returns 0 (also when the
 * backup is off) or a failure (TOO_LARGE: full even compacted). */
int carechat_key_backup_sync(struct carechat *c);

/* What this device and the server hold. Returns 0 or a failure. */
int carechat_key_backup_status(struct carechat *c, struct carechat_key_backup_status *out);

/* Turns the key backup off: the server deletes every segment of the account
 * and retires its key, and this device forgets the backup key; another
 * device still keeping it stops at its next upload (the server refuses the
 * retired key). The message keys already on this device stay, so it still
 * reads what it restored; `carechat_forget_device()` removes them. Returns 0
 * or a failure. */
int carechat_key_backup_disable(struct carechat *c);

#endif
