/*
 * server/apply_channels.c: apply for the care-team channel, recall and urgent
 * kinds of entry.proto (ChannelCreate, MemberAdd, MemberRemove, MemberApprove,
 * ConversationLeave, MessageRecall, UrgentAck), writing the records of
 * server/records_messages.h.
 *
 * Invariants kept here: a channel's conversation record lists every account
 * that was ever a member (at most REC_MEMBERS_MAX), their state lives in
 * CF_MEMBERS; only ACTIVE members have an entry in the account conversation
 * index, keyed by their joined_at (rec_activity_time() in a conversation of
 * an older server not fixed yet, records_messages.h); a member's joined_seq
 * is the conversation's last seq + 1 when they became active, so history and
 * deliveries start there; the care-pair count of
 * (channel patient, staff member) is the number of channels in which both
 * are ACTIVE (the "shares a care team" contact rule of DirectCreate); a
 * recalled message keeps its metadata and nothing of its envelope; every
 * membership change (add, approve, remove, leave) with a proposer's device
 * list queues one membership item per listed device of the accounts ACTIVE
 * after it, and of the account removed or leaving.
 *
 * Pure: no clock, no randomness, no I/O beyond the transaction. Writer thread.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"
#include "server/apply_internal.h"
#include "server/records_messages.h"
#include "server/records.h"
#include "server/rules.h"
#include "storage/keys.h"

#define CHANNEL_EXTRA_MAX 64

static bool same(const struct id *a, const struct id *b) {
    return memcmp(a->b, b->b, ID_LEN) == 0;
}

static bool is_present(uint32_t state) {
    return state == REC_ACTIVE || state == REC_PENDING;
}

/* The account's role and whether it is active. Same returns as
 * apply_read_account(). */
static int account_role(struct store_txn *txn, const struct id *id, uint32_t *role, bool *active) {
    struct rec_account a;
    int rc = apply_read_account(txn, id, &a);
    if (rc != 0)
        return rc;
    *role = a.role;
    *active = a.active;
    rec_account_cleanup(&a);
    return STATUS_OK;
}

static int index_put(struct store_txn *txn, const struct id *account, int64_t time,
                     const struct id *conv, const struct id *owner) {
    struct key k;
    rec_key_account_conv(&k, account, time, conv);
    return txn_put(txn, CF_CONVERSATIONS, k.b, k.len, owner, conv->b, ID_LEN);
}

static int index_del(struct store_txn *txn, const struct id *account, int64_t time,
                     const struct id *conv) {
    struct key k;
    rec_key_account_conv(&k, account, time, conv);
    return txn_delete(txn, CF_CONVERSATIONS, k.b, k.len);
}

/* Adds `delta` (+1 / -1) to the care-pair count of (patient, staff). */
static int pair_adjust(struct store_txn *txn, const struct id *patient, const struct id *staff,
                       int delta) {
    struct key k;
    rec_key_care_pair(&k, patient, staff);
    struct buf v;
    buf_init(&v);
    uint32_t count = 0;
    int rc = txn_get(txn, CF_CONVERSATIONS, k.b, k.len, &v);
    if (rc == 0) {
        if (v.len != 4)
            rc = STATUS_CORRUPT;
        else
            count = key_get_u32(v.data);
    } else if (rc == STATUS_NOT_FOUND)
        rc = STATUS_OK;
    if (rc == 0) {
        count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
        if (count == 0)
            rc = txn_delete(txn, CF_CONVERSATIONS, k.b, k.len);
        else {
            uint8_t c[4];
            key_put_u32(c, count);
            rc = txn_put(txn, CF_CONVERSATIONS, k.b, k.len, patient, c, sizeof c);
        }
    }
    buf_cleanup(&v);
    return rc;
}

/* Adjusts the care pair of the channel's patient with every ACTIVE staff
 * member of `c` (the patient joined again or left). */
static int pairs_of_patient(struct store_txn *txn, const struct id *conv, const struct rec_conv *c,
                            int delta) {
    for (uint32_t i = 0; i < c->n_members; i++) {
        struct rec_member m;
        int rc = apply_read_member(txn, conv, &c->members[i], &m);
        if (rc != 0)
            return rc;
        if (m.state == REC_ACTIVE && apply_is_staff(m.role) &&
            (rc = pair_adjust(txn, &c->owner, &c->members[i], delta)) != 0)
            return rc;
    }
    return STATUS_OK;
}

