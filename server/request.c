/*
 * server/request.c: the request core (server/request.h): connections, ops
 * and their completions, refusals and audit records, sessions on
 * connections, and the typed reads of the loop thread.
 *
 * Invariants: a struct hconn is on the registry list from attach to detach;
 * its refs count the conn (until detach) and every op in flight; an op is
 * released exactly once: by the dispatcher or op_step_done() when it was not
 * handed on, else after its completion ran.
 *
 * Thread: the lws loop thread (journal completions run from journal_poll()).
 */
#include "server/request.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "server/rules.h"
#include "storage/keys.h"

/* ---- connections ---------------------------------------------------------- */

static void hconn_unref(struct hconn *hc) {
    if (--hc->refs > 0)
        return;
    sodium_memzero(hc, sizeof *hc);
    free(hc);
}

/* Ids are random: a few of their bytes spread them evenly. */
static size_t index_bucket(const struct id *id) {
    uint32_t v;
    memcpy(&v, id->b, sizeof v);
    return v & (REQ_INDEX_BUCKETS - 1);
}

static void index_add(struct hconn *hc) {
    struct handlers *h = hc->h;
    struct hconn **d = &h->by_device[index_bucket(&hc->device)];
    struct hconn **a = &h->by_account[index_bucket(&hc->account)];
    hc->dev_prev = NULL;
    hc->dev_next = *d;
    if (*d)
        (*d)->dev_prev = hc;
    *d = hc;
    hc->acct_prev = NULL;
    hc->acct_next = *a;
    if (*a)
        (*a)->acct_prev = hc;
    *a = hc;
    hc->indexed = true;
}

static void index_remove(struct hconn *hc) {
    struct handlers *h = hc->h;
    if (!hc->indexed)
        return;
    if (hc->dev_prev)
        hc->dev_prev->dev_next = hc->dev_next;
    else
        h->by_device[index_bucket(&hc->device)] = hc->dev_next;
    if (hc->dev_next)
        hc->dev_next->dev_prev = hc->dev_prev;
    if (hc->acct_prev)
        hc->acct_prev->acct_next = hc->acct_next;
    else
        h->by_account[index_bucket(&hc->account)] = hc->acct_next;
    if (hc->acct_next)
        hc->acct_next->acct_prev = hc->acct_prev;
    hc->dev_prev = hc->dev_next = hc->acct_prev = hc->acct_next = NULL;
    hc->indexed = false;
}

static struct hconn *device_from(struct hconn *x, const struct id *device) {
    while (x && !id_equal(&x->device, device))
        x = x->dev_next;
    return x;
}

static struct hconn *account_from(struct hconn *x, const struct id *account) {
    while (x && !id_equal(&x->account, account))
        x = x->acct_next;
    return x;
}

struct hconn *req_device_first(struct handlers *h, const struct id *device) {
    return device_from(h->by_device[index_bucket(device)], device);
}

struct hconn *req_device_next(struct hconn *hc) {
    return device_from(hc->dev_next, &hc->device);
}

struct hconn *req_account_first(struct handlers *h, const struct id *account) {
    return account_from(h->by_account[index_bucket(account)], account);
}

struct hconn *req_account_next(struct hconn *hc) {
    return account_from(hc->acct_next, &hc->account);
}

struct hconn *req_hconn_attach(struct handlers *h, struct conn *c) {
    struct hconn *hc = xcalloc(1, sizeof *hc);
    hc->h = h;
    hc->conn = c;
    hc->refs = 1;
    hc->next = h->conns;
    if (h->conns)
        h->conns->prev = hc;
    h->conns = hc;
    return hc;
}

void req_hconn_detach(struct hconn *hc) {
    struct handlers *h = hc->h;
    index_remove(hc);
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        h->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
    hc->conn = NULL;
    hc->authenticated = false;
    hconn_unref(hc);
}

uint64_t req_server_request_id(struct hconn *hc) {
    hc->unanswered++;
    return conn_next_request_id(hc->conn);
}

void req_send_server_request(struct hconn *hc, Carechat__V1__Frame *frame) {
    frame->request_id = req_server_request_id(hc);
    conn_send(hc->conn, frame);
}

