/*
 * server/audit.c: the hash-chained audit log (server/audit.h has the record
 * layout and the chain definition).
 *
 * Invariant: CF_META's REC_META_AUDIT_NEXT and AUDIT_META_HEAD always name the
 * last record written, and change only in the batch that writes it.
 *
 * audit_append() runs on the journal's writer thread inside apply; the reads
 * on any thread that may read the store.
 */
#include "server/audit.h"

#include <sodium.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/keys.h"

#define META_KEY(k) (k), (sizeof(k) - 1)

static const char *const action_names[] = {
#define AUDIT_NAME(name, number, text) [number] = text,
    AUDIT_ACTIONS(AUDIT_NAME)
#undef AUDIT_NAME
        [19] = "request",
};
_Static_assert(sizeof action_names / sizeof action_names[0] == REC_AUDIT_ACTION_MAX + 1,
               "REC_AUDIT_ACTION_MAX is the highest number of AUDIT_ACTIONS");

const char *audit_action_name(uint32_t action) {
    if (action == 0 || action > REC_AUDIT_ACTION_MAX || !action_names[action])
        return "unknown";
    return action_names[action];
}

void audit_hash(const struct rec_audit *a, uint8_t out[REC_HASH_LEN]) {
    struct buf b;
    buf_init(&b);
    rec_audit_canonical(a, &b);
    crypto_hash_sha256(out, b.data, b.len);
    buf_cleanup(&b);
}

int audit_append(struct store_txn *txn, struct rec_audit *a) {
    if (a->action == 0 || a->action > REC_AUDIT_ACTION_MAX ||
        a->object_len > REC_AUDIT_OBJECT_MAX ||
        strnlen(a->source, sizeof a->source) > REC_AUDIT_SOURCE_MAX)
        return STATUS_BAD_REQUEST;
    struct buf v;
    buf_init(&v);
    uint64_t index = 1;
    memset(a->prev_hash, 0, REC_HASH_LEN);
    int rc = txn_get(txn, CF_META, META_KEY(REC_META_AUDIT_NEXT), &v);
    if (rc == 0 && v.len == 8)
        index = key_get_u64(v.data);
    else if (rc == 0)
        rc = STATUS_CORRUPT;
    else if (rc == STATUS_NOT_FOUND)
        rc = 0;
    if (rc == 0 && index > 1) {
        rc = txn_get(txn, CF_META, META_KEY(AUDIT_META_HEAD), &v);
        if (rc == 0 && v.len == REC_HASH_LEN)
            memcpy(a->prev_hash, v.data, REC_HASH_LEN);
        else if (rc == 0 || rc == STATUS_NOT_FOUND)
            rc = STATUS_CORRUPT;
    }
    if (rc != 0)
        goto out;
    a->index = index;
    audit_hash(a, a->hash);
    buf_reset(&v);
    rec_audit_encode(a, &v);
    uint8_t k[8];
    key_put_u64(k, index);
    rc = txn_put(txn, CF_AUDIT, k, sizeof k, NULL, v.data, v.len);
    if (rc == 0)
        rc = txn_put(txn, CF_META, META_KEY(AUDIT_META_HEAD), NULL, a->hash, REC_HASH_LEN);
    if (rc == 0) {
        key_put_u64(k, index + 1);
        rc = txn_put(txn, CF_META, META_KEY(REC_META_AUDIT_NEXT), NULL, k, sizeof k);
    }
out:
    buf_cleanup(&v);
    return rc;
}

int audit_head(struct store *s, uint64_t *index, uint8_t hash[REC_HASH_LEN]) {
    struct buf v;
    buf_init(&v);
    *index = 0;
    memset(hash, 0, REC_HASH_LEN);
    int rc = store_get(s, CF_META, META_KEY(REC_META_AUDIT_NEXT), &v);
    if (rc == STATUS_NOT_FOUND) {
        rc = 0;
        goto out;
    }
    if (rc == 0 && v.len != 8)
        rc = STATUS_CORRUPT;
    if (rc != 0)
        goto out;
    uint64_t next = key_get_u64(v.data);
    if (next <= 1)
        goto out;
    rc = store_get(s, CF_META, META_KEY(AUDIT_META_HEAD), &v);
    if (rc == 0 && v.len != REC_HASH_LEN)
        rc = STATUS_CORRUPT;
    if (rc == STATUS_NOT_FOUND)
        rc = STATUS_CORRUPT;
    if (rc != 0)
        goto out;
    *index = next - 1;
    memcpy(hash, v.data, REC_HASH_LEN);
out:
    buf_cleanup(&v);
    return rc;
}