/* A staff member became (delta +1) or stopped being (-1) active: adjusts
 * their care pair with the channel's patient if the patient is active. */
static int pair_of_staff(struct store_txn *txn, const struct id *conv, const struct rec_conv *c,
                         const struct id *staff, int delta) {
    struct rec_member p;
    int rc = apply_read_member(txn, conv, &c->owner, &p);
    if (rc != 0)
        return rc;
    return p.state == REC_ACTIVE ? pair_adjust(txn, &c->owner, staff, delta) : STATUS_OK;
}

/* A channel `conv` (BAD_REQUEST for a direct conversation). */
static int read_channel(struct store_txn *txn, const struct id *conv, struct rec_conv *c) {
    int rc = apply_read_open_conv(txn, conv, c);
    if (rc == 0 && (c->kind != REC_CARE_TEAM || !c->has_owner))
        rc = STATUS_BAD_REQUEST;
    return rc;
}

/* Whether the actor may add and remove members: an active ADMIN account, or
 * an active staff account that is an ACTIVE member. FORBIDDEN for other
 * members (a patient), NOT_FOUND for other accounts. */
static int may_manage(struct store_txn *txn, const struct id *conv, const struct id *actor) {
    uint32_t role;
    bool active;
    int rc = account_role(txn, actor, &role, &active);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_UNAUTHENTICATED;
    if (rc != 0)
        return rc;
    if (!active)
        return STATUS_FORBIDDEN;
    if (role == REC_ROLE_ADMIN)
        return STATUS_OK;
    struct rec_member me;
    rc = apply_read_member(txn, conv, actor, &me);
    if (rc != 0)
        return rc;
    if (me.state != REC_ACTIVE)
        return STATUS_NOT_FOUND;
    return apply_is_staff(role) ? STATUS_OK : STATUS_FORBIDDEN;
}

/* ---- ChannelCreate --------------------------------------------------------------- */

int apply_channel_create(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         struct buf *result) {
    const Carechat__Entry__V1__ChannelCreate *cc = e->channel_create;
    struct id conv, actor, patient;
    if (!cc || !apply_id_field(cc->conversation_id, &conv) ||
        !apply_id_field(e->actor_account_id, &actor) ||
        !apply_id_field(cc->patient_account_id, &patient) || !cc->name)
        return STATUS_BAD_REQUEST;
    size_t name_len = strlen(cc->name);
    if (name_len == 0 || name_len > REC_CHANNEL_NAME_MAX)
        return STATUS_BAD_REQUEST;
    if (cc->n_member_account_ids > CHANNEL_EXTRA_MAX)
        return STATUS_TOO_LARGE;
    uint32_t role;
    bool active;
    int rc = account_role(txn, &actor, &role, &active);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_UNAUTHENTICATED;
    if (rc != 0)
        return rc;
    if (!active || (role != REC_ROLE_PROVIDER && role != REC_ROLE_ADMIN))
        return STATUS_FORBIDDEN;
    uint32_t roles[2 + CHANNEL_EXTRA_MAX];
    roles[0] = role;
    struct rec_account p;
    if ((rc = apply_read_account(txn, &patient, &p)) != 0)
        return rc;
    roles[1] = p.role;
    bool relation = false;
    if (p.role == REC_ROLE_PATIENT && p.active && role == REC_ROLE_PROVIDER)
        rc = apply_care_relation(txn, &patient, &p, &actor, &relation);
    bool patient_ok = p.role == REC_ROLE_PATIENT && p.active;
    rec_account_cleanup(&p);
    if (rc != 0)
        return rc;
    if (!patient_ok)
        return STATUS_NOT_FOUND;
    if (!rules_may_create_channel(role, relation))
        return STATUS_FORBIDDEN;

    struct rec_conv c = {
        .kind = REC_CARE_TEAM,
        .created_at = e->time,
        .has_owner = true,
        .owner = patient,
        .n_members = 2,
        .index_fixed = true,
    };
    c.members[0] = actor;
    c.members[1] = patient;
    for (size_t i = 0; i < cc->n_member_account_ids; i++) {
        struct id s;
        if (!apply_id_field(cc->member_account_ids[i], &s))
            return STATUS_BAD_REQUEST;
        for (uint32_t j = 0; j < c.n_members; j++)
            if (same(&c.members[j], &s))
                return STATUS_BAD_REQUEST;
        if ((rc = account_role(txn, &s, &roles[c.n_members], &active)) != 0)
            return rc;
        if (!apply_is_staff(roles[c.n_members]) || !active)
            return STATUS_NOT_FOUND;
        c.members[c.n_members++] = s;
    }
    struct rec_conv existing;
    rc = apply_read_conv(txn, &conv, &existing);
    if (rc == 0)
        return STATUS_CONFLICT; /* the proposer's random id is taken */
    if (rc != STATUS_NOT_FOUND)
        return rc;
    if ((rc = apply_write_conv(txn, &conv, &c)) != 0)
        return rc;
    struct rec_channel ch = {.name = {(const uint8_t *)cc->name, name_len}};
    struct buf v;
    buf_init(&v);
    rec_channel_encode(&ch, &v);
    struct key k;
    rec_key_channel(&k, &conv);
    rc = txn_put(txn, CF_CONVERSATIONS, k.b, k.len, &patient, v.data, v.len);
    buf_wipe(&v);
    buf_cleanup(&v);
    for (uint32_t i = 0; rc == 0 && i < c.n_members; i++) {
        struct rec_member m = {.role = roles[i],
                               .state = REC_ACTIVE,
                               .joined_at = e->time,
                               .last_active = e->time,
                               .joined_seq = 1};
        if ((rc = apply_write_member(txn, &conv, &c.members[i], &m, &patient)) != 0 ||
            (rc = index_put(txn, &c.members[i], m.joined_at, &conv, &patient)) != 0)
            break;
        if (i != 1)
            rc = pair_adjust(txn, &patient, &c.members[i], +1);
    }
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_CHANNEL_CREATE, 0, NULL, conv.b, ID_LEN, &patient);
    if (rc == 0)
        buf_append(result, conv.b, ID_LEN);
    return rc;
}

