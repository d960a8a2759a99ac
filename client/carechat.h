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
 * revoked, replaced elsewhere) are answered at once and queued as events for
 * carechat_next_event(). A call that loses its connection fails; the next call
 * connects again.
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

#include "base/rand.h"

#define CARECHAT_DEFAULT_URL "ws://127.0.0.1:8080"
#define CARECHAT_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define CARECHAT_DEFAULT_REQUEST_TIMEOUT_MS 30000
/* Lifetime of a new device's encryption key. */
#define CARECHAT_ENCRYPTION_KEY_LIFETIME_MS (90LL * 24 * 3600 * 1000)
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
    const char *server_url; /* wss://, or ws:// to a loopback address; NULL: CARECHAT_DEFAULT_URL */
    const char *profile_dir;  /* required; created (0700) on the first login */
    const char *ca_file;      /* wss: PEM file of trusted CAs; NULL: system store */
    const char *device_label; /* label of a new device; NULL: "carechat CLI" */
    int connect_timeout_ms;   /* 0: CARECHAT_DEFAULT_CONNECT_TIMEOUT_MS */
    int request_timeout_ms;   /* 0: CARECHAT_DEFAULT_REQUEST_TIMEOUT_MS */
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
};

/* Copies the session to *out. Returns 0, or STATUS_UNAUTHENTICATED when this
 * handle has not logged in, registered or authenticated yet. */
int carechat_session(const struct carechat *c, struct carechat_session_info *out);

/* Logs in with `email` and `password` (borrowed; 8..1024 bytes), from this
 * profile's device, or as a new device when the profile has none (see the top
 * of this file), then makes sure the device is in the account's published
 * device list. Stores the session. Returns 0; from the server UNAUTHENTICATED
 * (wrong email or password, or deactivated), NOT_FOUND (the profile's device
 * was removed from the account), RATE_LIMITED, ...; or a local failure. When
 * the login succeeded but publishing the device list failed, the session is
 * kept, that failure is returned, and the next authenticated call retries. */
int carechat_login(struct carechat *c, const char *email, const char *password);

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
 * (NUL-terminated) to `code_out` and its expiry to *expires_at (may be NULL)
 * and returns 0; from the server FORBIDDEN (the caller's role may not invite
 * this role), CONFLICT (an account with this email exists), ...; or a local
 * failure (STATUS_UNAUTHENTICATED: not logged in). */
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

/* Ends this device's session on the server and forgets it in the profile (the
 * device and its keys stay). Returns 0; STATUS_UNAUTHENTICATED when there is
 * no session (the local copy is dropped too); or a local failure. */
int carechat_logout(struct carechat *c);

/* Requests the server made that the application should know about. */
enum carechat_event_kind {
    /* The session ended (reason in `revoke_reason`, carechat.proto
     * RevokeReason numbers); the profile no longer holds it. */
    CARECHAT_EVENT_SESSION_REVOKED = 1,
    /* The same device connected elsewhere; this connection was closed. Do not
     * reconnect automatically. */
    CARECHAT_EVENT_REPLACED_ELSEWHERE = 2,
};

struct carechat_event {
    enum carechat_event_kind kind;
    int revoke_reason;
};

/* Most events kept; older ones are dropped first. */
#define CARECHAT_MAX_EVENTS 16

/* Takes the oldest queued event into *out and returns 0, or returns
 * STATUS_NOT_FOUND when none is queued. Events arrive only while a call is
 * talking to the server. */
int carechat_next_event(struct carechat *c, struct carechat_event *out);

#endif
