/*
 * storage/journal_bench.c: group-commit throughput of the journal.
 *
 *   journal_bench [seconds per run (3)] [proposers K ...(1 8 64 256)]
 *
 * For each K, a fresh store in $TEST_TMPDIR (or /tmp) and K proposer threads, each
 * appending a 512-byte entry and waiting for its completion before the next,
 * like K clients sending messages one at a time. The apply function stores the
 * entry sealed in CF_MESSAGES under its position. The main thread plays the lws
 * loop: it polls completions when woken. Prints entries/s, the batch sizes and
 * the synced-write latency from journal_get_stats().
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"
#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "storage/testutil.h"

#define ENTRY_BYTES 512

struct bench {
    struct journal *journal;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t wakes;
    atomic_bool stop;
    atomic_int alive;
    atomic_ullong completed;
    atomic_ullong failed;
};

struct proposer {
    struct bench *b;
    sem_t done;
};

static const struct id PATIENT = {{0x50, 0x41, 0x54}};

static int apply_store(void *ctx, struct store_txn *t, uint64_t pos, const uint8_t *entry,
                       size_t entry_len, struct buf *result) {
    uint8_t key[8];
    key_put_u64(key, pos);
    return txn_put(t, CF_MESSAGES, key, sizeof key, &PATIENT, entry, entry_len);
}

static void wake(void *ctx) {
    struct bench *b = ctx;
    pthread_mutex_lock(&b->lock);
    b->wakes++;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void on_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t result_len) {
    struct proposer *p = ctx;
    if (status == 0)
        atomic_fetch_add(&p->b->completed, 1);
    else
        atomic_fetch_add(&p->b->failed, 1);
    sem_post(&p->done);
}

static void *propose(void *arg) {
    struct proposer *p = arg;
    uint8_t entry[ENTRY_BYTES];
    rand_bytes(entry, sizeof entry);
    while (!atomic_load(&p->b->stop)) {
        entry[0]++;
        if (journal_append(p->b->journal, entry, sizeof entry, on_done, p) != 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        sem_wait(&p->done);
    }
    atomic_fetch_sub(&p->b->alive, 1);
    wake(p->b);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(int k, double seconds) {
    char *dir = testutil_fresh_dir("journal-bench");
    struct store_config sc = {.data_dir = dir, .mode = STORE_CREATE};
    struct store *s = NULL;
    if (store_open(&sc, &s) != 0)
        return 1;
    struct bench b = {0};
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    struct journal_config jc = {.store = s, .apply = apply_store, .wake = wake, .wake_ctx = &b};
    if (journal_open(&jc, &b.journal) != 0)
        return 1;
    struct proposer *props = calloc((size_t)k, sizeof *props);
    pthread_t *threads = calloc((size_t)k, sizeof *threads);
    atomic_store(&b.alive, k);
    double start = now_s();
    for (int i = 0; i < k; i++) {
        props[i].b = &b;
        sem_init(&props[i].done, 0, 0);
        pthread_create(&threads[i], NULL, propose, &props[i]);
    }
    uint64_t seen = 0;
    double measured = 0;
    unsigned long long at_stop = 0;
    while (atomic_load(&b.alive) > 0) {
        pthread_mutex_lock(&b.lock);
        while (b.wakes == seen) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 50000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            if (pthread_cond_timedwait(&b.cond, &b.lock, &until) != 0)
                break;
        }
        seen = b.wakes;
        pthread_mutex_unlock(&b.lock);
        journal_poll(b.journal);
        if (!atomic_load(&b.stop) && now_s() - start >= seconds) {
            measured = now_s() - start;
            at_stop = atomic_load(&b.completed);
            atomic_store(&b.stop, true);
        }
    }
    for (int i = 0; i < k; i++) {
        pthread_join(threads[i], NULL);
        sem_destroy(&props[i].done);
    }
    struct journal_stats st;
    journal_get_stats(b.journal, &st);
    journal_close(b.journal);
    store_close(s);
    testutil_remove_tree(dir);
    free(dir);

    static const char *const bounds[8] = {"1", "2", "4", "8", "16", "32", "64", "+Inf"};
    printf("K=%-4d %9.0f entries/s  %llu entries in %llu batches (mean %.1f), "
           "synced write mean %llu us, failed %llu\n",
           k, (double)at_stop / measured, (unsigned long long)st.entries,
           (unsigned long long)st.batches,
           st.batches ? (double)st.entries / (double)st.batches : 0.0,
           st.batches ? (unsigned long long)(st.fsync_us_sum / st.batches) : 0ull,
           (unsigned long long)atomic_load(&b.failed));
    printf("       batch size <=");
    uint64_t prev = 0;
    for (int i = 0; i < 8; i++) {
        printf(" %s:%llu", bounds[i], (unsigned long long)(st.batch_size_buckets[i] - prev));
        prev = st.batch_size_buckets[i];
    }
    printf("\n");
    fflush(stdout);
    free(props);
    free(threads);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
    return 0;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    if (seconds <= 0)
        seconds = 3.0;
    log_set_level(LOG_WARN);
    static const int defaults[] = {1, 8, 64, 256};
    if (argc > 2) {
        for (int i = 2; i < argc; i++)
            if (run(atoi(argv[i]) > 0 ? atoi(argv[i]) : 1, seconds) != 0)
                return 1;
    } else {
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
            if (run(defaults[i], seconds) != 0)
                return 1;
    }
    return 0;
}
