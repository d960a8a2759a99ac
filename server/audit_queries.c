/*
 * server/audit_queries.c: the audit requests of administrators: QueryAudit
 * (a filtered page of the hash-chained log) and VerifyAudit (the chain walked
 * in steps of VERIFY_STEP records, one per loop wake, so a long log never
 * stalls the loop; one verification at a time, another gets RATE_LIMITED).
 * Both are `read` rows: the access record comes first (server/request.h).
 *
 * Records name ids, statuses and the peer's address, never content, names or
 * email addresses. The answer adds, beside the record, the display names of
 * its actor and patient while their accounts can be read (not purged), for
 * administrators who read the log; they are not part of the hashed record.
 *
 * Thread: the lws loop thread.
 */
#include "server/audit_queries.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/keys.h"

#define QUERY_DEFAULT 100
#define QUERY_MAX 500
/* Records a query examines per page, matching or not. */
#define QUERY_EXAMINE 10000
/* Records a verification step reads before the next step. */
#define VERIFY_STEP 1000

/* ---- QueryAudit ---------------------------------------------------------------- */

/* The display names a page has looked up: each account read once per page. */
struct names {
    size_t n;
    struct {
        struct id id;
        char *name; /* "" when the account cannot be read */
    } items[2 * QUERY_MAX];
};

/* The display name of `id` (zero id: ""), valid until names_free(). */
static const char *name_of(struct handlers *h, struct names *nm, const struct id *id) {
    if (id_is_zero(id))
        return "";
    for (size_t i = 0; i < nm->n; i++)
        if (id_equal(&nm->items[i].id, id))
            return nm->items[i].name;
    struct rec_account a;
    char *name = xstrdup("");
    if (req_read_account(h, id, &a) == 0) {
        free(name);
        name = xstrdup(a.display_name ? a.display_name : "");
        rec_account_cleanup(&a);
    }
    nm->items[nm->n].id = *id; /* at most two new ids per record */
    nm->items[nm->n].name = name;
    return nm->items[nm->n++].name;
}

static void names_free(struct names *nm) {
    for (size_t i = 0; i < nm->n; i++)
        free(nm->items[i].name);
    free(nm);
}

static int query_answer(struct req *r, const Carechat__V1__QueryAudit *m) {
    struct audit_filter flt = {.since = m->since, .until = m->until};
    if (m->actor_account_id.len == ID_LEN) {
        flt.has_actor = true;
        memcpy(flt.actor.b, m->actor_account_id.data, ID_LEN);
    }
    if (m->patient_account_id.len == ID_LEN) {
        flt.has_patient = true;
        memcpy(flt.patient.b, m->patient_account_id.data, ID_LEN);
    }
    uint64_t after = m->page_token.len == 8 ? key_get_u64(m->page_token.data) : 0;
    size_t limit = m->limit ? m->limit : QUERY_DEFAULT;
    struct rec_audit *recs = xcalloc(limit, sizeof *recs);
    Carechat__V1__AuditRecord *items = xcalloc(limit, sizeof *items);
    Carechat__V1__AuditRecord **ptrs = xcalloc(limit, sizeof *ptrs);
    size_t n = 0;
    uint64_t last = 0;
    bool more = false;
    struct names *nm = xcalloc(1, sizeof *nm);
    int rc = audit_query(r->h->store, &flt, after, limit, QUERY_EXAMINE, recs, &n, &last, &more);
    if (rc != 0) {
        rc = req_fail(r, rc == STATUS_IO ? STATUS_UNAVAILABLE : STATUS_INTERNAL,
                      "cannot read the audit log (verify it)");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct rec_audit *a = &recs[i];
        Carechat__V1__AuditRecord *out = &items[i];
        carechat__v1__audit_record__init(out);
        out->index = a->index;
        out->time = a->time;
        if (!id_is_zero(&a->actor))
            out->actor_account_id = (ProtobufCBinaryData){ID_LEN, a->actor.b};
        if (!id_is_zero(&a->device))
            out->actor_device_id = (ProtobufCBinaryData){ID_LEN, a->device.b};
        out->action = (char *)audit_action_name(a->action);
        out->object_id = (ProtobufCBinaryData){a->object_len, a->object};
        out->outcome = (Carechat__V1__Status)a->outcome;
        out->source_address = a->source;
        if (!id_is_zero(&a->patient))
            out->patient_account_id = (ProtobufCBinaryData){ID_LEN, a->patient.b};
        out->prev_hash = (ProtobufCBinaryData){REC_HASH_LEN, a->prev_hash};
        out->hash = (ProtobufCBinaryData){REC_HASH_LEN, a->hash};
        out->repeated = a->repeated;
        out->actor_name = (char *)name_of(r->h, nm, &a->actor);
        out->patient_name = (char *)name_of(r->h, nm, &a->patient);
        ptrs[i] = out;
    }
    uint8_t token[8];
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__AuditPage page;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__audit_page__init(&page);
    page.n_records = n;
    page.records = ptrs;
    if (more) {
        key_put_u64(token, last);
        page.next_page_token = (ProtobufCBinaryData){sizeof token, token};
    }
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_AUDIT_PAGE;
    resp.audit_page = &page;
    conn_send(r->conn, &frame);
out:
    names_free(nm);
    free(ptrs);
    free(items);
    free(recs);
    return rc;
}

