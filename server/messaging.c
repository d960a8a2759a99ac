/*
 * server/messaging.c: direct conversations, end-to-end encrypted messages,
 * delivery of device inboxes, receipts and typing: CreateDirect,
 * ListConversations, GetConversation, History, Send, Ack, Sync, SendReceipt,
 * Typing.
 *
 * Writes (CreateDirect, Send, Ack, SendReceipt) are checked here against the
 * store, proposed as entries (entry.proto) and re-checked by apply
 * (apply_messages.c), which alone assigns sequences and inbox positions; the
 * answer waits for the journal's on_done, that is for the synced write.
 * Reads (ListConversations through each account's activity index,
 * GetConversation, History, inbox pages) go to the store, bounded.
 *
 * Delivery of one connection (fields of struct hconn):
 *
 *            Sync{after}                   inbox exhausted: QueueEmpty
 *   OFF --------------------> REPLAY --------------------------------> LIVE
 *                              |  ^  page of <= PAGE deliveries;
 *                              +--+  next page once every delivery of the
 *                                    page is answered, or on an Ack
 *
 * A connection's `delivered_pos` is the last inbox position it was sent; an
 * inbox entry created later (on_done of Send/SendReceipt) goes to LIVE
 * connections of its device only when above it, so an entry read by a replay
 * page and then announced by its on_done is not sent twice on one connection.
 * Entries created while a connection is in REPLAY are picked up by the
 * replay, which reads the store after they were committed. Each delivery
 * carries only the receiving device's own KeyWrap.
 *
 * Typing hints go through the bus (storage/bus.h) and reach only the open
 * connections of the other members' accounts; nothing of them is stored.
 *
 * Thread: the lws loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "server/handlers_internal.h"
#include "server/records_messages.h"
#include "server/send_rules.h"
#include "storage/bus.h"
#include "storage/keys.h"

/* Deliveries sent before waiting for their Responses (SyncResult.page_size). */
#define PAGE 64
#define HISTORY_DEFAULT 50
#define HISTORY_MAX 100
/* Room left in a History response for everything but the messages. */
#define HISTORY_SLACK (8u * 1024u)
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

/* ---- helpers ------------------------------------------------------------------ */

static bool get_id(ProtobufCBinaryData b, struct id *out) {
    return id_from_bytes(b.data, b.len, out) == 0;
}

static bool same_id(const struct id *a, const struct id *b) {
    return memcmp(a->b, b->b, ID_LEN) == 0;
}

static void send_request(struct hconn *hc, Carechat__V1__Frame *frame) {
    frame->request_id = conn_next_request_id(hc->conn);
    conn_send(hc->conn, frame);
    hc->unanswered++;
}

int read_conv(struct handlers *h, const struct id *conv, struct rec_conv *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_CONVERSATIONS, conv->b, ID_LEN, &v);
    if (rc == 0)
        rc = rec_conv_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

