/*
 * server/conversations.c: CreateDirect, ListConversations, GetConversation
 * and History, and the Conversation answer that channels.c shares.
 *
 * CreateDirect is proposed as a DirectCreate entry and decided by apply
 * (apply_messages.c: who may talk to whom); the answer waits for the
 * journal. The reads go to the store, bounded: ListConversations through the
 * account's conversation index (at most LIST_SCAN_MAX entries, each
 * conversation and the account's membership read to order them by activity),
 * History in pages within the frame budget. They
 * are `read` rows of the request table: each runs once its access record is
 * durable, and after authorization was checked again (server/request.h).
 *
 * Thread: the lws loop thread.
 */
#include "server/conversations.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "server/delivery.h"
#include "storage/keys.h"

#define HISTORY_DEFAULT 50
#define HISTORY_MAX 100
/* Room left in a History response for everything but the messages. */
#define HISTORY_SLACK (8u * 1024u)

/* ---- the Conversation answer ------------------------------------------------------ */

/* A Conversation message with its listed members (n of them, in arrays
 * sized by the conversation's members), borrowing from itself. Sized so: a
 * page of 100 conversations held 256 whole account records each, 58 MB
 * zeroed per ListConversations. */
struct conv_msg {
    Carechat__V1__Conversation cv;
    Carechat__V1__Member *mem, **memp;
    char **names; /* their display names (owned) */
    struct id *members;
    uint32_t n;
    struct id conv, patient;
    struct buf name_value;
    char name[REC_CHANNEL_NAME_MAX + 1];
};