/* ---- MemberAdd, MemberApprove, MemberRemove, ConversationLeave ------------------- */

/* Appends `item` to every listed device of `lists` that exists: with
 * `only_account`, to that account's devices alone; otherwise to the devices of
 * ACTIVE members of `conv` and of `also_account` (NULL: none) whatever its
 * state. Lists in the order given, so a replay assigns the same positions. */
static int fan_out_in(struct store_txn *txn, const struct id *conv, const struct id *owner,
                      Carechat__Entry__V1__AccountDeviceIds *const *lists, size_t n_lists,
                      const struct id *only_account, const struct id *also_account,
                      const struct rec_item *item, struct inbox_scratch *scratch,
                      struct buf *deliveries) {
    if (n_lists > REC_MEMBERS_MAX)
        return STATUS_TOO_LARGE;
    for (size_t s = 0; s < n_lists; s++) {
        const Carechat__Entry__V1__AccountDeviceIds *ad = lists[s];
        struct id acc;
        if (!apply_id_field(ad->account_id, &acc) || ad->n_device_ids > REC_LIST_MAX)
            return STATUS_BAD_REQUEST;
        for (size_t p = 0; p < s; p++)
            if (lists[p]->account_id.len == ID_LEN &&
                memcmp(lists[p]->account_id.data, acc.b, ID_LEN) == 0)
                return STATUS_BAD_REQUEST;
        if (only_account && !same(&acc, only_account))
            continue;
        if (!only_account && !(also_account && same(&acc, also_account))) {
            struct rec_member m;
            int rc = apply_read_member(txn, conv, &acc, &m);
            if (rc == STATUS_NOT_FOUND || (rc == 0 && m.state != REC_ACTIVE))
                continue;
            if (rc != 0)
                return rc;
        }
        for (size_t d = 0; d < ad->n_device_ids; d++) {
            struct id dev;
            uint32_t key_id;
            int64_t expires_at;
            if (!apply_id_field(ad->device_ids[d], &dev))
                return STATUS_BAD_REQUEST;
            int rc = apply_read_device_key(txn, &acc, &dev, &key_id, &expires_at);
            if (rc == STATUS_NOT_FOUND)
                continue;
            if (rc != 0 ||
                (rc = apply_inbox_append(txn, &dev, item, owner, scratch, deliveries)) != 0)
                return rc;
        }
    }
    return STATUS_OK;
}