/* The first of the connections req_revoke() looks at, and the next. */
static struct hconn *revoke_first(struct handlers *h, const struct id *account,
                                  const struct id *device) {
    return device    ? req_device_first(h, device)
           : account ? req_account_first(h, account)
                     : h->conns;
}

static struct hconn *revoke_next(struct hconn *x, const struct id *account,
                                 const struct id *device) {
    return device ? req_device_next(x) : account ? req_account_next(x) : x->next;
}

void req_revoke(struct handlers *h, const struct id *account, const struct id *device,
                Carechat__V1__RevokeReason reason, const struct hconn *except) {
    for (struct hconn *x = revoke_first(h, account, device); x;
         x = revoke_next(x, account, device)) {
        if (x == except || !x->authenticated || !x->conn ||
            (device && !id_equal(&x->device, device)) ||
            (account && !id_equal(&x->account, account)))
            continue;
        Carechat__V1__Frame frame;
        Carechat__V1__SessionRevoked rev;
        carechat__v1__frame__init(&frame);
        carechat__v1__session_revoked__init(&rev);
        rev.reason = reason;
        frame.body_case = CARECHAT__V1__FRAME__BODY_SESSION_REVOKED;
        frame.session_revoked = &rev;
        req_send_server_request(x, &frame);
        x->authenticated = false;
        conn_close(x->conn, CONN_CLOSE_POLICY, "session revoked", METRICS_CLOSE_REVOKED);
    }
}

void req_replace_delivering(struct hconn *hc) {
    for (struct hconn *x = req_device_first(hc->h, &hc->device); x; x = req_device_next(x)) {
        if (x == hc || !x->authenticated || !x->conn || x->delivery == DELIVERY_OFF ||
            !id_equal(&x->device, &hc->device))
            continue;
        Carechat__V1__Frame frame;
        Carechat__V1__ReplacedElsewhere rep;
        carechat__v1__frame__init(&frame);
        carechat__v1__replaced_elsewhere__init(&rep);
        frame.body_case = CARECHAT__V1__FRAME__BODY_REPLACED_ELSEWHERE;
        frame.replaced_elsewhere = &rep;
        req_send_server_request(x, &frame);
        x->authenticated = false;
        conn_close(x->conn, CONN_CLOSE_NORMAL, "replaced elsewhere", METRICS_CLOSE_REPLACED);
    }
}

void req_session_established(struct hconn *hc, const struct session_info *s) {
    index_remove(hc);
    hc->authenticated = true;
    hc->account = s->account;
    hc->device = s->device;
    index_add(hc);
    hc->role = s->role;
    hc->enrol_only = s->enrol_only;
    memcpy(hc->token_hash, s->token_hash, REC_HASH_LEN);
    hc->expires_at = s->expires_at;
    hc->idle_expires_at = s->idle_expires_at;
    hc->stored_idle_expires_at = s->idle_expires_at;
    hc->stay_signed_in = s->stay_signed_in;
    conn_authenticated(hc->conn);
}

/* ---- audit records ---------------------------------------------------------------- */

bool req_is_denial(int status) {
    return status == STATUS_FORBIDDEN || status == STATUS_NOT_FOUND ||
           status == STATUS_UNAUTHENTICATED;
}

/* Whether a completed request with audit action `action` is an event an
 * operator wants in the log at info level (the administration of accounts,
 * devices and incidents); the high-volume actions are in the audit log only. */
static bool operator_event(uint32_t action) {
    switch (action) {
    case REC_AUDIT_BOOTSTRAP:
    case REC_AUDIT_INVITE:
    case REC_AUDIT_REGISTER:
    case REC_AUDIT_DEVICE_REMOVE:
    case REC_AUDIT_DEVICE_ROTATE_KEY:
    case REC_AUDIT_DEVICE_PUBLISH:
    case REC_AUDIT_ACCOUNT_DEACTIVATE:
    case REC_AUDIT_ACCOUNT_REACTIVATE:
    case REC_AUDIT_LEGAL_HOLD:
    case REC_AUDIT_ACCOUNT_UNLOCK:
    case REC_AUDIT_BREACH_START:
        return true;
    default:
        return false;
    }
}