int audit_queries_query(struct req *r) {
    const Carechat__V1__QueryAudit *m = r->frame->query_audit;
    if ((m->actor_account_id.len != 0 && m->actor_account_id.len != ID_LEN) ||
        (m->patient_account_id.len != 0 && m->patient_account_id.len != ID_LEN) ||
        (m->page_token.len != 0 && m->page_token.len != 8) || m->limit > QUERY_MAX ||
        m->since < 0 || m->until < 0 || (m->until && m->since >= m->until))
        return req_fail(r, STATUS_BAD_REQUEST, "bad audit query");
    return query_answer(r, m);
}

/* ---- VerifyAudit ---------------------------------------------------------------- */

/* Answers the verification held by h->verify_op (if its connection is still
 * there) and drops it. */
static void verify_finish(struct handlers *h, int rc) {
    struct op *op = h->verify_op;
    h->verify_op = NULL;
    const struct audit_verify *v = &h->verify;
    if (rc == 0 && !v->ok)
        log_warn("audit", "audit chain broken at index=%llu", (unsigned long long)v->first_bad);
    if (op_live(op) && rc != 0)
        conn_respond(op->hc->conn, op->request_id, STATUS_UNAVAILABLE, "cannot read the audit log");
    else if (op_live(op)) {
        Carechat__V1__Frame frame;
        Carechat__V1__Response resp;
        Carechat__V1__AuditVerifyResult res;
        proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
        carechat__v1__audit_verify_result__init(&res);
        res.ok = v->ok;
        res.first_bad_index = v->ok ? 0 : v->first_bad;
        res.records_checked = v->checked;
        resp.result_case = CARECHAT__V1__RESPONSE__RESULT_AUDIT_VERIFY;
        resp.audit_verify = &res;
        conn_send(op->hc->conn, &frame);
    }
    op_release(op);
}

void audit_queries_poll(struct handlers *h) {
    if (!h->verify_op)
        return;
    int rc = audit_verify_step(h->store, &h->verify, VERIFY_STEP);
    if (rc != 0 || h->verify.done)
        verify_finish(h, rc);
    else if (h->cfg.wake)
        h->cfg.wake(h->cfg.wake_ctx); /* the next step after the loop's other work */
}

int audit_queries_verify(struct req *r) {
    struct handlers *h = r->h;
    if (h->verify_op)
        return req_fail(r, STATUS_RATE_LIMITED, "a verification is running, retry later");
    int rc = audit_verify_begin(h->store, &h->verify);
    h->verify_op = op_new(r, 0);
    op_keep(h->verify_op);
    if (rc != 0)
        verify_finish(h, rc);
    else
        audit_queries_poll(h);
    return STATUS_OK;
}