static int fan_out(struct store_txn *txn, const struct id *conv, const struct id *owner,
                   Carechat__Entry__V1__AccountDeviceIds *const *lists, size_t n_lists,
                   const struct id *only_account, const struct id *also_account,
                   const struct rec_item *item, struct buf *deliveries) {
    struct inbox_scratch scratch;
    inbox_scratch_init(&scratch);
    int rc = fan_out_in(txn, conv, owner, lists, n_lists, only_account, also_account, item,
                        &scratch, deliveries);
    inbox_scratch_cleanup(&scratch);
    return rc;
}

/* Makes `account` an ACTIVE member from now on (joined_seq after the
 * conversation's last message). Its index entry is keyed by joined_at, which
 * is also its rec_activity_time() until a message, whether or not the
 * conversation's index is fixed. */
static int activate(struct store_txn *txn, const struct id *conv, const struct rec_conv *c,
                    const struct id *account, struct rec_member *m, int64_t time) {
    m->state = REC_ACTIVE;
    m->joined_at = time;
    m->left_at = 0;
    m->last_active = time;
    m->joined_seq = c->last_seq + 1;
    int rc = apply_write_member(txn, conv, account, m, &c->owner);
    if (rc == 0)
        rc = index_put(txn, account, m->joined_at, conv, &c->owner);
    if (rc == 0 && same(account, &c->owner))
        rc = pairs_of_patient(txn, conv, c, +1);
    else if (rc == 0 && apply_is_staff(m->role))
        rc = pair_of_staff(txn, conv, c, account, +1);
    return rc;
}

/* Ends the membership of `account` (state LEFT or REMOVED), deleting its
 * index entry where it is: at joined_at once the conversation's index is
 * fixed, else where the last message moved it. */
static int deactivate(struct store_txn *txn, const struct id *conv, const struct rec_conv *c,
                      const struct id *account, struct rec_member *m, uint32_t state,
                      int64_t time) {
    int rc = STATUS_OK;
    if (m->state == REC_ACTIVE) {
        rc = index_del(txn, account, c->index_fixed ? m->joined_at : rec_activity_time(c, m), conv);
        if (rc == 0 && same(account, &c->owner))
            rc = pairs_of_patient(txn, conv, c, -1);
        else if (rc == 0 && apply_is_staff(m->role))
            rc = pair_of_staff(txn, conv, c, account, -1);
    }
    if (rc != 0)
        return rc;
    m->state = state;
    m->left_at = time;
    return apply_write_member(txn, conv, account, m, &c->owner);
}

struct member_target {
    struct id conv, actor, account;
    struct rec_conv c;
};

static int read_target(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       ProtobufCBinaryData conv, ProtobufCBinaryData account,
                       struct member_target *t) {
    if (!apply_id_field(conv, &t->conv) || !apply_id_field(e->actor_account_id, &t->actor) ||
        !apply_id_field(account, &t->account))
        return STATUS_BAD_REQUEST;
    return read_channel(txn, &t->conv, &t->c);
}

/* After a membership change of t->account by the entry's actor: appends its
 * audit record (`action`, object the conversation id and the account id, the
 * channel's patient), queues its membership item (`change`, at the entry's
 * time) for the listed devices of every ACTIVE member and, when the change
 * ended the membership, of t->account too; appends the delivery list to
 * `result`. */
static int notify_membership(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                             const struct member_target *t, uint32_t action, uint32_t change,
                             Carechat__Entry__V1__AccountDeviceIds *const *lists, size_t n_lists,
                             struct buf *result) {
    uint8_t object[2 * ID_LEN];
    memcpy(object, t->conv.b, ID_LEN);
    memcpy(object + ID_LEN, t->account.b, ID_LEN);
    int rc = apply_audit(txn, e, action, 0, NULL, object, sizeof object, &t->c.owner);
    if (rc != 0)
        return rc;
    struct rec_item item = {
        .kind = REC_ITEM_MEMBERSHIP,
        .conversation_id = t->conv,
        .account_id = t->account,
        .by_account = t->actor,
        .change = change,
        .at = e->time,
    };
    bool ended = change == REC_CHANGE_LEFT || change == REC_CHANGE_REMOVED;
    struct buf deliveries;
    buf_init(&deliveries);
    rc = fan_out(txn, &t->conv, &t->c.owner, lists, n_lists, NULL, ended ? &t->account : NULL,
                 &item, &deliveries);
    if (rc == 0)
        rec_deliveries_finish(&deliveries, NULL, result);
    buf_cleanup(&deliveries);
    return rc;
}

