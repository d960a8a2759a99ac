/*
 * server/channels.c: care-team channels, recall and urgent messages:
 * CreateChannel, AddMember, RemoveMember, ApproveMember, LeaveConversation,
 * ListMembers, Recall, AckUrgent, GetUrgentStatus.
 *
 * Writes are shaped and checked here, proposed as entries (entry.proto:
 * ChannelCreate, MemberAdd, MemberRemove, MemberApprove, ConversationLeave,
 * MessageRecall, UrgentAck) and decided by apply (apply_channels.c), which
 * alone knows the membership rules; the answer waits for the journal. The
 * proposer lists the devices that tombstones, urgent acknowledgements and
 * membership events go to; apply keeps only those still current, and the
 * completion hands what it queued to the delivery engine. Reads
 * (ListMembers, GetUrgentStatus) go to the store, bounded by the member limit.
 *
 * A channel's name is personal data: it is never logged.
 *
 * Thread: the lws loop thread.
 */
#include "server/channels.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "server/conversations.h"
#include "server/delivery.h"
#include "server/send_rules.h"
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

/* ---- CreateChannel ------------------------------------------------------------------ */

int channels_create(struct req *r) {
    const Carechat__V1__CreateChannel *m = r->frame->create_channel;
    struct id patient, extra;
    size_t name_len = m->name ? strlen(m->name) : 0;
    if (!get_id(m->patient_account_id, &patient) || name_len == 0 ||
        name_len > REC_CHANNEL_NAME_MAX || !utf8_valid(m->name, name_len))
        return req_fail(r, STATUS_BAD_REQUEST, "bad patient or name");
    if (m->n_member_account_ids > CHANNEL_EXTRA_MAX)
        return req_fail(r, STATUS_TOO_LARGE, "too many members");
    for (size_t i = 0; i < m->n_member_account_ids; i++)
        if (!get_id(m->member_account_ids[i], &extra))
            return req_fail(r, STATUS_BAD_REQUEST, "bad member id");
    struct op *op = op_new(r, 0);
    op->has_object = true;
    op->object = id_new();
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__ChannelCreate cc;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__channel_create__init(&cc);
    cc.conversation_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    cc.patient_account_id = m->patient_account_id;
    cc.name = m->name;
    cc.n_member_account_ids = m->n_member_account_ids;
    cc.member_account_ids = m->member_account_ids;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_CHANNEL_CREATE;
    e.channel_create = &cc;
    return op_propose(op, &e);
}

int channels_create_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_NOT_FOUND ? "patient or member unknown"
                       : res->status == STATUS_FORBIDDEN
                           ? "providers create channels for their own patients"
                           : NULL);
    if (!op_live(op))
        return STATUS_OK;
    return conversations_respond(op->hc->h, op->hc->conn, op->request_id, &op->object);
}

/* ---- membership changes ------------------------------------------------------------- */

/* The devices of every ACTIVE member of the conversation and of `account`
 * (the one whose membership changes), for the membership event apply queues.
 * An unknown conversation lists nobody: apply then refuses the entry itself,
 * so the answer and its audit record stay apply's. Returns 0 or a store
 * status (STATUS_TOO_LARGE past the member limit). */
static int member_lists(struct req *r, const struct id *account, struct req_device_lists *l) {
    const struct rec_conv *c = r->conv;
    bool listed = false;
    int rc = 0;
    if (!c)
        return STATUS_OK;
    for (uint32_t i = 0; rc == 0 && i < c->n_members; i++) {
        struct rec_member mm;
        bool target = id_equal(&c->members[i], account);
        if ((rc = req_read_member(r->h, &r->conv_id, &c->members[i], &mm)) == 0 &&
            (mm.state == REC_ACTIVE || target))
            rc = req_device_lists_add(r->h, l, &c->members[i]);
        listed = listed || target;
    }
    if (rc == 0 && !listed)
        rc = req_device_lists_add(r->h, l, account);
    return rc;
}