int read_member(struct handlers *h, const struct id *conv, const struct id *account,
                struct rec_member *out) {
    struct key k;
    key_id_id(&k, conv, account);
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_MEMBERS, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_member_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

/* The conversation if the caller is an active member of it: 0, or
 * STATUS_NOT_FOUND (unknown, not a member, pending, left or removed:
 * deliberately the same), or the store's status. */
static int member_conv(struct hconn *hc, const struct id *conv, struct rec_conv *c,
                       struct rec_member *me) {
    int rc = read_conv(hc->h, conv, c);
    if (rc == 0)
        rc = read_member(hc->h, conv, &hc->account, me);
    if (rc == 0 && me->state != REC_ACTIVE)
        rc = STATUS_NOT_FOUND;
    return rc;
}

void respond_error(struct conn *c, uint64_t rid, int rc, const char *detail) {
    if (rc == STATUS_CORRUPT || rc == STATUS_IO)
        conn_respond(c, rid, STATUS_INTERNAL, "cannot read the store");
    else
        conn_respond(c, rid, rc, detail);
}

/* member_conv() for request `rid`: true when the caller is an active member;
 * otherwise answers "no such conversation" (a denial, audited, unless the
 * store failed) and returns false. authorize() in handlers.c checked the
 * membership already; this read also fetches the records. */
static bool member_conv_or_answer(struct hconn *hc, uint64_t rid, const struct id *conv,
                                  struct rec_conv *c, struct rec_member *me) {
    int rc = member_conv(hc, conv, c, me);
    if (rc == 0)
        return true;
    if (rc == STATUS_NOT_FOUND || rc == STATUS_FORBIDDEN)
        deny(hc, rid, rc, "no such conversation", conv->b, ID_LEN);
    else
        respond_error(hc->conn, rid, rc, "no such conversation");
    return false;
}

/* ---- devices of accounts ----------------------------------------------------------- */

struct dev_key {
    struct id id;
    uint32_t key_id;
    int64_t expires_at;
};

struct dev_scan {
    struct dev_key devs[REC_MAX_DEVICES];
    size_t n;
    bool bad;
};

static bool collect_dev(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len) {
    struct dev_scan *s = ctx;
    struct rec_device d;
    if (s->n >= REC_MAX_DEVICES || key_read_id(key, key_len, ID_LEN, &s->devs[s->n].id) != 0 ||
        rec_device_decode(value, value_len, &d) != 0) {
        s->bad = true;
        return false;
    }
    s->devs[s->n].key_id = d.encryption_key_id;
    s->devs[s->n].expires_at = d.encryption_key_expires_at;
    rec_device_cleanup(&d);
    s->n++;
    return true;
}

/* The current devices of `account`. Returns 0 or a store status. */
static int account_devices(struct handlers *h, const struct id *account, struct dev_scan *out) {
    memset(out, 0, sizeof *out);
    int rc = store_scan(h->store, CF_DEVICES, account->b, ID_LEN, NULL, 0, REC_MAX_DEVICES,
                        collect_dev, out);
    if (rc < 0)
        return rc;
    return out->bad ? STATUS_CORRUPT : STATUS_OK;
}

/* ---- building conversations and messages --------------------------------------------- */

/* A Conversation message with its members, borrowing from itself. */
struct conv_msg {
    Carechat__V1__Conversation cv;
    Carechat__V1__Member mem[REC_MEMBERS_MAX], *memp[REC_MEMBERS_MAX];
    struct rec_account accts[REC_MEMBERS_MAX];
    uint32_t n;
    struct id conv, members[REC_MEMBERS_MAX], patient;
    struct buf name_value;
    char name[REC_CHANNEL_NAME_MAX + 1];
};

static void conv_msg_cleanup(struct conv_msg *m) {
    for (uint32_t i = 0; i < m->n; i++)
        rec_account_cleanup(&m->accts[i]);
    m->n = 0;
    buf_wipe(&m->name_value);
    buf_cleanup(&m->name_value);
    sodium_memzero(m->name, sizeof m->name);
}

/* A channel's name into out->name. Returns 0 or a store status. */
static int channel_name(struct handlers *h, const struct id *conv, struct conv_msg *out) {
    struct key k;
    rec_key_channel(&k, conv);
    int rc = store_get(h->store, CF_CONVERSATIONS, k.b, k.len, &out->name_value);
    struct rec_channel ch;
    if (rc == 0)
        rc = rec_channel_decode(out->name_value.data, out->name_value.len, &ch);
    if (rc == 0) {
        memcpy(out->name, ch.name.data, ch.name.len);
        out->name[ch.name.len] = '\0';
    }
    return rc;
}

/* Reads conversation `conv` and its members into *out. Returns 0 (free with
 * conv_msg_cleanup) or a store status. */
static int conv_build(struct handlers *h, const struct id *conv, struct conv_msg *out) {
    memset(out, 0, sizeof *out);
    buf_init(&out->name_value);
    struct rec_conv *c = xmalloc(sizeof *c);
    int rc = read_conv(h, conv, c);
    if (rc == 0 && c->kind == REC_CARE_TEAM)
        rc = channel_name(h, conv, out);
    if (rc != 0) {
        free(c);
        conv_msg_cleanup(out);
        return rc;
    }
    out->conv = *conv;
    out->patient = c->owner;
    for (uint32_t j = 0; j < c->n_members; j++) {
        struct rec_member m;
        uint32_t i = out->n;
        out->members[i] = c->members[j];
        if ((rc = read_member(h, conv, &c->members[j], &m)) != 0) {
            free(c);
            conv_msg_cleanup(out);
            return rc;
        }
        if (m.state != REC_ACTIVE && m.state != REC_PENDING)
            continue; /* the Conversation lists active and pending members */
        if ((rc = read_account(h, &c->members[j], &out->accts[i])) != 0) {
            free(c);
            conv_msg_cleanup(out);
            return rc;
        }
        out->n++;
        Carechat__V1__Member *mm = &out->mem[i];
        carechat__v1__member__init(mm);
        mm->account_id = (ProtobufCBinaryData){ID_LEN, out->members[i].b};
        mm->role = (Carechat__V1__Role)m.role;
        mm->state = (Carechat__V1__MemberState)m.state;
        mm->joined_at = m.joined_at;
        mm->left_at = m.left_at;
        mm->display_name = out->accts[i].display_name;
        out->memp[i] = mm;
    }
    carechat__v1__conversation__init(&out->cv);
    out->cv.conversation_id = (ProtobufCBinaryData){ID_LEN, out->conv.b};
    out->cv.kind = (Carechat__V1__ConversationKind)c->kind;
    out->cv.created_at = c->created_at;
    out->cv.last_seq = c->last_seq;
    if (c->kind == REC_CARE_TEAM) {
        out->cv.name = out->name;
        out->cv.patient_account_id = (ProtobufCBinaryData){ID_LEN, out->patient.b};
    }
    free(c);
    out->cv.n_members = out->n;
    out->cv.members = out->memp;
    return STATUS_OK;
}

/* Answers with the Conversation `conv` (the caller is a member). */
void respond_conversation(struct hconn *hc, uint64_t rid, const struct id *conv) {
    struct conv_msg *cm = xmalloc(sizeof *cm);
    int rc = conv_build(hc->h, conv, cm);
    if (rc != 0) {
        respond_error(hc->conn, rid, rc, "no such conversation");
        free(cm);
        return;
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_CONVERSATION;
    resp.conversation = &cm->cv;
    conn_send(hc->conn, &frame);
    conv_msg_cleanup(cm);
    free(cm);
}

/* A StoredMessage as `device` sees it: ids copied, byte strings borrowed
 * from the encoded record that `m` was decoded from. */
struct stored {
    Carechat__V1__StoredMessage sm;
    Carechat__V1__Envelope env;
    Carechat__V1__KeyWrap wrap;
    Carechat__V1__KeyWrap *wrapp;
    struct rec_wrap w;
    struct id conv, message_id, sender_account, sender_device, client_msg_id;
};

static void stored_build(struct stored *s, const struct id *conv, uint64_t seq,
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
    if (m->recalled_at) {
        s->sm.recalled_at = m->recalled_at; /* a tombstone: no envelope */
        return;
    }
    s->env.version = m->envelope_version;
    s->env.sender_device_id = (ProtobufCBinaryData){ID_LEN, s->sender_device.b};
    s->env.header = (ProtobufCBinaryData){m->header.len, (uint8_t *)m->header.data};
    s->env.body = (ProtobufCBinaryData){m->body.len, (uint8_t *)m->body.data};
    s->env.body_nonce = (ProtobufCBinaryData){m->body_nonce.len, (uint8_t *)m->body_nonce.data};
    s->env.signature = (ProtobufCBinaryData){m->signature.len, (uint8_t *)m->signature.data};
    for (uint32_t i = 0; i < m->n_wraps; i++) {
        rec_message_wrap(m, i, &s->w);
        if (!same_id(&s->w.device_id, device))
            continue;
        carechat__v1__key_wrap__init(&s->wrap);
        s->wrap.device_id = (ProtobufCBinaryData){ID_LEN, s->w.device_id.b};
        s->wrap.key_id = s->w.key_id;
        s->wrap.enc = (ProtobufCBinaryData){REC_ENC_LEN, s->w.enc};
        s->wrap.wrapped_key = (ProtobufCBinaryData){REC_WRAPPED_LEN, s->w.wrapped_key};
        s->wrapp = &s->wrap;
        s->env.n_wraps = 1;
        s->env.wraps = &s->wrapp;
        break;
    }
    s->sm.envelope = &s->env;
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

/* ---- delivery ---------------------------------------------------------------------------- */

/* Sends the inbox entry `item` at `pos` to `hc` as a Delivery. An entry whose
 * message is gone (purged) is skipped. */
static void deliver_item(struct hconn *hc, uint64_t pos, const struct rec_item *item) {
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
        struct buf v;
        struct rec_message m;
        struct stored *s = xcalloc(1, sizeof *s);
        buf_init(&v);
        int rc = read_message(hc->h, &item->conversation_id, item->seq, &v, &m);
        if (rc == 0) {
            stored_build(s, &item->conversation_id, item->seq, &m, &hc->device);
            d.item_case = CARECHAT__V1__DELIVERY__ITEM_MESSAGE;
            d.message = &s->sm;
            send_request(hc, &frame);
        } else
            log_warn("messaging", "inbox entry %llu names an unreadable message (%s)",
                     (unsigned long long)pos, status_str(rc));
        free(s);
        buf_cleanup(&v);
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
        send_request(hc, &frame);
    } else if (item->kind == REC_ITEM_RECALL) {
        Carechat__V1__RecallEvent ev;
        carechat__v1__recall_event__init(&ev);
        ev.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->conversation_id.b};
        ev.message_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->message_id.b};
        ev.seq = item->seq;
        ev.recalled_at = item->at;
        d.item_case = CARECHAT__V1__DELIVERY__ITEM_RECALL;
        d.recall = &ev;
        send_request(hc, &frame);
    } else if (item->kind == REC_ITEM_URGENT_ACK) {
        Carechat__V1__UrgentAckEvent ev;
        carechat__v1__urgent_ack_event__init(&ev);
        ev.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->conversation_id.b};
        ev.message_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->message_id.b};
        ev.account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)item->account_id.b};
        ev.acknowledged_at = item->at;
        d.item_case = CARECHAT__V1__DELIVERY__ITEM_URGENT_ACK;
        d.urgent_ack = &ev;
        send_request(hc, &frame);
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
        send_request(hc, &frame);
    }
}

