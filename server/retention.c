/*
 * server/retention.c: DeactivateAccount, ReactivateAccount, SetLegalHold,
 * GetRetentionState and ListAccounts (server/retention.h).
 *
 * The changes are checked here for what the handler can see and proposed as
 * entries (AccountDeactivate, AccountReactivate, LegalHoldSet) that apply
 * decides, including whether a provider's patient is their own, writing the
 * audit record and the lifecycle record in the same batch; the answer is the
 * account's RetentionInfo read after apply. A deactivated account's live
 * connections get SessionRevoked { ACCOUNT_DEACTIVATED } and are closed
 * (1008). A legal hold's reason goes into the entry and the account's
 * record, never into a log.
 *
 * Thread: the lws loop thread.
 */
#include "server/retention.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "server/files.h"
#include "server/rules.h"
#include "storage/keys.h"

#define LIST_DEFAULT 50
#define LIST_MAX 100

static void info_fill(Carechat__V1__RetentionInfo *info, const struct id *account,
                      const struct rec_lifecycle *l) {
    carechat__v1__retention_info__init(info);
    info->account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)account->b};
    info->state = CARECHAT__V1__RETENTION_STATE__RETENTION_ACTIVE;
    if (!l)
        return;
    info->state = (Carechat__V1__RetentionState)rules_lifecycle_due(l, clock_now());
    info->deactivated_at = l->deactivated_at;
    info->restricted_at = l->restricted_at;
    info->purge_at = l->purge_at;
    info->legal_hold = l->hold;
    info->legal_hold_since = l->hold ? l->hold_since : 0;
}

void retention_respond(struct conn *c, uint64_t rid, const struct id *account,
                       const struct rec_lifecycle *l) {
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__RetentionInfo info;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    info_fill(&info, account, l);
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_RETENTION;
    resp.retention = &info;
    conn_send(c, &frame);
}

/* The lifecycle of `account` into *l: 0 with has = false for an active
 * account without a record; STATUS_NOT_FOUND for no such account (neither
 * record); or the store's status. */
static int lifecycle_of(struct handlers *h, const struct id *account, struct rec_lifecycle *l,
                        bool *has) {
    int rc = req_read_lifecycle(h, account, l);
    *has = rc == 0;
    if (rc != STATUS_NOT_FOUND)
        return rc;
    struct rec_account a;
    rc = req_read_account(h, account, &a);
    if (rc == 0)
        rec_account_cleanup(&a);
    return rc;
}

int retention_get(struct req *r) {
    const Carechat__V1__GetRetentionState *m = r->frame->get_retention_state;
    struct id account;
    if (id_from_bytes(m->account_id.data, m->account_id.len, &account) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "account_id must be 16 bytes");
    struct rec_lifecycle l;
    bool has;
    int rc = lifecycle_of(r->h, &account, &l, &has);
    if (rc != 0)
        return req_deny(r, rc, "no such account", m->account_id.data, ID_LEN);
    retention_respond(r->conn, r->id, &account, has ? &l : NULL);
    return STATUS_OK;
}

int retention_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(
            op, res->status,
            res->status == STATUS_CONFLICT    ? "the account is not in a state that allows it"
            : res->status == STATUS_FORBIDDEN ? "not your patient, or not your role's at this stage"
            : res->status == STATUS_NOT_FOUND ? "no such account"
                                              : NULL);
    if (!op_live(op))
        return STATUS_OK;
    struct rec_lifecycle l;
    bool has;
    int rc = lifecycle_of(op->hc->h, &op->object, &l, &has);
    if (rc != 0)
        return rc;
    retention_respond(op->hc->conn, op->request_id, &op->object, has ? &l : NULL);
    return STATUS_OK;
}

/* Proposes entry `e` (its kind filled in) about `account` for `r`. */
static int propose_about(struct req *r, const struct id *account, Carechat__Entry__V1__Entry *e) {
    struct op *op = op_new(r, 0);
    op->has_object = true;
    op->object = *account;
    return op_propose(op, e);
}

int retention_deactivate(struct req *r) {
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
    const struct server_config *cfg = r->h->cfg.config;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AccountDeactivate ad;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__account_deactivate__init(&ad);
    ad.account_id = m->account_id;
    ad.review_ms = (int64_t)cfg->review_days * 24 * 3600 * 1000;
    ad.restricted_ms = (int64_t)cfg->restriction_days * 24 * 3600 * 1000;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_ACCOUNT_DEACTIVATE;
    e.account_deactivate = &ad;
    return propose_about(r, &target, &e);
}

int retention_deactivate_done(struct op *op, const struct op_result *res) {
    if (res->status == 0)
        req_revoke(op->hc->h, &op->object, NULL, CARECHAT__V1__REVOKE_REASON__ACCOUNT_DEACTIVATED,
                   NULL);
    return retention_done(op, res);
}

int retention_reactivate(struct req *r) {
    const Carechat__V1__ReactivateAccount *m = r->frame->reactivate_account;
    struct id account;
    if (id_from_bytes(m->account_id.data, m->account_id.len, &account) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "account_id must be 16 bytes");
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AccountReactivate ra;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__account_reactivate__init(&ra);
    ra.account_id = m->account_id;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_ACCOUNT_REACTIVATE;
    e.account_reactivate = &ra;
    return propose_about(r, &account, &e);
}

