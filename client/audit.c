/*
 * client/audit.c: libcarechat's audit log requests (QueryAudit, VerifyAudit;
 * carechat.h "Audit log"). Same thread rules as the rest of the library: one
 * thread per struct carechat.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "client/carechat.h"
#include "client/core.h"

#define PAGE 500
/* Pages followed at most (each examines up to 10000 records on the server). */
#define MAX_PAGES 100000

const char *carechat_status_name(int outcome) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&carechat__v1__status__descriptor, outcome);
    return v ? v->name : "UNKNOWN";
}

static void copy_id(ProtobufCBinaryData b, bool *has, struct id *out) {
    *has = id_from_bytes(b.data, b.len, out) == 0;
}

static int copy_record(struct carechat *c, const Carechat__V1__AuditRecord *r,
                       struct carechat_audit_record *out) {
    memset(out, 0, sizeof *out);
    if (r->object_id.len > sizeof out->object || r->prev_hash.len != 32 || r->hash.len != 32)
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "audit: malformed record from the server");
    out->index = r->index;
    out->time = r->time;
    copy_id(r->actor_account_id, &out->has_actor, &out->actor);
    copy_id(r->actor_device_id, &out->has_device, &out->device);
    copy_id(r->patient_account_id, &out->has_patient, &out->patient);
    cc_copy_text(out->action, sizeof out->action, r->action);
    if (r->object_id.len > 0)
        memcpy(out->object, r->object_id.data, r->object_id.len);
    out->object_len = r->object_id.len;
    out->outcome = (int)r->outcome;
    cc_copy_text(out->source, sizeof out->source, r->source_address);
    memcpy(out->prev_hash, r->prev_hash.data, 32);
    memcpy(out->hash, r->hash.data, 32);
    out->repeated = r->repeated;
    cc_copy_text(out->actor_name, sizeof out->actor_name, r->actor_name);
    cc_copy_text(out->patient_name, sizeof out->patient_name, r->patient_name);
    return 0;
}

int carechat_audit_query(struct carechat *c, const struct carechat_audit_filter *f,
                         struct carechat_audit_records **out) {
    cc_clear_error(c);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    struct carechat_audit_records *res = xcalloc(1, sizeof *res);
    size_t cap = 0;
    uint8_t token[8];
    size_t token_len = 0;
    for (size_t pages = 0; rc == 0 && pages < MAX_PAGES; pages++) {
        Carechat__V1__QueryAudit q;
        carechat__v1__query_audit__init(&q);
        q.since = f ? f->since : 0;
        q.until = f ? f->until : 0;
        if (f && f->actor)
            q.actor_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)f->actor->b};
        if (f && f->patient)
            q.patient_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)f->patient->b};
        q.limit = PAGE;
        q.page_token = (ProtobufCBinaryData){token_len, token};
        Carechat__V1__Frame req;
        carechat__v1__frame__init(&req);
        req.body_case = CARECHAT__V1__FRAME__BODY_QUERY_AUDIT;
        req.query_audit = &q;
        const struct cc_hint hints[] = {
            {CARECHAT__V1__STATUS__FORBIDDEN, "only administrators may read the audit log"},
            {CARECHAT__V1__STATUS__OK, NULL},
        };
        Carechat__V1__Frame *resp = NULL;
        rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_AUDIT_PAGE, "audit query", hints,
                        &resp);
        if (rc != 0)
            break;
        const Carechat__V1__AuditPage *p = resp->response->audit_page;
        if (res->n + p->n_records > CARECHAT_AUDIT_MAX)
            rc = cc_fail(c, STATUS_TOO_LARGE, CARECHAT_ERROR_ARGUMENT,
                         "audit query: more than %d records; narrow the filters",
                         CARECHAT_AUDIT_MAX);
        if (rc == 0 && p->n_records > 0) {
            if (res->n + p->n_records > cap) {
                cap = (res->n + p->n_records) * 2;
                res->items = xrealloc(res->items, cap * sizeof *res->items);
            }
            for (size_t i = 0; i < p->n_records && rc == 0; i++)
                rc = copy_record(c, p->records[i], &res->items[res->n + i]);
            if (rc == 0)
                res->n += p->n_records;
        }
        bool more = rc == 0 && p->next_page_token.len > 0;
        if (more && p->next_page_token.len != sizeof token)
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                         "audit query: malformed page token from the server");
        else if (more)
            memcpy(token, p->next_page_token.data, sizeof token);
        token_len = sizeof token;
        cc_free_response(resp);
        if (!more)
            break;
    }
    if (rc != 0) {
        carechat_audit_records_free(res);
        return rc;
    }
    *out = res;
    return 0;
}

void carechat_audit_records_free(struct carechat_audit_records *r) {
    if (!r)
        return;
    free(r->items);
    free(r);
}

int carechat_audit_verify(struct carechat *c, bool *ok, uint64_t *first_bad, uint64_t *checked) {
    cc_clear_error(c);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__VerifyAudit v;
    carechat__v1__verify_audit__init(&v);
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_VERIFY_AUDIT;
    req.verify_audit = &v;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "only administrators may verify the audit log"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_AUDIT_VERIFY, "audit verify", hints,
                    &resp);
    if (rc != 0)
        return rc;
    *ok = resp->response->audit_verify->ok;
    *first_bad = resp->response->audit_verify->first_bad_index;
    *checked = resp->response->audit_verify->records_checked;
    cc_free_response(resp);
    return 0;
}