struct page {
    uint64_t pos[PAGE];
    struct rec_item items[PAGE];
    size_t n;
    bool bad;
};

static bool collect_item(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                         size_t value_len) {
    struct page *p = ctx;
    if (p->n >= PAGE || key_read_u64(key, key_len, ID_LEN, &p->pos[p->n]) != 0 ||
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
    frame.body_case = CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY;
    frame.queue_empty = &q;
    send_request(hc, &frame);
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
    int rc = store_scan(hc->h->store, CF_INBOXES, hc->device.b, ID_LEN, after.b, after.len, PAGE,
                        collect_item, p);
    if (rc < 0 || p->bad) {
        log_error("messaging", "cannot read an inbox page (%s)",
                  status_str(rc < 0 ? rc : STATUS_CORRUPT));
        free(p);
        conn_close(hc->conn, CONN_CLOSE_GOING_AWAY, "cannot read the inbox",
                   METRICS_CLOSE_SHUTDOWN);
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        deliver_item(hc, p->pos[i], &p->items[i]);
    bool last = p->n < PAGE;
    free(p);
    if (last)
        send_queue_empty(hc);
    else if (hc->unanswered == 0)
        replay_page(hc); /* a page of skipped entries: go on */
}

/* Sends inbox entry (device, pos), created by an entry just applied, to the
 * device's LIVE connections that have not had it. */
static void deliver_live(struct handlers *h, const struct id *device, uint64_t pos) {
    for (struct hconn *x = h->conns; x; x = x->next) {
        if (!x->authenticated || !x->conn || x->delivery != DELIVERY_LIVE ||
            !same_id(&x->device, device) || pos <= x->delivered_pos)
            continue;
        struct key k;
        key_id_u64(&k, device, pos);
        struct buf v;
        struct rec_item item;
        buf_init(&v);
        int rc = store_get(h->store, CF_INBOXES, k.b, k.len, &v);
        if (rc == 0)
            rc = rec_item_decode(v.data, v.len, &item);
        buf_cleanup(&v);
        if (rc == 0)
            deliver_item(x, pos, &item);
        else if (rc != STATUS_NOT_FOUND) /* already acknowledged by another connection */
            log_warn("messaging", "cannot read a new inbox entry (%s)", status_str(rc));
    }
}

void deliver_list(struct handlers *h, const uint8_t *data, size_t len) {
    uint32_t n;
    const uint8_t *entries;
    if (rec_deliveries_read(data, len, &n, &entries) != 0) {
        log_error("messaging", "apply returned a malformed delivery list");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct id device;
        uint64_t pos;
        rec_delivery_get(entries, i, &device, &pos);
        deliver_live(h, &device, pos);
    }
}

void messaging_on_response(struct hconn *hc, const Carechat__V1__Frame *f) {
    (void)f;
    if (hc->unanswered > 0)
        hc->unanswered--;
    replay_page(hc);
}

void handle_sync(struct hconn *hc, uint64_t rid, const Carechat__V1__Sync *m) {
    uint64_t pos;
    if (rec_cursor_decode(m->after_cursor.data, m->after_cursor.len, &pos) != 0) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "malformed cursor");
        return;
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__SyncResult sr;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__sync_result__init(&sr);
    sr.page_size = PAGE;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_SYNC;
    resp.sync = &sr;
    conn_send(hc->conn, &frame);
    hc->delivery = DELIVERY_REPLAY;
    hc->delivered_pos = pos;
    hc->unanswered = 0;
    replay_page(hc);
}

void handle_ack(struct hconn *hc, uint64_t rid, const Carechat__V1__Ack *m) {
    uint64_t pos;
    if (m->cursor.len == 0 || rec_cursor_decode(m->cursor.data, m->cursor.len, &pos) != 0) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "malformed cursor");
        return;
    }
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InboxAck a;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__inbox_ack__init(&a);
    a.position = pos;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INBOX_ACK;
    e.inbox_ack = &a;
    propose(hc->h, op_new(hc, OP_ACK, rid), &e);
}

