/*
 * server/handlers_audit.c: the request side of the audit log
 * (server/audit.h): proposing AuditAppend entries for reads, denials and
 * authentication events decided here, the fail-closed read (answered only
 * once its audit record is durable), and the QueryAudit and VerifyAudit
 * requests of administrators.
 *
 * Every record names ids, statuses and the peer's address, never content,
 * names or email addresses.
 *
 * Thread: the lws loop thread.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "server/audit.h"
#include "server/handlers_internal.h"
#include "storage/keys.h"

#define QUERY_DEFAULT 100
#define QUERY_MAX 500
/* Records a query examines per page, matching or not. */
#define QUERY_EXAMINE 10000
/* Records a verification step reads before the next step. */
#define VERIFY_STEP 1000

void audit_source(const struct hconn *hc, char out[REC_AUDIT_SOURCE_MAX + 1]) {
    out[0] = '\0';
    if (!hc->conn)
        return;
    const uint8_t *a = conn_peer_addr(hc->conn);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN];
    const char *r = memcmp(a, mapped, 12) == 0 ? inet_ntop(AF_INET, a + 12, text, sizeof text)
                                               : inet_ntop(AF_INET6, a, text, sizeof text);
    if (r && strlen(text) <= REC_AUDIT_SOURCE_MAX)
        memcpy(out, text, strlen(text) + 1);
}

int audit_propose(struct hconn *hc, const struct id *actor, const struct id *device,
                  uint32_t action, int status, const void *object, size_t object_len,
                  const struct id *patient, journal_done_fn done, void *ctx) {
    char src[REC_AUDIT_SOURCE_MAX + 1];
    audit_source(hc, src);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AuditAppend a;
    entry_init(&e, clock_now(), actor, device);
    e.source_address = src;
    carechat__entry__v1__audit_append__init(&a);
    a.action = action;
    a.outcome = (uint32_t)status_wire(status);
    a.object_id = (ProtobufCBinaryData){object_len, (uint8_t *)object};
    if (patient)
        a.patient_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)patient->b};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_AUDIT_APPEND;
    e.audit_append = &a;
    struct buf b;
    buf_init(&b);
    int rc = proto_entry_encode(&e, &b);
    if (rc == 0)
        rc = journal_append(hc->h->journal, b.data, b.len, done, ctx);
    buf_cleanup(&b);
    if (rc != 0)
        log_warn("audit", "cannot append the audit record of %s (%s)", audit_action_name(action),
                 status_str(rc));
    return rc;
}

static bool is_denial(int status) {
    return status == STATUS_FORBIDDEN || status == STATUS_NOT_FOUND ||
           status == STATUS_UNAUTHENTICATED;
}

void deny(struct hconn *hc, uint64_t rid, int status, const char *detail, const void *object,
          size_t object_len) {
    respond_error(hc->conn, rid, status, detail);
    if (!is_denial(status))
        return;
    bool who = hc->authenticated;
    audit_propose(hc, who ? &hc->account : NULL, who ? &hc->device : NULL, hc->action, status,
                  object, object_len, NULL, NULL, NULL);
}

void audited_read(struct hconn *hc, uint64_t rid, const void *object, size_t object_len,
                  const struct id *patient, const Carechat__V1__Frame *f, audited_fn answer) {
    struct op *op = op_new(hc, OP_AUDITED, rid);
    op->answer = answer;
    buf_init(&op->frame);
    int rc = proto_encode(f, &op->frame);
    if (rc == 0)
        rc = audit_propose(hc, &hc->account, &hc->device, hc->action, 0, object, object_len,
                           patient, handlers_entry_done, op);
    if (rc != 0) {
        conn_respond(hc->conn, rid, STATUS_UNAVAILABLE, "cannot write the audit record");
        op_release(op);
    }
}

void audited_done(struct op *op, int status) {
    if (!op_live(op) || !op->hc->authenticated)
        return;
    if (status != 0) {
        conn_respond(op->hc->conn, op->request_id, STATUS_UNAVAILABLE,
                     "cannot write the audit record");
        return;
    }
    Carechat__V1__Frame *f = NULL;
    if (proto_decode(NULL, op->frame.data, op->frame.len, &f) != 0) {
        conn_respond(op->hc->conn, op->request_id, STATUS_INTERNAL, NULL);
        return;
    }
    /* The request is dispatched again: its refusals (deny()) carry its action. */
    op->hc->action = op->action;
    op->answer(op->hc, op->request_id, f);
    proto_free(f);
}

