/*
 * server/admin.c: UnlockLogin, which forgets an account's failed sign-ins
 * once the audit record says who did it. (The retention lifecycle's
 * administration is server/retention.c.)
 *
 * Thread: the lws loop thread.
 */
#include "server/admin.h"

#include <string.h>

#include "base/clock.h"
#include "base/status.h"
#include "server/rules.h"

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
