/*
 * server/messaging.c: end-to-end encrypted messages and their delivery
 * state: Send, Ack, Sync, SendReceipt and Typing.
 *
 * Send is checked here with the rules apply checks again (server/
 * send_rules.h: the envelope's shape, the wraps against the recipients'
 * current devices), then proposed as a MessageSend entry; apply alone
 * assigns sequences and inbox positions, and the answer waits for the
 * journal's synced write. Its completion hands the new inbox entries to the
 * delivery engine (server/delivery.h), which also runs the replay that Sync
 * starts and Ack moves on. Typing hints go through the bus
 * (storage/bus.h) to the open connections of the other active members;
 * nothing of them is stored.
 *
 * Thread: the lws loop thread.
 */
#include "server/messaging.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "server/delivery.h"
#include "server/send_rules.h"
#include "storage/bus.h"
#include "storage/keys.h"

#define TYPING_TOPIC "typing"
/* Typing hints one account may send: a burst, refilled over the window. */
#define TYPING_BURST 20
#define TYPING_WINDOW_MS 10000
/* conversation id, account id, typing flag, recipient account ids */
#define TYPING_MSG_MAX (ID_LEN * 2 + 1 + ID_LEN * REC_MEMBERS_MAX)

struct messaging {
    struct handlers *h;
    struct ratelimit *rl_send;   /* Send per account */
    struct ratelimit *rl_typing; /* Typing per account */
    struct bus *bus;
    uint64_t typing_sub;
};

/* ---- Send ------------------------------------------------------------------------------- */

static void respond_sent(struct conn *c, uint64_t rid, const struct rec_sent *s) {
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__SendResult r;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__send_result__init(&r);
    r.message_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)s->message_id.b};
    r.seq = s->seq;
    r.sent_at = s->sent_at;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_SEND;
    resp.send = &r;
    conn_send(c, &frame);
}

/* Answers CONFLICT with the DeviceMismatch `m`. */
static void respond_mismatch(struct conn *c, uint64_t rid, const struct send_mismatch *m) {
    const struct id *lists[3] = {m->missing, m->extra, m->stale};
    const uint32_t counts[3] = {m->n_missing, m->n_extra, m->n_stale};
    ProtobufCBinaryData *bins = xcalloc(3 * SEND_MISMATCH_MAX, sizeof *bins);
    for (int l = 0; l < 3; l++)
        for (uint32_t i = 0; i < counts[l]; i++)
            bins[l * SEND_MISMATCH_MAX + i] =
                (ProtobufCBinaryData){ID_LEN, (uint8_t *)lists[l][i].b};
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__DeviceMismatch dm;
    proto_response_frame(&frame, &resp, rid, STATUS_CONFLICT, "device set changed");
    carechat__v1__device_mismatch__init(&dm);
    dm.n_missing_device_ids = counts[0];
    dm.missing_device_ids = bins;
    dm.n_extra_device_ids = counts[1];
    dm.extra_device_ids = bins + SEND_MISMATCH_MAX;
    dm.n_stale_device_ids = counts[2];
    dm.stale_device_ids = bins + 2 * SEND_MISMATCH_MAX;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_DEVICE_MISMATCH;
    resp.device_mismatch = &dm;
    conn_send(c, &frame);
    free(bins);
}

/* Checks the envelope (server/send_rules.h) and that it is the calling
 * device's, and copies its wraps into *out (an array of its n_wraps; free()
 * it when the return is 0). */
static int check_envelope(const struct hconn *hc, const Carechat__V1__Send *m,
                          struct rec_wrap **out, const char **detail) {
    const Carechat__V1__Envelope *env = m->envelope;
    *detail = "malformed envelope";
    if (!env)
        return STATUS_BAD_REQUEST;
    struct send_shape shape = {
        .version = env->version,
        .header_len = env->header.len,
        .body_len = env->body.len,
        .nonce_len = env->body_nonce.len,
        .signature_len = env->signature.len,
        .n_wraps = env->n_wraps,
    };
    int rc = send_check_shape(&shape, detail);
    if (rc != 0)
        return rc;
    *detail = "sender device is not the caller";
    if (env->sender_device_id.len != ID_LEN ||
        memcmp(env->sender_device_id.data, hc->device.b, ID_LEN) != 0)
        return STATUS_BAD_REQUEST;
    *detail = "malformed key wrap";
    struct rec_wrap *wraps = xmalloc(env->n_wraps * sizeof *wraps);
    for (size_t i = 0; i < env->n_wraps && rc == 0; i++) {
        const Carechat__V1__KeyWrap *w = env->wraps[i];
        rc = send_copy_wrap(w->device_id, w->key_id, w->enc, w->wrapped_key, &wraps[i]);
    }
    if (rc == 0)
        *out = wraps;
    else
        free(wraps);
    return rc;
}