void audit_refusal(struct op *op, int status) {
    if (op->kind == OP_AUDITED || op->kind == OP_REGISTER_REFUSED || !is_denial(status))
        return;
    static const struct id none;
    const struct id *actor = NULL, *device = NULL;
    if (op->has_actor) {
        actor = &op->actor;
        device = &op->actor_device;
    } else if (memcmp(op->account.b, none.b, ID_LEN) != 0) {
        actor = &op->account; /* Login, Authenticate: the account they were for */
        device = &op->device;
    }
    const struct id *object = memcmp(op->conversation.b, none.b, ID_LEN) != 0 ? &op->conversation
                              : memcmp(op->target.b, none.b, ID_LEN) != 0     ? &op->target
                                                                              : NULL;
    audit_propose(op->hc, actor, device, op->action, status, object ? object->b : NULL,
                  object ? ID_LEN : 0, NULL, NULL, NULL);
}

/* ---- QueryAudit ---------------------------------------------------------------- */

static void query_answer(struct hconn *hc, uint64_t rid, const Carechat__V1__QueryAudit *m) {
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
    int rc = audit_query(hc->h->store, &flt, after, limit, QUERY_EXAMINE, recs, &n, &last, &more);
    if (rc != 0) {
        conn_respond(hc->conn, rid, rc == STATUS_IO ? STATUS_UNAVAILABLE : STATUS_INTERNAL,
                     "cannot read the audit log (verify it)");
        goto out;
    }
    static const struct id none;
    for (size_t i = 0; i < n; i++) {
        struct rec_audit *a = &recs[i];
        Carechat__V1__AuditRecord *r = &items[i];
        carechat__v1__audit_record__init(r);
        r->index = a->index;
        r->time = a->time;
        if (memcmp(a->actor.b, none.b, ID_LEN) != 0)
            r->actor_account_id = (ProtobufCBinaryData){ID_LEN, a->actor.b};
        if (memcmp(a->device.b, none.b, ID_LEN) != 0)
            r->actor_device_id = (ProtobufCBinaryData){ID_LEN, a->device.b};
        r->action = (char *)audit_action_name(a->action);
        r->object_id = (ProtobufCBinaryData){a->object_len, a->object};
        r->outcome = (Carechat__V1__Status)a->outcome;
        r->source_address = a->source;
        if (memcmp(a->patient.b, none.b, ID_LEN) != 0)
            r->patient_account_id = (ProtobufCBinaryData){ID_LEN, a->patient.b};
        r->prev_hash = (ProtobufCBinaryData){REC_HASH_LEN, a->prev_hash};
        r->hash = (ProtobufCBinaryData){REC_HASH_LEN, a->hash};
        ptrs[i] = r;
    }
    uint8_t token[8];
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__AuditPage page;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__audit_page__init(&page);
    page.n_records = n;
    page.records = ptrs;
    if (more) {
        key_put_u64(token, last);
        page.next_page_token = (ProtobufCBinaryData){sizeof token, token};
    }
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_AUDIT_PAGE;
    resp.audit_page = &page;
    conn_send(hc->conn, &frame);
out:
    free(ptrs);
    free(items);
    free(recs);
}

void handle_query_audit(struct hconn *hc, uint64_t rid, const Carechat__V1__QueryAudit *m) {
    if ((m->actor_account_id.len != 0 && m->actor_account_id.len != ID_LEN) ||
        (m->patient_account_id.len != 0 && m->patient_account_id.len != ID_LEN) ||
        (m->page_token.len != 0 && m->page_token.len != 8) || m->limit > QUERY_MAX ||
        m->since < 0 || m->until < 0 || (m->until && m->since >= m->until)) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "bad audit query");
        return;
    }
    query_answer(hc, rid, m);
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

void audit_verify_poll(struct handlers *h) {
    if (!h->verify_op)
        return;
    int rc = audit_verify_step(h->store, &h->verify, VERIFY_STEP);
    if (rc != 0 || h->verify.done)
        verify_finish(h, rc);
    else if (h->cfg.wake)
        h->cfg.wake(h->cfg.wake_ctx); /* the next step after the loop's other work */
}

void handle_verify_audit(struct hconn *hc, uint64_t rid) {
    struct handlers *h = hc->h;
    if (h->verify_op) {
        conn_respond(hc->conn, rid, STATUS_RATE_LIMITED, "a verification is running, retry later");
        return;
    }
    int rc = audit_verify_begin(h->store, &h->verify);
    h->verify_op = op_new(hc, OP_VERIFY, rid);
    if (rc != 0)
        verify_finish(h, rc);
    else
        audit_verify_poll(h);
}