void req_log_outcome(const struct hconn *hc, uint32_t action, int status, const struct id *object) {
    bool refused = req_is_denial(status) || status == STATUS_RATE_LIMITED;
    if (!(status == 0 ? operator_event(action) : refused))
        return;
    char who[ID_HEX_LEN + 1] = "-", what[ID_HEX_LEN + 1] = "-", src[REC_AUDIT_SOURCE_MAX + 1];
    if (hc->authenticated)
        id_to_hex(&hc->account, who);
    if (object)
        id_to_hex(object, what);
    req_source(hc, src);
    log_info("request", "%s %s: account %s, object %s, from %s", audit_action_name(action),
             status == 0 ? "done" : status_str(status), who, what, src[0] ? src : "-");
}

void req_source(const struct hconn *hc, char out[REC_AUDIT_SOURCE_MAX + 1]) {
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

/* Appends an AuditAppend entry (request.h's req_audit(), with the source
 * address as text and the repeats of a coalesced read). */
int req_audit_source(struct handlers *h, const char *source, const struct id *actor,
                     const struct id *device, uint32_t action, int status, const void *object,
                     size_t object_len, const struct id *patient, uint32_t repeated,
                     journal_done_fn done, void *ctx) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AuditAppend a;
    entry_init(&e, clock_now(), actor, device);
    e.source_address = (char *)source;
    carechat__entry__v1__audit_append__init(&a);
    a.action = action;
    a.outcome = (uint32_t)status_wire(status);
    a.object_id = (ProtobufCBinaryData){object_len, (uint8_t *)object};
    if (patient)
        a.patient_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)patient->b};
    a.repeated = repeated;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_AUDIT_APPEND;
    e.audit_append = &a;
    struct buf b;
    buf_init(&b);
    int rc = proto_entry_encode(&e, &b);
    if (rc == 0)
        rc = journal_append(h->journal, b.data, b.len, done, ctx);
    buf_cleanup(&b);
    if (rc != 0)
        log_warn("audit", "cannot append the audit record of %s (%s)", audit_action_name(action),
                 status_str(rc));
    return rc;
}

int req_audit(struct hconn *hc, const struct id *actor, const struct id *device, uint32_t action,
              int status, const void *object, size_t object_len, const struct id *patient,
              journal_done_fn done, void *ctx) {
    char src[REC_AUDIT_SOURCE_MAX + 1];
    req_source(hc, src);
    return req_audit_source(hc->h, src, actor, device, action, status, object, object_len, patient,
                            0, done, ctx);
}

void req_audit_repeats(struct handlers *h, const struct coalesce_key *k, uint32_t repeated) {
    req_audit_source(h, k->source, &k->actor, &k->device, k->action, 0, k->object, k->object_len,
                     k->has_patient ? &k->patient : NULL, repeated, NULL, NULL);
}

/* After a proposed entry was refused with `status` by apply: its audit record
 * when it is a denial. */
static void audit_refusal(struct op *op, int status) {
    if (!op->audit_refusals || !req_is_denial(status))
        return;
    req_audit(op->hc, op->has_actor ? &op->actor : NULL, op->has_actor ? &op->actor_device : NULL,
              op->action, status, op->has_object ? op->object.b : NULL, op->has_object ? ID_LEN : 0,
              NULL, NULL, NULL);
}

/* ---- requests and ops -------------------------------------------------------------- */

int req_fail(struct req *r, int status, const char *detail) {
    r->detail = detail;
    return status;
}

int req_deny(struct req *r, int status, const char *detail, const void *object, size_t object_len) {
    if (!object || object_len > sizeof r->object)
        object_len = 0;
    if (object_len)
        memcpy(r->object, object, object_len);
    r->object_len = object_len;
    return req_fail(r, status, detail);
}

int op_fail(struct op *op, int status, const char *detail) {
    op->detail = detail;
    return status;
}

void req_respond_error(struct conn *c, uint64_t rid, int rc, const char *detail) {
    if (rc == STATUS_CORRUPT || rc == STATUS_IO)
        conn_respond(c, rid, STATUS_INTERNAL, "cannot read the store");
    else
        conn_respond(c, rid, rc, detail);
}