/* Appends to devs[*n_devs] the recipient devices of member `account` (its
 * active record `a`) as apply_send() counts them: the devices its signed
 * list names that exist (each read through the loop thread's cache), or,
 * for an account of before device lists, all of its devices. */
static int recipient_devices(struct handlers *h, const struct id *account,
                             const struct rec_account *a, struct send_device *devs,
                             size_t *n_devs) {
    if (a->list_version == 0) {
        struct id ids[REC_MAX_DEVICES];
        struct req_device_key keys[REC_MAX_DEVICES];
        size_t n = 0;
        int rc = req_account_devices(h, account, ids, keys, &n);
        for (size_t i = 0; rc == 0 && i < n; i++)
            devs[(*n_devs)++] = (struct send_device){.id = ids[i],
                                                     .account = *account,
                                                     .key_id = keys[i].key_id,
                                                     .expires_at = keys[i].expires_at};
        return rc;
    }
    size_t found = 0;
    for (uint32_t i = 0; i < a->n_list && i < REC_LIST_MAX; i++) {
        struct rec_device d;
        int rc = req_read_device_lean(h, account, &a->list[i].device_id, &d);
        if (rc == STATUS_NOT_FOUND)
            continue;
        if (rc != 0)
            return rc;
        if (found++ < REC_MAX_DEVICES)
            devs[(*n_devs)++] = (struct send_device){.id = a->list[i].device_id,
                                                     .account = *account,
                                                     .key_id = d.encryption_key_id,
                                                     .expires_at = d.encryption_key_expires_at};
    }
    return found <= REC_MAX_DEVICES ? STATUS_OK : STATUS_CORRUPT;
}

