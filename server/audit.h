/*
 * server/audit.h: the tamper-evident audit log: appending a link to the hash
 * chain (apply, the only writer), walking and verifying the chain, querying
 * it with filters, and logging anchors of its head.
 *
 * Records live in CF_AUDIT under their index (8 bytes, big-endian), sealed
 * with the server's data key; indexes run 1, 2, 3, ... without gaps. CF_META
 * holds the next index (REC_META_AUDIT_NEXT, 8 bytes big-endian) and the hash
 * of the last record (AUDIT_META_HEAD, 32 bytes).
 *
 * The chain: record i has prev_hash = hash of record i-1 (32 zero bytes for
 * i = 1) and hash = SHA-256(canonical(i)), where canonical(i) is this byte
 * layout (integers big-endian, ids raw 16 bytes, zero for none):
 *
 *   u8  format (1, or 2)  u64 index          u64 time (ms since the epoch)
 *   u32 action            u32 outcome (wire status, 0 when done)
 *   16  actor account     16  actor device
 *   u32 object length, object bytes (0..32: an id or a hash)
 *   16  patient account
 *   u32 source length, source address text (0..45 bytes)
 *   [format 2 only: u32 repeated (>= 1), the further identical reads the
 *    record stands for (server/coalesce.h)]
 *   u32 32, prev_hash (32 bytes)
 *
 * and the stored value is canonical(i) followed by u32 32 and the hash
 * (server/records.h rec_audit_encode()). Records carry ids, statuses and
 * addresses only: no content, names or email addresses.
 *
 * Verification walks indexes from 1 to next-1: a record that is missing
 * (deleted: a gap), fails to open (its sealed value was edited or moved under
 * another key) or fails to decode, holds another index, a prev_hash other
 * than the running hash, or a hash other than SHA-256 of its canonical
 * encoding, is bad; the first bad index is reported.
 *
 * Threads: audit_append() on the journal's writer thread (inside apply, pure:
 * no clock, no I/O beyond the transaction); the rest on any thread that may
 * read the store (the lws loop thread in carechatd).
 */
#ifndef SERVER_AUDIT_H
#define SERVER_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/records.h"
#include "storage/store.h"

#define AUDIT_META_HEAD "audit_head"

/* The audit actions: the on-disk number of each and its printed name, one
 * line each. Numbers never change or get reused: records keep them. 19 was
 * "request" (any refused request), written by 0.1 servers and still printed.
 * A request names its action in the request table (server/requests.c);
 * actions without a request (bootstrap, register_refused, session.expire,
 * account.2fa_recovery_used, session.2fa_refused) are written by apply, the
 * session sweep or the sign-in handlers. */
