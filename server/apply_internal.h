/*
 * server/apply_internal.h: what the files of apply share. Private to the
 * apply library. Writer thread only; pure like apply_entry().
 *
 * The files call each other in one direction:
 *
 *   apply.c (the kind table, apply_entry)
 *     -> apply_accounts.c, apply_messages.c, apply_channels.c, apply_files.c,
 *        apply_keybackup.c (one function per entry kind), apply_audit.c (AuditAppend)
 *          -> apply_audit.c (audit records), apply_store.c (typed records
 *             through the transaction)
 *
 * Every kind function has the signature of apply_kind_fn and returns 0 or the
 * refusal status that entry.proto documents for its kind. Kinds that produce
 * a result (server/records_messages.h) append it to `result`; the others
 * leave it alone.
 */
#ifndef SERVER_APPLY_INTERNAL_H
#define SERVER_APPLY_INTERNAL_H

#include <stdbool.h>

#include "protocol/proto.h"
#include "server/audit.h"
#include "server/records.h"
#include "server/records_messages.h"
#include "server/records_notify.h"
#include "storage/keys.h"
#include "storage/store.h"

typedef int (*apply_kind_fn)(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                             struct buf *result);

/* ---- kinds (apply_accounts.c) ----------------------------------------------------- */

int apply_bootstrap(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_invite(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_register(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_register_refused(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                           struct buf *result);
int apply_login(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_session_touch(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_session_end(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                      struct buf *result);
int apply_device_remove(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_device_rename(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_key_rotate(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);
int apply_device_list(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                      struct buf *result);
int apply_device_list_reset(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            struct buf *result);
int apply_deactivate(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);
int apply_reactivate(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);
int apply_legal_hold(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);
int apply_invite_revoke(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_password_change(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                          struct buf *result);
/* PasswordResetRequest and PasswordReset (entry.proto); PasswordReset's
 * result is the account id when the password was reset, else empty. */
int apply_password_reset_request(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                                 struct buf *result);
int apply_password_reset(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         struct buf *result);
int apply_totp_enroll(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                      struct buf *result);
int apply_totp_confirm(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result);
int apply_totp_disable(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result);
int apply_sweep(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_retention_advance(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            struct buf *result);

/* ---- kinds (apply_messages.c) ------------------------------------------------------ */

int apply_direct_create(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_send(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_inbox_ack(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_receipt(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);

/* ---- kinds (apply_channels.c) ------------------------------------------------------ */

int apply_channel_create(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         struct buf *result);
int apply_member_add(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);
int apply_member_remove(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_member_approve(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         struct buf *result);
int apply_leave(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_recall(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
int apply_urgent_ack(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);

/* ---- breach notification (apply_breach.c) ---------------------------------------------- */

int apply_breach_start(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result);

/* ---- notifications and the outbox (apply_outbox.c) ----------------------------------- */

int apply_notify_settings(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                          struct buf *result);
int apply_push_register(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_push_unregister(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                          struct buf *result);
int apply_outbox_result(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_push_device_left(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                           struct buf *result);

/* An account's notification settings (REC_NOTIFY_SETTINGS_DEFAULT when it
 * never set any). Returns 0, STATUS_CORRUPT or the store's status. */
int apply_read_notify_settings(struct store_txn *txn, const struct id *account,
                               struct rec_notify_settings *out);

/* MessageSend: message `message_id` went to `device` of the recipient
 * `account` (not the sender). Per the account's settings, writes a
 * NEW_MESSAGE email job for the account and one push job per channel the
 * device registered, each unless one is pending for that target already
 * (coalescing, records_notify.h). Returns 0 or the store's status. */
int apply_outbox_message(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         const struct id *message_id, const struct id *account,
                         const struct id *device);

/* InboxAck drained `device`'s inbox (of `account`): the person has read, so
 * the next notice waits only for the first delay again, not the window.
 * Returns 0 or the store's status. */
int apply_outbox_read(struct store_txn *txn, const struct id *account, const struct id *device);

/* InviteCreate with a mail code: the invitation email (address `email`, code
 * `code`, [A-Za-z0-9-]{16,64}) as an outbox row sealed under the server's
 * key, its job id derived from `code_hash`. Returns 0, STATUS_BAD_REQUEST for
 * a malformed code, or the store's status. */
int apply_outbox_invitation(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            const char *email, const char *code,
                            const uint8_t code_hash[REC_HASH_LEN]);

/* PasswordResetRequest: the email with the reset code `code` (as for an
 * invitation) to `email`, the address of `account`, as an outbox row sealed
 * under the account (so a purge shreds it), its job id derived from
 * `code_hash`. Returns 0, STATUS_BAD_REQUEST for a malformed code, or the
 * store's status. */
int apply_outbox_password_reset(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                                const struct id *account, const char *email, const char *code,
                                const uint8_t code_hash[REC_HASH_LEN]);

/* A reset code replaced or used: its email row (of code hash `code_hash`), if
 * not yet handed over, goes without being sent. Returns 0 or the store's
 * status. */
int apply_outbox_password_reset_withdraw(struct store_txn *txn,
                                         const uint8_t code_hash[REC_HASH_LEN]);

/* For kinds of other features (breach notices, issue 12): writes, in the
 * current transaction, one email job of `kind` (REC_NOTICE_BREACH; or
 * REC_NOTICE_NEW_MESSAGE) for `account`, whose address the outbox reads from
 * the account record when it sends; the row is sealed under the account, so a
 * purge shreds it. `job_id` must be derived deterministically from the
 * caller's entry (e.g. SHA-256 of a label, the entry's random id and the
 * account id, cut to 16 bytes) and be unique per notice; it becomes the
 * Message-ID. No coalescing, no digest window, no settings check: it is sent
 * as soon as the outbox sees it, retried like any job. Returns 0;
 * STATUS_NOT_FOUND for an unknown account; STATUS_CONFLICT when a row with
 * this id exists; STATUS_BAD_REQUEST for another kind; or the store's
 * status. */
int apply_outbox_account_email(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                               const struct id *account, enum rec_notice kind,
                               const uint8_t job_id[REC_JOB_ID_LEN]);

/* DeviceRemove: the device's push registrations go with it. */
int apply_outbox_device_removed(struct store_txn *txn, const struct id *account,
                                const struct id *device);

/* ---- kinds (apply_files.c) --------------------------------------------------------- */

int apply_file_begin(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);
int apply_file_chunk(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);
int apply_file_complete(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result);
int apply_file_delete(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                      struct buf *result);
int apply_file_bind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result);
/* RestoreFile: the result is the new visible_until (u64, big-endian). */
int apply_file_restore(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result);

/* ---- the key backup (apply_keybackup.c) ------------------------------------------------- */

/* KeyBackupPut; its result is the stored segment's created_at (8 bytes,
 * big-endian: the entry's time, or the first put's for a retry). */
int apply_key_backup_put(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         struct buf *result);
int apply_key_backup_delete(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            struct buf *result);
/* The purge of `account`: its backup's segments and index go in the same
 * batch (they would no longer open once its data key is destroyed; this
 * makes them gone at once). Returns 0 or the store's status. */
int apply_key_backup_purge(struct store_txn *txn, const struct id *account);

/* ---- audit records (apply_audit.c) ---------------------------------------------------- */

/* Appends the audit record of entry `e`: its time, its actor device and source
 * address, the actor `actor` (NULL: the entry's actor), `object` (at most
 * REC_AUDIT_OBJECT_MAX bytes; NULL/0: none) and `patient` (NULL: none).
 * Returns 0 or the status of audit_append() (server/audit.h). */
int apply_audit(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, uint32_t action,
                uint32_t outcome, const struct id *actor, const void *object, size_t object_len,
                const struct id *patient);

/* The AuditAppend kind. Returns 0, STATUS_BAD_REQUEST (entry.proto), or the
 * status of apply_audit(). */
int apply_audit_kind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result);

/* ---- typed records through the transaction (apply_store.c) ----------------------------- */

/* True when `b` is a 16-byte id, copied to `out`. */
bool apply_id_field(ProtobufCBinaryData b, struct id *out);
/* True for the staff roles: provider, admin, sysadmin. */
bool apply_is_staff(uint32_t role);

/* 0 when `key` is present in `cf`, STATUS_NOT_FOUND when absent, or the
 * store's status. */
int apply_exists(struct store_txn *txn, enum store_cf cf, const void *key, size_t len);
/* The entry's actor account (read into *a; clean it up), which must exist and
 * be active: STATUS_UNAUTHENTICATED otherwise; BAD_REQUEST without one. */
int apply_actor_account(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct id *id,
                        struct rec_account *a);
/* apply_actor_account() when only the actor's role matters. */
int apply_actor_role(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct id *id,
                     uint32_t *role);
/* Writes the encoded record `v` at `k`, sealed under `owner` (NULL: the
 * server's key). Same returns as txn_put(). */
int apply_put(struct store_txn *txn, enum store_cf cf, const struct key *k, const struct id *owner,
              const struct buf *v);

/* The reads return 0, STATUS_NOT_FOUND for a missing record, STATUS_CORRUPT
 * for one that does not decode, or the store's status; the writes 0 or the
 * store's status. Records of an account are sealed under the account; of a
 * conversation, under its owner (the patient member), or the server's key. */
int apply_read_account(struct store_txn *txn, const struct id *id, struct rec_account *out);
/* apply_read_account() without the strings (rec_account_decode_lean()). */
int apply_read_account_lean(struct store_txn *txn, const struct id *id, struct rec_account *out);
int apply_write_account(struct store_txn *txn, const struct id *id, const struct rec_account *a);
int apply_read_device(struct store_txn *txn, const struct id *account, const struct id *device,
                      struct rec_device *out);
int apply_write_device(struct store_txn *txn, const struct id *account, const struct id *device,
                       const struct rec_device *d);
/* An account's lifecycle record (server/records.h). */
int apply_read_lifecycle(struct store_txn *txn, const struct id *account,
                         struct rec_lifecycle *out);
int apply_write_lifecycle(struct store_txn *txn, const struct id *account,
                          const struct rec_lifecycle *l);
/* A device's current encryption key id and expiry. */
int apply_read_device_key(struct store_txn *txn, const struct id *account, const struct id *device,
                          uint32_t *key_id, int64_t *expires_at);
int apply_read_conv(struct store_txn *txn, const struct id *conv, struct rec_conv *out);
/* apply_read_conv() for a change: FORBIDDEN once the conversation's patient
 * is deactivated (REVIEW and later: it is kept read-only for review). */
int apply_read_open_conv(struct store_txn *txn, const struct id *conv, struct rec_conv *out);
/* The outbox settled breach notice job `job_id` (apply_breach.c wrote its
 * record and index): SENT (`sent`) or FAILED at `time`. STATUS_NOT_FOUND when
 * it is no breach notice. */
int apply_breach_notice_settled(struct store_txn *txn, const uint8_t job_id[16], bool sent,
                                int64_t time);
int apply_write_conv(struct store_txn *txn, const struct id *conv, const struct rec_conv *c);
int apply_read_member(struct store_txn *txn, const struct id *conv, const struct id *account,
                      struct rec_member *out);
int apply_write_member(struct store_txn *txn, const struct id *conv, const struct id *account,
                       const struct rec_member *m, const struct id *owner);

/* Whether `patient` and `staff` are both active in some care-team channel
 * (the care-pair index). Returns 0 with *out, or the store's status. */
int apply_share_care_team(struct store_txn *txn, const struct id *patient, const struct id *staff,
                          bool *out);

/* Whether `staff` has a care relation with the patient `patient_id` (its
 * record `patient`): they invited the patient, or both are active in one of
 * the patient's care-team channels, which only someone with a relation (or
 * an admin) can have made. Returns 0 with *out, or the store's status. */
int apply_care_relation(struct store_txn *txn, const struct id *patient_id,
                        const struct rec_account *patient, const struct id *staff, bool *out);

/* A device's inbox head, read into `value` (replaced; the caller cleans it
 * up), into which out->senders point; an inbox never written reads as all
 * zero. An empty inbox (acked == last) reads, and is written, as counting its
 * senders in the head (server/records_messages.h). */
int apply_read_inbox(struct store_txn *txn, const struct id *device, struct rec_inbox *out,
                     struct buf *value);
/* Writes the head `in`, encoded in `value` (replaced). */
int apply_write_inbox(struct store_txn *txn, const struct id *device, const struct rec_inbox *in,
                      struct buf *value);
/* The buffers of inbox updates, kept by a caller that offers one item to
 * many inboxes (a message to its recipients' devices) so that only its first
 * offer allocates. */
struct inbox_scratch {
    struct buf head;  /* a head as read (its senders may point here) */
    struct buf space; /* its senders once changed */
    struct buf value; /* an encoding being written */
};
void inbox_scratch_init(struct inbox_scratch *s);
void inbox_scratch_cleanup(struct inbox_scratch *s);
/* What a device's inbox takes (the proposer's configuration, carried in the
 * entry so that a replay decides the same): at most `limit` undelivered
 * entries, of which at most `sender_quota` MESSAGE items of one sender (0:
 * no quota). */
struct inbox_limits {
    uint32_t limit;
    uint32_t sender_quota;
};
/* Offers `item` (a MESSAGE item names its sender in account_id) to the
 * device's inbox: appended as apply_inbox_append() does within the limits;
 * otherwise the device misses it (records_messages.h): the inbox counts the
 * miss, and the first miss since it last drained sets full_since to `time`
 * and *first_miss, for the caller's audit record. Works in `scratch`.
 * Returns 0 or the store's status. */
int apply_inbox_offer(struct store_txn *txn, const struct id *device, const struct rec_item *item,
                      const struct id *owner, const struct inbox_limits *lim, int64_t time,
                      struct inbox_scratch *scratch, struct buf *deliveries, bool *first_miss);
/* One MESSAGE item of `sender` left the device's inbox, whose head `in` the
 * caller read and writes back (acknowledged): the sender's count drops by
 * one, not below 0, in the head (its senders then point into `space`, the
 * caller's, which must outlive `in`) or, for a head of the old layout, in
 * CF_INBOX_QUOTAS. Returns 0 or the store's status. */
int apply_inbox_release(struct store_txn *txn, const struct id *device, struct rec_inbox *in,
                        const struct id *sender, struct buf *space);
/* Appends `item` at the device's next inbox position (sealed under `owner`)
 * and the (device, position) to `deliveries` (rec_delivery_add()). Works in
 * `scratch`. */
int apply_inbox_append(struct store_txn *txn, const struct id *device, const struct rec_item *item,
                       const struct id *owner, struct inbox_scratch *scratch,
                       struct buf *deliveries);

#endif
