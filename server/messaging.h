/*
 * server/messaging.h: the message requests (server/messaging.c): handlers
 * and completions named by the request table (server/requests.c), with the
 * contract of server/request.h, and the messaging state they share. Loop
 * thread.
 */
#ifndef SERVER_MESSAGING_H
#define SERVER_MESSAGING_H

#include "server/request.h"

/* Send: the envelope checked against the recipients' current devices
 * (server/send_rules.h), then a MessageSend entry; answered with the
 * SendResult once durable (a retry with the same client_msg_id gets the first
 * result), or CONFLICT with the DeviceMismatch. */
int messaging_send(struct req *r);
int messaging_send_done(struct op *op, const struct op_result *res);
/* Ack: drops the device's inbox up to the cursor. */
int messaging_ack(struct req *r);
int messaging_ack_done(struct op *op, const struct op_result *res);
/* Sync: SyncResult, then the replay of the inbox after the cursor
 * (server/delivery.h). */
int messaging_sync(struct req *r);
/* SendReceipt: delivered/read receipts, delivered to the senders' devices
 * (completion: delivery_done()). */
int messaging_send_receipt(struct req *r);
/* Typing: a hint to the other active members' open connections, never
 * stored. */
int messaging_typing(struct req *r);

/* Creates the messaging state of `h` (send and typing rate limits, the typing
 * bus). Returns 0 and *out (free with messaging_free()), or
 * STATUS_BAD_REQUEST for a bad limit in the configuration. */
int messaging_new(struct handlers *h, struct messaging **out);
/* Accepts NULL. */
void messaging_free(struct messaging *m);
/* Delivers the typing hints waiting on the bus. Loop thread, after a wake. */
void messaging_poll(struct messaging *m);

#endif
