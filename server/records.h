/*
 * server/records.h: the typed records that apply writes for accounts,
 * invitations, devices, sessions and audit, and their byte encodings.
 *
 * Every record is one value in its column family (storage/store.h seals it):
 *
 *   CF_ACCOUNTS     account id (16)                  -> struct rec_account
 *                   REC_LIFECYCLE_TAG | account id (17) -> struct rec_lifecycle: where a
 *                        deactivated account stands in the retention lifecycle. Sealed
 *                        with the server's key (ids and times only), so that it outlives
 *                        the purge of the account and its data key.
 *   CF_EMAIL_INDEX  blind index of the email (32)    -> account id (16 bytes)
 *   CF_INVITES      SHA-256 of the invitation code   -> struct rec_invite
 *   CF_DEVICES      account id (16) | device id (16) -> struct rec_device
 *   CF_SESSIONS     SHA-256 of the session token     -> struct rec_session
 *   CF_AUDIT        index (8, big-endian)            -> struct rec_audit
 *   CF_META         REC_META_SYSADMIN                -> account id of the first sysadmin
 *                   REC_META_AUDIT_NEXT              -> next audit index (8, big-endian)
 *                   AUDIT_META_HEAD (server/audit.h) -> hash of the last audit record (32)
 *                   REC_BREACH_TAG | incident id (17) -> struct rec_breach
 *                   REC_BREACH_TAG | incident id | account id (33) -> struct rec_breach_notice:
 *                        one per account notified. Both sealed with the server's key (ids,
 *                        times and the operator's description): the proof of notification
 *                        outlives a purge of the account, like the audit records.
 *                   REC_BREACH_JOB_TAG | outbox job id (17) -> incident id | account id (32):
 *                        which notice an outbox result settles
 *
 * Encoding: a format byte (REC_FORMAT) then the fields in a fixed order,
 * integers big-endian at fixed width, byte strings as a 4-byte length and the
 * bytes. A record is extended by appending fields: a decoder that meets a
 * shorter record of the same format leaves the missing trailing fields zero.
 * Decoders copy everything they return (rec_*_cleanup frees).
 *
 * Pure functions, any thread.
 */
#ifndef SERVER_RECORDS_H
#define SERVER_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"

#define REC_FORMAT 1
#define REC_LIFECYCLE_TAG 'L'
#define REC_BREACH_TAG 'B'
#define REC_BREACH_JOB_TAG 'b'
#define REC_BREACH_DESCRIPTION_MAX 4096

#define REC_META_SYSADMIN "sysadmin"
#define REC_META_AUDIT_NEXT "audit_next"

#define REC_HASH_LEN 32   /* SHA-256 and blind index */
#define REC_KEY_LEN 32    /* Ed25519 / X25519 public keys */
#define REC_SIG_LEN 64    /* Ed25519 signatures */
#define REC_LIST_MAX 32   /* devices in a signed device list */
#define REC_MAX_DEVICES 6 /* devices per account */

/* Two-factor sign-in (server/totp.h): secret bytes, recovery codes per account. */
#define REC_TOTP_SECRET_LEN 20
#define REC_RECOVERY_MAX 10

/* Roles, numbered as carechat.v1 Role. */
enum rec_role {
    REC_ROLE_PATIENT = 1,
    REC_ROLE_PROVIDER = 2,
    REC_ROLE_ADMIN = 3,
    REC_ROLE_SYSADMIN = 4,
};

struct rec_list_item {
    struct id device_id;
    uint8_t identity_key[REC_KEY_LEN];
};