/* ---- conversations ---------------------------------------------------------------------- */

void handle_create_direct(struct hconn *hc, uint64_t rid, const Carechat__V1__CreateDirect *m) {
    struct id peer;
    if (!get_id(m->peer_account_id, &peer) || same_id(&peer, &hc->account)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad peer");
        return;
    }
    struct rec_account a;
    int rc = read_account(hc->h, &peer, &a);
    if (rc != 0) {
        deny(hc, rid, rc, "no such account", peer.b, ID_LEN);
        return;
    }
    rec_account_cleanup(&a);
    struct op *op = op_new(hc, OP_CREATE_DIRECT, rid);
    op->conversation = id_new();
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__DirectCreate d;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__direct_create__init(&d);
    d.conversation_id = (ProtobufCBinaryData){ID_LEN, op->conversation.b};
    d.peer_account_id = (ProtobufCBinaryData){ID_LEN, peer.b};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DIRECT_CREATE;
    e.direct_create = &d;
    propose(hc->h, op, &e);
}

/* A read of the conversation's (patient's) data: runs once its access record
 * is durable (server/authz.c), so membership is checked again here. */
void handle_get_conversation(struct hconn *hc, uint64_t rid,
                             const Carechat__V1__GetConversation *m) {
    struct id conv;
    struct rec_conv c;
    struct rec_member me;
    if (!get_id(m->conversation_id, &conv)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad conversation id");
        return;
    }
    if (member_conv_or_answer(hc, rid, &conv, &c, &me))
        respond_conversation(hc, rid, &conv);
}

/* Page tokens of ListConversations: the activity key's suffix after the
 * account (~last_active (8) | conversation id (16)). */