static int propose_member(struct req *r, ProtobufCBinaryData account_b,
                          Carechat__Entry__V1__Entry__KindCase kind) {
    struct id account;
    bool leave = kind == CARECHAT__ENTRY__V1__ENTRY__KIND_CONVERSATION_LEAVE;
    if (!leave && !get_id(account_b, &account))
        return req_fail(r, STATUS_BAD_REQUEST, "bad ids");
    if (leave)
        account = r->hc->account;
    struct req_device_lists *l = xcalloc(1, sizeof *l);
    int rc = member_lists(r, &account, l);
    if (rc != 0) {
        free(l);
        return req_deny(r, rc, rc == STATUS_TOO_LARGE ? "too many members" : NULL, r->conv_id.b,
                        ID_LEN);
    }
    ProtobufCBinaryData conv_b = {ID_LEN, r->conv_id.b};
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__MemberAdd add;
    Carechat__Entry__V1__MemberRemove rem;
    Carechat__Entry__V1__MemberApprove app;
    Carechat__Entry__V1__ConversationLeave lv;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
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
    struct op *op = op_new(r, 0);
    op->has_object = true;
    op->object = r->conv_id;
    rc = op_propose(op, &e);
    free(l);
    return rc;
}

int channels_add_member(struct req *r) {
    return propose_member(r, r->frame->add_member->account_id,
                          CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_ADD);
}

int channels_remove_member(struct req *r) {
    return propose_member(r, r->frame->remove_member->account_id,
                          CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_REMOVE);
}

int channels_approve_member(struct req *r) {
    return propose_member(r, r->frame->approve_member->account_id,
                          CARECHAT__ENTRY__V1__ENTRY__KIND_MEMBER_APPROVE);
}

int channels_leave(struct req *r) {
    return propose_member(r, (ProtobufCBinaryData){0, NULL},
                          CARECHAT__ENTRY__V1__ENTRY__KIND_CONVERSATION_LEAVE);
}

int channels_member_done(struct op *op, const struct op_result *res) {
    op->detail = res->status == STATUS_FORBIDDEN   ? "not allowed to change this membership"
                 : res->status == STATUS_CONFLICT  ? "membership already in that state"
                 : res->status == STATUS_NOT_FOUND ? "no such conversation or member"
                                                   : NULL;
    return delivery_done(op, res);
}

/* ---- ListMembers ------------------------------------------------------------------------ */

struct member_list {
    Carechat__V1__Member mem[REC_MEMBERS_MAX], *memp[REC_MEMBERS_MAX];
    struct rec_account accts[REC_MEMBERS_MAX];
    uint32_t n;
};

int channels_list_members(struct req *r) {
    const struct rec_conv *c = r->conv;
    if (!c) /* an admin asking about a conversation that does not exist */
        return req_deny(r, STATUS_NOT_FOUND, "no such conversation", r->conv_id.b, ID_LEN);
    struct member_list *l = xcalloc(1, sizeof *l);
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < c->n_members; i++) {
        struct rec_member mm;
        if ((rc = req_read_member(r->h, &r->conv_id, &c->members[i], &mm)) != 0 ||
            (rc = req_read_account(r->h, &c->members[i], &l->accts[i])) != 0)
            break;
        l->n++;
        Carechat__V1__Member *x = &l->mem[i];
        carechat__v1__member__init(x);
        x->account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)c->members[i].b};
        x->role = (Carechat__V1__Role)mm.role;
        x->state = (Carechat__V1__MemberState)mm.state;
        x->joined_at = mm.joined_at;
        x->left_at = mm.left_at;
        x->display_name = l->accts[i].display_name;
        l->memp[i] = x;
    }
    if (rc == 0) {
        Carechat__V1__Frame frame;
        Carechat__V1__Response resp;
        Carechat__V1__MemberList ml;
        proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
        carechat__v1__member_list__init(&ml);
        ml.n_members = l->n;
        ml.members = l->memp;
        resp.result_case = CARECHAT__V1__RESPONSE__RESULT_MEMBER_LIST;
        resp.member_list = &ml;
        conn_send(r->conn, &frame);
    }
    for (uint32_t i = 0; i < l->n; i++)
        rec_account_cleanup(&l->accts[i]);
    free(l);
    return rc;
}