static void conv_msg_cleanup(struct conv_msg *m) {
    for (uint32_t i = 0; i < m->n; i++)
        free(m->names[i]);
    free(m->names);
    free(m->mem);
    free(m->memp);
    free(m->members);
    m->names = NULL;
    m->mem = NULL;
    m->memp = NULL;
    m->members = NULL;
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
    int rc = req_read_conv(h, conv, c);
    if (rc == 0 && c->kind == REC_CARE_TEAM)
        rc = channel_name(h, conv, out);
    if (rc != 0) {
        free(c);
        conv_msg_cleanup(out);
        return rc;
    }
    out->conv = *conv;
    out->patient = c->owner;
    size_t cap = c->n_members ? c->n_members : 1;
    out->mem = xcalloc(cap, sizeof *out->mem);
    out->memp = xcalloc(cap, sizeof *out->memp);
    out->names = xcalloc(cap, sizeof *out->names);
    out->members = xcalloc(cap, sizeof *out->members);
    struct rec_account *a = xmalloc(sizeof *a);
    for (uint32_t j = 0; j < c->n_members && rc == 0; j++) {
        struct rec_member m;
        uint32_t i = out->n;
        if ((rc = req_read_member(h, conv, &c->members[j], &m)) != 0)
            break;
        if (m.state != REC_ACTIVE && m.state != REC_PENDING)
            continue; /* the Conversation lists active and pending members */
        if ((rc = req_read_account(h, &c->members[j], a)) != 0)
            break;
        out->names[i] = a->display_name; /* taken from the record */
        a->display_name = NULL;
        rec_account_cleanup(a);
        out->members[i] = c->members[j];
        out->n++;
        Carechat__V1__Member *mm = &out->mem[i];
        carechat__v1__member__init(mm);
        mm->account_id = (ProtobufCBinaryData){ID_LEN, out->members[i].b};
        mm->role = (Carechat__V1__Role)m.role;
        mm->state = (Carechat__V1__MemberState)m.state;
        mm->joined_at = m.joined_at;
        mm->left_at = m.left_at;
        mm->display_name = out->names[i];
        out->memp[i] = mm;
    }
    free(a);
    if (rc != 0) {
        free(c);
        conv_msg_cleanup(out);
        return rc;
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

int conversations_respond(struct handlers *h, struct conn *c, uint64_t rid, const struct id *conv) {
    struct conv_msg *cm = xmalloc(sizeof *cm);
    int rc = conv_build(h, conv, cm);
    if (rc != 0) {
        free(cm);
        return rc;
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_CONVERSATION;
    resp.conversation = &cm->cv;
    conn_send(c, &frame);
    conv_msg_cleanup(cm);
    free(cm);
    return STATUS_OK;
}

/* ---- CreateDirect ------------------------------------------------------------------ */

int conversations_create_direct(struct req *r) {
    const Carechat__V1__CreateDirect *m = r->frame->create_direct;
    struct id peer;
    if (id_from_bytes(m->peer_account_id.data, m->peer_account_id.len, &peer) != 0 ||
        id_equal(&peer, &r->hc->account))
        return req_fail(r, STATUS_BAD_REQUEST, "bad peer");
    struct rec_account a;
    int rc = req_read_account(r->h, &peer, &a);
    if (rc != 0)
        return req_deny(r, rc, "no such account", m->peer_account_id.data, ID_LEN);
    rec_account_cleanup(&a);
    struct op *op = op_new(r, 0);
    op->has_object = true;
    op->object = id_new(); /* the new conversation's id, if apply creates one */
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__DirectCreate d;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__direct_create__init(&d);
    d.conversation_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    d.peer_account_id = (ProtobufCBinaryData){ID_LEN, peer.b};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DIRECT_CREATE;
    e.direct_create = &d;
    return op_propose(op, &e);
}

int conversations_create_direct_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_NOT_FOUND   ? "peer unknown or not contactable"
                       : res->status == STATUS_FORBIDDEN ? "peer deactivated"
                                                         : NULL);
    struct id conv;
    if (id_from_bytes(res->data, res->len, &conv) != 0)
        return STATUS_INTERNAL;
    return conversations_respond(op->hc->h, op->hc->conn, op->request_id, &conv);
}

/* ---- GetConversation ---------------------------------------------------------------- */

int conversations_get(struct req *r) {
    return conversations_respond(r->h, r->conn, r->id, &r->conv_id);
}

/* ---- ListConversations ----------------------------------------------------------------- */

/* Page tokens of ListConversations: a conversation's place in the listing,
 * ~its activity time (8, UINT64_MAX minus the time, big-endian as
 * key_add_u64() writes it) | conversation id (16). The listing's order (most
 * recently active first, then by id) is the tokens' byte order. */
#define LIST_TOKEN_LEN (8 + ID_LEN)
#define LIST_DEFAULT 50
#define LIST_MAX 100
/* The most entries of the account's conversation index a listing reads and
 * orders. Beyond it, only the first LIST_SCAN_MAX in the index's key order
 * (records_messages.h) are ordered and listed; the others never are. */
#define LIST_SCAN_MAX 10000

/* The index entries of one account, then their tokens. */
struct conv_scan {
    uint8_t (*tokens)[LIST_TOKEN_LEN]; /* the conversation id in the last 16 bytes */
    size_t n, cap;
    bool bad;
};

static bool collect_conv(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                         size_t value_len) {
    struct conv_scan *s = ctx;
    if (key_len != 1 + ID_LEN + LIST_TOKEN_LEN || value_len != ID_LEN) {
        s->bad = true;
        return false;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->tokens = xrealloc(s->tokens, s->cap * sizeof *s->tokens);
    }
    memcpy(s->tokens[s->n++] + 8, value, ID_LEN);
    return true;
}

static int token_cmp(const void *a, const void *b) {
    return memcmp(a, b, LIST_TOKEN_LEN);
}

/* Puts in front of each token of `s` the activity time of `account` in its
 * conversation (rec_activity_time()), and sorts them. Returns 0 or a store
 * status. */
static int order_convs(struct handlers *h, const struct id *account, struct conv_scan *s) {
    struct rec_conv *c = xmalloc(sizeof *c);
    int rc = STATUS_OK;
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        struct id conv;
        struct rec_member m;
        memcpy(conv.b, s->tokens[i] + 8, ID_LEN);
        if ((rc = req_read_conv(h, &conv, c)) == 0 &&
            (rc = req_read_member(h, &conv, account, &m)) == 0)
            key_put_u64(s->tokens[i], UINT64_MAX - (uint64_t)rec_activity_time(c, &m));
    }
    free(c);
    if (rc == 0 && s->n > 1) /* tokens is NULL while the account has none */
        qsort(s->tokens, s->n, sizeof *s->tokens, token_cmp);
    return rc;
}