#define LIST_TOKEN_LEN (8 + ID_LEN)
#define LIST_DEFAULT 50
#define LIST_MAX 100

struct conv_page {
    struct id convs[LIST_MAX + 1];
    uint8_t tokens[LIST_MAX + 1][LIST_TOKEN_LEN];
    size_t n;
    bool bad;
};

static bool collect_conv(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                         size_t value_len) {
    struct conv_page *p = ctx;
    if (p->n > LIST_MAX || key_len != 1 + ID_LEN + LIST_TOKEN_LEN ||
        id_from_bytes(value, value_len, &p->convs[p->n]) != 0) {
        p->bad = true;
        return false;
    }
    memcpy(p->tokens[p->n], key + 1 + ID_LEN, LIST_TOKEN_LEN);
    p->n++;
    return true;
}

void handle_list_conversations(struct hconn *hc, uint64_t rid,
                               const Carechat__V1__ListConversations *m) {
    if (m->limit > LIST_MAX || (m->page_token.len != 0 && m->page_token.len != LIST_TOKEN_LEN)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad page token or limit");
        return;
    }
    size_t limit = m->limit ? m->limit : LIST_DEFAULT;
    struct key prefix, after;
    rec_key_activity_prefix(&prefix, &hc->account);
    after = prefix;
    if (m->page_token.len)
        key_add_bytes(&after, m->page_token.data, LIST_TOKEN_LEN);
    struct conv_page *p = xcalloc(1, sizeof *p);
    struct conv_msg *cms = NULL;
    Carechat__V1__Conversation **ptrs = NULL;
    size_t built = 0;
    int rc = store_scan(hc->h->store, CF_CONVERSATIONS, prefix.b, prefix.len,
                        m->page_token.len ? after.b : NULL, m->page_token.len ? after.len : 0,
                        limit + 1, collect_conv, p);
    if (rc < 0 || p->bad) {
        respond_error(hc->conn, rid, rc < 0 ? rc : STATUS_CORRUPT, NULL);
        goto out;
    }
    size_t n = p->n > limit ? limit : p->n;
    cms = xcalloc(n ? n : 1, sizeof *cms);
    ptrs = xcalloc(n ? n : 1, sizeof *ptrs);
    for (; built < n; built++) {
        if ((rc = conv_build(hc->h, &p->convs[built], &cms[built])) != 0) {
            respond_error(hc->conn, rid, rc, NULL);
            goto out;
        }
        ptrs[built] = &cms[built].cv;
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__ConversationPage page;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__conversation_page__init(&page);
    page.n_conversations = n;
    page.conversations = ptrs;
    if (p->n > limit)
        page.next_page_token = (ProtobufCBinaryData){LIST_TOKEN_LEN, p->tokens[n - 1]};
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_CONVERSATION_PAGE;
    resp.conversation_page = &page;
    conn_send(hc->conn, &frame);
out:
    for (size_t i = 0; i < built; i++)
        conv_msg_cleanup(&cms[i]);
    free(ptrs);
    free(cms);
    free(p);
}

struct hist {
    struct handlers *h;
    uint64_t hi; /* highest seq wanted */
    size_t limit;
    struct buf values[HISTORY_MAX + 1];
    uint64_t seqs[HISTORY_MAX + 1];
    size_t n;
    bool bad;
};

static bool collect_message(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                            size_t value_len) {
    struct hist *hs = ctx;
    uint64_t seq;
    if (key_read_u64(key, key_len, ID_LEN, &seq) != 0) {
        hs->bad = true;
        return false;
    }
    if (seq > hs->hi || hs->n > HISTORY_MAX)
        return false;
    buf_init(&hs->values[hs->n]);
    buf_append(&hs->values[hs->n], value, value_len);
    hs->seqs[hs->n++] = seq;
    return true;
}

/* History is a read of a patient's data: it runs once its access record is
 * durable (server/authz.c, fail closed). */
void handle_history(struct hconn *hc, uint64_t rid, const Carechat__V1__History *m) {
    struct handlers *h = hc->h;
    struct id conv;
    struct rec_conv c;
    struct rec_member me;
    if (!get_id(m->conversation_id, &conv) || (m->before_seq && m->after_seq) ||
        m->limit > HISTORY_MAX) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad history request");
        return;
    }
    /* Membership may have ended while the access record was written. */
    if (!member_conv_or_answer(hc, rid, &conv, &c, &me))
        return;
    size_t limit = m->limit ? m->limit : HISTORY_DEFAULT;
    bool newest_first = m->after_seq == 0;
    struct hist *hs = xcalloc(1, sizeof *hs);
    hs->h = h;
    uint64_t from; /* scan after this seq */
    if (newest_first) {
        hs->hi = m->before_seq ? m->before_seq - 1 : c.last_seq;
        if (hs->hi > c.last_seq)
            hs->hi = c.last_seq;
        from = hs->hi > limit ? hs->hi - limit : 0;
        /* one more below the page tells whether there is more */
        if (from > 0)
            from--;
    } else {
        hs->hi = UINT64_MAX;
        from = m->after_seq;
    }
    /* A member sees history from the moment of joining. */
    if (me.joined_seq > 0 && from < me.joined_seq - 1)
        from = me.joined_seq - 1;
    struct key after;
    key_id_u64(&after, &conv, from);
    int rc = store_scan(h->store, CF_MESSAGES, conv.b, ID_LEN, after.b, after.len, limit + 1,
                        collect_message, hs);
    Carechat__V1__StoredMessage **ptrs = NULL;
    struct stored *st = NULL;
    if (rc < 0 || hs->bad) {
        respond_error(hc->conn, rid, rc < 0 ? rc : STATUS_CORRUPT, "cannot read history");
        goto out;
    }
    /* The page: the `limit` highest (newest first) or lowest (oldest first)
     * of those read, within the frame budget. */
    size_t first = 0, count = hs->n;
    bool more = false;
    if (count > limit) {
        more = true;
        if (newest_first)
            first = count - limit;
        count = limit;
    }
    ptrs = xcalloc(count ? count : 1, sizeof *ptrs);
    st = xcalloc(count ? count : 1, sizeof *st);
    size_t budget = h->cfg.config->max_frame > 2 * HISTORY_SLACK
                        ? h->cfg.config->max_frame - HISTORY_SLACK
                        : HISTORY_SLACK;
    size_t used = 0, n = 0;
    for (size_t i = 0; i < count; i++) {
        size_t idx = newest_first ? first + count - 1 - i : first + i;
        struct rec_message msg;
        if (rec_message_decode(hs->values[idx].data, hs->values[idx].len, &msg) != 0) {
            respond_error(hc->conn, rid, STATUS_CORRUPT, NULL);
            goto out;
        }
        size_t size = msg.header.len + msg.body.len + 512;
        if (n > 0 && used + size > budget) {
            more = true;
            break;
        }
        used += size;
        stored_build(&st[n], &conv, hs->seqs[idx], &msg, &hc->device);
        ptrs[n] = &st[n].sm;
        n++;
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__HistoryPage page;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__history_page__init(&page);
    page.n_messages = n;
    page.messages = ptrs;
    page.more = more;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_HISTORY_PAGE;
    resp.history_page = &page;
    conn_send(hc->conn, &frame);
out:
    free(st);
    free(ptrs);
    for (size_t i = 0; i < hs->n; i++)
        buf_cleanup(&hs->values[i]);
    free(hs);
}

/* ---- Send ------------------------------------------------------------------------------------ */

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

static int read_inbox(struct handlers *h, const struct id *device, struct rec_inbox *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_INBOXES, device->b, ID_LEN, &v);
    if (rc == 0)
        rc = rec_inbox_decode(v.data, v.len, out);
    else if (rc == STATUS_NOT_FOUND) {
        memset(out, 0, sizeof *out);
        rc = STATUS_OK;
    }
    buf_cleanup(&v);
    return rc;
}

