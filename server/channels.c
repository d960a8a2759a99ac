/*
 * server/channels.c: care-team channels, recall and urgent messages:
 * CreateChannel, AddMember, RemoveMember, ApproveMember, LeaveConversation,
 * ListMembers, Recall, AckUrgent, GetUrgentStatus.
 *
 * Writes are shaped and checked here, proposed as entries (entry.proto:
 * ChannelCreate, MemberAdd, MemberRemove, MemberApprove, ConversationLeave,
 * MessageRecall, UrgentAck) and decided by apply (apply_channels.c), which
 * alone knows the membership rules; the answer waits for the journal's
 * on_done. The proposer lists the devices that tombstones, urgent
 * acknowledgements and membership events go to; apply keeps only those still
 * current, and on_done delivers what it queued to open connections. Reads
 * (ListMembers, GetUrgentStatus) go to the store, bounded by the member limit.
 *
 * A channel's name is personal data: it is never logged.
 *
 * Thread: the lws loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "server/handlers_internal.h"
#include "server/records_messages.h"
#include "storage/keys.h"

#define CHANNEL_EXTRA_MAX 64

static bool get_id(ProtobufCBinaryData b, struct id *out) {
    return id_from_bytes(b.data, b.len, out) == 0;
}

/* Well-formed UTF-8 without overlong forms, surrogates or code points above
 * U+10FFFF. */
static bool utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len = c < 0x80           ? 1
                     : (c >> 5) == 0x6  ? 2
                     : (c >> 4) == 0xe  ? 3
                     : (c >> 3) == 0x1e ? 4
                                        : 0;
        if (len == 0 || i + len > n)
            return false;
        unsigned cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* The message `mid` of `conv`: its seq and sender. */
static int read_ref(struct handlers *h, const struct id *conv, const struct id *mid,
                    struct rec_msgref *ref) {
    struct key k;
    rec_key_receipt(&k, conv, mid, NULL);
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_RECEIPTS, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_msgref_decode(v.data, v.len, ref);
    buf_cleanup(&v);
    return rc;
}

/* ---- who sees whom -------------------------------------------------------------- */

struct share_scan {
    struct handlers *h;
    const struct id *other;
    bool found;
};

static bool share_one(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len) {
    struct share_scan *s = ctx;
    struct id conv;
    struct rec_member m;
    if (id_from_bytes(value, value_len, &conv) != 0 || read_member(s->h, &conv, s->other, &m) != 0)
        return true;
    s->found = m.state == REC_ACTIVE || m.state == REC_PENDING;
    return !s->found;
}

bool channels_share(struct handlers *h, const struct id *account, const struct id *other) {
    struct key prefix;
    rec_key_activity_prefix(&prefix, account);
    struct share_scan s = {.h = h, .other = other};
    int rc = store_scan(h->store, CF_CONVERSATIONS, prefix.b, prefix.len, NULL, 0,
                        CHANNELS_SHARE_SCAN, share_one, &s);
    return rc >= 0 && s.found;
}

/* ---- device lists for apply ---------------------------------------------------- */

/* The devices of some accounts as AccountDeviceIds, borrowing from itself. */
struct dev_lists {
    Carechat__Entry__V1__AccountDeviceIds ad[REC_MEMBERS_MAX], *adp[REC_MEMBERS_MAX];
    ProtobufCBinaryData ids[REC_MEMBERS_MAX][REC_MAX_DEVICES];
    struct id accounts[REC_MEMBERS_MAX];
    struct id devs[REC_MEMBERS_MAX][REC_MAX_DEVICES];
    size_t n;
    bool bad;
};

static bool collect_dev(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len) {
    struct dev_lists *l = ctx;
    Carechat__Entry__V1__AccountDeviceIds *ad = &l->ad[l->n];
    if (ad->n_device_ids >= REC_MAX_DEVICES ||
        key_read_id(key, key_len, ID_LEN, &l->devs[l->n][ad->n_device_ids]) != 0) {
        l->bad = true;
        return false;
    }
    l->ids[l->n][ad->n_device_ids] =
        (ProtobufCBinaryData){ID_LEN, l->devs[l->n][ad->n_device_ids].b};
    ad->n_device_ids++;
    return true;
}