struct rec_account {
    uint32_t role;
    bool active;
    int64_t created_at;
    uint32_t n_devices;
    char *email;         /* normalised; owned */
    char *display_name;  /* owned */
    char *birth_date;    /* "YYYY-MM-DD", or "" for the bootstrap sysadmin; owned */
    char *password_hash; /* crypto_pwhash_str() output; owned */
    /* The latest signed device list (version 0, no items before the first). */
    uint64_t list_version;
    struct id list_signer;
    uint8_t list_signature[REC_SIG_LEN];
    uint32_t n_list;
    struct rec_list_item list[REC_LIST_MAX];
    /* Who invited the account (all zero for the bootstrap sysadmin): a patient
     * may open a direct conversation with the staff member who invited them. */
    struct id inviter;
    /* When the account was deactivated (entered REVIEW); 0 while active. */
    int64_t deactivated_at;
    /* Why a legal hold is on the account (set by a sysadmin; "" or NULL for
     * none); owned. Kept here, under the account's key, not in the lifecycle
     * record, since it may name people. */
    char *hold_reason;
    /* Sessions created before this time no longer authenticate (a password
     * change ends the account's other sessions); 0: none. */
    int64_t sessions_after;
    /* The stored list's hash (rules_device_list_prev_hash(); the next list's
     * prev_list_prev_hash; zeros before the first list), and whether an
     * administrator reset the list (the next one may be signed by any of the
     * account's devices, which peers see as a changed identity). */
    uint8_t list_prev_hash[REC_HASH_LEN];
    bool list_reset;
    int64_t list_reset_at;
    /* The pending password reset (RequestPasswordReset): SHA-256 of its code
     * (all zero: none), when it expires, and the wrong tries it has left. */
    uint8_t reset_code_hash[REC_HASH_LEN];
    int64_t reset_expires_at;
    uint32_t reset_attempts;
    /* Two-factor sign-in (server/totp.h): its state, the secret (pending or
     * active; zero for none; wiped by rec_account_cleanup()), the last TOTP
     * step accepted (a code of it or an earlier step is refused) and the
     * SHA-256 of each unused recovery code. */
    uint8_t totp_state; /* enum rec_totp_state */
    uint8_t totp_secret[REC_TOTP_SECRET_LEN];
    uint64_t totp_last_step;
    uint32_t n_recovery;
    uint8_t recovery[REC_RECOVERY_MAX][REC_HASH_LEN];
};

enum rec_totp_state {
    REC_TOTP_NONE = 0,
    REC_TOTP_PENDING = 1, /* enrolled, not yet confirmed: sign-in unchanged */
    REC_TOTP_ACTIVE = 2,
};

/* Retention states, numbered as carechat.v1 RetentionState. */
enum rec_lifecycle_state {
    REC_LC_ACTIVE = 1,
    REC_LC_REVIEW = 2,
    REC_LC_RESTRICTED = 3,
    REC_LC_PURGED = 4,
};

struct rec_lifecycle {
    uint32_t state;         /* enum rec_lifecycle_state */
    int64_t deactivated_at; /* entered REVIEW */
    int64_t restricted_at;  /* REVIEW ends (moved on by the held time) */
    int64_t purge_at;       /* RESTRICTED ends */
    int64_t changed_at;     /* the last transition */
    bool hold;              /* a legal hold stops the clock */
    int64_t hold_since;     /* when the current hold started */
};

/* A declared breach incident. */
struct rec_breach {
    int64_t declared_at;
    struct id declared_by;
    int64_t discovered_at;
    int64_t deadline;   /* every notice due before it */
    uint32_t n_notices; /* notice records of the incident */
    char *description;  /* the operator's note; owned; never logged */
};

/* Breach notice states, numbered as carechat.v1 BreachNoticeState. */
enum rec_breach_notice_state {
    REC_BREACH_PENDING = 1,
    REC_BREACH_SENT = 2,
    REC_BREACH_FAILED = 3,
};

struct rec_breach_notice {
    uint32_t state;
    int64_t queued_at;
    int64_t settled_at; /* 0 while PENDING */
    uint8_t job_id[16]; /* its outbox job (the email's Message-ID) */
};

struct rec_invite {
    uint32_t role;
    struct id inviter;
    uint8_t email_index[REC_HASH_LEN];
    char *email; /* owned */
    int64_t created_at;
    int64_t expires_at;
};

struct rec_device {
    uint8_t identity_key[REC_KEY_LEN];
    uint8_t encryption_key[REC_KEY_LEN];
    uint32_t encryption_key_id;
    int64_t encryption_key_expires_at;
    uint8_t signature[REC_SIG_LEN];
    char *label; /* owned */
    int64_t created_at;
};

struct rec_session {
    struct id account_id;
    struct id device_id;
    int64_t created_at;
    int64_t expires_at;
    int64_t idle_expires_at;
    /* Login.stay_signed_in: refreshable past idle_expires_at (encoded only
     * when set). */
    bool stay_signed_in;
};

/* Whether session `s` has ended at `now` (and may be swept): its absolute
 * expiry, or its idle expiry unless it stays signed in. */
bool rec_session_ended(const struct rec_session *s, int64_t now);

#define REC_AUDIT_OBJECT_MAX 32 /* an id (16) or a hash (32) */
#define REC_AUDIT_SOURCE_MAX 45 /* INET6_ADDRSTRLEN - 1 */

