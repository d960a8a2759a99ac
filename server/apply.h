/*
 * server/apply.h: the domain rules that turn journal entries into state.
 *
 * apply_entry() is the server's journal_apply_fn (storage/journal.h): the
 * journal's writer thread calls it once per entry with the batch's
 * transaction. It decodes the entry (protocol/entry.proto through
 * proto_entry_decode()) and dispatches on its kind. It is pure: no clock, no
 * randomness, no I/O beyond the transaction; everything non-deterministic was
 * chosen by the proposer and is in the entry (DESIGN.md).
 *
 * Kinds (the table in apply.c, one function each in the apply files):
 *   ServerInit  stores the server id and creation time in CF_META under
 *               APPLY_META_SERVER_ID (16 bytes) and APPLY_META_CREATED_AT
 *               (8 bytes, big-endian milliseconds); a second one is CONFLICT.
 *   the account kinds (Bootstrap, InviteCreate, Register, RegisterRefused,
 *               AccountDeactivate, Login, SessionTouch, SessionEnd, DeviceRemove, KeyRotate,
 *               DeviceListPublish): apply_accounts.c writes the records of
 *               server/records.h; each kind's refusals are in entry.proto.
 *   the conversation and message kinds (DirectCreate, MessageSend, InboxAck,
 *               ReceiptRecord): apply_messages.c writes the records of
 *               server/records_messages.h and appends the results described there.
 *   the channel, recall and urgent kinds (ChannelCreate, MemberAdd,
 *               MemberRemove, MemberApprove, ConversationLeave, MessageRecall,
 *               UrgentAck): apply_channels.c, same records and results.
 *   AuditAppend  one link of the audit chain (server/audit.h); the account
 *               kinds append theirs in the same batch as their change.
 * Every kind but AuditAppend and SessionEnd is refused UNAUTHENTICATED when its
 * actor account exists and is deactivated.
 */
#ifndef SERVER_APPLY_H
#define SERVER_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "storage/store.h"

/* CF_META keys written by apply. */
#define APPLY_META_SERVER_ID "server_id"
#define APPLY_META_CREATED_AT "created_at"

/* The invitations, and the sessions, one Sweep entry may name (entry.proto). */
#define APPLY_SWEEP_MAX 256

/* The journal_apply_fn. `ctx` is unused (NULL). Returns 0 when the entry was
 * applied; STATUS_BAD_REQUEST for an entry that does not decode, has a version
 * other than PROTO_ENTRY_VERSION or invalid fields; STATUS_CONFLICT for a
 * ServerInit on a store that already has a server id; or the status of a
 * failed store read or write; for the account kinds, the refusal statuses
 * that entry.proto names per kind. Appends to `result` only for the message
 * kinds (server/records_messages.h). */
int apply_entry(void *ctx, struct store_txn *txn, uint64_t pos, const uint8_t *entry,
                size_t entry_len, struct buf *result);

/* Reads what ServerInit stored. Returns 0 with *server_id and *created_at_ms,
 * STATUS_NOT_FOUND before the first ServerInit, STATUS_CORRUPT for a value of
 * the wrong size, or the store's status. Any thread (store_get). */
int apply_read_server_info(struct store *s, struct id *server_id, int64_t *created_at_ms);

/* Builds a ServerInit entry for `server_id` created at `now_ms` into `out`
 * (the proposer side: the caller chooses the id and the time). Returns 0. */
int apply_encode_server_init(const struct id *server_id, int64_t now_ms, struct buf *out);

#endif
