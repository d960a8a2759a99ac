/*
 * storage/journal.c: the single-node journal: a writer thread with group commit
 * over the store's synced RocksDB WAL (contract in journal.h).
 *
 *   append (any thread) --lock--> pending FIFO --writer takes <= max_batch-->
 *   batch: for each entry  pos = next, savepoint, apply, rollback if rejected
 *          CF_META applied_pos = last pos    (same batch)
 *          one synced write                  (group commit)
 *   --done_lock--> done FIFO --> wake() ... journal_poll(): on_done in order
 *
 * Invariants:
 * - Positions are consumed in the order entries were taken from the pending
 *   FIFO; `applied_pos` in memory equals the stored one after every batch, and
 *   only the writer thread changes either.
 * - An entry is in exactly one place: pending, the writer's batch, done, or
 *   freed after its on_done ran; so on_done runs exactly once.
 * - A failed commit leaves applied_pos unchanged: the positions its entries
 *   were given are handed out again in the next batch.
 */
#include "storage/journal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/keys.h"
#include "storage/store_internal.h"

#define MOD "journal"
#define APPLIED_POS_KEY "applied_pos"
#define DEFAULT_MAX_BATCH 256
#define DEFAULT_MAX_PENDING 65536

static const uint64_t BATCH_BOUNDS[7] = {1, 2, 4, 8, 16, 32, 64};
static const uint64_t FSYNC_BOUNDS_US[9] = {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000};

struct jentry {
    struct jentry *next;
    journal_done_fn on_done;
    void *done_ctx;
    uint64_t pos;
    int status;
    struct buf result;
    size_t len;
    uint8_t data[];
};

struct journal {
    struct store *store;
    journal_apply_fn apply;
    void *apply_ctx;
    void (*wake)(void *ctx);
    void *wake_ctx;
    size_t max_batch;
    size_t max_pending;

    pthread_mutex_t lock; /* pending FIFO, closing, stats */
    pthread_cond_t cond;
    struct jentry *pend_head, *pend_tail;
    size_t npending;
    bool closing;
    struct journal_stats stats;

    pthread_mutex_t done_lock; /* done FIFO */
    struct jentry *done_head, *done_tail;
    pthread_mutex_t poll_lock; /* one journal_poll() at a time */

    pthread_t thread;
    bool started;
    _Atomic uint64_t applied_pos;
};

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Cumulative histogram: every bucket whose bound is >= v, plus +Inf (the last). */
static void observe(uint64_t *buckets, const uint64_t *bounds, size_t nbounds, uint64_t v) {
    for (size_t i = 0; i < nbounds; i++)
        if (v <= bounds[i])
            buckets[i]++;
    buckets[nbounds]++;
}

static void free_entry(struct jentry *e) {
    buf_cleanup(&e->result);
    free(e);
}

static int read_applied_pos(struct store *s, uint64_t *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(s, CF_META, APPLIED_POS_KEY, sizeof APPLIED_POS_KEY - 1, &v);
    if (rc == STATUS_NOT_FOUND) {
        *out = 0;
        rc = 0;
    } else if (rc == 0 && v.len != 8) {
        log_error(MOD, "stored applied_pos has %zu bytes instead of 8", v.len);
        rc = STATUS_CORRUPT;
    } else if (rc == 0) {
        *out = key_get_u64(v.data);
    }
    buf_cleanup(&v);
    return rc;
}

