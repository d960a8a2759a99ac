/*
 * storage/blob.c: file chunks as CF_CHUNKS records (contract in blob.h).
 *
 * Invariant: a chunk's key is exactly file id (16) | index (8, big-endian), so a
 * file's chunks are contiguous and in index order. Stateless; the thread rules
 * are those of the store calls it makes.
 */
#include "storage/blob.h"

#include "base/status.h"
#include "storage/keys.h"

int blob_put_chunk(struct store_txn *t, const struct id *file, uint64_t index,
                   const struct id *owner, const void *data, size_t len) {
    if (len == 0)
        return STATUS_BAD_REQUEST;
    if (len > BLOB_MAX_CHUNK)
        return STATUS_TOO_LARGE;
    struct key k;
    key_id_u64(&k, file, index);
    return txn_put(t, CF_CHUNKS, k.b, k.len, owner, data, len);
}

int blob_get_chunk(struct store *s, const struct id *file, uint64_t index, struct buf *out) {
    struct key k;
    key_id_u64(&k, file, index);
    return store_get(s, CF_CHUNKS, k.b, k.len, out);
}

int blob_get_chunk_txn(struct store_txn *t, const struct id *file, uint64_t index,
                       struct buf *out) {
    struct key k;
    key_id_u64(&k, file, index);
    return txn_get(t, CF_CHUNKS, k.b, k.len, out);
}

int blob_delete_chunks(struct store_txn *t, const struct id *file, uint64_t count) {
    for (uint64_t i = 0; i < count; i++) {
        struct key k;
        key_id_u64(&k, file, i);
        txn_delete(t, CF_CHUNKS, k.b, k.len);
    }
    return 0;
}
