/*
 * server/delivery.c: the delivery engine (server/delivery.h): Delivery frames
 * built from inbox entries, the paged replay of a Sync, and live delivery of
 * the entries an applied entry created.
 *
 * Thread: the lws loop thread.
 */
#include "server/delivery.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/keys.h"

void delivery_message_build(struct delivery_message *s, const struct id *conv, uint64_t seq,
                            const struct rec_message *m, const struct id *device) {
    s->conv = *conv;
    s->message_id = m->message_id;
    s->sender_account = m->sender_account;
    s->sender_device = m->sender_device;
    s->client_msg_id = m->client_msg_id;
    carechat__v1__stored_message__init(&s->sm);
    carechat__v1__envelope__init(&s->env);
    s->sm.message_id = (ProtobufCBinaryData){ID_LEN, s->message_id.b};
    s->sm.conversation_id = (ProtobufCBinaryData){ID_LEN, s->conv.b};
    s->sm.seq = seq;
    s->sm.sender_account_id = (ProtobufCBinaryData){ID_LEN, s->sender_account.b};
    s->sm.sent_at = m->sent_at;
    s->sm.urgent = m->urgent;
    s->sm.client_msg_id = (ProtobufCBinaryData){ID_LEN, s->client_msg_id.b};
    s->recips = NULL;
    s->recipp = NULL;
    if (m->recalled_at) {
        s->sm.recalled_at = m->recalled_at; /* a tombstone: no envelope */
        if (m->recall_signature.len > 0) {
            s->recall_signer = m->recall_signer;
            s->recall_signer_account = m->recall_signer_account;
            s->sm.recall_signer_device_id = (ProtobufCBinaryData){ID_LEN, s->recall_signer.b};
            s->sm.recall_signer_account_id =
                (ProtobufCBinaryData){ID_LEN, s->recall_signer_account.b};
            s->sm.recall_signature =
                (ProtobufCBinaryData){m->recall_signature.len, (uint8_t *)m->recall_signature.data};
        }
        return;
    }
    s->env.sent_at = m->sender_sent_at;
    s->env.counter = m->counter;
    s->recips = xcalloc(m->n_wraps + 1, sizeof *s->recips);
    s->recipp = xcalloc(m->n_wraps + 1, sizeof *s->recipp);
    for (uint32_t i = 0; i < m->n_wraps; i++) {
        /* Device ids point into the record (wraps_raw), which outlives us. */
        const uint8_t *raw = m->wraps_raw + (size_t)i * REC_WRAP_RAW_LEN;
        carechat__v1__wrap_recipient__init(&s->recips[i]);
        s->recips[i].device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)raw};
        s->recips[i].key_id = key_get_u32(raw + ID_LEN);
        s->recipp[i] = &s->recips[i];
    }
    s->sm.n_recipients = m->n_wraps;
    s->sm.recipients = s->recipp;
    s->env.version = m->envelope_version;
    s->env.sender_device_id = (ProtobufCBinaryData){ID_LEN, s->sender_device.b};
    s->env.header = (ProtobufCBinaryData){m->header.len, (uint8_t *)m->header.data};
    s->env.body = (ProtobufCBinaryData){m->body.len, (uint8_t *)m->body.data};
    s->env.body_nonce = (ProtobufCBinaryData){m->body_nonce.len, (uint8_t *)m->body_nonce.data};
    s->env.signature = (ProtobufCBinaryData){m->signature.len, (uint8_t *)m->signature.data};
    s->sm.envelope = &s->env;
    delivery_message_set_device(s, m, device);
}

void delivery_message_set_device(struct delivery_message *s, const struct rec_message *m,
                                 const struct id *device) {
    if (!s->sm.envelope)
        return; /* a tombstone */
    s->env.n_wraps = 0;
    s->env.wraps = NULL;
    if (rec_message_find_wrap(m, device, &s->w) != 0)
        return;
    carechat__v1__key_wrap__init(&s->wrap);
    s->wrap.device_id = (ProtobufCBinaryData){ID_LEN, s->w.device_id.b};
    s->wrap.key_id = s->w.key_id;
    s->wrap.enc = (ProtobufCBinaryData){REC_ENC_LEN, s->w.enc};
    s->wrap.wrapped_key = (ProtobufCBinaryData){REC_WRAPPED_LEN, s->w.wrapped_key};
    s->wrapp = &s->wrap;
    s->env.n_wraps = 1;
    s->env.wraps = &s->wrapp;
}