/* Applies and commits one batch; fills every entry's pos/status/result. */
static void run_batch(struct journal *j, struct jentry *batch) {
    uint64_t first = atomic_load(&j->applied_pos) + 1, next = first;
    struct store_txn *t = NULL;
    uint64_t write_us = 0;
    int rc = store_check_space(j->store);
    if (rc == 0) {
        store_txn_begin(j->store, &t);
        for (struct jentry *e = batch; e; e = e->next) {
            store_txn_savepoint(t);
            int r = j->apply(j->apply_ctx, t, next, e->data, e->len, &e->result);
            CHECK(r <= 0);
            if (r < 0)
                store_txn_rollback(t);
            if (r == STATUS_IO) {
                /* not a verdict on the entry: drop it without a position */
                e->pos = 0;
                e->status = STATUS_IO;
                buf_reset(&e->result);
                continue;
            }
            e->pos = next++;
            e->status = r;
        }
    }
    if (rc == 0 && next > first) {
        uint8_t pos8[8];
        key_put_u64(pos8, next - 1);
        rc = txn_put(t, CF_META, APPLIED_POS_KEY, sizeof APPLIED_POS_KEY - 1, NULL, pos8,
                     sizeof pos8);
        if (rc == 0) {
            uint64_t t0 = now_us();
            rc = store_txn_commit(t);
            write_us = now_us() - t0;
        }
    }
    store_txn_free(t);

    uint64_t consumed = 0, failed = 0;
    for (struct jentry *e = batch; e; e = e->next) {
        if (rc < 0) {
            e->pos = 0;
            e->status = rc == STATUS_UNAVAILABLE ? STATUS_UNAVAILABLE : STATUS_IO;
            buf_reset(&e->result);
        }
        if (e->pos)
            consumed++;
        else
            failed++;
    }
    if (rc == 0 && consumed)
        atomic_store(&j->applied_pos, next - 1);

    pthread_mutex_lock(&j->lock);
    j->stats.failed += failed;
    if (rc == 0 && consumed) {
        j->stats.batches++;
        j->stats.entries += consumed;
        observe(j->stats.batch_size_buckets, BATCH_BOUNDS, 7, consumed);
        observe(j->stats.fsync_us_buckets, FSYNC_BOUNDS_US, 9, write_us);
        j->stats.fsync_us_sum += write_us;
    }
    pthread_mutex_unlock(&j->lock);
}

static void *writer_main(void *arg) {
    struct journal *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        while (!j->pend_head && !j->closing)
            pthread_cond_wait(&j->cond, &j->lock);
        if (!j->pend_head) {
            pthread_mutex_unlock(&j->lock);
            break;
        }
        /* Take everything pending, up to max_batch: one fsync for all of it. */
        struct jentry *batch = j->pend_head, *last = batch;
        size_t n = 1;
        while (n < j->max_batch && last->next) {
            last = last->next;
            n++;
        }
        j->pend_head = last->next;
        if (!j->pend_head)
            j->pend_tail = NULL;
        last->next = NULL;
        j->npending -= n;
        pthread_mutex_unlock(&j->lock);

        run_batch(j, batch);

        pthread_mutex_lock(&j->done_lock);
        if (j->done_tail)
            j->done_tail->next = batch;
        else
            j->done_head = batch;
        j->done_tail = last;
        pthread_mutex_unlock(&j->done_lock);
        if (j->wake)
            j->wake(j->wake_ctx);
    }
    return NULL;
}

int journal_open(const struct journal_config *cfg, struct journal **out) {
    if (!cfg || !cfg->store || !cfg->apply)
        return STATUS_BAD_REQUEST;
    uint64_t applied = 0;
    int rc = read_applied_pos(cfg->store, &applied);
    if (rc < 0)
        return rc;
    struct journal *j = xcalloc(1, sizeof *j);
    j->store = cfg->store;
    j->apply = cfg->apply;
    j->apply_ctx = cfg->apply_ctx;
    j->wake = cfg->wake;
    j->wake_ctx = cfg->wake_ctx;
    j->max_batch = cfg->max_batch_entries ? cfg->max_batch_entries : DEFAULT_MAX_BATCH;
    j->max_pending = cfg->max_pending ? cfg->max_pending : DEFAULT_MAX_PENDING;
    atomic_store(&j->applied_pos, applied);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    pthread_mutex_init(&j->done_lock, NULL);
    pthread_mutex_init(&j->poll_lock, NULL);
    if (pthread_create(&j->thread, NULL, writer_main, j) != 0) {
        log_error(MOD, "cannot start the writer thread");
        journal_close(j);
        return STATUS_INTERNAL;
    }
    j->started = true;
    log_info(MOD, "journal open at position %llu", (unsigned long long)applied);
    *out = j;
    return 0;
}