int retention_legal_hold(struct req *r) {
    const Carechat__V1__SetLegalHold *m = r->frame->set_legal_hold;
    struct id account;
    size_t reason_len = strlen(m->reason);
    if (id_from_bytes(m->account_id.data, m->account_id.len, &account) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "account_id must be 16 bytes");
    if (m->hold && (reason_len == 0 || reason_len > RULES_REASON_MAX))
        return req_fail(r, STATUS_BAD_REQUEST, "a hold needs a reason of 1..256 bytes");
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__LegalHoldSet lh;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__legal_hold_set__init(&lh);
    lh.account_id = m->account_id;
    lh.hold = m->hold;
    lh.reason = m->hold ? m->reason : "";
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_LEGAL_HOLD_SET;
    e.legal_hold_set = &lh;
    return propose_about(r, &account, &e);
}

/* ---- RestoreFile ------------------------------------------------------------------- */

int retention_restore_file(struct req *r) {
    const Carechat__V1__RestoreFile *m = r->frame->restore_file;
    struct id file;
    if (id_from_bytes(m->file_id.data, m->file_id.len, &file) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "file_id must be 16 bytes");
    struct rec_file f;
    int rc = files_read(r->h, &file, &f);
    if (rc != 0)
        return req_deny(r, rc, "no such file", file.b, ID_LEN);
    const struct server_config *cfg = r->h->cfg.config;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileRestore fr;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__file_restore__init(&fr);
    fr.file_id = m->file_id;
    fr.restore_ms = (int64_t)cfg->restore_days * 24 * 3600 * 1000;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_RESTORE;
    e.file_restore = &fr;
    return propose_about(r, &file, &e);
}

int retention_restore_file_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_CONFLICT    ? "the file's patient is not restricted"
                       : res->status == STATUS_NOT_FOUND ? "no such file"
                                                         : NULL);
    if (!op_live(op))
        return STATUS_OK;
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__RestoreResult rr;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__restore_result__init(&rr);
    rr.file_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    rr.restored_until = res->len == 8 ? (int64_t)key_get_u64(res->data) : 0;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_RESTORE;
    resp.restore = &rr;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}

/* ---- ListAccounts -------------------------------------------------------------- */

/* One AccountSummary of the page, borrowing from its record. */
struct summary {
    Carechat__V1__AccountSummary s;
    Carechat__V1__RetentionInfo info;
    struct rec_account a;
    struct rec_lifecycle l;
    struct id id;
};

/* The page being filled by the scan: up to `limit` accounts of `role` (0:
 * any); `more` once one more is seen. */
struct page {
    uint32_t role;
    size_t n, limit;
    bool more;
    int status;
    struct summary sums[LIST_MAX];
};

static bool collect(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len) {
    struct page *p = ctx;
    if (key_len != ID_LEN)
        return true; /* a lifecycle record */
    struct summary *x = &p->sums[p->n];
    struct rec_account a;
    if ((p->status = rec_account_decode(value, value_len, &a)) != 0)
        return false;
    if (p->role != 0 && a.role != p->role) {
        rec_account_cleanup(&a);
        return true;
    }
    if (p->n == p->limit) {
        rec_account_cleanup(&a);
        p->more = true;
        return false;
    }
    x->a = a;
    memcpy(x->id.b, key, ID_LEN);
    p->n++;
    return true;
}

int retention_list_accounts(struct req *r) {
    const Carechat__V1__ListAccounts *m = r->frame->list_accounts;
    if (m->limit > LIST_MAX || (m->page_token.len != 0 && m->page_token.len != ID_LEN) ||
        (m->role != 0 && !rules_role_valid((uint32_t)m->role)))
        return req_fail(r, STATUS_BAD_REQUEST, "bad page token, limit or role");
    struct page *p = xcalloc(1, sizeof *p);
    p->role = (uint32_t)m->role;
    p->limit = m->limit ? m->limit : LIST_DEFAULT;
    int rc = store_scan(r->h->store, CF_ACCOUNTS, NULL, 0, m->page_token.data, m->page_token.len,
                        SIZE_MAX, collect, p);
    if (rc >= 0)
        rc = p->status;
    if (rc == 0) {
        Carechat__V1__AccountSummary *ptrs[LIST_MAX];
        for (size_t i = 0; i < p->n; i++) {
            struct summary *x = &p->sums[i];
            bool has = req_read_lifecycle(r->h, &x->id, &x->l) == 0;
            carechat__v1__account_summary__init(&x->s);
            x->s.account_id = (ProtobufCBinaryData){ID_LEN, x->id.b};
            x->s.role = (Carechat__V1__Role)x->a.role;
            x->s.display_name = x->a.display_name;
            x->s.active = x->a.active;
            x->s.email = x->a.email;
            x->s.created_at = x->a.created_at;
            info_fill(&x->info, &x->id, has ? &x->l : NULL);
            x->s.retention = &x->info;
            ptrs[i] = &x->s;
        }
        Carechat__V1__Frame frame;
        Carechat__V1__Response resp;
        Carechat__V1__AccountPage page;
        proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
        carechat__v1__account_page__init(&page);
        page.n_accounts = p->n;
        page.accounts = ptrs;
        if (p->more)
            page.next_page_token = (ProtobufCBinaryData){ID_LEN, p->sums[p->n - 1].id.b};
        resp.result_case = CARECHAT__V1__RESPONSE__RESULT_ACCOUNT_PAGE;
        resp.account_page = &page;
        conn_send(r->conn, &frame);
    }
    for (size_t i = 0; i < p->n; i++)
        rec_account_cleanup(&p->sums[i].a);
    free(p);
    return rc;
}