/* One link of the audit chain. Encoding (after the format byte): index,
 * time, action, outcome, actor, then the fields this record grew with:
 * device, object, patient, source, prev_hash, hash. Everything but `hash` is
 * the record's canonical encoding (rec_audit_canonical()), and
 * hash = SHA-256(canonical): prev_hash is part of what the hash covers. */
struct rec_audit {
    uint64_t index;
    int64_t time;
    uint32_t action;
    uint32_t outcome; /* 0: done; otherwise the wire status of the refusal */
    struct id actor;  /* all zero: none */
    struct id device; /* the actor's device; all zero: none */
    uint32_t object_len;
    uint8_t object[REC_AUDIT_OBJECT_MAX];  /* the id acted on; object_len 0: none */
    struct id patient;                     /* whose data was touched; all zero: none */
    char source[REC_AUDIT_SOURCE_MAX + 1]; /* the peer's address as text; "" for none */
    /* Further identical reads this record stands for (server/coalesce.h): a
     * record with repeats is written in format 2, which adds this field after
     * the source; 0 for every other record (format 1). */
    uint32_t repeated;
    uint8_t prev_hash[REC_HASH_LEN];
    uint8_t hash[REC_HASH_LEN];
};

/* Encoders append the record to `out`. */
void rec_account_encode(const struct rec_account *a, struct buf *out);
void rec_invite_encode(const struct rec_invite *i, struct buf *out);
void rec_device_encode(const struct rec_device *d, struct buf *out);
void rec_session_encode(const struct rec_session *s, struct buf *out);
void rec_audit_encode(const struct rec_audit *a, struct buf *out);
void rec_lifecycle_encode(const struct rec_lifecycle *l, struct buf *out);
void rec_breach_encode(const struct rec_breach *b, struct buf *out);
void rec_breach_notice_encode(const struct rec_breach_notice *n, struct buf *out);
/* Appends the canonical encoding of `a`: rec_audit_encode() without `hash`. */
void rec_audit_canonical(const struct rec_audit *a, struct buf *out);

/* Decoders fill *out (zeroed first; free the strings with rec_*_cleanup()).
 * Return 0, or STATUS_CORRUPT for another format byte, a truncated field or a
 * field of the wrong size (nothing then needs cleanup). */
int rec_account_decode(const uint8_t *data, size_t len, struct rec_account *out);
int rec_invite_decode(const uint8_t *data, size_t len, struct rec_invite *out);
int rec_device_decode(const uint8_t *data, size_t len, struct rec_device *out);
/* As rec_account_decode() and rec_device_decode(), checking every field but
 * leaving the strings (email, names, birth date, password hash, hold reason;
 * the label) NULL: for the paths that need only an account's state and
 * devices or a device's keys (a Send, for each of its recipients), which
 * then allocate nothing and copy no personal data. Cleanup is harmless. */
int rec_account_decode_lean(const uint8_t *data, size_t len, struct rec_account *out);
int rec_device_decode_lean(const uint8_t *data, size_t len, struct rec_device *out);
int rec_session_decode(const uint8_t *data, size_t len, struct rec_session *out);
int rec_audit_decode(const uint8_t *data, size_t len, struct rec_audit *out);
int rec_lifecycle_decode(const uint8_t *data, size_t len, struct rec_lifecycle *out);
int rec_breach_decode(const uint8_t *data, size_t len, struct rec_breach *out);
int rec_breach_notice_decode(const uint8_t *data, size_t len, struct rec_breach_notice *out);

/* The CF_ACCOUNTS key of an account's lifecycle record (17 bytes). */
void rec_lifecycle_key(const struct id *account, uint8_t out[1 + ID_LEN]);
/* The CF_META keys of an incident (17 bytes) and of its notice to `account`
 * (33 bytes; account NULL: the 17-byte prefix of the incident's notices is the
 * incident's own key). */
void rec_breach_key(const struct id *incident, const struct id *account,
                    uint8_t out[1 + 2 * ID_LEN]);

/* Free the strings of a decoded (or filled-in) record (and wipe an account's
 * two-factor secret). Accept NULL. */
void rec_account_cleanup(struct rec_account *a);
void rec_breach_cleanup(struct rec_breach *b);
void rec_invite_cleanup(struct rec_invite *i);
void rec_device_cleanup(struct rec_device *d);

#endif
