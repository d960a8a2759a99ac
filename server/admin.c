/*
 * server/admin.c: the administration requests: DeactivateAccount, which
 * starts an account's retention lifecycle (REVIEW) and ends its sessions.
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
#include <string.h>

#include "base/clock.h"
#include "base/status.h"
#include "server/handlers_internal.h"

void handle_deactivate_account(struct hconn *hc, uint64_t rid,
                               const Carechat__V1__DeactivateAccount *m) {
    struct id target;
    if (id_from_bytes(m->account_id.data, m->account_id.len, &target) != 0 ||
        memcmp(target.b, hc->account.b, ID_LEN) == 0) {
        conn_respond(hc->conn, rid, STATUS_BAD_REQUEST, "the id of another account is required");
        return;
    }
    struct rec_account a;
    int rc = read_account(hc->h, &target, &a);
    if (rc != 0) {
        deny(hc, rid, rc, "no such account", target.b, ID_LEN);
        return;
    }
    /* Whether the patient is the provider's own is apply's to decide. */
    bool allowed = rules_may_deactivate(hc->role, a.role, true);
    bool active = a.active;
    rec_account_cleanup(&a);
    if (!allowed) {
        deny(hc, rid, STATUS_FORBIDDEN, "your role may not deactivate this account", target.b,
             ID_LEN);
        return;
    }
    if (!active) {
        conn_respond(hc->conn, rid, STATUS_CONFLICT, "already deactivated");
        return;
    }
    struct op *op = op_new(hc, OP_DEACTIVATE, rid);
    op->target = target;
    op->time = clock_now();
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AccountDeactivate d;
    entry_init(&e, op->time, &hc->account, &hc->device);
    carechat__entry__v1__account_deactivate__init(&d);
    d.account_id = (ProtobufCBinaryData){ID_LEN, op->target.b};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_ACCOUNT_DEACTIVATE;
    e.account_deactivate = &d;
    propose(hc->h, op, &e);
}

void admin_entry_done(struct op *op, int status) {
    if (status == 0)
        revoke(op->hc->h, &op->target, NULL, CARECHAT__V1__REVOKE_REASON__ACCOUNT_DEACTIVATED,
               NULL);
    if (!op_live(op))
        return;
    if (status != 0) {
        respond_error(op->hc->conn, op->request_id, status,
                      status == STATUS_FORBIDDEN
                          ? "not your patient, or not your role's to deactivate"
                      : status == STATUS_CONFLICT  ? "already deactivated"
                      : status == STATUS_NOT_FOUND ? "no such account"
                                                   : NULL);
        return;
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__RetentionInfo info;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__retention_info__init(&info);
    info.account_id = (ProtobufCBinaryData){ID_LEN, op->target.b};
    info.state = CARECHAT__V1__RETENTION_STATE__RETENTION_REVIEW;
    info.deactivated_at = op->time;
    info.restricted_at = op->time + RULES_REVIEW_MS;
    info.purge_at = info.restricted_at + RULES_RESTRICTED_MS;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_RETENTION;
    resp.retention = &info;
    conn_send(op->hc->conn, &frame);
}
