/*
 * server/conversations.h: the conversation requests (server/conversations.c):
 * handlers and completions named by the request table (server/requests.c),
 * with the contract of server/request.h. Loop thread.
 */
#ifndef SERVER_CONVERSATIONS_H
#define SERVER_CONVERSATIONS_H

#include "server/request.h"

/* CreateDirect: a DirectCreate entry; answered with the Conversation (the
 * existing one when the pair already has one). */
int conversations_create_direct(struct req *r);
int conversations_create_direct_done(struct op *op, const struct op_result *res);
/* ListConversations: the caller's conversations, most recently active first,
 * in pages of at most 100. */
int conversations_list(struct req *r);
/* GetConversation: the conversation with its active and pending members. */
int conversations_get(struct req *r);
/* History: a page of messages as the caller's device sees them, from the
 * caller's joining on. */
int conversations_history(struct req *r);

/* Answers request `rid` on `c` with the Conversation `conv`. Returns 0, or
 * the store's status (then nothing was sent). */
int conversations_respond(struct handlers *h, struct conn *c, uint64_t rid, const struct id *conv);

#endif