void delivery_message_cleanup(struct delivery_message *s) {
    free(s->recips);
    free(s->recipp);
    s->recips = NULL;
    s->recipp = NULL;
}

/* Reads message `seq` of `conv` into `v` (its bytes) and *m (borrowing v). */
static int read_message(struct handlers *h, const struct id *conv, uint64_t seq, struct buf *v,
                        struct rec_message *m) {
    struct key k;
    key_id_u64(&k, conv, seq);
    int rc = store_get(h->store, CF_MESSAGES, k.b, k.len, v);
    if (rc == 0)
        rc = rec_message_decode(v->data, v->len, m);
    return rc;
}

/* The message read last while one delivery list or replay page is sent: a
 * fan-out's delivery list names one message for every recipient device, so
 * it is read, opened, built and encoded once, not once per device. */
struct msg_cache {
    bool loaded;
    int rc; /* of the read */
    struct id conv;
    uint64_t seq;
    struct buf v;         /* the record's bytes */
    struct rec_message m; /* decoded, borrowing v */
    bool built;           /* dm was built from m (for the device last set) */
    struct delivery_message dm;
    bool encoded; /* wire holds dm encoded (from its second device on) */
    struct proto_delivery wire;
    struct buf frame; /* the last frame sent */
};

static void msg_cache_init(struct msg_cache *c) {
    c->loaded = false;
    c->built = false;
    c->encoded = false;
    buf_init(&c->v);
    buf_init(&c->frame);
}

/* Forgets the built and encoded message. */
static void msg_cache_unbuild(struct msg_cache *c) {
    if (c->built)
        delivery_message_cleanup(&c->dm);
    if (c->encoded)
        proto_delivery_cleanup(&c->wire);
    c->built = false;
    c->encoded = false;
}

static void msg_cache_cleanup(struct msg_cache *c) {
    msg_cache_unbuild(c);
    buf_cleanup(&c->v);
    buf_cleanup(&c->frame);
}

/* Message `seq` of `conv` into c->m: 0, or the status of its read. */
static int msg_cache_get(struct handlers *h, struct msg_cache *c, const struct id *conv,
                         uint64_t seq) {
    if (!c->loaded || c->seq != seq || !id_equal(&c->conv, conv)) {
        msg_cache_unbuild(c);
        c->rc = read_message(h, conv, seq, &c->v, &c->m);
        c->conv = *conv;
        c->seq = seq;
        c->loaded = true;
    }
    return c->rc;
}

/* Makes `message`, which a delivery list carries, the one read last, so
 * that the list's deliveries of it need no read. */
static void msg_cache_carry(struct msg_cache *c, const struct rec_list_message *message) {
    msg_cache_unbuild(c);
    buf_reset(&c->v);
    buf_append(&c->v, message->data, message->len);
    c->rc = rec_message_decode(c->v.data, c->v.len, &c->m);
    c->conv = message->conv;
    c->seq = message->seq;
    c->loaded = true;
}

/* Sends the inbox entry `item` at `pos` to `hc` as a Delivery, its message
 * read through `mc`. An entry whose message is gone (purged) is skipped. */