struct op *op_new(struct req *r, size_t state_size) {
    /* Plain heap, wiped on release: sodium_malloc costs an mmap, two mprotects
     * and a munmap (TLB shootdowns on every core) per request. */
    struct op *op = xcalloc(1, sizeof *op + state_size);
    struct hconn *hc = r->hc;
    op->row = r->row;
    op->hc = hc;
    op->request_id = r->id;
    op->done = r->row->done;
    op->action = r->row->rule.action;
    op->audit_refusals = true;
    op->has_actor = hc->authenticated;
    op->actor = hc->account;
    op->actor_device = hc->device;
    op->req = r;
    op->size = state_size;
    if (r->row->rule.scope == AUTHZ_OPEN)
        hc->auth_busy = true;
    hc->refs++;
    op->next = hc->ops;
    if (hc->ops)
        hc->ops->prev = op;
    hc->ops = op;
    r->op = op;
    return op;
}

bool req_in_flight(const struct hconn *hc, uint64_t rid) {
    for (const struct op *op = hc->ops; op; op = op->next)
        if (op->request_id == rid)
            return true;
    return false;
}

void op_keep(struct op *op) {
    op->handed = true;
}

struct op *op_resume(void *ctx) {
    struct op *op = ctx;
    op->handed = false;
    return op;
}

void op_release(struct op *op) {
    if (!op)
        return;
    struct hconn *hc = op->hc;
    if (op->row && op->row->rule.scope == AUTHZ_OPEN)
        hc->auth_busy = false;
    if (op->req)
        op->req->op = NULL;
    if (op->prev)
        op->prev->next = op->next;
    else
        hc->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    sodium_memzero(op, sizeof *op + op->size);
    free(op);
    hconn_unref(hc);
}

bool op_live(const struct op *op) {
    return op->hc->conn != NULL && !op->hc->h->closing;
}

void op_journal_done(void *ctx, uint64_t pos, int status, const uint8_t *data, size_t len) {
    struct op *op = ctx;
    struct op_result res = {.pos = pos, .status = status, .data = data, .len = len};
    op->detail = NULL;
    int rc = op->done(op, &res);
    if (rc < 0 && op_live(op))
        req_respond_error(op->hc->conn, op->request_id, rc, op->detail);
    req_log_outcome(op->hc, op->row->rule.action, rc < 0 ? rc : status,
                    op->has_object ? &op->object : NULL);
    audit_refusal(op, status);
    op_release(op);
}

int op_propose(struct op *op, const Carechat__Entry__V1__Entry *e) {
    Carechat__Entry__V1__Entry copy = *e;
    char src[REC_AUDIT_SOURCE_MAX + 1];
    req_source(op->hc, src);
    copy.source_address = src;
    struct buf b;
    buf_init(&b);
    int rc = proto_entry_encode(&copy, &b);
    if (rc == 0)
        rc = journal_append(op->hc->h->journal, b.data, b.len, op_journal_done, op);
    buf_wipe(&b);
    buf_cleanup(&b);
    if (rc != 0)
        return op_fail(op, rc, "cannot write now");
    op->handed = true;
    return STATUS_OK;
}

void op_step_done(struct op *op, int status) {
    if (status < 0 && op_live(op))
        req_respond_error(op->hc->conn, op->request_id, status, op->detail);
    if (status < 0)
        req_log_outcome(op->hc, op->row->rule.action, status, op->has_object ? &op->object : NULL);
    if (!op->handed)
        op_release(op);
}

void entry_init(Carechat__Entry__V1__Entry *e, int64_t time, const struct id *account,
                const struct id *device) {
    carechat__entry__v1__entry__init(e);
    e->version = PROTO_ENTRY_VERSION;
    e->time = time;
    if (account)
        e->actor_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)account->b};
    if (device)
        e->actor_device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)device->b};
}

/* ---- typed reads -------------------------------------------------------------------- */

static int read_account(struct handlers *h, const struct id *id, struct rec_account *out,
                        int (*decode)(const uint8_t *, size_t, struct rec_account *)) {
    const uint8_t *v;
    size_t n;
    int rc = store_reader_view(h->reader, CF_ACCOUNTS, id->b, ID_LEN, &v, &n);
    return rc == 0 ? decode(v, n, out) : rc;
}

