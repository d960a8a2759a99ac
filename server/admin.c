/*
 * server/admin.c: the administration requests: DeactivateAccount, which
 * starts an account's retention lifecycle (REVIEW) and ends its sessions,
 * GetRetentionState, where an account stands in it, and UnlockLogin, which
 * forgets an account's failed sign-ins.
 *
 * The handler checks what it can see (the target exists, the caller's role may
 * deactivate the target's role, the target is still active) and proposes an
 * AccountDeactivate entry; apply decides for good, including whether a
 * provider's patient is their own (entry.proto), and writes the audit record
 * in the same batch. Once it is durable the answer is the RetentionInfo and
 * every live connection of the account gets SessionRevoked
 * { ACCOUNT_DEACTIVATED } and is closed (1008).
 *
 * Thread: the lws loop thread.
 */
#include "server/admin.h"

#include <string.h>

#include "base/clock.h"
#include "base/status.h"
#include "server/rules.h"

/* The deactivation in flight: its target is op->object. */
struct deactivate_op {
    int64_t time; /* the entry's time: the start of REVIEW */
};

/* Answers request `rid` with the RetentionInfo of `account`, deactivated at
 * `deactivated_at` (0: active) as of `now`. The windows run from the
 * deactivation: REVIEW for RULES_REVIEW_MS, then RESTRICTED until purge_at.
 * The purge itself is the retention lifecycle's; until it has happened an
 * account past purge_at is reported RESTRICTED. */
static void respond_retention(struct conn *c, uint64_t rid, const struct id *account,
                              int64_t deactivated_at, int64_t now) {
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__RetentionInfo info;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__retention_info__init(&info);
    info.account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)account->b};
    info.state = CARECHAT__V1__RETENTION_STATE__RETENTION_ACTIVE;
    if (deactivated_at != 0) {
        info.deactivated_at = deactivated_at;
        info.restricted_at = deactivated_at + RULES_REVIEW_MS;
        info.purge_at = info.restricted_at + RULES_RESTRICTED_MS;
        info.state = now < info.restricted_at ? CARECHAT__V1__RETENTION_STATE__RETENTION_REVIEW
                                              : CARECHAT__V1__RETENTION_STATE__RETENTION_RESTRICTED;
    }
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_RETENTION;
    resp.retention = &info;
    conn_send(c, &frame);
}

int admin_deactivate(struct req *r) {
    const Carechat__V1__DeactivateAccount *m = r->frame->deactivate_account;
    struct id target;
    if (id_from_bytes(m->account_id.data, m->account_id.len, &target) != 0 ||
        id_equal(&target, &r->hc->account))
        return req_fail(r, STATUS_BAD_REQUEST, "the id of another account is required");
    struct rec_account a;
    int rc = req_read_account(r->h, &target, &a);
    if (rc != 0)
        return req_deny(r, rc, "no such account", m->account_id.data, ID_LEN);
    /* Whether the patient is the provider's own is apply's to decide. */
    bool allowed = rules_may_deactivate(r->hc->role, a.role, true);
    bool active = a.active;
    rec_account_cleanup(&a);
    if (!allowed)
        return req_deny(r, STATUS_FORBIDDEN, "your role may not deactivate this account",
                        m->account_id.data, ID_LEN);
    if (!active)
        return req_fail(r, STATUS_CONFLICT, "already deactivated");
    struct op *op = op_new(r, sizeof(struct deactivate_op));
    struct deactivate_op *d = OP_STATE(op, struct deactivate_op);
    op->has_object = true;
    op->object = target;
    d->time = clock_now();
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AccountDeactivate ad;
    entry_init(&e, d->time, &r->hc->account, &r->hc->device);
    carechat__entry__v1__account_deactivate__init(&ad);
    ad.account_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_ACCOUNT_DEACTIVATE;
    e.account_deactivate = &ad;
    return op_propose(op, &e);
}

int admin_deactivate_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_FORBIDDEN
                           ? "not your patient, or not your role's to deactivate"
                       : res->status == STATUS_CONFLICT  ? "already deactivated"
                       : res->status == STATUS_NOT_FOUND ? "no such account"
                                                         : NULL);
    req_revoke(op->hc->h, &op->object, NULL, CARECHAT__V1__REVOKE_REASON__ACCOUNT_DEACTIVATED,
               NULL);
    if (!op_live(op))
        return STATUS_OK;
    int64_t time = OP_STATE(op, struct deactivate_op)->time;
    respond_retention(op->hc->conn, op->request_id, &op->object, time, time);
    return STATUS_OK;
}

int admin_retention_state(struct req *r) {
    const Carechat__V1__GetRetentionState *m = r->frame->get_retention_state;
    struct id account;
    if (id_from_bytes(m->account_id.data, m->account_id.len, &account) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "account_id must be 16 bytes");
    struct rec_account a;
    int rc = req_read_account(r->h, &account, &a);
    if (rc != 0)
        return req_deny(r, rc, "no such account", m->account_id.data, ID_LEN);
    int64_t deactivated_at = a.active ? 0 : a.deactivated_at;
    rec_account_cleanup(&a);
    respond_retention(r->conn, r->id, &account, deactivated_at, clock_now());
    return STATUS_OK;
}

/* The account whose failed sign-ins an UnlockLogin forgets: its email's
 * blind index, the prefix of its lockout keys (server/sessions.c). */
struct unlock_op {
    uint8_t email_index[REC_HASH_LEN];
};

int admin_unlock_login(struct req *r) {
    const Carechat__V1__UnlockLogin *m = r->frame->unlock_login;
    struct id account;
    if (id_from_bytes(m->account_id.data, m->account_id.len, &account) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "account_id must be 16 bytes");
    struct rec_account a;
    int rc = req_read_account(r->h, &account, &a);
    if (rc != 0)
        return req_deny(r, rc, "no such account", m->account_id.data, ID_LEN);
    struct op *op = op_new(r, sizeof(struct unlock_op));
    store_blind_index(r->h->store, a.email, strlen(a.email),
                      OP_STATE(op, struct unlock_op)->email_index);
    bool patient = a.role == REC_ROLE_PATIENT;
    rec_account_cleanup(&a);
    rc = req_audit(r->hc, &r->hc->account, &r->hc->device, REC_AUDIT_ACCOUNT_UNLOCK, 0, account.b,
                   ID_LEN, patient ? &account : NULL, op_journal_done, op);
    if (rc != 0)
        return req_fail(r, STATUS_UNAVAILABLE, "cannot write the audit record");
    op_keep(op);
    return STATUS_OK;
}

int admin_unlock_login_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write the audit record");
    const uint8_t *index = OP_STATE(op, struct unlock_op)->email_index;
    struct handlers *h = op->hc->h;
    lockout_clear(h->lo_account, index, REC_HASH_LEN);
    lockout_clear(h->lo_account_net, index, REC_HASH_LEN);
    if (op_live(op))
        conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}
