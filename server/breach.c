/*
 * server/breach.c: StartBreachNotification and GetBreachStatus
 * (server/breach.h).
 *
 * The handler resolves the affected accounts (given, or read from the audit
 * log: the patients of the records in the window, of the accessor when one is
 * named) and the deadline, and proposes a BreachStart entry; apply records the
 * incident and the notices and queues their emails in the same batch
 * (server/apply_breach.c). The operator's description goes into the entry and
 * the incident record only.
 *
 * Thread: the lws loop thread.
 */
#include "server/breach.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "server/audit.h"
#include "server/calendar.h"
#include "storage/keys.h"

#define ACCOUNTS_MAX 1024
/* Audit records one declaration may read to find the affected accounts. */
#define AUDIT_EXAMINE_MAX 200000
#define AUDIT_PAGE 500
#define STATUS_DEFAULT 500
#define STATUS_MAX 1000

/* ---- StartBreachNotification ----------------------------------------------------------- */

/* The accounts of a declaration, without repeats. */
struct affected {
    struct id ids[ACCOUNTS_MAX];
    size_t n;
};

/* Adds `id` unless it is there; false when full. */
static bool affected_add(struct affected *a, const struct id *id) {
    for (size_t i = 0; i < a->n; i++)
        if (id_equal(&a->ids[i], id))
            return true;
    if (a->n == ACCOUNTS_MAX)
        return false;
    a->ids[a->n++] = *id;
    return true;
}

/* The patients whose data was accessed in [from, until) (by `accessor` when
 * not NULL), from the audit log. */
static int from_audit(struct handlers *h, int64_t from, int64_t until, const struct id *accessor,
                      struct affected *out) {
    struct audit_filter flt = {.since = from, .until = until};
    if (accessor) {
        flt.has_actor = true;
        flt.actor = *accessor;
    }
    uint64_t after;
    int rc = audit_index_before(h->store, from, &after);
    struct rec_audit *page = xcalloc(AUDIT_PAGE, sizeof *page);
    size_t examined = 0;
    for (bool more = rc == 0; more && rc == 0;) {
        size_t n = 0;
        uint64_t last = after;
        rc = audit_query(h->store, &flt, after, AUDIT_PAGE, AUDIT_PAGE * 4, page, &n, &last, &more);
        examined += last - after;
        after = last;
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (!id_is_zero(&page[i].patient) && !affected_add(out, &page[i].patient))
                rc = STATUS_TOO_LARGE;
        if (rc == 0 && more && examined >= AUDIT_EXAMINE_MAX)
            rc = STATUS_TOO_LARGE;
        /* Records are in time order: past `until` nothing more matches. */
        if (rc == 0 && more && last > 0) {
            struct rec_audit a;
            if (audit_read(h->store, last, &a) == 0 && a.time >= until)
                more = false;
        }
    }
    free(page);
    return rc;
}

/* What the answer needs once the entry is durable. */
struct breach_op {
    int64_t discovered_at, deadline;
};

int breach_start(struct req *r) {
    const Carechat__V1__StartBreachNotification *m = r->frame->start_breach_notification;
    struct id incident, accessor;
    int64_t now = clock_now();
    int64_t discovered = m->discovered_at ? m->discovered_at : now;
    bool window = m->accessed_from > 0 || m->accessed_until > 0;
    int64_t until = m->accessed_until ? m->accessed_until : now;
    if (id_from_bytes(m->incident_id.data, m->incident_id.len, &incident) != 0 ||
        (m->accessor_account_id.len &&
         id_from_bytes(m->accessor_account_id.data, m->accessor_account_id.len, &accessor) != 0))
        return req_fail(r, STATUS_BAD_REQUEST, "ids must be 16 bytes");
    if (strlen(m->description) > REC_BREACH_DESCRIPTION_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, "the description is over 4096 bytes");
    if (discovered < 0 || discovered > now)
        return req_fail(r, STATUS_BAD_REQUEST, "discovered in the future");
    if (m->n_affected_account_ids == 0 && !window)
        return req_fail(r, STATUS_BAD_REQUEST, "name the accounts, or a window of the audit log");
    if (window && (m->accessed_from < 0 || m->accessed_from >= until))
        return req_fail(r, STATUS_BAD_REQUEST, "the window must end after it starts");
    if (m->n_affected_account_ids > ACCOUNTS_MAX)
        return req_fail(r, STATUS_TOO_LARGE, "more than 1024 accounts: split the declaration");
    struct affected *a = xcalloc(1, sizeof *a);
    int rc = STATUS_OK;
    for (size_t i = 0; rc == 0 && i < m->n_affected_account_ids; i++) {
        struct id id;
        if (id_from_bytes(m->affected_account_ids[i].data, m->affected_account_ids[i].len, &id))
            rc = req_fail(r, STATUS_BAD_REQUEST, "ids must be 16 bytes");
        else
            affected_add(a, &id);
    }
    if (rc == 0 && m->n_affected_account_ids == 0) {
        rc = from_audit(r->h, m->accessed_from, until,
                        m->accessor_account_id.len ? &accessor : NULL, a);
        if (rc == STATUS_TOO_LARGE)
            rc = req_fail(r, rc, "the window finds too many accounts or records: narrow it");
        else if (rc != 0)
            rc = req_fail(r, STATUS_UNAVAILABLE, "cannot read the audit log (verify it)");
    }
    if (rc != 0) {
        free(a);
        return rc;
    }
    struct op *op = op_new(r, sizeof(struct breach_op));
    struct breach_op *b = OP_STATE(op, struct breach_op);
    op->has_object = true;
    op->object = incident;
    b->discovered_at = discovered;
    b->deadline = calendar_deadline(&r->h->calendar, discovered, BREACH_BUSINESS_DAYS);
    ProtobufCBinaryData *ids = xcalloc(a->n ? a->n : 1, sizeof *ids);
    for (size_t i = 0; i < a->n; i++)
        ids[i] = (ProtobufCBinaryData){ID_LEN, a->ids[i].b};
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__BreachStart bs;
    entry_init(&e, now, &r->hc->account, &r->hc->device);
    carechat__entry__v1__breach_start__init(&bs);
    bs.incident_id = m->incident_id;
    bs.n_account_ids = a->n;
    bs.account_ids = ids;
    bs.discovered_at = b->discovered_at;
    bs.deadline = b->deadline;
    bs.description = m->description;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_BREACH_START;
    e.breach_start = &bs;
    rc = op_propose(op, &e);
    free(ids);
    free(a);
    return rc;
}

