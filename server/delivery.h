/*
 * server/delivery.h: the delivery engine: device inboxes to open connections.
 *
 * Delivery of one connection (fields of struct hconn, server/request.h):
 *
 *            Sync{after}                   inbox exhausted: QueueEmpty
 *   OFF --------------------> REPLAY --------------------------------> LIVE
 *                              |  ^  page of <= DELIVERY_PAGE deliveries;
 *                              +--+  next page once every delivery of the
 *                                    page is answered, or on an Ack
 *
 * A connection's `delivered_pos` is the last inbox position it was sent; an
 * inbox entry created later (by an entry just applied: its delivery list)
 * goes to LIVE connections of its device only when above it, so an entry
 * read by a replay page and then announced by its delivery list is not sent
 * twice on one connection. Entries created while a connection is in REPLAY
 * are picked up by the replay, which reads the store after they were
 * committed. Each delivered message carries only the receiving device's own
 * KeyWrap. A delivery list or replay page reads, builds and encodes each
 * message once for all its devices (protocol/proto.h, proto_delivery), and
 * live delivery takes the new entries from the delivery list, not the store,
 * and a Send's message from its list too (the record apply stored), so it
 * reads nothing; replay reads the store.
 *
 * Thread: the lws loop thread.
 */
#ifndef SERVER_DELIVERY_H
#define SERVER_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "base/id.h"
#include "protocol/proto.h"
#include "server/records_messages.h"
#include "server/request.h"

/* Deliveries sent before waiting for their Responses (SyncResult.page_size). */
#define DELIVERY_PAGE 64

/* A StoredMessage as one device sees it: ids copied, byte strings borrowed
 * from the encoded record the rec_message was decoded from. */
struct delivery_message {
    Carechat__V1__StoredMessage sm;
    Carechat__V1__Envelope env;
    Carechat__V1__KeyWrap wrap;
    Carechat__V1__KeyWrap *wrapp;
    struct rec_wrap w;
    struct id conv, message_id, sender_account, sender_device, client_msg_id, recall_signer,
        recall_signer_account;
    Carechat__V1__WrapRecipient *recips; /* n_wraps of them (xcalloc), or NULL */
    Carechat__V1__WrapRecipient **recipp;
};

/* Frees what delivery_message_build() allocated. Accepts a zeroed struct. */
void delivery_message_cleanup(struct delivery_message *s);

/* Builds in `out` message `seq` of `conv` as `device` sees it (a recalled
 * message as a tombstone without envelope, with the recall's signature), with
 * the list of every recipient (device, key id) the sender signed. `m` and the
 * record it was decoded from must outlive `out`; release it with
 * delivery_message_cleanup(). */
void delivery_message_build(struct delivery_message *out, const struct id *conv, uint64_t seq,
                            const struct rec_message *m, const struct id *device);
/* Makes `s`, built from `m`, the message as `device` sees it: only its
 * KeyWrap changes, so a message sent to many devices is built once. */
void delivery_message_set_device(struct delivery_message *s, const struct rec_message *m,
                                 const struct id *device);

/* Starts the replay of hc's inbox after position `after` (Sync answered). */
void delivery_start(struct hconn *hc, uint64_t after);
/* A Response from the client to one of its deliveries: the next replay page
 * once every delivery of the page is answered. */
void delivery_on_response(struct hconn *hc);
/* The connection's Ack is durable: the replay goes on with the next page. */
void delivery_on_ack(struct hconn *hc);
/* Delivers the inbox entries of a delivery list (server/records_messages.h),
 * created by an entry just applied, to their devices' LIVE connections; a
 * message the list carries is not read again. */
void delivery_list(struct handlers *h, const uint8_t *data, size_t len);

/* The completion of an entry whose result is a delivery list (receipts,
 * membership events, tombstones, urgent acknowledgements): answers OK and
 * delivers the new inbox entries; a refusal is returned, with op->detail as
 * the caller set it (server/request.h). */
int delivery_done(struct op *op, const struct op_result *res);

#endif