/* Appends the current devices of `account`. Returns 0 or a store status. */
static int lists_add(struct handlers *h, struct dev_lists *l, const struct id *account) {
    if (l->n >= REC_MEMBERS_MAX)
        return STATUS_TOO_LARGE;
    Carechat__Entry__V1__AccountDeviceIds *ad = &l->ad[l->n];
    carechat__entry__v1__account_device_ids__init(ad);
    l->accounts[l->n] = *account;
    ad->account_id = (ProtobufCBinaryData){ID_LEN, l->accounts[l->n].b};
    ad->device_ids = l->ids[l->n];
    int rc = store_scan(h->store, CF_DEVICES, account->b, ID_LEN, NULL, 0, REC_MAX_DEVICES,
                        collect_dev, l);
    if (rc < 0)
        return rc;
    if (l->bad)
        return STATUS_CORRUPT;
    l->adp[l->n] = ad;
    l->n++;
    return STATUS_OK;
}

/* ---- CreateChannel ------------------------------------------------------------------ */

void handle_create_channel(struct hconn *hc, uint64_t rid, const Carechat__V1__CreateChannel *m) {
    struct id patient, extra;
    size_t name_len = m->name ? strlen(m->name) : 0;
    if (!get_id(m->patient_account_id, &patient) || name_len == 0 ||
        name_len > REC_CHANNEL_NAME_MAX || !utf8_valid(m->name, name_len)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad patient or name");
        return;
    }
    if (m->n_member_account_ids > CHANNEL_EXTRA_MAX) {
        conn_respond(hc->conn, rid, STATUS_TOO_LARGE, "too many members");
        return;
    }
    for (size_t i = 0; i < m->n_member_account_ids; i++)
        if (!get_id(m->member_account_ids[i], &extra)) {
            conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad member id");
            return;
        }
    struct op *op = op_new(hc, OP_CREATE_CHANNEL, rid);
    op->conversation = id_new();
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__ChannelCreate cc;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__channel_create__init(&cc);
    cc.conversation_id = (ProtobufCBinaryData){ID_LEN, op->conversation.b};
    cc.patient_account_id = m->patient_account_id;
    cc.name = m->name;
    cc.n_member_account_ids = m->n_member_account_ids;
    cc.member_account_ids = m->member_account_ids;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_CHANNEL_CREATE;
    e.channel_create = &cc;
    propose(hc->h, op, &e);
}

/* ---- membership changes ------------------------------------------------------------- */

/* The devices of every ACTIVE member of `conv` and of `account` (the one
 * whose membership changes), for the membership event apply queues. An
 * unknown conversation lists nobody: apply then refuses the entry itself, so
 * the answer and its audit record stay apply's. Returns 0 or a store status
 * (STATUS_TOO_LARGE past the member limit). */
static int member_lists(struct handlers *h, const struct id *conv, const struct id *account,
                        struct dev_lists *l) {
    struct rec_conv *c = xcalloc(1, sizeof *c);
    bool listed = false;
    int rc = read_conv(h, conv, c);
    if (rc == STATUS_NOT_FOUND) {
        free(c);
        return STATUS_OK;
    }
    for (uint32_t i = 0; rc == 0 && i < c->n_members; i++) {
        struct rec_member mm;
        bool target = memcmp(c->members[i].b, account->b, ID_LEN) == 0;
        if ((rc = read_member(h, conv, &c->members[i], &mm)) == 0 &&
            (mm.state == REC_ACTIVE || target))
            rc = lists_add(h, l, &c->members[i]);
        listed = listed || target;
    }
    if (rc == 0 && !listed)
        rc = lists_add(h, l, account);
    free(c);
    return rc;
}

