/*
 * server/apply_audit.c: apply's side of the audit log: the audit record of an
 * entry (actor, device, time and source address taken from the entry) and the
 * AuditAppend kind. The chain itself is server/audit.h.
 *
 * Pure: no clock, no randomness, no I/O beyond the transaction. Writer thread.
 */
#include <string.h>

#include "base/status.h"
#include "server/apply_internal.h"
#include "server/audit.h"

/* Fills `a` with the record of entry `e` (apply_audit()'s arguments).
 * Returns 0 or STATUS_BAD_REQUEST. */
static int fill(struct rec_audit *a, const Carechat__Entry__V1__Entry *e, uint32_t action,
                uint32_t outcome, const struct id *actor, const void *object, size_t object_len,
                const struct id *patient) {
    memset(a, 0, sizeof *a);
    a->time = e->time;
    a->action = action;
    a->outcome = outcome;
    if (actor)
        a->actor = *actor;
    else if (e->actor_account_id.len == ID_LEN)
        memcpy(a->actor.b, e->actor_account_id.data, ID_LEN);
    if (e->actor_device_id.len == ID_LEN)
        memcpy(a->device.b, e->actor_device_id.data, ID_LEN);
    if (object_len > REC_AUDIT_OBJECT_MAX)
        return STATUS_BAD_REQUEST;
    if (object_len)
        memcpy(a->object, object, object_len);
    a->object_len = (uint32_t)object_len;
    if (patient)
        a->patient = *patient;
    size_t n = e->source_address ? strlen(e->source_address) : 0;
    if (n > REC_AUDIT_SOURCE_MAX)
        return STATUS_BAD_REQUEST;
    if (n)
        memcpy(a->source, e->source_address, n + 1);
    return STATUS_OK;
}

int apply_audit(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, uint32_t action,
                uint32_t outcome, const struct id *actor, const void *object, size_t object_len,
                const struct id *patient) {
    struct rec_audit a;
    int rc = fill(&a, e, action, outcome, actor, object, object_len, patient);
    return rc == 0 ? audit_append(txn, &a) : rc;
}

int apply_audit_kind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    const Carechat__Entry__V1__AuditAppend *m = e->audit_append;
    if (!m || m->action == 0 || m->action > REC_AUDIT_ACTION_MAX ||
        m->object_id.len > REC_AUDIT_OBJECT_MAX ||
        (m->patient_account_id.len != 0 && m->patient_account_id.len != ID_LEN))
        return STATUS_BAD_REQUEST;
    struct id patient;
    if (m->patient_account_id.len == ID_LEN)
        memcpy(patient.b, m->patient_account_id.data, ID_LEN);
    struct rec_audit a;
    int rc = fill(&a, e, m->action, m->outcome, NULL, m->object_id.data, m->object_id.len,
                  m->patient_account_id.len == ID_LEN ? &patient : NULL);
    a.repeated = m->repeated;
    return rc == 0 ? audit_append(txn, &a) : rc;
}