int messaging_send(struct req *r) {
    struct handlers *h = r->h;
    struct hconn *hc = r->hc;
    const Carechat__V1__Send *m = r->frame->send;
    struct id cmid;
    const char *detail;
    if (id_from_bytes(m->client_msg_id.data, m->client_msg_id.len, &cmid) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "bad ids");
    struct rec_wrap *wraps = NULL;
    struct send_device *devs = NULL;
    struct send_mismatch *mm = NULL;
    const struct send_device **recipient = NULL;
    ProtobufCBinaryData *dev_ids = NULL;
    Carechat__Entry__V1__WrapItem *items = NULL, **itemp = NULL;
    int rc = check_envelope(hc, m, &wraps, &detail);
    if (rc != 0)
        return req_fail(r, rc, detail);
    const Carechat__V1__Envelope *env = m->envelope;
    /* The sender's signature over the whole context: whatever the server
     * stores and hands on is what the sending device said. */
    struct rec_device sender;
    rc = req_read_device(h, &hc->account, &hc->device, &sender);
    if (rc != 0) {
        free(wraps);
        return req_fail(r, STATUS_INTERNAL, "cannot read the device");
    }
    rc = send_verify_signature(sender.identity_key, &r->conv_id, &cmid, m->urgent, env, wraps);
    rec_device_cleanup(&sender);
    if (rc != 0) {
        free(wraps);
        return req_fail(r, rc, "the envelope's signature does not verify");
    }

    /* A retry of a stored message gets the first result, whatever changed. */
    struct key idem;
    rec_key_idem(&idem, &r->conv_id, &hc->account, &cmid);
    struct buf v;
    buf_init(&v);
    rc = store_get(h->store, CF_IDEMPOTENCY, idem.b, idem.len, &v);
    if (rc == 0) {
        struct rec_sent sent;
        rc = rec_sent_decode(v.data, v.len, &sent);
        if (rc == 0)
            respond_sent(r->conn, r->id, &sent);
    }
    buf_cleanup(&v);
    if (rc != STATUS_NOT_FOUND)
        goto out;
    if (!ratelimit_take(h->msg->rl_send, hc->account.b, ID_LEN, clock_now())) {
        rc = req_fail(r, STATUS_RATE_LIMITED, "too many messages");
        goto out;
    }
    /* The recipients: every device of every active member whose account is
     * active (a deactivated account receives nothing). */
    const struct rec_conv *c = r->conv;
    devs = xmalloc(SEND_DEVICES_MAX * sizeof *devs);
    size_t n_devs = 0;
    for (uint32_t j = 0; j < c->n_members; j++) {
        struct rec_member member;
        struct rec_account a;
        if ((rc = req_read_member(h, &r->conv_id, &c->members[j], &member)) != 0 ||
            (member.state == REC_ACTIVE &&
             (rc = req_read_account_lean(h, &c->members[j], &a)) != 0))
            goto out;
        if (member.state != REC_ACTIVE)
            continue;
        /* A device its account's signed list does not name yet awaits
         * approval: it does not send. */
        if (id_equal(&c->members[j], &hc->account) && !send_is_recipient(&a, &hc->device)) {
            rec_account_cleanup(&a);
            rc = req_fail(r, STATUS_FORBIDDEN,
                          "this device is not in its account's signed device list yet (approve "
                          "it from a listed device)");
            goto out;
        }
        if (a.active)
            rc = recipient_devices(h, &c->members[j], &a, devs, &n_devs);
        rec_account_cleanup(&a);
        if (rc != 0)
            goto out;
    }
    int64_t now = clock_now();
    mm = xmalloc(sizeof *mm);
    recipient = xmalloc(env->n_wraps * sizeof *recipient);
    rc = send_check_devices(devs, n_devs, wraps, env->n_wraps, &hc->device, now, mm, recipient);
    if (rc == STATUS_CONFLICT) {
        respond_mismatch(r->conn, r->id, mm);
        rc = STATUS_OK;
        goto out;
    }
    if (rc != 0) {
        rc = req_fail(r, rc, "two key wraps for one device");
        goto out;
    }
    dev_ids = xcalloc(n_devs ? n_devs : 1, sizeof *dev_ids);
    for (size_t i = 0; i < n_devs; i++)
        dev_ids[i] = (ProtobufCBinaryData){ID_LEN, devs[i].id.b};

    struct op *op = op_new(r, 0);
    op->has_object = true;
    op->object = r->conv_id;
    struct id message_id = id_new();
    items = xcalloc(env->n_wraps, sizeof *items);
    itemp = xcalloc(env->n_wraps, sizeof *itemp);
    for (size_t w = 0; w < env->n_wraps; w++) {
        carechat__entry__v1__wrap_item__init(&items[w]);
        items[w].device_id = env->wraps[w]->device_id;
        items[w].key_id = env->wraps[w]->key_id;
        items[w].enc = env->wraps[w]->enc;
        items[w].wrapped_key = env->wraps[w]->wrapped_key;
        itemp[w] = &items[w];
    }
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MessageSend ms;
    entry_init(&e, now, &hc->account, &hc->device);
    e.idempotency_key = m->client_msg_id;
    carechat__entry__v1__message_send__init(&ms);
    ms.conversation_id = m->conversation_id;
    ms.message_id = (ProtobufCBinaryData){ID_LEN, message_id.b};
    ms.client_msg_id = m->client_msg_id;
    ms.urgent = m->urgent;
    ms.envelope_version = env->version;
    ms.sender_device_id = env->sender_device_id;
    ms.header = env->header;
    ms.body = env->body;
    ms.body_nonce = env->body_nonce;
    ms.n_wraps = env->n_wraps;
    ms.wraps = itemp;
    ms.signature = env->signature;
    ms.n_member_device_ids = n_devs;
    ms.member_device_ids = dev_ids;
    ms.inbox_limit = h->cfg.config->inbox_max;
    ms.inbox_sender_quota = h->cfg.config->inbox_sender_max;
    ms.sender_sent_at = env->sent_at;
    ms.counter = env->counter;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_SEND;
    e.message_send = &ms;
    rc = op_propose(op, &e);
out:
    free(itemp);
    free(items);
    free(dev_ids);
    free(recipient);
    free(mm);
    free(devs);
    free(wraps);
    return rc;
}