static void propose_member(struct hconn *hc, uint64_t rid, ProtobufCBinaryData conv_b,
                           ProtobufCBinaryData account_b,
                           Carechat__Entry__V1__Entry__KindCase kind) {
    struct id conv, account;
    bool leave = kind == CARECHAT__ENTRY__V1__ENTRY__KIND_CONVERSATION_LEAVE;
    if (!get_id(conv_b, &conv) || (!leave && !get_id(account_b, &account))) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad ids");
        return;
    }
    if (leave)
        account = hc->account;
    struct dev_lists *l = xcalloc(1, sizeof *l);
    int rc = member_lists(hc->h, &conv, &account, l);
    if (rc != 0) {
        deny(hc, rid, rc, rc == STATUS_TOO_LARGE ? "too many members" : NULL, conv.b, ID_LEN);
        free(l);
        return;
    }
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MemberAdd add;
    Carechat__Entry__V1__MemberRemove rem;
    Carechat__Entry__V1__MemberApprove app;
    Carechat__Entry__V1__ConversationLeave lv;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    e.kind_case = kind;
    switch (kind) {
    case CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_ADD:
        carechat__entry__v1__member_add__init(&add);
        add.conversation_id = conv_b;
        add.account_id = account_b;
        add.n_member_devices = l->n;
        add.member_devices = l->adp;
        e.member_add = &add;
        break;
    case CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_REMOVE:
        carechat__entry__v1__member_remove__init(&rem);
        rem.conversation_id = conv_b;
        rem.account_id = account_b;
        rem.n_member_devices = l->n;
        rem.member_devices = l->adp;
        e.member_remove = &rem;
        break;
    case CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_APPROVE:
        carechat__entry__v1__member_approve__init(&app);
        app.conversation_id = conv_b;
        app.account_id = account_b;
        app.n_member_devices = l->n;
        app.member_devices = l->adp;
        e.member_approve = &app;
        break;
    default:
        carechat__entry__v1__conversation_leave__init(&lv);
        lv.conversation_id = conv_b;
        lv.n_member_devices = l->n;
        lv.member_devices = l->adp;
        e.conversation_leave = &lv;
        break;
    }
    struct op *op = op_new(hc, OP_MEMBER, rid);
    op->conversation = conv;
    propose(hc->h, op, &e);
    free(l);
}

void handle_add_member(struct hconn *hc, uint64_t rid, const Carechat__V1__AddMember *m) {
    propose_member(hc, rid, m->conversation_id, m->account_id,
                   CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_ADD);
}

void handle_remove_member(struct hconn *hc, uint64_t rid, const Carechat__V1__RemoveMember *m) {
    propose_member(hc, rid, m->conversation_id, m->account_id,
                   CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_REMOVE);
}

void handle_approve_member(struct hconn *hc, uint64_t rid, const Carechat__V1__ApproveMember *m) {
    propose_member(hc, rid, m->conversation_id, m->account_id,
                   CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_APPROVE);
}

void handle_leave_conversation(struct hconn *hc, uint64_t rid,
                               const Carechat__V1__LeaveConversation *m) {
    propose_member(hc, rid, m->conversation_id, (ProtobufCBinaryData){0, NULL},
                   CARECHAT__ENTRY__V1__ENTRY__KIND_CONVERSATION_LEAVE);
}

/* ---- ListMembers ------------------------------------------------------------------------ */

struct member_list {
    struct rec_conv c;
    Carechat__V1__Member mem[REC_MEMBERS_MAX], *memp[REC_MEMBERS_MAX];
    struct rec_account accts[REC_MEMBERS_MAX];
    uint32_t n;
};

void handle_list_members(struct hconn *hc, uint64_t rid, const Carechat__V1__ListMembers *m) {
    struct id conv;
    if (!get_id(m->conversation_id, &conv)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad conversation id");
        return;
    }
    struct member_list *l = xcalloc(1, sizeof *l);
    int rc = read_conv(hc->h, &conv, &l->c);
    for (uint32_t i = 0; rc == 0 && i < l->c.n_members; i++) {
        struct rec_member mm;
        if ((rc = read_member(hc->h, &conv, &l->c.members[i], &mm)) != 0 ||
            (rc = read_account(hc->h, &l->c.members[i], &l->accts[i])) != 0)
            break;
        l->n++;
        Carechat__V1__Member *x = &l->mem[i];
        carechat__v1__member__init(x);
        x->account_id = (ProtobufCBinaryData){ID_LEN, l->c.members[i].b};
        x->role = (Carechat__V1__Role)mm.role;
        x->state = (Carechat__V1__MemberState)mm.state;
        x->joined_at = mm.joined_at;
        x->left_at = mm.left_at;
        x->display_name = l->accts[i].display_name;
        l->memp[i] = x;
    }
    if (rc != 0)
        deny(hc, rid, rc, "no such conversation", conv.b, ID_LEN);
    else {
        Carechat__V1__Frame frame;
        Carechat__V1__Response resp;
        Carechat__V1__MemberList ml;
        proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
        carechat__v1__member_list__init(&ml);
        ml.n_members = l->n;
        ml.members = l->memp;
        resp.result_case = CARECHAT__V1__RESPONSE__RESULT_MEMBER_LIST;
        resp.member_list = &ml;
        conn_send(hc->conn, &frame);
    }
    for (uint32_t i = 0; i < l->n; i++)
        rec_account_cleanup(&l->accts[i]);
    free(l);
}