int apply_member_add(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    const Carechat__Entry__V1__MemberAdd *a = e->member_add;
    if (!a)
        return STATUS_BAD_REQUEST;
    struct member_target *t = xcalloc(1, sizeof *t);
    int rc = read_target(txn, e, a->conversation_id, a->account_id, t);
    if (rc == 0)
        rc = may_manage(txn, &t->conv, &t->actor);
    uint32_t role = 0;
    bool active = false;
    if (rc == 0)
        rc = account_role(txn, &t->account, &role, &active);
    if (rc == 0 && !active)
        rc = STATUS_FORBIDDEN;
    struct rec_member m = {.role = role};
    bool listed = false;
    if (rc == 0) {
        rc = apply_read_member(txn, &t->conv, &t->account, &m);
        if (rc == 0) {
            listed = true;
            m.role = role;
            if (is_present(m.state))
                rc = STATUS_CONFLICT;
        } else if (rc == STATUS_NOT_FOUND)
            rc = STATUS_OK;
    }
    if (rc == 0 && !listed) {
        if (t->c.n_members >= REC_MEMBERS_MAX)
            rc = STATUS_TOO_LARGE;
        else {
            t->c.members[t->c.n_members++] = t->account;
            rc = apply_write_conv(txn, &t->conv, &t->c);
        }
    }
    bool pending = !apply_is_staff(role) && !same(&t->account, &t->c.owner);
    if (rc == 0) {
        if (!pending)
            rc = activate(txn, &t->conv, &t->c, &t->account, &m, e->time);
        else {
            /* Not staff (a family member acting for the patient): pending
             * until the patient approves; receives nothing meanwhile. */
            m.state = REC_PENDING;
            m.joined_at = e->time;
            m.left_at = 0;
            m.last_active = e->time;
            m.joined_seq = t->c.last_seq + 1;
            rc = apply_write_member(txn, &t->conv, &t->account, &m, &t->c.owner);
        }
    }
    if (rc == 0)
        rc = notify_membership(txn, e, t, REC_AUDIT_MEMBER_ADD,
                               pending ? REC_CHANGE_PENDING : REC_CHANGE_JOINED, a->member_devices,
                               a->n_member_devices, result);
    free(t);
    return rc;
}

int apply_member_approve(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         struct buf *result) {
    const Carechat__Entry__V1__MemberApprove *a = e->member_approve;
    if (!a)
        return STATUS_BAD_REQUEST;
    struct member_target *t = xcalloc(1, sizeof *t);
    struct rec_member me, m;
    int rc = read_target(txn, e, a->conversation_id, a->account_id, t);
    if (rc == 0) {
        rc = apply_read_member(txn, &t->conv, &t->actor, &me);
        if (rc == 0 && me.state != REC_ACTIVE)
            rc = STATUS_NOT_FOUND;
    }
    if (rc == 0 && !same(&t->actor, &t->c.owner))
        rc = STATUS_FORBIDDEN; /* only the patient approves */
    if (rc == 0)
        rc = apply_read_member(txn, &t->conv, &t->account, &m);
    if (rc == 0 && m.state != REC_PENDING)
        rc = STATUS_CONFLICT;
    if (rc == 0)
        rc = activate(txn, &t->conv, &t->c, &t->account, &m, e->time);
    if (rc == 0)
        rc = notify_membership(txn, e, t, REC_AUDIT_MEMBER_APPROVE, REC_CHANGE_JOINED,
                               a->member_devices, a->n_member_devices, result);
    free(t);
    return rc;
}