#define AUDIT_ACTIONS(X)                                                                           \
    X(BOOTSTRAP, 1, "account.bootstrap")                                                           \
    X(INVITE, 2, "account.invite")                                                                 \
    X(REGISTER, 3, "account.register")                                                             \
    X(REGISTER_UNDER_AGE, 4, "account.register_refused")                                           \
    X(LOGIN, 5, "session.login")                                                                   \
    X(LOGOUT, 6, "session.logout")                                                                 \
    X(DEVICE_REMOVE, 7, "device.remove")                                                           \
    X(AUTHENTICATE, 8, "session.authenticate")                                                     \
    X(SESSION_EXPIRE, 9, "session.expire")                                                         \
    X(HISTORY, 10, "message.read")                                                                 \
    X(CONVERSATION_READ, 11, "conversation.read")                                                  \
    X(CONVERSATION_CREATE, 12, "conversation.create")                                              \
    X(MESSAGE_SEND, 13, "message.send")                                                            \
    X(RECEIPT, 14, "message.receipt")                                                              \
    X(DEVICE_PUBLISH, 15, "device.publish_list")                                                   \
    X(LOOKUP, 16, "account.lookup")                                                                \
    X(QUERY, 17, "audit.query")                                                                    \
    X(VERIFY, 18, "audit.verify")                                                                  \
    X(MESSAGE_RECALL, 20, "message.recall")                                                        \
    X(DEVICE_ROTATE_KEY, 21, "device.rotate_key")                                                  \
    X(DEVICE_READ, 22, "device.read")                                                              \
    X(CONVERSATION_LIST, 23, "conversation.list")                                                  \
    X(CHANNEL_CREATE, 24, "channel.create")                                                        \
    X(MEMBER_ADD, 25, "member.add")                                                                \
    X(MEMBER_REMOVE, 26, "member.remove")                                                          \
    X(MEMBER_APPROVE, 27, "member.approve")                                                        \
    X(CONVERSATION_LEAVE, 28, "conversation.leave")                                                \
    X(MEMBER_LIST, 29, "member.list")                                                              \
    X(MESSAGE_ACK, 30, "message.ack")                                                              \
    X(MESSAGE_SYNC, 31, "message.sync")                                                            \
    X(MESSAGE_TYPING, 32, "message.typing")                                                        \
    X(URGENT_ACK, 33, "message.urgent_ack")                                                        \
    X(URGENT_STATUS, 34, "message.urgent_status")                                                  \
    X(FILE_UPLOAD, 35, "file.upload")                                                              \
    X(FILE_DOWNLOAD, 36, "file.download")                                                          \
    X(NOTIFY_READ, 37, "notification.settings_read")                                               \
    X(NOTIFY_WRITE, 38, "notification.settings_write")                                             \
    X(PUSH_REGISTER, 39, "push.register")                                                          \
    X(PUSH_UNREGISTER, 40, "push.unregister")                                                      \
    X(ACCOUNT_LIST, 41, "account.list")                                                            \
    X(ACCOUNT_DEACTIVATE, 42, "account.deactivate")                                                \
    X(ACCOUNT_REACTIVATE, 43, "account.reactivate")                                                \
    X(LEGAL_HOLD, 44, "account.legal_hold")                                                        \
    X(RETENTION_READ, 45, "account.retention_read")                                                \
    X(FILE_RESTORE, 46, "file.restore")                                                            \
    X(BREACH_START, 47, "breach.start")                                                            \
    X(DEVICE_INBOX_FULL, 48, "device.inbox_full")                                                  \
    X(ACCOUNT_UNLOCK, 49, "account.unlock")                                                        \
    X(ACCOUNT_RESTRICT, 50, "account.restrict")                                                    \
    X(ACCOUNT_PURGE, 51, "account.purge")                                                          \
    X(LEGAL_HOLD_RELEASE, 52, "account.legal_hold_release")                                        \
    X(BREACH_NOTICE, 53, "breach.notice")                                                          \
    X(BREACH_STATUS, 54, "breach.status")                                                          \
    X(PASSWORD_CHANGE, 55, "account.password_change")                                              \
    X(INVITE_REVOKE, 56, "account.invite_revoke")                                                  \
    X(INVITE_LIST, 57, "account.invite_list")                                                      \
    X(NOTIFY_DROPPED, 60, "notification.dropped")                                                  \
    X(PUSH_TOKEN_DEAD, 61, "push.token_dead")                                                      \
    X(FILE_UPLOAD_COMPLETE, 70, "file.upload_complete")                                            \
    X(FILE_UPLOAD_DELETE, 71, "file.upload_delete")                                                \
    X(FILE_UPLOAD_EXPIRE, 72, "file.upload_expire")                                                \
    X(DEVICE_LIST_RESET, 80, "device.list_reset")                                                  \
    X(DEVICE_RENAME, 81, "device.rename")                                                          \
    X(PASSWORD_RESET_REQUEST, 82, "account.password_reset_request")                                \
    X(PASSWORD_RESET, 83, "account.password_reset")                                                \
    X(TOTP_ENROLL, 85, "account.2fa_enroll")                                                       \
    X(TOTP_CONFIRM, 86, "account.2fa_confirm")                                                     \
    X(TOTP_DISABLE, 87, "account.2fa_disable")                                                     \
    X(TOTP_RECOVERY_USED, 88, "account.2fa_recovery_used")                                         \
    X(TOTP_REFUSED, 89, "session.2fa_refused")                                                     \
    X(KEY_BACKUP_WRITE, 90, "key_backup.write")                                                    \
    X(KEY_BACKUP_LIST, 91, "key_backup.list")                                                      \
    X(KEY_BACKUP_READ, 92, "key_backup.read")                                                      \
    X(KEY_BACKUP_DELETE, 93, "key_backup.delete")