/* ---- Recall ------------------------------------------------------------------------------ */

void handle_recall(struct hconn *hc, uint64_t rid, const Carechat__V1__Recall *m) {
    struct handlers *h = hc->h;
    struct id conv, mid;
    if (!get_id(m->conversation_id, &conv) || !get_id(m->message_id, &mid)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad ids");
        return;
    }
    struct rec_conv *c = xcalloc(1, sizeof *c);
    struct dev_lists *l = xcalloc(1, sizeof *l);
    struct rec_msgref ref;
    int rc = read_conv(h, &conv, c);
    if (rc == 0)
        rc = read_ref(h, &conv, &mid, &ref);
    if (rc == 0 && hc->role != REC_ROLE_ADMIN &&
        memcmp(ref.sender_account.b, hc->account.b, ID_LEN))
        rc = STATUS_FORBIDDEN;
    /* The tombstone goes to every device of every active member. */
    for (uint32_t i = 0; rc == 0 && i < c->n_members; i++) {
        struct rec_member mm;
        if ((rc = read_member(h, &conv, &c->members[i], &mm)) == 0 && mm.state == REC_ACTIVE)
            rc = lists_add(h, l, &c->members[i]);
    }
    if (rc != 0) {
        deny(hc, rid, rc,
             rc == STATUS_FORBIDDEN ? "only the sender or an admin recalls" : "no such message",
             mid.b, ID_LEN);
        goto out;
    }
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MessageRecall r;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__message_recall__init(&r);
    r.conversation_id = m->conversation_id;
    r.message_id = m->message_id;
    r.n_member_devices = l->n;
    r.member_devices = l->adp;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_RECALL;
    e.message_recall = &r;
    struct op *op = op_new(hc, OP_RECALL, rid);
    op->conversation = conv;
    propose(h, op, &e);
out:
    free(l);
    free(c);
}

/* ---- AckUrgent, GetUrgentStatus ----------------------------------------------------------- */

void handle_ack_urgent(struct hconn *hc, uint64_t rid, const Carechat__V1__AckUrgent *m) {
    struct handlers *h = hc->h;
    struct id conv, mid;
    if (!get_id(m->conversation_id, &conv) || !get_id(m->message_id, &mid)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad ids");
        return;
    }
    struct dev_lists *l = xcalloc(1, sizeof *l);
    struct rec_msgref ref;
    int rc = read_ref(h, &conv, &mid, &ref);
    if (rc == 0)
        rc = lists_add(h, l, &ref.sender_account);
    if (rc != 0) {
        deny(hc, rid, rc, "no such message", mid.b, ID_LEN);
        free(l);
        return;
    }
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__UrgentAck u;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__urgent_ack__init(&u);
    u.conversation_id = m->conversation_id;
    u.message_id = m->message_id;
    u.n_sender_devices = l->n;
    u.sender_devices = l->adp;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_URGENT_ACK;
    e.urgent_ack = &u;
    struct op *op = op_new(hc, OP_URGENT_ACK, rid);
    op->conversation = conv;
    propose(h, op, &e);
    free(l);
}

struct urgent_scan {
    struct id accounts[REC_MEMBERS_MAX];
    int64_t acked_at[REC_MEMBERS_MAX];
    Carechat__V1__UrgentRecipient rec[REC_MEMBERS_MAX], *recp[REC_MEMBERS_MAX];
    size_t n;
    bool bad;
};

static bool collect_urgent(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                           size_t value_len) {
    struct urgent_scan *s = ctx;
    struct rec_urgent u;
    if (s->n >= REC_MEMBERS_MAX || key_read_id(key, key_len, 2 * ID_LEN + 1, &s->accounts[s->n]) ||
        rec_urgent_decode(value, value_len, &u) != 0) {
        s->bad = true;
        return false;
    }
    s->acked_at[s->n++] = u.acked_at;
    return true;
}