int req_read_account(struct handlers *h, const struct id *id, struct rec_account *out) {
    return read_account(h, id, out, rec_account_decode);
}

int req_read_account_lean(struct handlers *h, const struct id *id, struct rec_account *out) {
    return read_account(h, id, out, rec_account_decode_lean);
}

int req_read_lifecycle(struct handlers *h, const struct id *account, struct rec_lifecycle *out) {
    uint8_t k[1 + ID_LEN];
    rec_lifecycle_key(account, k);
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_ACCOUNTS, k, sizeof k, &v);
    if (rc == 0)
        rc = rec_lifecycle_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

int req_care_relation(struct handlers *h, const struct id *patient, const struct id *staff,
                      bool *out) {
    *out = false;
    struct rec_account a;
    int rc = req_read_account(h, patient, &a);
    if (rc != 0)
        return rc;
    *out = id_equal(&a.inviter, staff);
    rec_account_cleanup(&a);
    if (*out)
        return STATUS_OK;
    struct key k;
    rec_key_care_pair(&k, patient, staff);
    struct buf v;
    buf_init(&v);
    rc = store_get(h->store, CF_CONVERSATIONS, k.b, k.len, &v);
    *out = rc == 0 && v.len == 4 && key_get_u32(v.data) > 0;
    buf_cleanup(&v);
    return rc == STATUS_NOT_FOUND ? STATUS_OK : rc;
}

int req_patient_stage(struct handlers *h, const struct id *patient, enum authz_stage *stage) {
    struct rec_lifecycle l;
    int rc = req_read_lifecycle(h, patient, &l);
    *stage = AUTHZ_LIVE;
    if (rc == STATUS_NOT_FOUND)
        return STATUS_OK;
    if (rc != 0)
        return rc;
    /* By the clock, not only the record: a deadline counts from the moment it
     * passes, before the maintenance has written the transition. */
    uint32_t state = rules_lifecycle_due(&l, clock_now());
    *stage = state == REC_LC_REVIEW       ? AUTHZ_REVIEW
             : state == REC_LC_RESTRICTED ? AUTHZ_RESTRICTED
             : state == REC_LC_PURGED     ? AUTHZ_PURGED
                                          : AUTHZ_LIVE;
    return STATUS_OK;
}

int req_review_access(struct handlers *h, const struct id *patient, const struct id *account,
                      uint32_t role, int64_t restored_until, enum authz_relation *rel,
                      enum authz_stage *stage) {
    int rc = req_patient_stage(h, patient, stage);
    if (rc != 0)
        return rc;
    if (*stage == AUTHZ_RESTRICTED && restored_until > clock_now())
        *stage = AUTHZ_REVIEW;
    bool care = false;
    if (*stage == AUTHZ_REVIEW && *rel == AUTHZ_STRANGER && role == REC_ROLE_PROVIDER)
        rc = req_care_relation(h, patient, account, &care);
    if (care)
        *rel = AUTHZ_CARE_TEAM;
    return rc;
}

static int read_device(struct handlers *h, const struct id *account, const struct id *device,
                       struct rec_device *out,
                       int (*decode)(const uint8_t *, size_t, struct rec_device *)) {
    struct key k;
    key_id_id(&k, account, device);
    const uint8_t *v;
    size_t n;
    int rc = store_reader_view(h->reader, CF_DEVICES, k.b, k.len, &v, &n);
    return rc == 0 ? decode(v, n, out) : rc;
}

int req_read_device(struct handlers *h, const struct id *account, const struct id *device,
                    struct rec_device *out) {
    return read_device(h, account, device, out, rec_device_decode);
}

int req_read_device_lean(struct handlers *h, const struct id *account, const struct id *device,
                         struct rec_device *out) {
    return read_device(h, account, device, out, rec_device_decode_lean);
}

int req_read_inbox(struct handlers *h, const struct id *device, struct rec_inbox *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_reader_get(h->reader, CF_INBOXES, device->b, ID_LEN, &v);
    if (rc == 0 && (rc = rec_inbox_decode(v.data, v.len, out)) == 0) {
        out->n_senders = 0; /* they would point into v */
        out->senders = NULL;
    } else if (rc == STATUS_NOT_FOUND) {
        memset(out, 0, sizeof *out);
        rc = STATUS_OK;
    }
    buf_cleanup(&v);
    return rc;
}

