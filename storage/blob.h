/*
 * storage/blob.h: file chunks, the seam that may later move to an object store.
 *
 * On a single node a chunk is a record of CF_CHUNKS, keyed file id | chunk index
 * (keys.h) and sealed like every value under its owner's data key (the patient
 * the file belongs to, so purge shreds files too). CF_CHUNKS keeps values of
 * 16 KiB and more in RocksDB blob files. Chunks are end-to-end ciphertext from
 * the client (crypto_secretstream); this layer never looks inside.
 *
 * Threads: blob_put_chunk()/blob_delete_chunks() run inside apply on the
 * journal's writer thread (they write through a transaction); blob_get_chunk()
 * from any thread.
 */
#ifndef STORAGE_BLOB_H
#define STORAGE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "storage/store.h"

/* Largest chunk accepted. The protocol's chunk limit must not exceed it. */
#define BLOB_MAX_CHUNK (1024u * 1024)

/* Stages chunk `index` of `file`, sealed under `owner`'s data key. Returns 0;
 * STATUS_BAD_REQUEST for an empty chunk; STATUS_TOO_LARGE above BLOB_MAX_CHUNK
 * (nothing staged); or txn_put()'s status. */
int blob_put_chunk(struct store_txn *t, const struct id *file, uint64_t index,
                   const struct id *owner, const void *data, size_t len);

/* Reads chunk `index` of `file` into `out` (replacing its contents). Returns 0,
 * STATUS_NOT_FOUND, or store_get()'s other statuses. */
int blob_get_chunk(struct store *s, const struct id *file, uint64_t index, struct buf *out);

/* As blob_get_chunk(), through the transaction (its own writes win). */
int blob_get_chunk_txn(struct store_txn *t, const struct id *file, uint64_t index, struct buf *out);

/* Stages the deletion of chunks 0 .. count-1 of `file` (the file's metadata
 * knows how many there are). Returns 0. */
int blob_delete_chunks(struct store_txn *t, const struct id *file, uint64_t count);

#endif