void handle_send(struct hconn *hc, uint64_t rid, const Carechat__V1__Send *m) {
    struct handlers *h = hc->h;
    struct id conv, cmid;
    const char *detail;
    if (!get_id(m->conversation_id, &conv) || !get_id(m->client_msg_id, &cmid)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad ids");
        return;
    }
    struct rec_wrap *wraps = NULL;
    struct send_device *devs = NULL;
    struct send_mismatch *mm = NULL;
    bool *recipient = NULL;
    ProtobufCBinaryData *dev_ids = NULL;
    Carechat__Entry__V1__WrapItem *items = NULL, **itemp = NULL;
    int rc = check_envelope(hc, m, &wraps, &detail);
    if (rc != 0) {
        conn_respond(hc->conn, rid, rc, detail);
        goto out;
    }
    const Carechat__V1__Envelope *env = m->envelope;

    /* A retry of a stored message gets the first result, whatever changed. */
    struct key idem;
    rec_key_idem(&idem, &conv, &hc->account, &cmid);
    struct buf v;
    buf_init(&v);
    rc = store_get(h->store, CF_IDEMPOTENCY, idem.b, idem.len, &v);
    if (rc == 0) {
        struct rec_sent sent;
        rc = rec_sent_decode(v.data, v.len, &sent);
        buf_cleanup(&v);
        if (rc == 0)
            respond_sent(hc->conn, rid, &sent);
        else
            respond_error(hc->conn, rid, rc, NULL);
        goto out;
    }
    buf_cleanup(&v);
    if (rc != STATUS_NOT_FOUND) {
        respond_error(hc->conn, rid, rc, NULL);
        goto out;
    }
    if (!ratelimit_take(h->msg->rl_send, hc->account.b, ID_LEN, clock_now())) {
        conn_respond(hc->conn, rid, STATUS_RATE_LIMITED, "too many messages");
        goto out;
    }
    struct rec_conv c;
    struct rec_member me;
    if (!member_conv_or_answer(hc, rid, &conv, &c, &me))
        goto out;
    /* The recipients: every device of every active member whose account is
     * active (a deactivated account receives nothing). */
    devs = xmalloc(SEND_DEVICES_MAX * sizeof *devs);
    size_t n_devs = 0;
    for (uint32_t j = 0; j < c.n_members; j++) {
        struct rec_member mm_;
        struct rec_account a;
        if ((rc = read_member(h, &conv, &c.members[j], &mm_)) != 0 ||
            (mm_.state == REC_ACTIVE && (rc = read_account(h, &c.members[j], &a)) != 0)) {
            respond_error(hc->conn, rid, rc, NULL);
            goto out;
        }
        if (mm_.state != REC_ACTIVE)
            continue;
        bool active = a.active;
        rec_account_cleanup(&a);
        if (!active)
            continue;
        struct dev_scan scan;
        if ((rc = account_devices(h, &c.members[j], &scan)) != 0) {
            respond_error(hc->conn, rid, rc, NULL);
            goto out;
        }
        for (size_t i = 0; i < scan.n; i++)
            devs[n_devs++] = (struct send_device){
                .id = scan.devs[i].id,
                .key_id = scan.devs[i].key_id,
                .expires_at = scan.devs[i].expires_at,
            };
    }
    int64_t now = clock_now();
    mm = xmalloc(sizeof *mm);
    recipient = xmalloc(env->n_wraps * sizeof *recipient);
    rc = send_check_devices(devs, n_devs, wraps, env->n_wraps, &hc->device, now, mm, recipient);
    if (rc == STATUS_CONFLICT) {
        respond_mismatch(hc->conn, rid, mm);
        goto out;
    }
    if (rc != 0) {
        conn_respond(hc->conn, rid, rc, "two key wraps for one device");
        goto out;
    }
    dev_ids = xcalloc(n_devs ? n_devs : 1, sizeof *dev_ids);
    for (size_t i = 0; i < n_devs; i++) {
        dev_ids[i] = (ProtobufCBinaryData){ID_LEN, devs[i].id.b};
        struct rec_inbox in;
        if (id_equal(&devs[i].id, &hc->device))
            continue;
        if ((rc = read_inbox(h, &devs[i].id, &in)) != 0) {
            respond_error(hc->conn, rid, rc, NULL);
            goto out;
        }
        if (in.last - in.acked >= h->cfg.config->inbox_max) {
            conn_respond(hc->conn, rid, STATUS_UNAVAILABLE, "recipient inbox full");
            goto out;
        }
    }

    struct op *op = op_new(hc, OP_SEND, rid);
    op->conversation = conv;
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
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_SEND;
    e.message_send = &ms;
    propose(h, op, &e);
out:
    free(itemp);
    free(items);
    free(dev_ids);
    free(recipient);
    free(mm);
    free(devs);
    free(wraps);
}

