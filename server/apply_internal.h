/*
 * server/apply_internal.h: the account, invitation, device and session kinds
 * of apply (apply_accounts.c) and the conversation and message kinds
 * (apply_messages.c) and the audit records (apply_audit.c), called by
 * apply_entry() in apply.c. Private to
 * the apply library. Writer thread only; pure like apply_entry().
 */
#ifndef SERVER_APPLY_INTERNAL_H
#define SERVER_APPLY_INTERNAL_H

#include <stdbool.h>

#include "protocol/proto.h"
#include "server/records_messages.h"
#include "server/records.h"
#include "storage/store.h"

/* Applies one decoded entry of an account kind (its kind is one of them).
 * Returns 0 or the refusal status documented per kind in entry.proto. */
int apply_account_kind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e);

/* Applies one decoded entry of a conversation or message kind (DirectCreate,
 * MessageSend, InboxAck, ReceiptRecord: apply_messages.c), appending the
 * result that server/records_messages.h describes to `result`. Returns 0 or the refusal
 * status documented per kind in entry.proto. */
int apply_message_kind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result);

/* Appends the audit record of entry `e` (apply_audit.c): its time, its actor
 * device and source address, the actor `actor` (NULL: the entry's actor),
 * `object` (at most REC_AUDIT_OBJECT_MAX bytes; NULL/0: none) and `patient`
 * (NULL: none). Returns 0 or the status of audit_append() (server/audit.h). */
int apply_audit(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, uint32_t action,
                uint32_t outcome, const struct id *actor, const void *object, size_t object_len,
                const struct id *patient);

/* Applies an AuditAppend entry. Returns 0, STATUS_BAD_REQUEST (entry.proto),
 * or the status of apply_audit(). */
int apply_audit_kind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e);

/* Applies one decoded entry of a care-team channel, recall or urgent kind
 * (ChannelCreate, MemberAdd, MemberRemove, MemberApprove, ConversationLeave,
 * MessageRecall, UrgentAck: apply_channels.c), appending the result that
 * server/records_messages.h describes. Returns 0 or the refusal status documented per
 * kind in entry.proto. */
int apply_channel_kind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result);

/* True when `b` is a 16-byte id, copied to `out` (apply.c). */
bool apply_id_field(ProtobufCBinaryData b, struct id *out);
/* True for the staff roles: provider, admin, sysadmin (apply.c). */
bool apply_is_staff(uint32_t role);

/* Record helpers of apply_messages.c shared with apply_channels.c. Each
 * returns 0, STATUS_NOT_FOUND for a missing record, STATUS_CORRUPT for one
 * that does not decode, or the store's status. */
int apply_read_account(struct store_txn *txn, const struct id *id, struct rec_account *out);
int apply_read_device_key(struct store_txn *txn, const struct id *account, const struct id *device,
                          uint32_t *key_id, int64_t *expires_at);
int apply_read_conv(struct store_txn *txn, const struct id *conv, struct rec_conv *out);
int apply_write_conv(struct store_txn *txn, const struct id *conv, const struct rec_conv *c);
int apply_read_member(struct store_txn *txn, const struct id *conv, const struct id *account,
                      struct rec_member *out);
/* Appends `item` at the device's next inbox position and the (device,
 * position) to `deliveries`. */
int apply_inbox_append(struct store_txn *txn, const struct id *device, const struct rec_item *item,
                       const struct id *owner, struct buf *deliveries);
/* Whether `patient` and `staff` are both active in some care-team channel
 * (apply_channels.c). Returns 0 with *out, or the store's status. */
int apply_share_care_team(struct store_txn *txn, const struct id *patient, const struct id *staff,
                          bool *out);

#endif
