/*
 * server/apply_keybackup.c: the KeyBackupPut and KeyBackupDelete kinds, and
 * the end of an account's key backup at its purge (entry.proto,
 * server/records_keybackup.h). The index and every segment are sealed under
 * the account's data key. Writer thread; pure like apply_entry().
 */
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "server/apply_internal.h"
#include "server/records_keybackup.h"
#include "server/rules.h"

static int read_index(struct store_txn *txn, const struct id *account, struct rec_key_backup *out) {
    struct key k;
    rec_key_backup_key(account, &k);
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_KEY_BACKUP, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_key_backup_decode(v.data, v.len, out);
    else if (rc == STATUS_NOT_FOUND) {
        *out = (struct rec_key_backup)REC_KEY_BACKUP_EMPTY;
        rc = STATUS_OK;
    }
    buf_cleanup(&v);
    return rc;
}

static int write_index(struct store_txn *txn, const struct id *account,
                       const struct rec_key_backup *b) {
    struct key k;
    rec_key_backup_key(account, &k);
    struct buf v;
    buf_init(&v);
    rec_key_backup_encode(b, &v);
    int rc = apply_put(txn, CF_KEY_BACKUP, &k, account, &v);
    buf_cleanup(&v);
    return rc;
}

/* The patient an account's backup concerns, for its audit records. */
static const struct id *patient_of(const struct rec_account *a, const struct id *account) {
    return a->role == REC_ROLE_PATIENT ? account : NULL;
}

int apply_key_backup_put(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         struct buf *result) {
    const Carechat__Entry__V1__KeyBackupPut *m = e->key_backup_put;
    if (!m || m->segment_max == 0 || m->max_segments == 0 ||
        m->max_segments > REC_KEY_BACKUP_SEGMENTS_MAX || m->key_id.len != REC_KEY_BACKUP_KEY_ID_LEN)
        return STATUS_BAD_REQUEST;
    struct id actor, device;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &actor, &a);
    if (rc != 0)
        return rc;
    const struct id *patient = patient_of(&a, &actor);
    rec_account_cleanup(&a);
    if (!apply_id_field(e->actor_device_id, &device))
        return STATUS_BAD_REQUEST;
    struct rec_key_backup b;
    if ((rc = read_index(txn, &actor, &b)) != 0)
        return rc;
    const struct rules_key_backup_caps caps = {.segment_max = m->segment_max,
                                               .max_segments = m->max_segments,
                                               .max_bytes = m->max_total_bytes};
    uint8_t sha[REC_KEY_BACKUP_HASH_LEN];
    rules_sha256(m->data.data, m->data.len, sha);
    bool stored = false;
    rc = rules_key_backup_put(&b, &caps, m->seq, m->data.len, sha, m->key_id.data, &stored);
    int64_t created_at = e->time;
    if (rc == 0 && stored) {
        created_at = rec_key_backup_find(&b, m->seq)->created_at;
    } else if (rc == 0) {
        struct key k;
        rec_key_backup_segment_key(&actor, m->seq, &k);
        rc = txn_put(txn, CF_KEY_BACKUP, k.b, k.len, &actor, m->data.data, m->data.len);
        if (rc == 0) {
            /* Appended: the index stays ascending, since seq is next_seq. */
            struct rec_key_backup_segment *s = xrealloc(b.segments, (b.n + 1) * sizeof *s);
            b.segments = s;
            s[b.n] = (struct rec_key_backup_segment){.seq = m->seq,
                                                     .size = (uint32_t)m->data.len,
                                                     .created_at = e->time,
                                                     .device = device};
            memcpy(s[b.n].sha256, sha, sizeof sha);
            b.n++;
            b.next_seq = m->seq + 1;
            memcpy(b.key_id, m->key_id.data, REC_KEY_BACKUP_KEY_ID_LEN);
            b.total_bytes += m->data.len;
            rc = write_index(txn, &actor, &b);
        }
    }
    rec_key_backup_cleanup(&b);
    if (rc != 0)
        return rc;
    uint8_t at[8];
    key_put_u64(at, (uint64_t)created_at);
    buf_append(result, at, sizeof at);
    return apply_audit(txn, e, REC_AUDIT_KEY_BACKUP_WRITE, 0, &actor, actor.b, ID_LEN, patient);
}

/* Deletes the segments of `b` below `before_seq` (0: all) and keeps the rest
 * in `b`. Returns 0 or the store's status. */
static int drop_segments(struct store_txn *txn, const struct id *account, struct rec_key_backup *b,
                         uint64_t before_seq) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        const struct rec_key_backup_segment *s = &b->segments[i];
        if (before_seq != 0 && s->seq >= before_seq) {
            b->segments[kept++] = *s;
            continue;
        }
        struct key k;
        rec_key_backup_segment_key(account, s->seq, &k);
        int rc = txn_delete(txn, CF_KEY_BACKUP, k.b, k.len);
        if (rc != 0)
            return rc;
        b->total_bytes -= s->size;
    }
    b->n = kept;
    return STATUS_OK;
}

int apply_key_backup_delete(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__KeyBackupDelete *m = e->key_backup_delete;
    if (!m)
        return STATUS_BAD_REQUEST;
    struct id actor;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &actor, &a);
    if (rc != 0)
        return rc;
    const struct id *patient = patient_of(&a, &actor);
    rec_account_cleanup(&a);
    struct rec_key_backup b;
    if ((rc = read_index(txn, &actor, &b)) != 0)
        return rc;
    struct buf old;
    buf_init(&old);
    rec_key_backup_encode(&b, &old);
    rc = drop_segments(txn, &actor, &b, m->before_seq);
    /* Turned off: the key goes with the segments, for good. */
    if (m->before_seq == 0)
        rec_key_backup_retire(&b);
    /* The index stays (with its next_seq) once it exists: a segment number
     * is never given twice, nor a retired key taken again. */
    struct buf now;
    buf_init(&now);
    rec_key_backup_encode(&b, &now);
    if (rc == 0 && (now.len != old.len || memcmp(now.data, old.data, now.len) != 0))
        rc = write_index(txn, &actor, &b);
    buf_cleanup(&now);
    buf_cleanup(&old);
    rec_key_backup_cleanup(&b);
    if (rc != 0)
        return rc;
    return apply_audit(txn, e, REC_AUDIT_KEY_BACKUP_DELETE, 0, &actor, actor.b, ID_LEN, patient);
}

int apply_key_backup_purge(struct store_txn *txn, const struct id *account) {
    struct rec_key_backup b;
    int rc = read_index(txn, account, &b);
    if (rc == STATUS_CORRUPT) /* unreadable already: the data key's end takes the rest */
        return STATUS_OK;
    if (rc != 0)
        return rc;
    rc = drop_segments(txn, account, &b, 0);
    if (rc == 0) {
        struct key k;
        rec_key_backup_key(account, &k);
        rc = txn_delete(txn, CF_KEY_BACKUP, k.b, k.len);
    }
    rec_key_backup_cleanup(&b);
    return rc;
}