int apply_member_remove(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    const Carechat__Entry__V1__MemberRemove *r = e->member_remove;
    if (!r)
        return STATUS_BAD_REQUEST;
    struct member_target *t = xcalloc(1, sizeof *t);
    struct rec_member m;
    int rc = read_target(txn, e, r->conversation_id, r->account_id, t);
    if (rc == 0)
        rc = may_manage(txn, &t->conv, &t->actor);
    if (rc == 0 && same(&t->account, &t->c.owner))
        rc = STATUS_FORBIDDEN; /* the channel is about the patient */
    if (rc == 0)
        rc = apply_read_member(txn, &t->conv, &t->account, &m);
    if (rc == 0 && !is_present(m.state))
        rc = STATUS_NOT_FOUND;
    if (rc == 0)
        rc = deactivate(txn, &t->conv, &t->c, &t->account, &m, REC_REMOVED, e->time);
    if (rc == 0)
        rc = notify_membership(txn, e, t, REC_AUDIT_MEMBER_REMOVE, REC_CHANGE_REMOVED,
                               r->member_devices, r->n_member_devices, result);
    free(t);
    return rc;
}

int apply_leave(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result) {
    const Carechat__Entry__V1__ConversationLeave *l = e->conversation_leave;
    if (!l)
        return STATUS_BAD_REQUEST;
    struct member_target *t = xcalloc(1, sizeof *t);
    struct rec_member m;
    int rc = read_target(txn, e, l->conversation_id, e->actor_account_id, t);
    if (rc == STATUS_BAD_REQUEST && apply_id_field(l->conversation_id, &t->conv))
        rc = STATUS_FORBIDDEN; /* a direct conversation cannot be left */
    if (rc == 0)
        rc = apply_read_member(txn, &t->conv, &t->actor, &m);
    if (rc == 0 && !is_present(m.state))
        rc = STATUS_NOT_FOUND;
    if (rc == 0)
        rc = deactivate(txn, &t->conv, &t->c, &t->actor, &m, REC_LEFT, e->time);
    if (rc == 0)
        rc = notify_membership(txn, e, t, REC_AUDIT_CONVERSATION_LEAVE, REC_CHANGE_LEFT,
                               l->member_devices, l->n_member_devices, result);
    free(t);
    return rc;
}

/* ---- MessageRecall, UrgentAck ------------------------------------------------------ */

/* The message `mid` of `conv`: its seq and sender (msgref). */
static int read_ref(struct store_txn *txn, const struct id *conv, const struct id *mid,
                    struct rec_msgref *ref) {
    struct key k;
    rec_key_receipt(&k, conv, mid, NULL);
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_RECEIPTS, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_msgref_decode(v.data, v.len, ref);
    buf_cleanup(&v);
    return rc;
}