/* Answers the DeviceMismatch of a CONFLICT result of apply. */
static void respond_mismatch_result(struct conn *c, uint64_t rid, const uint8_t *data, size_t len) {
    struct send_mismatch *mm = xcalloc(1, sizeof *mm);
    if (send_mismatch_decode(data, len, mm) == 0)
        respond_mismatch(c, rid, mm);
    else
        conn_respond(c, rid, STATUS_CONFLICT, "device set changed");
    free(mm);
}

/* ---- receipts and typing ------------------------------------------------------------------- */

void handle_send_receipt(struct hconn *hc, uint64_t rid, const Carechat__V1__SendReceipt *m) {
    struct handlers *h = hc->h;
    struct id conv, mid;
    struct rec_conv c;
    struct rec_member me;
    if (!get_id(m->conversation_id, &conv) || m->n_message_ids == 0 ||
        (m->kind != CARECHAT__V1__RECEIPT_KIND__DELIVERED &&
         m->kind != CARECHAT__V1__RECEIPT_KIND__READ)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad receipt");
        return;
    }
    if (m->n_message_ids > SEND_RECEIPT_IDS_MAX) {
        conn_respond(hc->conn, rid, STATUS_TOO_LARGE, "too many message ids");
        return;
    }
    for (size_t i = 0; i < m->n_message_ids; i++)
        if (!get_id(m->message_ids[i], &mid)) {
            conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad message id");
            return;
        }
    if (!member_conv_or_answer(hc, rid, &conv, &c, &me))
        return;
    /* The other members' devices: the senders of the receipted messages. */
    struct dev_scan *scans = xcalloc(REC_MEMBERS_MAX, sizeof *scans);
    Carechat__Entry__V1__AccountDeviceIds ad[REC_MEMBERS_MAX], *adp[REC_MEMBERS_MAX];
    ProtobufCBinaryData ids[REC_MEMBERS_MAX][REC_MAX_DEVICES];
    size_t n = 0;
    int rc;
    for (uint32_t j = 0; j < c.n_members; j++) {
        if (same_id(&c.members[j], &hc->account))
            continue;
        if ((rc = account_devices(h, &c.members[j], &scans[n])) != 0) {
            respond_error(hc->conn, rid, rc, NULL);
            free(scans);
            return;
        }
        carechat__entry__v1__account_device_ids__init(&ad[n]);
        ad[n].account_id = (ProtobufCBinaryData){ID_LEN, c.members[j].b};
        for (size_t i = 0; i < scans[n].n; i++)
            ids[n][i] = (ProtobufCBinaryData){ID_LEN, scans[n].devs[i].id.b};
        ad[n].n_device_ids = scans[n].n;
        ad[n].device_ids = ids[n];
        adp[n] = &ad[n];
        n++;
    }
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__ReceiptRecord r;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__receipt_record__init(&r);
    r.conversation_id = m->conversation_id;
    r.kind = (uint32_t)m->kind;
    r.n_message_ids = m->n_message_ids;
    r.message_ids = m->message_ids;
    r.n_sender_devices = n;
    r.sender_devices = adp;
    r.inbox_limit = h->cfg.config->inbox_max;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_RECEIPT_RECORD;
    e.receipt_record = &r;
    propose(h, op_new(hc, OP_RECEIPT, rid), &e);
    free(scans);
}