int journal_append(struct journal *j, const uint8_t *entry, size_t entry_len,
                   journal_done_fn on_done, void *done_ctx) {
    if (store_check_space(j->store) < 0)
        return STATUS_UNAVAILABLE;
    struct jentry *e = xmalloc(sizeof *e + entry_len);
    e->next = NULL;
    e->on_done = on_done;
    e->done_ctx = done_ctx;
    e->pos = 0;
    e->status = 0;
    buf_init(&e->result);
    e->len = entry_len;
    if (entry_len)
        memcpy(e->data, entry, entry_len);
    pthread_mutex_lock(&j->lock);
    if (j->closing || j->npending >= j->max_pending) {
        pthread_mutex_unlock(&j->lock);
        free_entry(e);
        return STATUS_UNAVAILABLE;
    }
    if (j->pend_tail)
        j->pend_tail->next = e;
    else
        j->pend_head = e;
    j->pend_tail = e;
    j->npending++;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

size_t journal_poll(struct journal *j) {
    pthread_mutex_lock(&j->poll_lock);
    pthread_mutex_lock(&j->done_lock);
    struct jentry *e = j->done_head;
    j->done_head = j->done_tail = NULL;
    pthread_mutex_unlock(&j->done_lock);
    size_t n = 0;
    while (e) {
        struct jentry *next = e->next;
        if (e->on_done)
            e->on_done(e->done_ctx, e->pos, e->status, e->result.len ? e->result.data : NULL,
                       e->result.len);
        free_entry(e);
        n++;
        e = next;
    }
    pthread_mutex_unlock(&j->poll_lock);
    return n;
}

/* The completion of journal_append_wait(); freed by whoever is last: the waiter,
 * or on_done when the waiter gave up. */
struct waiter {
    bool done, abandoned;
    int status;
};

static void waiter_done(void *ctx, uint64_t pos, int status, const uint8_t *result,
                        size_t result_len) {
    struct waiter *w = ctx;
    if (w->abandoned) {
        free(w);
        return;
    }
    w->done = true;
    w->status = status;
}

int journal_append_wait(struct journal *j, const uint8_t *entry, size_t entry_len, int timeout_ms) {
    struct waiter *w = xcalloc(1, sizeof *w);
    int rc = journal_append(j, entry, entry_len, waiter_done, w);
    if (rc < 0) {
        free(w);
        return rc;
    }
    uint64_t deadline = now_us() + (uint64_t)timeout_ms * 1000u;
    while (!w->done && now_us() < deadline) {
        if (journal_poll(j) == 0)
            nanosleep(&(struct timespec){.tv_nsec = 1000000L}, NULL);
    }
    journal_poll(j);
    if (!w->done) {
        log_error(MOD, "an entry was not written within %d ms", timeout_ms);
        w->abandoned = true; /* on_done, run by a later poll, frees it */
        return STATUS_IO;
    }
    rc = w->status;
    free(w);
    return rc;
}

uint64_t journal_applied_pos(struct journal *j) {
    return atomic_load(&j->applied_pos);
}

void journal_get_stats(struct journal *j, struct journal_stats *out) {
    pthread_mutex_lock(&j->lock);
    *out = j->stats;
    pthread_mutex_unlock(&j->lock);
    out->applied_pos = atomic_load(&j->applied_pos);
}

void journal_close(struct journal *j) {
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    j->closing = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    if (j->started)
        pthread_join(j->thread, NULL);
    journal_poll(j);
    pthread_mutex_destroy(&j->poll_lock);
    pthread_mutex_destroy(&j->done_lock);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    free(j);
}
