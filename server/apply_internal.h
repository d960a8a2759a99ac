/*
 * server/apply_internal.h: the account, invitation, device and session kinds
 * of apply (apply_accounts.c) and the conversation and message kinds
 * (apply_messages.c), called by apply_entry() in apply.c. Private to
 * the apply library. Writer thread only; pure like apply_entry().
 */
#ifndef SERVER_APPLY_INTERNAL_H
#define SERVER_APPLY_INTERNAL_H

#include "protocol/proto.h"
#include "storage/store.h"

/* Applies one decoded entry of an account kind (its kind is one of them).
 * Returns 0 or the refusal status documented per kind in entry.proto. */
int apply_account_kind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e);

/* Applies one decoded entry of a conversation or message kind (DirectCreate,
 * MessageSend, InboxAck, ReceiptRecord: apply_messages.c), appending the
 * result that server/msgrec.h describes to `result`. Returns 0 or the refusal
 * status documented per kind in entry.proto. */
int apply_message_kind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result);

#endif
