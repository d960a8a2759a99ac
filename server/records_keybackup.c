/*
 * server/records_keybackup.c: keys and byte encoding of the key backup
 * records (layout in records_keybackup.h). Pure, any thread.
 */
#include "server/records_keybackup.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "server/record_codec.h"

void rec_key_backup_key(const struct id *account, struct key *out) {
    key_id(out, account);
}

void rec_key_backup_segment_key(const struct id *account, uint64_t seq, struct key *out) {
    key_id_u64(out, account, seq);
}

void rec_key_backup_encode(const struct rec_key_backup *b, struct buf *out) {
    rec_put_u8(out, REC_KEY_BACKUP_FORMAT);
    rec_put_u64(out, b->next_seq);
    rec_put_u64(out, b->total_bytes);
    rec_put_u32(out, b->n);
    for (uint32_t i = 0; i < b->n; i++) {
        const struct rec_key_backup_segment *s = &b->segments[i];
        rec_put_u64(out, s->seq);
        rec_put_u32(out, s->size);
        rec_put_u64(out, (uint64_t)s->created_at);
        rec_put_id(out, &s->device);
        buf_append(out, s->sha256, REC_KEY_BACKUP_HASH_LEN);
    }
    buf_append(out, b->key_id, REC_KEY_BACKUP_KEY_ID_LEN);
    rec_put_u32(out, b->n_retired);
    for (uint32_t i = 0; i < b->n_retired; i++)
        buf_append(out, b->retired[i], REC_KEY_BACKUP_KEY_ID_LEN);
}

int rec_key_backup_decode(const uint8_t *data, size_t len, struct rec_key_backup *out) {
    struct rec_reader r;
    rec_reader_init(&r, data, len);
    struct rec_key_backup b = REC_KEY_BACKUP_EMPTY;
    if (rec_get_u8(&r) != REC_KEY_BACKUP_FORMAT)
        r.bad = true;
    b.next_seq = rec_get_u64(&r);
    b.total_bytes = rec_get_u64(&r);
    b.n = rec_get_u32(&r);
    if (b.n > REC_KEY_BACKUP_SEGMENTS_MAX || b.next_seq == 0)
        r.bad = true;
    if (!r.bad && b.n > 0)
        b.segments = xcalloc(b.n, sizeof *b.segments);
    uint64_t bytes = 0;
    for (uint32_t i = 0; !r.bad && i < b.n; i++) {
        struct rec_key_backup_segment *s = &b.segments[i];
        s->seq = rec_get_u64(&r);
        s->size = rec_get_u32(&r);
        s->created_at = (int64_t)rec_get_u64(&r);
        rec_get_id(&r, &s->device);
        const uint8_t *h = rec_take(&r, REC_KEY_BACKUP_HASH_LEN);
        if (h)
            memcpy(s->sha256, h, REC_KEY_BACKUP_HASH_LEN);
        if (s->seq == 0 || s->seq >= b.next_seq || (i > 0 && s->seq <= b.segments[i - 1].seq))
            r.bad = true;
        bytes += s->size;
    }
    const uint8_t *k = rec_take(&r, REC_KEY_BACKUP_KEY_ID_LEN);
    if (k)
        memcpy(b.key_id, k, REC_KEY_BACKUP_KEY_ID_LEN);
    b.n_retired = rec_get_u32(&r);
    if (b.n_retired > REC_KEY_BACKUP_RETIRED_MAX)
        r.bad = true;
    for (uint32_t i = 0; !r.bad && i < b.n_retired; i++) {
        k = rec_take(&r, REC_KEY_BACKUP_KEY_ID_LEN);
        if (k)
            memcpy(b.retired[i], k, REC_KEY_BACKUP_KEY_ID_LEN);
    }
    if (r.bad || r.p != r.end || bytes != b.total_bytes) {
        rec_key_backup_cleanup(&b);
        *out = (struct rec_key_backup)REC_KEY_BACKUP_EMPTY;
        return STATUS_CORRUPT;
    }
    *out = b;
    return STATUS_OK;
}

void rec_key_backup_cleanup(struct rec_key_backup *b) {
    if (!b)
        return;
    free(b->segments);
    *b = (struct rec_key_backup)REC_KEY_BACKUP_EMPTY;
}

static bool zero_key_id(const uint8_t key_id[REC_KEY_BACKUP_KEY_ID_LEN]) {
    static const uint8_t zero[REC_KEY_BACKUP_KEY_ID_LEN];
    return memcmp(key_id, zero, REC_KEY_BACKUP_KEY_ID_LEN) == 0;
}

void rec_key_backup_retire(struct rec_key_backup *b) {
    if (zero_key_id(b->key_id))
        return;
    if (b->n_retired == REC_KEY_BACKUP_RETIRED_MAX) {
        memmove(b->retired[0], b->retired[1],
                (REC_KEY_BACKUP_RETIRED_MAX - 1) * REC_KEY_BACKUP_KEY_ID_LEN);
        b->n_retired--;
    }
    memcpy(b->retired[b->n_retired++], b->key_id, REC_KEY_BACKUP_KEY_ID_LEN);
    memset(b->key_id, 0, REC_KEY_BACKUP_KEY_ID_LEN);
}

bool rec_key_backup_retired(const struct rec_key_backup *b,
                            const uint8_t key_id[REC_KEY_BACKUP_KEY_ID_LEN]) {
    for (uint32_t i = 0; i < b->n_retired; i++)
        if (memcmp(b->retired[i], key_id, REC_KEY_BACKUP_KEY_ID_LEN) == 0)
            return true;
    return false;
}

const struct rec_key_backup_segment *rec_key_backup_find(const struct rec_key_backup *b,
                                                         uint64_t seq) {
    for (uint32_t i = 0; i < b->n; i++)
        if (b->segments[i].seq == seq)
            return &b->segments[i];
    return NULL;
}