enum rec_audit_action {
#define AUDIT_ENUM(name, number, text) REC_AUDIT_##name = number,
    AUDIT_ACTIONS(AUDIT_ENUM)
#undef AUDIT_ENUM
        REC_AUDIT_ACTION_MAX = 93, /* the highest number above (checked by audit.c) */
};

/* The dotted name of an action ("session.login"); "unknown" for a number
 * that names none. */
const char *audit_action_name(uint32_t action);

/* Apply side: sets a->index and a->prev_hash from the chain head seen through
 * `txn`, computes a->hash, stages the record and the new head. The caller
 * fills the other fields. Returns 0; STATUS_BAD_REQUEST for an action out of
 * range, an object above REC_AUDIT_OBJECT_MAX or a source above
 * REC_AUDIT_SOURCE_MAX bytes; STATUS_CORRUPT for a head of the wrong size; or
 * the status of txn_get/txn_put. */
int audit_append(struct store_txn *txn, struct rec_audit *a);

/* Computes SHA-256 of the canonical encoding of `a` into out. */
void audit_hash(const struct rec_audit *a, uint8_t out[REC_HASH_LEN]);

/* The head: the index of the last record (0 when there is none) and its hash
 * (zero when none). Returns 0, STATUS_CORRUPT for a head of the wrong size,
 * or the store's status. */
int audit_head(struct store *s, uint64_t *index, uint8_t hash[REC_HASH_LEN]);

/* Reads record `index`. Returns 0; STATUS_NOT_FOUND; STATUS_CORRUPT when its
 * value does not open or decode; or STATUS_IO. */
int audit_read(struct store *s, uint64_t index, struct rec_audit *out);

/* A verification in progress (plain data, caller-owned). */
struct audit_verify {
    uint64_t next;                 /* the index to check next (starts at 1) */
    uint64_t end;                  /* one past the last index to check */
    uint8_t running[REC_HASH_LEN]; /* hash of record next-1 */
    uint64_t checked;              /* records that verified (all before first_bad) */
    bool done;
    bool ok;            /* meaningful when done */
    uint64_t first_bad; /* meaningful when done && !ok */
};

/* Starts a verification of records 1 .. head index. Returns 0 or the status
 * of audit_head(). */
int audit_verify_begin(struct store *s, struct audit_verify *v);

/* Checks at most `max_records` more records (a bounded step). Returns 0
 * (v->done tells whether the walk ended; a bad record ends it with ok false
 * and first_bad set), or STATUS_IO when the store cannot be read (the walk
 * can be retried). */
int audit_verify_step(struct store *s, struct audit_verify *v, size_t max_records);

struct audit_filter {
    int64_t since, until; /* time >= since, time < until; 0: no bound */
    bool has_actor, has_patient;
    struct id actor, patient;
};

/* True when `a` matches every filter that is set. */
bool audit_matches(const struct audit_filter *f, const struct rec_audit *a);

/* One page of a query: examines records with index > `after` in order, at
 * most `max_examined` of them, and copies those that match into out[0..limit)
 * (*n_out of them). *last is the last index examined (the page token of the
 * next page) and *more is true when records after it exist. Returns 0, or
 * STATUS_CORRUPT / STATUS_IO for a record that cannot be read (verify the
 * chain). */
int audit_query(struct store *s, const struct audit_filter *f, uint64_t after, size_t limit,
                size_t max_examined, struct rec_audit *out, size_t *n_out, uint64_t *last,
                bool *more);

/* The index after which the records of time >= `time` begin (0: from the
 * first), found by bisection over the chain: records are appended in journal
 * order with their entries' times, which one server's clock makes
 * non-decreasing. Returns 0 and *after, or the status of audit_read(). */
int audit_index_before(struct store *s, int64_t time, uint64_t *after);

/* Logs "audit anchor index=N hash=HEX" at info level for the current head
 * when it is at least `every` records past *anchored (every 0: always, as at
 * shutdown; never for an empty chain), and then sets *anchored to it. Returns 0 or the status of
 * audit_head(). */
int audit_anchor(struct store *s, uint64_t every, uint64_t *anchored);

#endif