void handle_typing(struct hconn *hc, uint64_t rid, const Carechat__V1__Typing *m) {
    struct id conv;
    struct rec_conv c;
    struct rec_member me;
    if (!get_id(m->conversation_id, &conv)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad conversation id");
        return;
    }
    if (!member_conv_or_answer(hc, rid, &conv, &c, &me))
        return;
    if (!ratelimit_take(hc->h->msg->rl_typing, hc->account.b, ID_LEN, clock_now())) {
        conn_respond(hc->conn, rid, STATUS_RATE_LIMITED, "too many typing hints");
        return;
    }
    uint8_t msg[TYPING_MSG_MAX];
    size_t len = 0;
    memcpy(msg, conv.b, ID_LEN);
    memcpy(msg + ID_LEN, hc->account.b, ID_LEN);
    msg[2 * ID_LEN] = m->typing ? 1 : 0;
    len = 2 * ID_LEN + 1;
    for (uint32_t j = 0; j < c.n_members; j++) {
        struct rec_member other;
        if (same_id(&c.members[j], &hc->account) ||
            read_member(hc->h, &conv, &c.members[j], &other) != 0 || other.state != REC_ACTIVE)
            continue; /* only active members see typing */
        memcpy(msg + len, c.members[j].b, ID_LEN);
        len += ID_LEN;
    }
    /* Best effort: a full bus drops the hint, which typing allows. */
    (void)bus_publish(hc->h->msg->bus, TYPING_TOPIC, sizeof TYPING_TOPIC - 1, msg, len);
    conn_respond(hc->conn, rid, STATUS_OK, NULL);
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
    for (struct hconn *x = mg->h->conns; x; x = x->next) {
        if (!x->authenticated || !x->conn)
            continue;
        for (size_t off = 2 * ID_LEN + 1; off < len; off += ID_LEN)
            if (memcmp(x->account.b, msg + off, ID_LEN) == 0) {
                send_request(x, &frame);
                break;
            }
    }
}

/* ---- on_done ----------------------------------------------------------------------------------
 */

void messaging_entry_done(struct op *op, uint64_t pos, int status, const uint8_t *result,
                          size_t len) {
    struct handlers *h = op->hc->h;
    struct conn *c = op_live(op) ? op->hc->conn : NULL;
    switch (op->kind) {
    case OP_CREATE_DIRECT:
        if (!c)
            return;
        if (status == 0 && len == ID_LEN) {
            struct id conv;
            memcpy(conv.b, result, ID_LEN);
            respond_conversation(op->hc, op->request_id, &conv);
        } else
            conn_respond(c, op->request_id, status ? status : STATUS_INTERNAL,
                         status == STATUS_NOT_FOUND   ? "peer unknown or not contactable"
                         : status == STATUS_FORBIDDEN ? "peer deactivated"
                                                      : NULL);
        return;
    case OP_SEND:
        if (status == 0) {
            struct rec_sent sent;
            if (len < REC_SENT_SIZE || rec_sent_decode(result, REC_SENT_SIZE, &sent) != 0) {
                if (c)
                    conn_respond(c, op->request_id, STATUS_INTERNAL, NULL);
                return;
            }
            if (c)
                respond_sent(c, op->request_id, &sent);
            deliver_list(h, result + REC_SENT_SIZE, len - REC_SENT_SIZE);
        } else if (c && status == STATUS_CONFLICT && len > 0)
            respond_mismatch_result(c, op->request_id, result, len);
        else if (c)
            conn_respond(c, op->request_id, status,
                         status == STATUS_UNAVAILABLE && pos != 0 ? "recipient inbox full" : NULL);
        return;
    case OP_ACK:
        if (c)
            conn_respond(c, op->request_id, status,
                         status == STATUS_CONFLICT ? "cursor never delivered" : NULL);
        if (op->hc->conn && op->hc->delivery == DELIVERY_REPLAY) {
            op->hc->unanswered = 0;
            replay_page(op->hc);
        }
        return;
    case OP_RECEIPT:
        if (c)
            conn_respond(c, op->request_id, status, NULL);
        if (status == 0)
            deliver_list(h, result, len);
        return;
    default:
        return;
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