int messaging_send_done(struct op *op, const struct op_result *res) {
    struct rec_sent sent;
    if (res->status == STATUS_CONFLICT && res->len > 0) {
        struct send_mismatch *mm = xmalloc(sizeof *mm);
        int rc = send_mismatch_decode(res->data, res->len, mm);
        if (rc == 0 && op_live(op))
            respond_mismatch(op->hc->conn, op->request_id, mm);
        free(mm);
        return rc == 0 ? STATUS_OK : op_fail(op, STATUS_CONFLICT, "device set changed");
    }
    if (res->status != 0)
        return res->status;
    if (res->len < REC_SENT_SIZE || rec_sent_decode(res->data, REC_SENT_SIZE, &sent) != 0)
        return STATUS_INTERNAL;
    if (op_live(op))
        respond_sent(op->hc->conn, op->request_id, &sent);
    delivery_list(op->hc->h, res->data + REC_SENT_SIZE, res->len - REC_SENT_SIZE);
    return STATUS_OK;
}

/* ---- Ack and Sync --------------------------------------------------------------------------- */

int messaging_ack(struct req *r) {
    const Carechat__V1__Ack *m = r->frame->ack;
    uint64_t pos;
    if (m->cursor.len == 0 || rec_cursor_decode(m->cursor.data, m->cursor.len, &pos) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "malformed cursor");
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InboxAck a;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__inbox_ack__init(&a);
    a.position = pos;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INBOX_ACK;
    e.inbox_ack = &a;
    return op_propose(op_new(r, 0), &e);
}

int messaging_ack_done(struct op *op, const struct op_result *res) {
    int rc = res->status;
    if (rc == 0 && op_live(op))
        conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    if (op->hc->conn)
        delivery_on_ack(op->hc);
    return rc == STATUS_CONFLICT ? op_fail(op, rc, "cursor never delivered") : rc;
}

int messaging_sync(struct req *r) {
    const Carechat__V1__Sync *m = r->frame->sync;
    uint64_t pos;
    if (rec_cursor_decode(m->after_cursor.data, m->after_cursor.len, &pos) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "malformed cursor");
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__SyncResult sr;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__sync_result__init(&sr);
    sr.page_size = DELIVERY_PAGE;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_SYNC;
    resp.sync = &sr;
    conn_send(r->conn, &frame);
    req_replace_delivering(r->hc);
    delivery_start(r->hc, pos);
    return STATUS_OK;
}

/* ---- SendReceipt ------------------------------------------------------------------------------
 */

int messaging_send_receipt(struct req *r) {
    const Carechat__V1__SendReceipt *m = r->frame->send_receipt;
    struct id mid;
    if (m->n_message_ids == 0 || (m->kind != CARECHAT__V1__RECEIPT_KIND__DELIVERED &&
                                  m->kind != CARECHAT__V1__RECEIPT_KIND__READ))
        return req_fail(r, STATUS_BAD_REQUEST, "bad receipt");
    if (m->n_message_ids > SEND_RECEIPT_IDS_MAX)
        return req_fail(r, STATUS_TOO_LARGE, "too many message ids");
    for (size_t i = 0; i < m->n_message_ids; i++)
        if (id_from_bytes(m->message_ids[i].data, m->message_ids[i].len, &mid) != 0)
            return req_fail(r, STATUS_BAD_REQUEST, "bad message id");
    /* The other members' devices: the senders of the receipted messages. */
    struct req_device_lists *l = xcalloc(1, sizeof *l);
    int rc = 0;
    for (uint32_t j = 0; j < r->conv->n_members && rc == 0; j++)
        if (!id_equal(&r->conv->members[j], &r->hc->account))
            rc = req_device_lists_add(r->h, l, &r->conv->members[j]);
    if (rc == 0) {
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__ReceiptRecord rr;
        entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
        carechat__entry__v1__receipt_record__init(&rr);
        rr.conversation_id = m->conversation_id;
        rr.kind = (uint32_t)m->kind;
        rr.n_message_ids = m->n_message_ids;
        rr.message_ids = m->message_ids;
        rr.n_sender_devices = l->n;
        rr.sender_devices = l->adp;
        rr.inbox_limit = r->h->cfg.config->inbox_max;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_RECEIPT_RECORD;
        e.receipt_record = &rr;
        rc = op_propose(op_new(r, 0), &e);
    }
    free(l);
    return rc;
}

