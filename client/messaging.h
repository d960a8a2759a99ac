/*
 * client/messaging.h: what client/messaging.c (conversations, end-to-end
 * messages, delivery) offers the other files of libcarechat: its state's
 * destructor for carechat_close() and two request helpers channels.c builds
 * on. Not part of the API: the prefix cc_msg_ marks it. Same thread rules as
 * carechat.h: the caller's thread only.
 */
#ifndef CLIENT_MESSAGING_H
#define CLIENT_MESSAGING_H

#include "client/carechat.h"
#include "protocol/proto.h"

struct cc_msg;

/* Frees the messaging state of a handle (struct carechat's `msg`). Accepts
 * NULL. */
void cc_msg_free(struct cc_msg *m);

/* Sends `req`, answered by a Conversation, and copies it into *out (and the
 * active members into the handle's cache for Send); `not_found_hint` goes
 * into the error of a NOT_FOUND answer. Returns 0, the server's status or a
 * local failure. */
int cc_msg_conversation_call(struct carechat *c, Carechat__V1__Frame *req, const char *what,
                             const char *not_found_hint, struct carechat_conversation *out);

/* Sends `req`, a request without a result (establishing the session first).
 * Returns 0, the server's status or a local failure. */
int cc_msg_simple_call(struct carechat *c, Carechat__V1__Frame *req, const char *what);

/* The signature of a recall of `message_id` in `conversation` by this device
 * (protocol/transcript.h) into `sig`: the recall transcript when this device
 * sent the message (its replay ledger knows the client_msg_id), else the
 * removal transcript. Returns 0; or a local failure. */
int cc_msg_recall_signature(struct carechat *c, const struct id *conversation,
                            const struct id *message_id, uint8_t sig[64]);

/* Forgets the cached device list of `account` (fetched and judged again
 * before its next use). */
void cc_msg_forget_account(struct carechat *c, const struct id *account);

/* Fetches, verifies and pins the device list of `account` now. Returns 0, a
 * server status or a local failure. */
int cc_msg_refresh_account(struct carechat *c, const struct id *account);

#endif