static void deliver_item(struct hconn *hc, uint64_t pos, const struct rec_item *item,
                         struct msg_cache *mc) {
    Carechat__V1__Frame frame;
    Carechat__V1__Delivery d;
    uint8_t cursor[10];
    carechat__v1__frame__init(&frame);
    carechat__v1__delivery__init(&d);
    d.cursor = (ProtobufCBinaryData){rec_cursor_encode(pos, cursor), cursor};
    frame.body_case = CARECHAT__V1__FRAME__BODY_DELIVERY;
    frame.delivery = &d;
    hc->delivered_pos = pos;
    if (item->kind == REC_ITEM_MESSAGE) {
        int rc = msg_cache_get(hc->h, mc, &item->conversation_id, item->seq);
        if (rc == 0) {
            bool again = mc->built;
            if (again)
                delivery_message_set_device(&mc->dm, &mc->m, &hc->device);
            else
                delivery_message_build(&mc->dm, &item->conversation_id, item->seq, &mc->m,
                                       &hc->device);
            mc->built = true;
            /* A message for a second device is a fan-out: encode it once. */
            if (again && !mc->encoded && mc->dm.sm.envelope) {
                proto_delivery_init(&mc->wire, &mc->dm.sm);
                mc->encoded = true;
            }
            if (mc->encoded) {
                buf_reset(&mc->frame);
                proto_delivery_frame(&mc->wire, req_server_request_id(hc), d.cursor.data,
                                     d.cursor.len, mc->dm.env.n_wraps ? &mc->dm.wrap : NULL,
                                     &mc->frame);
                conn_send_encoded(hc->conn, mc->frame.data, mc->frame.len,
                                  CARECHAT__V1__FRAME__BODY_DELIVERY);
            } else {
                d.item_case = CARECHAT__V1__DELIVERY__ITEM_MESSAGE;
                d.message = &mc->dm.sm;
                req_send_server_request(hc, &frame);
            }
        } else
            log_warn("delivery", "inbox entry %llu names an unreadable message (%s)",
                     (unsigned long long)pos, status_str(rc));
    } else if (item->kind == REC_ITEM_RECEIPT) {
        Carechat__V1__ReceiptEvent ev;
        carechat__v1__receipt_event__init(&ev);
        ev.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->conversation_id.b};
        ev.message_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->message_id.b};
        ev.account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->account_id.b};
        ev.kind = (Carechat__V1__ReceiptKind)item->receipt_kind;
        ev.at = item->at;
        d.item_case = CARECHAT__V1__DELIVERY__ITEM_RECEIPT;
        d.receipt = &ev;
        req_send_server_request(hc, &frame);
    } else if (item->kind == REC_ITEM_RECALL) {
        Carechat__V1__RecallEvent ev;
        carechat__v1__recall_event__init(&ev);
        ev.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->conversation_id.b};
        ev.message_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->message_id.b};
        ev.seq = item->seq;
        ev.recalled_at = item->at;
        /* The tombstone names the sender and carries the recall's signature. */
        if (msg_cache_get(hc->h, mc, &item->conversation_id, item->seq) == 0) {
            const struct rec_message *m = &mc->m;
            ev.sender_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)m->sender_account.b};
            ev.client_msg_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)m->client_msg_id.b};
            if (m->recall_signature.len > 0) {
                ev.signer_device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)m->recall_signer.b};
                ev.signer_account_id =
                    (ProtobufCBinaryData){ID_LEN, (uint8_t *)m->recall_signer_account.b};
                ev.signature = (ProtobufCBinaryData){m->recall_signature.len,
                                                     (uint8_t *)m->recall_signature.data};
            }
        }
        d.item_case = CARECHAT__V1__DELIVERY__ITEM_RECALL;
        d.recall = &ev;
        req_send_server_request(hc, &frame);
    } else if (item->kind == REC_ITEM_URGENT_ACK) {
        Carechat__V1__UrgentAckEvent ev;
        carechat__v1__urgent_ack_event__init(&ev);
        ev.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->conversation_id.b};
        ev.message_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->message_id.b};
        ev.account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->account_id.b};
        ev.acknowledged_at = item->at;
        d.item_case = CARECHAT__V1__DELIVERY__ITEM_URGENT_ACK;
        d.urgent_ack = &ev;
        req_send_server_request(hc, &frame);
    } else if (item->kind == REC_ITEM_MEMBERSHIP) {
        Carechat__V1__MembershipEvent ev;
        carechat__v1__membership_event__init(&ev);
        ev.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->conversation_id.b};
        ev.account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->account_id.b};
        ev.change = (Carechat__V1__MembershipChange)item->change;
        ev.by_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->by_account.b};
        ev.at = item->at;
        d.item_case = CARECHAT__V1__DELIVERY__ITEM_MEMBERSHIP;
        d.membership = &ev;
        req_send_server_request(hc, &frame);
    }
}

struct page {
    uint64_t pos[DELIVERY_PAGE];
    struct rec_item items[DELIVERY_PAGE];
    size_t n;
    bool bad;
};

static bool collect_item(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                         size_t value_len) {
    struct page *p = ctx;
    if (p->n >= DELIVERY_PAGE || key_read_u64(key, key_len, ID_LEN, &p->pos[p->n]) != 0 ||
        rec_item_decode(value, value_len, &p->items[p->n]) != 0) {
        p->bad = true;
        return false;
    }
    p->n++;
    return true;
}