void handle_get_urgent_status(struct hconn *hc, uint64_t rid,
                              const Carechat__V1__GetUrgentStatus *m) {
    struct handlers *h = hc->h;
    struct id conv, mid;
    if (!get_id(m->conversation_id, &conv) || !get_id(m->message_id, &mid)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad ids");
        return;
    }
    struct rec_msgref ref;
    struct rec_message msg;
    struct buf v;
    buf_init(&v);
    struct urgent_scan *s = xcalloc(1, sizeof *s);
    int rc = read_ref(h, &conv, &mid, &ref);
    /* The sender and admins see who has acknowledged. */
    if (rc == 0 && hc->role != REC_ROLE_ADMIN &&
        memcmp(ref.sender_account.b, hc->account.b, ID_LEN))
        rc = STATUS_FORBIDDEN;
    struct key k;
    if (rc == 0) {
        key_id_u64(&k, &conv, ref.seq);
        rc = store_get(h->store, CF_MESSAGES, k.b, k.len, &v);
    }
    if (rc == 0)
        rc = rec_message_decode(v.data, v.len, &msg);
    if (rc == 0 && !msg.urgent)
        rc = STATUS_CONFLICT;
    if (rc == 0) {
        uint8_t prefix[2 * ID_LEN + 1];
        memcpy(prefix, conv.b, ID_LEN);
        memcpy(prefix + ID_LEN, mid.b, ID_LEN);
        prefix[2 * ID_LEN] = REC_URGENT_TAG;
        rc = store_scan(h->store, CF_RECEIPTS, prefix, sizeof prefix, NULL, 0, REC_MEMBERS_MAX,
                        collect_urgent, s);
        if (rc >= 0)
            rc = s->bad ? STATUS_CORRUPT : STATUS_OK;
    }
    if (rc != 0) {
        deny(hc, rid, rc,
             rc == STATUS_CONFLICT    ? "not an urgent message"
             : rc == STATUS_FORBIDDEN ? "only the sender or an admin"
                                      : "no such message",
             mid.b, ID_LEN);
        goto out;
    }
    for (size_t i = 0; i < s->n; i++) {
        carechat__v1__urgent_recipient__init(&s->rec[i]);
        s->rec[i].account_id = (ProtobufCBinaryData){ID_LEN, s->accounts[i].b};
        s->rec[i].acknowledged = s->acked_at[i] != 0;
        s->rec[i].acknowledged_at = s->acked_at[i];
        s->recp[i] = &s->rec[i];
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__UrgentReport report;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__urgent_report__init(&report);
    report.message_id = m->message_id;
    report.n_recipients = s->n;
    report.recipients = s->recp;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_URGENT_REPORT;
    resp.urgent_report = &report;
    conn_send(hc->conn, &frame);
out:
    free(s);
    buf_cleanup(&v);
}

/* ---- on_done ------------------------------------------------------------------------------ */

void channels_entry_done(struct op *op, uint64_t pos, int status, const uint8_t *result,
                         size_t len) {
    struct conn *c = op_live(op) ? op->hc->conn : NULL;
    switch (op->kind) {
    case OP_CREATE_CHANNEL:
        if (c && status == 0 && len == ID_LEN)
            respond_conversation(op->hc, op->request_id, &op->conversation);
        else if (c)
            conn_respond(c, op->request_id, status ? status : STATUS_INTERNAL,
                         status == STATUS_NOT_FOUND   ? "patient or member unknown"
                         : status == STATUS_FORBIDDEN ? "providers and admins create channels"
                                                      : NULL);
        return;
    case OP_MEMBER:
        if (c)
            conn_respond(c, op->request_id, status,
                         status == STATUS_FORBIDDEN   ? "not allowed to change this membership"
                         : status == STATUS_CONFLICT  ? "membership already in that state"
                         : status == STATUS_NOT_FOUND ? "no such conversation or member"
                                                      : NULL);
        if (status == 0)
            deliver_list(op->hc->h, result, len);
        return;
    case OP_RECALL:
    case OP_URGENT_ACK:
        if (c)
            conn_respond(
                c, op->request_id, status,
                status == STATUS_CONFLICT
                    ? (op->kind == OP_RECALL ? "already recalled" : "not an urgent message")
                : status == STATUS_NOT_FOUND ? "no such message"
                                             : NULL);
        if (status == 0)
            deliver_list(op->hc->h, result, len);
        return;
    default:
        return;
    }
}