/* ---- Recall ------------------------------------------------------------------------------ */

int channels_recall(struct req *r) {
    const Carechat__V1__Recall *m = r->frame->recall;
    struct id mid;
    if (!get_id(m->message_id, &mid))
        return req_fail(r, STATUS_BAD_REQUEST, "bad ids");
    struct req_device_lists *l = xcalloc(1, sizeof *l);
    struct rec_msgref ref;
    const struct rec_conv *c = r->conv;
    int rc = c ? read_ref(r->h, &r->conv_id, &mid, &ref) : STATUS_NOT_FOUND;
    if (rc == 0 && r->hc->role != REC_ROLE_ADMIN && !id_equal(&ref.sender_account, &r->hc->account))
        rc = STATUS_FORBIDDEN;
    /* Every recall is signed by the calling device (protocol/transcript.h):
     * recipients show who removed a message only from a signature. */
    const bool by_sender = rc == 0 && id_equal(&ref.sender_account, &r->hc->account);
    if (rc == 0) {
        if (m->signature.len != REC_SIG_LEN) {
            free(l);
            return req_fail(r, STATUS_BAD_REQUEST, "a recall must be signed by the calling device");
        }
        struct key k;
        key_id_u64(&k, &r->conv_id, ref.seq);
        struct buf v;
        buf_init(&v);
        struct rec_message msg;
        struct rec_device dev;
        rc = store_get(r->h->store, CF_MESSAGES, k.b, k.len, &v);
        if (rc == 0)
            rc = rec_message_decode(v.data, v.len, &msg);
        if (rc == 0 && (rc = req_read_device(r->h, &r->hc->account, &r->hc->device, &dev)) == 0) {
            rc = send_verify_recall(dev.identity_key, &r->conv_id, &msg.client_msg_id, &mid,
                                    by_sender, m->signature.data);
            rec_device_cleanup(&dev);
        }
        buf_cleanup(&v);
        if (rc == STATUS_BAD_REQUEST) {
            free(l);
            return req_fail(r, rc, "the recall's signature does not verify");
        }
    }
    /* The tombstone goes to every device of every active member. */
    for (uint32_t i = 0; rc == 0 && i < c->n_members; i++) {
        struct rec_member mm;
        if ((rc = req_read_member(r->h, &r->conv_id, &c->members[i], &mm)) == 0 &&
            mm.state == REC_ACTIVE)
            rc = req_device_lists_add(r->h, l, &c->members[i]);
    }
    if (rc == 0) {
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__MessageRecall rec;
        entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
        carechat__entry__v1__message_recall__init(&rec);
        rec.conversation_id = m->conversation_id;
        rec.message_id = m->message_id;
        rec.n_member_devices = l->n;
        rec.member_devices = l->adp;
        rec.signer_device_id = (ProtobufCBinaryData){ID_LEN, r->hc->device.b};
        rec.signature = m->signature;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_MESSAGE_RECALL;
        e.message_recall = &rec;
        struct op *op = op_new(r, 0);
        op->has_object = true;
        op->object = r->conv_id;
        rc = op_propose(op, &e);
    } else
        rc = req_deny(r, rc,
                      rc == STATUS_FORBIDDEN ? "only the sender or an admin recalls"
                                             : "no such message",
                      m->message_id.data, ID_LEN);
    free(l);
    return rc;
}

int channels_recall_done(struct op *op, const struct op_result *res) {
    op->detail = res->status == STATUS_CONFLICT    ? "already recalled"
                 : res->status == STATUS_NOT_FOUND ? "no such message"
                                                   : NULL;
    return delivery_done(op, res);
}