int req_find_email(struct handlers *h, const uint8_t index[REC_HASH_LEN], struct id *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_EMAIL_INDEX, index, REC_HASH_LEN, &v);
    if (rc == 0 && id_from_bytes(v.data, v.len, out) != 0)
        rc = STATUS_CORRUPT;
    buf_cleanup(&v);
    return rc;
}

int req_read_conv(struct handlers *h, const struct id *conv, struct rec_conv *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_reader_get(h->reader, CF_CONVERSATIONS, conv->b, ID_LEN, &v);
    if (rc == 0)
        rc = rec_conv_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

int req_read_member(struct handlers *h, const struct id *conv, const struct id *account,
                    struct rec_member *out) {
    struct key k;
    key_id_id(&k, conv, account);
    const uint8_t *v;
    size_t n;
    int rc = store_reader_view(h->reader, CF_MEMBERS, k.b, k.len, &v, &n);
    return rc == 0 ? rec_member_decode(v, n, out) : rc;
}

struct dev_scan {
    struct id *ids;
    struct req_device_key *keys;
    size_t n;
    bool bad;
};

static bool collect_dev(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len) {
    struct dev_scan *s = ctx;
    if (s->n >= REC_MAX_DEVICES || key_read_id(key, key_len, ID_LEN, &s->ids[s->n]) != 0) {
        s->bad = true;
        return false;
    }
    if (s->keys) {
        struct rec_device d;
        if (rec_device_decode(value, value_len, &d) != 0) {
            s->bad = true;
            return false;
        }
        s->keys[s->n] = (struct req_device_key){.key_id = d.encryption_key_id,
                                                .expires_at = d.encryption_key_expires_at};
        rec_device_cleanup(&d);
    }
    s->n++;
    return true;
}

int req_account_devices(struct handlers *h, const struct id *account, struct id *ids,
                        struct req_device_key *keys, size_t *n) {
    struct dev_scan s = {.ids = ids, .keys = keys};
    int rc = store_scan(h->store, CF_DEVICES, account->b, ID_LEN, NULL, 0, REC_MAX_DEVICES,
                        collect_dev, &s);
    if (rc < 0)
        return rc;
    *n = s.n;
    return s.bad ? STATUS_CORRUPT : STATUS_OK;
}

int req_device_lists_add(struct handlers *h, struct req_device_lists *l, const struct id *account) {
    if (l->n >= REC_MEMBERS_MAX)
        return STATUS_TOO_LARGE;
    size_t i = l->n, n = 0;
    int rc = req_account_devices(h, account, l->devs[i], NULL, &n);
    if (rc != 0)
        return rc;
    Carechat__Entry__V1__AccountDeviceIds *ad = &l->ad[i];
    carechat__entry__v1__account_device_ids__init(ad);
    l->accounts[i] = *account;
    ad->account_id = (ProtobufCBinaryData){ID_LEN, l->accounts[i].b};
    for (size_t d = 0; d < n; d++)
        l->ids[i][d] = (ProtobufCBinaryData){ID_LEN, l->devs[i][d].b};
    ad->n_device_ids = n;
    ad->device_ids = l->ids[i];
    l->adp[i] = ad;
    l->n++;
    return STATUS_OK;
}

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
    if (id_from_bytes(value, value_len, &conv) != 0 ||
        req_read_member(s->h, &conv, s->other, &m) != 0)
        return true;
    s->found = m.state == REC_ACTIVE || m.state == REC_PENDING;
    return !s->found;
}

bool req_share_conversation(struct handlers *h, const struct id *account, const struct id *other) {
    struct key prefix;
    rec_key_account_conv_prefix(&prefix, account);
    struct share_scan s = {.h = h, .other = other};
    int rc = store_scan(h->store, CF_CONVERSATIONS, prefix.b, prefix.len, NULL, 0, REQ_SHARE_SCAN,
                        share_one, &s);
    return rc >= 0 && s.found;
}
