/*
 * server/apply_breach.c: the BreachStart kind (protocol/entry.proto): the
 * incident record, a notice record per account not yet notified, its email
 * in the outbox, and the audit records, all in the entry's batch.
 *
 * Pure: no clock, no randomness, no I/O beyond the transaction. Writer thread.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"
#include "server/apply_internal.h"
#include "storage/keys.h"

#define BREACH_ACCOUNTS_MAX 1024

/* The id of the notice's outbox job (its email's Message-ID): derived from
 * the incident and the account, so a replay writes the same. */
static void notice_job_id(const struct id *incident, const struct id *account, uint8_t out[16]) {
    static const char label[] = "carechat breach notice v1";
    crypto_hash_sha256_state st;
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)label, sizeof label - 1);
    crypto_hash_sha256_update(&st, incident->b, ID_LEN);
    crypto_hash_sha256_update(&st, account->b, ID_LEN);
    crypto_hash_sha256_final(&st, digest);
    memcpy(out, digest, 16);
}

static int read_incident(struct store_txn *txn, const struct id *incident, struct rec_breach *out) {
    uint8_t k[1 + 2 * ID_LEN];
    rec_breach_key(incident, NULL, k);
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_META, k, 1 + ID_LEN, &v);
    if (rc == 0)
        rc = rec_breach_decode(v.data, v.len, out);
    buf_wipe(&v);
    buf_cleanup(&v);
    return rc;
}

static int write_incident(struct store_txn *txn, const struct id *incident,
                          const struct rec_breach *b) {
    uint8_t k[1 + 2 * ID_LEN];
    rec_breach_key(incident, NULL, k);
    struct buf v;
    buf_init(&v);
    rec_breach_encode(b, &v);
    int rc = txn_put(txn, CF_META, k, 1 + ID_LEN, NULL, v.data, v.len);
    buf_wipe(&v);
    buf_cleanup(&v);
    return rc;
}

/* Queues the notice of `incident` to `account` unless it exists; *queued
 * tells which. */
static int notice(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                  const struct id *incident, const struct id *account, bool *queued) {
    uint8_t k[1 + 2 * ID_LEN];
    rec_breach_key(incident, account, k);
    *queued = false;
    int rc = apply_exists(txn, CF_META, k, sizeof k);
    if (rc == 0)
        return STATUS_OK; /* notified already */
    if (rc != STATUS_NOT_FOUND)
        return rc;
    struct rec_breach_notice n = {.state = REC_BREACH_PENDING, .queued_at = e->time};
    notice_job_id(incident, account, n.job_id);
    /* The job's index: what the outbox's result settles. */
    uint8_t jk[1 + 16], names[2 * ID_LEN];
    jk[0] = REC_BREACH_JOB_TAG;
    memcpy(jk + 1, n.job_id, 16);
    memcpy(names, incident->b, ID_LEN);
    memcpy(names + ID_LEN, account->b, ID_LEN);
    if ((rc = apply_outbox_account_email(txn, e, account, REC_NOTICE_BREACH, n.job_id)) != 0)
        return rc;
    struct buf v;
    buf_init(&v);
    rec_breach_notice_encode(&n, &v);
    rc = txn_put(txn, CF_META, k, sizeof k, NULL, v.data, v.len);
    if (rc == 0)
        rc = txn_put(txn, CF_META, jk, sizeof jk, NULL, names, sizeof names);
    buf_cleanup(&v);
    *queued = rc == 0;
    return rc;
}

int apply_breach_start(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result) {
    const Carechat__Entry__V1__BreachStart *m = e->breach_start;
    struct id actor, incident;
    if (!m || !apply_id_field(m->incident_id, &incident) ||
        strlen(m->description) > REC_BREACH_DESCRIPTION_MAX || m->deadline <= m->discovered_at)
        return STATUS_BAD_REQUEST;
    if (m->n_account_ids > BREACH_ACCOUNTS_MAX)
        return STATUS_TOO_LARGE;
    uint32_t role;
    int rc = apply_actor_role(txn, e, &actor, &role);
    if (rc != 0)
        return rc;
    if (role != REC_ROLE_SYSADMIN)
        return STATUS_FORBIDDEN;
    struct id *accounts = xcalloc(m->n_account_ids ? m->n_account_ids : 1, sizeof *accounts);
    for (size_t i = 0; rc == 0 && i < m->n_account_ids; i++) {
        if (!apply_id_field(m->account_ids[i], &accounts[i]))
            rc = STATUS_BAD_REQUEST;
        else
            rc = apply_exists(txn, CF_ACCOUNTS, accounts[i].b, ID_LEN);
    }
    struct rec_breach b = {0};
    if (rc == 0 && (rc = read_incident(txn, &incident, &b)) == STATUS_NOT_FOUND) {
        b = (struct rec_breach){
            .declared_at = e->time,
            .declared_by = actor,
            .discovered_at = m->discovered_at,
            .deadline = m->deadline,
            .description = xstrdup(m->description),
        };
        rc = STATUS_OK;
    }
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_BREACH_START, 0, &actor, incident.b, ID_LEN, NULL);
    uint32_t queued = 0;
    for (size_t i = 0; rc == 0 && i < m->n_account_ids; i++) {
        bool q;
        rc = notice(txn, e, &incident, &accounts[i], &q);
        if (rc == 0 && q) {
            queued++;
            rc = apply_audit(txn, e, REC_AUDIT_BREACH_NOTICE, 0, &actor, incident.b, ID_LEN,
                             &accounts[i]);
        }
    }
    b.n_notices += queued;
    if (rc == 0)
        rc = write_incident(txn, &incident, &b);
    if (rc == 0) {
        uint8_t n[4];
        key_put_u32(n, queued);
        buf_append(result, n, sizeof n);
    }
    rec_breach_cleanup(&b);
    free(accounts);
    return rc;
}