static void send_queue_empty(struct hconn *hc) {
    Carechat__V1__Frame frame;
    Carechat__V1__QueueEmpty q;
    uint8_t cursor[10];
    carechat__v1__frame__init(&frame);
    carechat__v1__queue_empty__init(&q);
    q.cursor = (ProtobufCBinaryData){rec_cursor_encode(hc->delivered_pos, cursor), cursor};
    struct rec_inbox in;
    if (req_read_inbox(hc->h, &hc->device, &in) == 0)
        q.missed_messages = in.missed;
    frame.body_case = CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY;
    frame.queue_empty = &q;
    req_send_server_request(hc, &frame);
    hc->delivery = DELIVERY_LIVE;
}

/* Sends the next page of the replay, or QueueEmpty once the inbox is
 * exhausted. Only when every delivery sent so far was answered. */
static void replay_page(struct hconn *hc) {
    if (hc->delivery != DELIVERY_REPLAY || hc->unanswered > 0 || !hc->conn)
        return;
    struct page *p = xcalloc(1, sizeof *p);
    struct key after;
    key_id_u64(&after, &hc->device, hc->delivered_pos);
    int rc = store_scan(hc->h->store, CF_INBOXES, hc->device.b, ID_LEN, after.b, after.len,
                        DELIVERY_PAGE, collect_item, p);
    if (rc < 0 || p->bad) {
        log_error("delivery", "cannot read an inbox page (%s)",
                  status_str(rc < 0 ? rc : STATUS_CORRUPT));
        free(p);
        conn_close(hc->conn, CONN_CLOSE_GOING_AWAY, "cannot read the inbox",
                   METRICS_CLOSE_SHUTDOWN);
        return;
    }
    struct msg_cache mc;
    msg_cache_init(&mc);
    for (size_t i = 0; i < p->n; i++)
        deliver_item(hc, p->pos[i], &p->items[i], &mc);
    msg_cache_cleanup(&mc);
    bool last = p->n < DELIVERY_PAGE;
    free(p);
    if (last)
        send_queue_empty(hc);
    else if (hc->unanswered == 0)
        replay_page(hc); /* a page of skipped entries: go on */
}

/* Sends inbox entry `item` at (device, pos), created by an entry just
 * applied, to the device's LIVE connections that have not had it. Not read
 * back: another connection of the device may have acknowledged it meanwhile,
 * and then it comes again, as delivery is at least once. */
static void deliver_live(struct handlers *h, const struct id *device, uint64_t pos,
                         const struct rec_item *item, struct msg_cache *mc) {
    for (struct hconn *x = req_device_first(h, device); x; x = req_device_next(x))
        if (x->authenticated && x->conn && x->delivery == DELIVERY_LIVE && pos > x->delivered_pos)
            deliver_item(x, pos, item, mc);
}

void delivery_list(struct handlers *h, const uint8_t *data, size_t len) {
    uint32_t n;
    const uint8_t *entries;
    struct rec_list_message message;
    if (rec_deliveries_read(data, len, &n, &entries, &message) != 0) {
        log_error("delivery", "apply returned a malformed delivery list");
        return;
    }
    struct msg_cache mc;
    msg_cache_init(&mc);
    if (message.len > 0)
        msg_cache_carry(&mc, &message);
    for (uint32_t i = 0; i < n; i++) {
        struct id device;
        uint64_t pos;
        struct rec_item item;
        rec_delivery_get(entries, i, &device, &pos, &item);
        deliver_live(h, &device, pos, &item, &mc);
    }
    msg_cache_cleanup(&mc);
}

void delivery_on_response(struct hconn *hc) {
    if (hc->unanswered > 0)
        hc->unanswered--;
    replay_page(hc);
}

void delivery_on_ack(struct hconn *hc) {
    if (hc->conn && hc->delivery == DELIVERY_REPLAY) {
        hc->unanswered = 0;
        replay_page(hc);
    }
}

void delivery_start(struct hconn *hc, uint64_t after) {
    hc->delivery = DELIVERY_REPLAY;
    hc->delivered_pos = after;
    hc->unanswered = 0;
    replay_page(hc);
}

int delivery_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return res->status;
    if (op_live(op))
        conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    delivery_list(op->hc->h, res->data, res->len);
    return STATUS_OK;
}