/* ---- Typing ------------------------------------------------------------------------------------
 */

int messaging_typing(struct req *r) {
    const Carechat__V1__Typing *m = r->frame->typing;
    struct hconn *hc = r->hc;
    if (!ratelimit_take(r->h->msg->rl_typing, hc->account.b, ID_LEN, clock_now()))
        return req_fail(r, STATUS_RATE_LIMITED, "too many typing hints");
    uint8_t msg[TYPING_MSG_MAX];
    memcpy(msg, r->conv_id.b, ID_LEN);
    memcpy(msg + ID_LEN, hc->account.b, ID_LEN);
    msg[2 * ID_LEN] = m->typing ? 1 : 0;
    size_t len = 2 * ID_LEN + 1;
    const struct rec_conv *c = r->conv;
    for (uint32_t j = 0; j < c->n_members; j++) {
        struct rec_member other;
        if (id_equal(&c->members[j], &hc->account) ||
            req_read_member(r->h, &r->conv_id, &c->members[j], &other) != 0 ||
            other.state != REC_ACTIVE)
            continue; /* only active members see typing */
        memcpy(msg + len, c->members[j].b, ID_LEN);
        len += ID_LEN;
    }
    /* Best effort: a full bus drops the hint, which typing allows. */
    (void)bus_publish(r->h->msg->bus, TYPING_TOPIC, sizeof TYPING_TOPIC - 1, msg, len);
    conn_respond(r->conn, r->id, STATUS_OK, NULL);
    return STATUS_OK;
}

/* Bus callback: forwards a typing hint to the recipients' open connections. */
static void on_typing(void *ctx, const uint8_t *topic, size_t topic_len, const uint8_t *msg,
                      size_t len) {
    struct messaging *mg = ctx;
    (void)topic;
    (void)topic_len;
    if (len < 2 * ID_LEN + 1 || (len - 2 * ID_LEN - 1) % ID_LEN != 0)
        return;
    Carechat__V1__Frame frame;
    Carechat__V1__TypingEvent ev;
    carechat__v1__frame__init(&frame);
    carechat__v1__typing_event__init(&ev);
    ev.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)msg};
    ev.account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)msg + ID_LEN};
    ev.typing = msg[2 * ID_LEN] != 0;
    frame.body_case = CARECHAT__V1__FRAME__BODY_TYPING_EVENT;
    frame.typing_event = &ev;
    /* The recipients are distinct (members of one conversation). */
    for (size_t off = 2 * ID_LEN + 1; off < len; off += ID_LEN) {
        struct id account;
        memcpy(account.b, msg + off, ID_LEN);
        for (struct hconn *x = req_account_first(mg->h, &account); x; x = req_account_next(x))
            if (x->authenticated && x->conn)
                req_send_server_request(x, &frame);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int messaging_new(struct handlers *h, struct messaging **out) {
    const struct server_config *sc = h->cfg.config;
    struct messaging *m = xcalloc(1, sizeof *m);
    m->h = h;
    int rc =
        ratelimit_new(&(struct ratelimit_config){.burst = sc->send_burst,
                                                 .window_ms = (int64_t)sc->send_window_s * 1000},
                      &m->rl_send);
    if (rc == 0)
        rc = ratelimit_new(
            &(struct ratelimit_config){.burst = TYPING_BURST, .window_ms = TYPING_WINDOW_MS},
            &m->rl_typing);
    if (rc == 0)
        rc = bus_new(&(struct bus_config){.wake = h->cfg.wake, .wake_ctx = h->cfg.wake_ctx},
                     &m->bus);
    if (rc == 0)
        rc = bus_subscribe(m->bus, TYPING_TOPIC, sizeof TYPING_TOPIC - 1, on_typing, m,
                           &m->typing_sub);
    if (rc != 0) {
        messaging_free(m);
        return rc;
    }
    *out = m;
    return STATUS_OK;
}

void messaging_free(struct messaging *m) {
    if (!m)
        return;
    bus_free(m->bus);
    ratelimit_free(m->rl_send);
    ratelimit_free(m->rl_typing);
    free(m);
}

void messaging_poll(struct messaging *m) {
    if (m)
        bus_poll(m->bus);
}