int audit_read(struct store *s, uint64_t index, struct rec_audit *out) {
    uint8_t k[8];
    key_put_u64(k, index);
    struct buf v;
    buf_init(&v);
    int rc = store_get(s, CF_AUDIT, k, sizeof k, &v);
    if (rc == 0)
        rc = rec_audit_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

int audit_index_before(struct store *s, int64_t time, uint64_t *after) {
    uint64_t head;
    uint8_t hash[REC_HASH_LEN];
    int rc = audit_head(s, &head, hash);
    /* The first index in [lo, hi] whose record is at or after `time`
     * (head + 1: none). */
    uint64_t lo = 1, hi = head + 1;
    while (rc == 0 && lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        struct rec_audit a;
        rc = audit_read(s, mid, &a);
        if (rc == 0 && a.time >= time)
            hi = mid;
        else
            lo = mid + 1;
    }
    *after = lo - 1;
    return rc;
}

int audit_verify_begin(struct store *s, struct audit_verify *v) {
    memset(v, 0, sizeof *v);
    uint64_t head;
    uint8_t hash[REC_HASH_LEN];
    int rc = audit_head(s, &head, hash);
    if (rc != 0)
        return rc;
    v->next = 1;
    v->end = head + 1;
    v->ok = true;
    v->done = head == 0;
    return 0;
}

static void verify_fail(struct audit_verify *v, uint64_t index) {
    v->done = true;
    v->ok = false;
    v->first_bad = index;
}

int audit_verify_step(struct store *s, struct audit_verify *v, size_t max_records) {
    for (size_t n = 0; n < max_records && !v->done; n++) {
        uint64_t i = v->next;
        struct rec_audit a;
        int rc = audit_read(s, i, &a);
        if (rc == STATUS_IO)
            return rc;
        uint8_t h[REC_HASH_LEN];
        if (rc == 0)
            audit_hash(&a, h);
        if (rc != 0 || a.index != i || memcmp(a.prev_hash, v->running, REC_HASH_LEN) != 0 ||
            memcmp(a.hash, h, REC_HASH_LEN) != 0) {
            verify_fail(v, i);
            return 0;
        }
        memcpy(v->running, a.hash, REC_HASH_LEN);
        v->next = i + 1;
        if (v->next == v->end) {
            /* The last record must be the head that CF_META names. */
            uint64_t head;
            uint8_t hash[REC_HASH_LEN];
            rc = audit_head(s, &head, hash);
            if (rc == STATUS_IO)
                return rc;
            if (rc != 0 || head != i || memcmp(hash, v->running, REC_HASH_LEN) != 0) {
                verify_fail(v, i);
                return 0;
            }
            v->done = true;
        }
        /* Counted only now: the last record verifies only together with the head. */
        v->checked++;
    }
    return 0;
}

bool audit_matches(const struct audit_filter *f, const struct rec_audit *a) {
    if (f->since && a->time < f->since)
        return false;
    if (f->until && a->time >= f->until)
        return false;
    if (f->has_actor && memcmp(a->actor.b, f->actor.b, ID_LEN) != 0)
        return false;
    if (f->has_patient && memcmp(a->patient.b, f->patient.b, ID_LEN) != 0)
        return false;
    return true;
}

int audit_query(struct store *s, const struct audit_filter *f, uint64_t after, size_t limit,
                size_t max_examined, struct rec_audit *out, size_t *n_out, uint64_t *last,
                bool *more) {
    *n_out = 0;
    *last = after;
    *more = false;
    uint64_t head;
    uint8_t hash[REC_HASH_LEN];
    int rc = audit_head(s, &head, hash);
    if (rc != 0)
        return rc;
    uint64_t i = after + 1;
    for (size_t n = 0; i <= head && n < max_examined && *n_out < limit; n++, i++) {
        struct rec_audit a;
        rc = audit_read(s, i, &a);
        if (rc == STATUS_NOT_FOUND)
            rc = STATUS_CORRUPT;
        if (rc != 0)
            return rc;
        if (audit_matches(f, &a))
            out[(*n_out)++] = a;
        *last = i;
    }
    *more = *last < head;
    return 0;
}

int audit_anchor(struct store *s, uint64_t every, uint64_t *anchored) {
    uint64_t head;
    uint8_t hash[REC_HASH_LEN];
    int rc = audit_head(s, &head, hash);
    if (rc != 0)
        return rc;
    if (head == 0 || (every && (head <= *anchored || head - *anchored < every)))
        return 0;
    char hex[2 * REC_HASH_LEN + 1];
    sodium_bin2hex(hex, sizeof hex, hash, REC_HASH_LEN);
    log_info("audit", "audit anchor index=%llu hash=%s", (unsigned long long)head, hex);
    *anchored = head;
    return 0;
}
