/*
 * storage/journal.h: the durable, ordered journal of command entries, with group
 * commit.
 *
 * Every change of state is an entry (opaque bytes here; the server encodes them
 * as protocol/entry.proto). The lws loop thread proposes entries with
 * journal_append(); one writer thread takes every pending entry, gives each the
 * next position, runs the apply function for it into one shared transaction
 * (store.h), records `applied_pos` in the same batch, and writes the batch with
 * sync=true: one fsync serves every entry of the batch. Completions go back to
 * the proposing thread through a queue: the writer calls `wake` (the server
 * passes a function that calls lws_cancel_service()), and that thread calls
 * journal_poll(), which runs the `on_done` callbacks.
 *
 *   loop thread                         writer thread
 *   journal_append(entry, on_done) -->  [pending] -> batch: pos, apply, ...
 *                                       WriteBatch(sync=true)
 *   journal_poll(): on_done(...)   <--  [done] + wake()
 *
 * On a single node the journal keeps no entries beyond their batch: RocksDB's
 * synced WAL is its durability.
 *
 * Threads: journal_append() is safe from any number of threads. journal_poll()
 * may be called from any thread, but calls are serialised so that on_done
 * callbacks always run one at a time in position order; an on_done callback may
 * call journal_append() but not journal_poll() or journal_close(). The apply
 * function runs only on the writer thread. journal_close() from the thread that
 * opened the journal, once no other thread appends.
 */
#ifndef STORAGE_JOURNAL_H
#define STORAGE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "storage/store.h"

/* The state machine. Runs on the writer thread for one entry at position `pos`
 * (strictly increasing, starting at 1). It must be a pure function of the store
 * state seen through `txn`, `pos` and the entry: no clock, no randomness, no I/O
 * beyond `txn`. It may append bytes for the proposer to `result` (effects to
 * deliver, the response body). Returns 0 to keep its writes, or a negative status
 * to reject the entry: the writes it made are rolled back, the position is still
 * consumed, and on_done receives that status (with whatever `result` holds, so a
 * rejection can explain itself, e.g. which devices are missing).
 * STATUS_IO is the exception: it means apply could not read or write the store,
 * not that the entry is invalid, so the entry is dropped without a position
 * (nothing stored, on_done gets pos 0 and STATUS_IO) and a replay of the
 * positions is not affected. Returning a positive value is a bug (CHECK). */
typedef int (*journal_apply_fn)(void *ctx, struct store_txn *txn, uint64_t pos,
                                const uint8_t *entry, size_t entry_len, struct buf *result);

/* Runs on the thread that calls journal_poll(). `status` is 0 when the entry was
 * applied and is durable, the apply function's status when it rejected the entry
 * (also durable: its position is used), STATUS_UNAVAILABLE when the batch was
 * not written (disk reserve, or RocksDB failed to write it: store_txn_commit())
 * or STATUS_IO when apply could not read or write the store; in the last two
 * cases nothing of the entry was stored, `pos` is 0 and `result` is empty. `result`
 * is borrowed for the call (NULL when result_len is 0). */
typedef void (*journal_done_fn)(void *ctx, uint64_t pos, int status, const uint8_t *result,
                                size_t result_len);

struct journal_config {
    struct store *store;    /* required, borrowed; outlives the journal */
    journal_apply_fn apply; /* required */
    void *apply_ctx;
    void (*wake)(void *ctx); /* called on the writer thread after each batch */
    void *wake_ctx;
    size_t max_batch_entries; /* 0: 256 */
    size_t max_pending;       /* entries waiting; beyond it append answers
                                 STATUS_UNAVAILABLE. 0: 65536 */
};

struct journal_stats {
    uint64_t batches;
    uint64_t entries;
    uint64_t applied_pos;
    /* Histograms with cumulative counts per upper bound, Prometheus-style. */
    uint64_t batch_size_buckets[8]; /* <=1, 2, 4, 8, 16, 32, 64, +Inf */
    /* Duration of each batch's synced write (WAL append + fsync). */
    uint64_t fsync_us_buckets[10]; /* <=100, 250, 500, 1000, 2500, 5000, 10000, 25000,
                                      100000 us, +Inf */
    uint64_t fsync_us_sum;
    uint64_t failed; /* entries answered STATUS_UNAVAILABLE or STATUS_IO */
};

struct journal;

/* Starts the writer thread. Reads `applied_pos` from the store (CF_META
 * "applied_pos", written in every batch) so positions continue across restarts.
 * Returns 0 and *out; STATUS_BAD_REQUEST (no store or apply); STATUS_IO or
 * STATUS_CORRUPT when applied_pos cannot be read; STATUS_INTERNAL when the
 * thread cannot start. One journal per store at a time. */
int journal_open(const struct journal_config *cfg, struct journal **out);

/* Queues a copy of `entry`; `on_done(done_ctx, ...)` (NULL: none) runs later from
 * journal_poll(), exactly once. Returns 0, or STATUS_UNAVAILABLE (closing, queue
 * full, disk reserve reached): then on_done is never called. Thread-safe. */
int journal_append(struct journal *j, const uint8_t *entry, size_t entry_len,
                   journal_done_fn on_done, void *done_ctx);

/* For a tool on the main thread that owns the journal (no other thread polls
 * it, e.g. `carechatd init` or `bootstrap`): appends a copy of `entry` and polls
 * until it completed or `timeout_ms` passed. Returns what on_done would have
 * received as status (0: applied and durable; the apply function's rejection;
 * STATUS_UNAVAILABLE or STATUS_IO: nothing stored), STATUS_UNAVAILABLE when it
 * could not be appended, or STATUS_IO when it did not complete in time (it may
 * still be written before journal_close() returns). */
int journal_append_wait(struct journal *j, const uint8_t *entry, size_t entry_len, int timeout_ms);

/* Runs on_done for every completed entry, in the order the writer finished them
 * (increasing positions; failed entries, with pos 0, in between). Call it after
 * `wake`. Returns the number of entries completed (callbacks run, counting
 * entries appended without one). */
size_t journal_poll(struct journal *j);

/* The last position written (durable). Any thread. */
uint64_t journal_applied_pos(struct journal *j);

/* Copies the counters. Any thread. */
void journal_get_stats(struct journal *j, struct journal_stats *out);

/* Stops accepting entries, writes everything already appended, runs the
 * remaining on_done callbacks on the calling thread, stops the writer and frees
 * the journal. Accepts NULL. */
void journal_close(struct journal *j);

#endif