int conversations_list(struct req *r) {
    const Carechat__V1__ListConversations *m = r->frame->list_conversations;
    if (m->limit > LIST_MAX || (m->page_token.len != 0 && m->page_token.len != LIST_TOKEN_LEN))
        return req_fail(r, STATUS_BAD_REQUEST, "bad page token or limit");
    size_t limit = m->limit ? m->limit : LIST_DEFAULT;
    /* A review (authorized by the patient's stage) lists the patient's. */
    const struct id *account = m->reviewed_account_id.len ? &r->patient : &r->hc->account;
    struct key prefix;
    rec_key_account_conv_prefix(&prefix, account);
    struct conv_scan s = {0};
    struct conv_msg *cms = NULL;
    Carechat__V1__Conversation **ptrs = NULL;
    size_t built = 0;
    int rc = store_scan(r->h->store, CF_CONVERSATIONS, prefix.b, prefix.len, NULL, 0, LIST_SCAN_MAX,
                        collect_conv, &s);
    if (rc >= 0)
        rc = s.bad ? STATUS_CORRUPT : order_convs(r->h, account, &s);
    if (rc != 0)
        goto out;
    /* The page: the entries after the token, in order. */
    size_t first = 0;
    while (m->page_token.len && first < s.n &&
           memcmp(s.tokens[first], m->page_token.data, LIST_TOKEN_LEN) <= 0)
        first++;
    size_t n = s.n - first > limit ? limit : s.n - first;
    cms = xcalloc(n ? n : 1, sizeof *cms);
    ptrs = xcalloc(n ? n : 1, sizeof *ptrs);
    for (; built < n; built++) {
        struct id conv;
        memcpy(conv.b, s.tokens[first + built] + 8, ID_LEN);
        if ((rc = conv_build(r->h, &conv, &cms[built])) != 0)
            goto out;
        ptrs[built] = &cms[built].cv;
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__ConversationPage page;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__conversation_page__init(&page);
    page.n_conversations = n;
    page.conversations = ptrs;
    if (s.n - first > limit)
        page.next_page_token = (ProtobufCBinaryData){LIST_TOKEN_LEN, s.tokens[first + n - 1]};
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_CONVERSATION_PAGE;
    resp.conversation_page = &page;
    conn_send(r->conn, &frame);
out:
    for (size_t i = 0; i < built; i++)
        conv_msg_cleanup(&cms[i]);
    free(ptrs);
    free(cms);
    free(s.tokens);
    return rc;
}

/* ---- History -------------------------------------------------------------------------- */

struct hist {
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

int conversations_history(struct req *r) {
    const Carechat__V1__History *m = r->frame->history;
    const struct rec_conv *c = r->conv;
    if ((m->before_seq && m->after_seq) || m->limit > HISTORY_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, "bad history request");
    size_t limit = m->limit ? m->limit : HISTORY_DEFAULT;
    bool newest_first = m->after_seq == 0;
    struct hist *hs = xcalloc(1, sizeof *hs);
    uint64_t from; /* scan after this seq */
    if (newest_first) {
        hs->hi = m->before_seq ? m->before_seq - 1 : c->last_seq;
        if (hs->hi > c->last_seq)
            hs->hi = c->last_seq;
        from = hs->hi > limit ? hs->hi - limit : 0;
        /* one more below the page tells whether there is more */
        if (from > 0)
            from--;
    } else {
        hs->hi = UINT64_MAX;
        from = m->after_seq;
    }
    /* A member sees history from the moment of joining; a reviewer of a
     * deactivated patient (no member) all of it. */
    if (r->member && r->member->joined_seq > 0 && from < r->member->joined_seq - 1)
        from = r->member->joined_seq - 1;
    struct key after;
    key_id_u64(&after, &r->conv_id, from);
    int rc = store_scan(r->h->store, CF_MESSAGES, r->conv_id.b, ID_LEN, after.b, after.len,
                        limit + 1, collect_message, hs);
    Carechat__V1__StoredMessage **ptrs = NULL;
    struct delivery_message *st = NULL;
    if (rc >= 0)
        rc = hs->bad ? STATUS_CORRUPT : STATUS_OK;
    if (rc != 0)
        goto out;
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
    size_t max_frame = r->h->cfg.config->max_frame;
    size_t budget = max_frame > 2 * HISTORY_SLACK ? max_frame - HISTORY_SLACK : HISTORY_SLACK;
    size_t used = 0, n = 0;
    for (size_t i = 0; i < count; i++) {
        size_t idx = newest_first ? first + count - 1 - i : first + i;
        struct rec_message msg;
        if ((rc = rec_message_decode(hs->values[idx].data, hs->values[idx].len, &msg)) != 0)
            goto out;
        size_t size = msg.header.len + msg.body.len + 512 + (size_t)msg.n_wraps * 28;
        if (n > 0 && used + size > budget) {
            more = true;
            break;
        }
        used += size;
        delivery_message_build(&st[n], &r->conv_id, hs->seqs[idx], &msg, &r->hc->device);
        ptrs[n] = &st[n].sm;
        n++;
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__HistoryPage page;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__history_page__init(&page);
    page.n_messages = n;
    page.messages = ptrs;
    page.more = more;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_HISTORY_PAGE;
    resp.history_page = &page;
    conn_send(r->conn, &frame);
out:
    for (size_t i = 0; st != NULL && i < count; i++)
        delivery_message_cleanup(&st[i]);
    free(st);
    free(ptrs);
    for (size_t i = 0; i < hs->n; i++)
        buf_cleanup(&hs->values[i]);
    free(hs);
    return rc;
}