/* ---- AckUrgent, GetUrgentStatus ----------------------------------------------------------- */

int channels_ack_urgent(struct req *r) {
    const Carechat__V1__AckUrgent *m = r->frame->ack_urgent;
    struct id mid;
    if (!get_id(m->message_id, &mid))
        return req_fail(r, STATUS_BAD_REQUEST, "bad ids");
    struct req_device_lists *l = xcalloc(1, sizeof *l);
    struct rec_msgref ref;
    int rc = read_ref(r->h, &r->conv_id, &mid, &ref);
    if (rc == 0)
        rc = req_device_lists_add(r->h, l, &ref.sender_account);
    if (rc == 0) {
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__UrgentAck u;
        entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
        carechat__entry__v1__urgent_ack__init(&u);
        u.conversation_id = m->conversation_id;
        u.message_id = m->message_id;
        u.n_sender_devices = l->n;
        u.sender_devices = l->adp;
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_URGENT_ACK;
        e.urgent_ack = &u;
        struct op *op = op_new(r, 0);
        op->has_object = true;
        op->object = r->conv_id;
        rc = op_propose(op, &e);
    } else
        rc = req_deny(r, rc, "no such message", m->message_id.data, ID_LEN);
    free(l);
    return rc;
}

int channels_ack_urgent_done(struct op *op, const struct op_result *res) {
    op->detail = res->status == STATUS_CONFLICT    ? "not an urgent message"
                 : res->status == STATUS_NOT_FOUND ? "no such message"
                                                   : NULL;
    return delivery_done(op, res);
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

int channels_get_urgent_status(struct req *r) {
    const Carechat__V1__GetUrgentStatus *m = r->frame->get_urgent_status;
    struct id mid;
    if (!get_id(m->message_id, &mid))
        return req_fail(r, STATUS_BAD_REQUEST, "bad ids");
    struct rec_msgref ref;
    struct rec_message msg;
    struct buf v;
    buf_init(&v);
    struct urgent_scan *s = xcalloc(1, sizeof *s);
    int rc = r->conv ? read_ref(r->h, &r->conv_id, &mid, &ref) : STATUS_NOT_FOUND;
    /* The sender and admins see who has acknowledged. */
    if (rc == 0 && r->hc->role != REC_ROLE_ADMIN && !id_equal(&ref.sender_account, &r->hc->account))
        rc = STATUS_FORBIDDEN;
    struct key k;
    if (rc == 0) {
        key_id_u64(&k, &r->conv_id, ref.seq);
        rc = store_get(r->h->store, CF_MESSAGES, k.b, k.len, &v);
    }
    if (rc == 0)
        rc = rec_message_decode(v.data, v.len, &msg);
    if (rc == 0 && !msg.urgent)
        rc = STATUS_CONFLICT;
    if (rc == 0) {
        uint8_t prefix[2 * ID_LEN + 1];
        memcpy(prefix, r->conv_id.b, ID_LEN);
        memcpy(prefix + ID_LEN, mid.b, ID_LEN);
        prefix[2 * ID_LEN] = REC_URGENT_TAG;
        rc = store_scan(r->h->store, CF_RECEIPTS, prefix, sizeof prefix, NULL, 0, REC_MEMBERS_MAX,
                        collect_urgent, s);
        if (rc >= 0)
            rc = s->bad ? STATUS_CORRUPT : STATUS_OK;
    }
    if (rc != 0) {
        rc = req_deny(r, rc,
                      rc == STATUS_CONFLICT    ? "not an urgent message"
                      : rc == STATUS_FORBIDDEN ? "only the sender or an admin"
                                               : "no such message",
                      m->message_id.data, ID_LEN);
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
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__urgent_report__init(&report);
    report.message_id = m->message_id;
    report.n_recipients = s->n;
    report.recipients = s->recp;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_URGENT_REPORT;
    resp.urgent_report = &report;
    conn_send(r->conn, &frame);
out:
    free(s);
    buf_cleanup(&v);
    return rc;
}