int apply_recall(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result) {
    const Carechat__Entry__V1__MessageRecall *r = e->message_recall;
    struct id conv, mid, actor;
    if (!r || !apply_id_field(r->conversation_id, &conv) || !apply_id_field(r->message_id, &mid) ||
        !apply_id_field(e->actor_account_id, &actor))
        return STATUS_BAD_REQUEST;
    struct rec_conv *c = xcalloc(1, sizeof *c);
    struct rec_msgref ref = {0};
    struct rec_member me;
    uint32_t role = 0;
    bool active = false;
    struct buf v, deliveries;
    buf_init(&v);
    buf_init(&deliveries);
    int rc = apply_read_open_conv(txn, &conv, c);
    if (rc == 0)
        rc = account_role(txn, &actor, &role, &active);
    if (rc == 0 && !active)
        rc = STATUS_FORBIDDEN;
    bool admin = role == REC_ROLE_ADMIN;
    if (rc == 0 && !admin) {
        rc = apply_read_member(txn, &conv, &actor, &me);
        if (rc == 0 && me.state != REC_ACTIVE)
            rc = STATUS_NOT_FOUND;
    }
    if (rc == 0)
        rc = read_ref(txn, &conv, &mid, &ref);
    if (rc == 0 && !admin && !same(&ref.sender_account, &actor))
        rc = STATUS_FORBIDDEN;
    struct key k;
    key_id_u64(&k, &conv, ref.seq);
    struct rec_message m;
    if (rc == 0)
        rc = txn_get(txn, CF_MESSAGES, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_message_decode(v.data, v.len, &m);
    if (rc == 0 && m.recalled_at != 0)
        rc = STATUS_CONFLICT;
    if (rc != 0)
        goto out;
    /* The tombstone: the metadata stays, the envelope goes. */
    struct rec_message tomb = {
        .message_id = m.message_id,
        .sender_account = m.sender_account,
        .sender_device = m.sender_device,
        .sent_at = m.sent_at,
        .urgent = m.urgent,
        .client_msg_id = m.client_msg_id,
        .envelope_version = m.envelope_version,
        .recalled_at = e->time,
        .sender_sent_at = m.sender_sent_at,
        .counter = m.counter,
    };
    /* The recall's signature, which the proposer verified, by the actor's
     * device. */
    if (r->signature.len == REC_SIG_LEN &&
        apply_id_field(r->signer_device_id, &tomb.recall_signer)) {
        tomb.recall_signature = (struct rec_bytes){r->signature.data, r->signature.len};
        tomb.recall_signer_account = actor;
    }
    struct buf t;
    buf_init(&t);
    rec_message_encode(&tomb, &t);
    buf_wipe(&v);
    const struct id *owner = c->has_owner ? &c->owner : NULL;
    rc = txn_put(txn, CF_MESSAGES, k.b, k.len, owner, t.data, t.len);
    buf_cleanup(&t);
    if (rc != 0)
        goto out;
    struct rec_item item = {
        .kind = REC_ITEM_RECALL,
        .conversation_id = conv,
        .seq = ref.seq,
        .message_id = mid,
        .at = e->time,
    };
    rc = fan_out(txn, &conv, owner, r->member_devices, r->n_member_devices, NULL, NULL, &item,
                 &deliveries);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_MESSAGE_RECALL, 0, NULL, mid.b, ID_LEN, owner);
    if (rc == 0)
        rec_deliveries_finish(&deliveries, NULL, result);
out:
    buf_cleanup(&deliveries);
    buf_cleanup(&v);
    free(c);
    return rc;
}

int apply_urgent_ack(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    const Carechat__Entry__V1__UrgentAck *u = e->urgent_ack;
    struct id conv, mid, actor;
    if (!u || !apply_id_field(u->conversation_id, &conv) || !apply_id_field(u->message_id, &mid) ||
        !apply_id_field(e->actor_account_id, &actor))
        return STATUS_BAD_REQUEST;
    struct rec_conv *c = xcalloc(1, sizeof *c);
    struct rec_msgref ref;
    struct rec_message m;
    struct rec_urgent rec;
    struct buf v, deliveries;
    buf_init(&v);
    buf_init(&deliveries);
    struct key k;
    int rc = apply_read_open_conv(txn, &conv, c);
    if (rc == 0)
        rc = read_ref(txn, &conv, &mid, &ref);
    if (rc == 0) {
        key_id_u64(&k, &conv, ref.seq);
        rc = txn_get(txn, CF_MESSAGES, k.b, k.len, &v);
    }
    if (rc == 0)
        rc = rec_message_decode(v.data, v.len, &m);
    if (rc == 0 && !m.urgent)
        rc = STATUS_CONFLICT;
    if (rc == 0) {
        rec_key_urgent(&k, &conv, &mid, &actor);
        rc = txn_get(txn, CF_RECEIPTS, k.b, k.len, &v); /* NOT_FOUND: not a recipient */
    }
    if (rc == 0)
        rc = rec_urgent_decode(v.data, v.len, &rec);
    if (rc != 0)
        goto out;
    if (rec.acked_at == 0) {
        rec.acked_at = e->time;
        buf_reset(&v);
        rec_urgent_encode(&rec, &v);
        const struct id *owner = c->has_owner ? &c->owner : NULL;
        if ((rc = txn_put(txn, CF_RECEIPTS, k.b, k.len, owner, v.data, v.len)) != 0)
            goto out;
        struct rec_item item = {
            .kind = REC_ITEM_URGENT_ACK,
            .conversation_id = conv,
            .message_id = mid,
            .account_id = actor,
            .at = e->time,
        };
        rc = fan_out(txn, &conv, owner, u->sender_devices, u->n_sender_devices, &ref.sender_account,
                     NULL, &item, &deliveries);
    }
    if (rc == 0)
        rec_deliveries_finish(&deliveries, NULL, result);
out:
    buf_cleanup(&deliveries);
    buf_cleanup(&v);
    free(c);
    return rc;
}
