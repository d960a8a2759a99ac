/*
 * storage/store_internal.h: the part of the store only storage/ uses: creating,
 * committing and freeing transactions (the journal's writer thread), savepoints
 * for rejected entries, the free-space guard, and a flush for tests.
 *
 * Bazel keeps it inside storage/ (the `store_internal` target is private).
 */
#ifndef STORAGE_STORE_INTERNAL_H
#define STORAGE_STORE_INTERNAL_H

#include <stdint.h>

#include "storage/store.h"

/* rocksdb::InfoLogLevel::FATAL_LEVEL (the C API takes the number): the info
 * LOG level of every RocksDB instance here (store.c says why). */
#define STORE_RDB_FATAL_LEVEL 4

/* A new, empty transaction on `s` (a write batch with index). Free it with
 * store_txn_free(). Returns 0. */
int store_txn_begin(struct store *s, struct store_txn **out);

/* Marks the current state of the batch; store_txn_rollback() returns to it.
 * Savepoints nest. */
void store_txn_savepoint(struct store_txn *t);

/* Drops every write staged since the most recent savepoint, and that savepoint.
 * Calling it without a savepoint is a bug (CHECK). */
void store_txn_rollback(struct store_txn *t);

/* Number of writes (puts and deletes) staged. */
int store_txn_count(struct store_txn *t);

/* Seals the batch's values and writes it atomically with sync=true. Returns
 * 0, or STATUS_UNAVAILABLE when nothing was written: the free-space guard
 * refused it, sealing failed in the crypto library (logged), RocksDB failed to
 * write it (logged with RocksDB's error), or an earlier write failed (every
 * commit after a failed one is refused until the store is reopened). The
 * transaction stays valid: unchanged when refused, empty once committed;
 * free it afterwards. */
int store_txn_commit(struct store_txn *t);

/* Frees a transaction without writing what it did not commit. Accepts NULL. */
void store_txn_free(struct store_txn *t);

/* Returns 0 while the data volume has at least min_free_bytes free (and the
 * key volume min_free_key_bytes) and no write has failed, else
 * STATUS_UNAVAILABLE (logged once per transition). A verdict of enough room
 * stands for up to STORE_SPACE_REASK_MS (store.h) and 1 MiB of commits, or
 * until store_set_min_free_bytes(); a low one is checked again each call.
 * Any thread. */
int store_check_space(struct store *s);

/* How many values of `cf` are sealed under `owner`, read from their headers
 * without opening them (for tests of purge and compaction). */
size_t store_count_sealed_by(struct store *s, enum store_cf cf, const struct id *owner);

/* Changes the free-space reserve (0 disables the guard). Any thread. */
void store_set_min_free_bytes(struct store *s, uint64_t bytes);

/* Flushes every column family's memtable to SST (and blob) files and waits.
 * Returns 0 or STATUS_IO. For tests and maintenance. */
int store_flush(struct store *s);

#endif