int breach_start_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_NOT_FOUND   ? "an account is unknown (or purged)"
                       : res->status == STATUS_FORBIDDEN ? "system administrators only"
                                                         : NULL);
    if (!op_live(op))
        return STATUS_OK;
    const struct breach_op *b = OP_STATE(op, struct breach_op);
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__BreachResult br;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__breach_result__init(&br);
    br.incident_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    br.notices_queued = res->len == 4 ? key_get_u32(res->data) : 0;
    br.discovered_at = b->discovered_at;
    br.deadline = b->deadline;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_BREACH;
    resp.breach = &br;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}

/* ---- GetBreachStatus ----------------------------------------------------------------- */

struct status_page {
    int64_t now, deadline;
    size_t limit, n;
    uint32_t total, overdue;
    const uint8_t *after; /* the page token: notices after this account */
    struct id accounts[STATUS_MAX + 1];
    struct rec_breach_notice notices[STATUS_MAX + 1];
    bool bad;
};

static bool collect_notice(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                           size_t value_len) {
    struct status_page *p = ctx;
    if (key_len != 1 + 2 * ID_LEN)
        return true; /* the incident itself */
    struct rec_breach_notice n;
    if (rec_breach_notice_decode(value, value_len, &n) != 0) {
        p->bad = true;
        return false;
    }
    p->total++;
    if (n.state != REC_BREACH_SENT && p->now >= p->deadline)
        p->overdue++;
    const uint8_t *account = key + 1 + ID_LEN;
    if ((!p->after || memcmp(account, p->after, ID_LEN) > 0) && p->n <= p->limit) {
        memcpy(p->accounts[p->n].b, account, ID_LEN);
        p->notices[p->n++] = n;
    }
    return true;
}

int breach_status(struct req *r) {
    const Carechat__V1__GetBreachStatus *m = r->frame->get_breach_status;
    struct id incident;
    if (id_from_bytes(m->incident_id.data, m->incident_id.len, &incident) != 0 ||
        (m->page_token.len != 0 && m->page_token.len != ID_LEN) || m->limit > STATUS_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, "bad incident id, page token or limit");
    uint8_t k[1 + 2 * ID_LEN];
    rec_breach_key(&incident, NULL, k);
    struct buf v;
    buf_init(&v);
    struct rec_breach b;
    int rc = store_get(r->h->store, CF_META, k, 1 + ID_LEN, &v);
    if (rc == 0)
        rc = rec_breach_decode(v.data, v.len, &b);
    buf_wipe(&v);
    buf_cleanup(&v);
    if (rc != 0)
        return req_deny(r, rc, "no such incident", incident.b, ID_LEN);
    struct status_page *p = xcalloc(1, sizeof *p);
    p->now = clock_now();
    p->deadline = b.deadline;
    p->limit = m->limit ? m->limit : STATUS_DEFAULT;
    p->after = m->page_token.len ? m->page_token.data : NULL;
    /* Every notice is read for the counts; the page keeps limit + 1. */
    rc = store_scan(r->h->store, CF_META, k, 1 + ID_LEN, NULL, 0, SIZE_MAX, collect_notice, p);
    if (rc >= 0)
        rc = p->bad ? STATUS_CORRUPT : STATUS_OK;
    if (rc == 0) {
        size_t n = p->n > p->limit ? p->limit : p->n;
        Carechat__V1__BreachNotice *items = xcalloc(n ? n : 1, sizeof *items);
        Carechat__V1__BreachNotice **ptrs = xcalloc(n ? n : 1, sizeof *ptrs);
        for (size_t i = 0; i < n; i++) {
            carechat__v1__breach_notice__init(&items[i]);
            items[i].account_id = (ProtobufCBinaryData){ID_LEN, p->accounts[i].b};
            items[i].state = (Carechat__V1__BreachNoticeState)p->notices[i].state;
            items[i].queued_at = p->notices[i].queued_at;
            items[i].settled_at = p->notices[i].settled_at;
            ptrs[i] = &items[i];
        }
        Carechat__V1__Frame frame;
        Carechat__V1__Response resp;
        Carechat__V1__BreachResult br;
        proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
        carechat__v1__breach_result__init(&br);
        br.incident_id = m->incident_id;
        br.discovered_at = b.discovered_at;
        br.deadline = b.deadline;
        br.n_notices = n;
        br.notices = ptrs;
        br.notices_total = p->total;
        br.notices_overdue = p->overdue;
        if (p->n > p->limit)
            br.next_page_token = (ProtobufCBinaryData){ID_LEN, p->accounts[n - 1].b};
        resp.result_case = CARECHAT__V1__RESPONSE__RESULT_BREACH;
        resp.breach = &br;
        conn_send(r->conn, &frame);
        free(ptrs);
        free(items);
    }
    rec_breach_cleanup(&b);
    free(p);
    return rc;
}
