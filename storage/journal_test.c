/*
 * storage/journal_test.c: the group-commit journal over real RocksDB: many
 * concurrent proposers, batching, rejected entries, replay determinism,
 * reopening, the free-space guard and draining on close.
 *
 * The state machine under test (apply_kv) is a tiny key-value store with a
 * sequence counter, enough to need read-your-own-writes inside a batch:
 *   "put K V"  seq += 1; CF_MESSAGES[seq] = "K=V@pos"; CF_ACCOUNTS[K] = V;
 *              result "seq N"
 *   "bad K V"  writes like put, then rejects with STATUS_CONFLICT (result kept)
 *   "del K"    deletes CF_ACCOUNTS[K]; STATUS_NOT_FOUND when absent
 *   "io"       writes, then answers STATUS_IO (dropped without a position)
 *   "gate"     blocks the writer until the test opens the gate
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>

#include "base/buf.h"
#include "base/status.h"
#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "storage/store_internal.h"
#include "storage/testutil.h"

#define DEADLINE_MS 60000

/* ---- the gate: lets a test hold the writer inside apply ---- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static bool gate_open_flag;
static int gate_entered;

static void gate_reset(void) {
    pthread_mutex_lock(&gate_lock);
    gate_open_flag = false;
    gate_entered = 0;
    pthread_mutex_unlock(&gate_lock);
}

static void gate_pass(void) {
    pthread_mutex_lock(&gate_lock);
    gate_entered++;
    int64_t until = testutil_now_ms() + DEADLINE_MS;
    while (!gate_open_flag && testutil_now_ms() < until) {
        pthread_mutex_unlock(&gate_lock);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&gate_lock);
    }
    pthread_mutex_unlock(&gate_lock);
}

static void gate_wait_entered(void) {
    int64_t until = testutil_now_ms() + DEADLINE_MS;
    pthread_mutex_lock(&gate_lock);
    while (gate_entered == 0 && testutil_now_ms() < until) {
        pthread_mutex_unlock(&gate_lock);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&gate_lock);
    }
    int entered = gate_entered;
    pthread_mutex_unlock(&gate_lock);
    assert_true(entered > 0);
}

static void gate_open(void) {
    pthread_mutex_lock(&gate_lock);
    gate_open_flag = true;
    pthread_mutex_unlock(&gate_lock);
}

/* ---- the state machine ---- */

static const struct id OWNER = {{0x0a, 0x0b}};
static const char SEQ_KEY[] = "seq";

static int read_seq(struct store_txn *t, uint64_t *seq) {
    struct buf v;
    buf_init(&v);
    int rc = txn_get(t, CF_CONVERSATIONS, SEQ_KEY, sizeof SEQ_KEY - 1, &v);
    if (rc == STATUS_NOT_FOUND) {
        *seq = 0;
        rc = 0;
    } else if (rc == 0) {
        *seq = key_get_u64(v.data);
    }
    buf_cleanup(&v);
    return rc;
}

static int do_put(struct store_txn *t, uint64_t pos, const char *k, const char *v,
                  struct buf *result) {
    uint64_t seq;
    int rc = read_seq(t, &seq);
    if (rc < 0)
        return rc;
    seq++;
    uint8_t seq8[8];
    key_put_u64(seq8, seq);
    char msg[256];
    snprintf(msg, sizeof msg, "%s=%s@%llu", k, v, (unsigned long long)pos);
    if ((rc = txn_put(t, CF_CONVERSATIONS, SEQ_KEY, sizeof SEQ_KEY - 1, NULL, seq8, 8)) < 0 ||
        (rc = txn_put(t, CF_MESSAGES, seq8, 8, &OWNER, msg, strlen(msg))) < 0 ||
        (rc = txn_put(t, CF_ACCOUNTS, k, strlen(k), &OWNER, v, strlen(v))) < 0)
        return rc;
    buf_printf(result, "seq %llu", (unsigned long long)seq);
    return 0;
}

static int apply_kv(void *ctx, struct store_txn *t, uint64_t pos, const uint8_t *entry,
                    size_t entry_len, struct buf *result) {
    char cmd[256], k[128] = "", v[128] = "";
    assert_true(entry_len < sizeof cmd);
    memcpy(cmd, entry, entry_len);
    cmd[entry_len] = '\0';
    if (strcmp(cmd, "gate") == 0) {
        gate_pass();
        return 0;
    }
    if (strcmp(cmd, "io") == 0) {
        do_put(t, pos, "io", "io", result);
        return STATUS_IO;
    }
    if (sscanf(cmd, "put %127s %127s", k, v) == 2)
        return do_put(t, pos, k, v, result);
    if (sscanf(cmd, "bad %127s %127s", k, v) == 2) {
        int rc = do_put(t, pos, k, v, result);
        buf_printf(result, " rejected");
        return rc < 0 ? rc : STATUS_CONFLICT;
    }
    if (sscanf(cmd, "del %127s", k) == 1) {
        struct buf old;
        buf_init(&old);
        int rc = txn_get(t, CF_ACCOUNTS, k, strlen(k), &old);
        buf_cleanup(&old);
        if (rc < 0)
            return rc;
        return txn_delete(t, CF_ACCOUNTS, k, strlen(k));
    }
    return STATUS_BAD_REQUEST;
}

/* ---- completions ---- */

struct done {
    int calls;
    uint64_t pos;
    int status;
    char result[64];
};

struct run {
    struct store *store;
    struct journal *journal;
    struct testutil_waker waker;
    uint64_t last_pos; /* on_done runs on the polling (main) thread only */
    bool ordered;
    size_t completed;
};

static struct run *current_run;

static void on_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t result_len) {
    struct done *d = ctx;
    struct run *r = current_run;
    d->calls++;
    d->pos = pos;
    d->status = status;
    size_t n = result_len < sizeof d->result - 1 ? result_len : sizeof d->result - 1;
    if (n)
        memcpy(d->result, result, n);
    d->result[n] = '\0';
    if (pos) {
        if (pos <= r->last_pos)
            r->ordered = false;
        r->last_pos = pos;
    }
    r->completed++;
}

static void run_open(struct run *r, const char *dir, size_t max_batch, size_t max_pending) {
    memset(r, 0, sizeof *r);
    struct store_config cfg = {.data_dir = dir, .mode = testutil_store_mode(dir)};
    assert_int_equal(store_open(&cfg, &r->store), 0);
    testutil_waker_init(&r->waker);
    r->ordered = true;
    struct journal_config jc = {
        .store = r->store,
        .apply = apply_kv,
        .wake = testutil_wake,
        .wake_ctx = &r->waker,
        .max_batch_entries = max_batch,
        .max_pending = max_pending,
    };
    assert_int_equal(journal_open(&jc, &r->journal), 0);
    r->last_pos = journal_applied_pos(r->journal);
    current_run = r;
}

/* Polls until `want` completions arrived (bounded by DEADLINE_MS). */
static void run_wait(struct run *r, size_t want) {
    int64_t until = testutil_now_ms() + DEADLINE_MS;
    uint64_t seen = 0;
    while (r->completed < want && testutil_now_ms() < until) {
        journal_poll(r->journal);
        if (r->completed < want)
            seen = testutil_waker_wait(&r->waker, seen, 100);
    }
    assert_int_equal(r->completed, want);
}

static void run_close(struct run *r) {
    journal_close(r->journal);
    store_close(r->store);
    testutil_waker_cleanup(&r->waker);
    current_run = NULL;
}

static void append(struct run *r, const char *cmd, struct done *d) {
    assert_int_equal(journal_append(r->journal, (const uint8_t *)cmd, strlen(cmd), on_done, d), 0);
}

static int stored(struct store *s, enum store_cf cf, const char *key, char *out, size_t out_len) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(s, cf, key, strlen(key), &v);
    if (rc == 0) {
        assert_true(v.len < out_len);
        memcpy(out, v.data, v.len);
        out[v.len] = '\0';
    }
    buf_cleanup(&v);
    return rc;
}

/* ---- tests ---- */

enum { THREADS = 8, PER_THREAD = 150 };

struct proposer {
    struct run *run;
    int index;
    struct done done[PER_THREAD];
    int failures;
};

static void *propose(void *arg) {
    struct proposer *p = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "put t%d-%d v%d", p->index, i, i);
        if (journal_append(p->run->journal, (const uint8_t *)cmd, strlen(cmd), on_done,
                           &p->done[i]) != 0)
            p->failures++;
    }
    return NULL;
}

static void test_journal_group_commit_from_many_threads(void **state) {
    char *dir = testutil_fresh_dir("journal-threads");
    static struct run r;
    static struct proposer props[THREADS];
    run_open(&r, dir, 0, 0);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&props[i], 0, sizeof props[i]);
        props[i].run = &r;
        props[i].index = i;
        assert_int_equal(pthread_create(&threads[i], NULL, propose, &props[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    run_wait(&r, THREADS * PER_THREAD);

    /* every on_done exactly once, successful, positions increasing and dense */
    assert_true(r.ordered);
    static bool seen_pos[THREADS * PER_THREAD + 1];
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(props[t].failures, 0);
        for (int i = 0; i < PER_THREAD; i++) {
            struct done *d = &props[t].done[i];
            assert_int_equal(d->calls, 1);
            assert_int_equal(d->status, 0);
            assert_true(d->pos >= 1 && d->pos <= THREADS * PER_THREAD);
            assert_false(seen_pos[d->pos]);
            seen_pos[d->pos] = true;
            assert_memory_equal(d->result, "seq ", 4);
        }
    }
    assert_true(journal_applied_pos(r.journal) == THREADS * PER_THREAD);
    struct journal_stats st;
    journal_get_stats(r.journal, &st);
    assert_true(st.entries == THREADS * PER_THREAD);
    assert_true(st.applied_pos == THREADS * PER_THREAD);
    assert_true(st.batch_size_buckets[7] == st.batches);
    /* group commit happened: fewer batches than entries, some batch above 1 */
    assert_true(st.batches < st.entries);
    assert_true(st.batch_size_buckets[0] < st.batches);
    assert_true(st.fsync_us_buckets[9] == st.batches);
    assert_true(st.fsync_us_sum > 0);
    print_message("%llu entries in %llu batches (%llu of size 1), mean synced write %llu us\n",
                  (unsigned long long)st.entries, (unsigned long long)st.batches,
                  (unsigned long long)st.batch_size_buckets[0],
                  (unsigned long long)(st.fsync_us_sum / st.batches));
    /* another on_done never comes */
    assert_int_equal(journal_poll(r.journal), 0);
    run_close(&r);

    /* applied_pos and the data are durable */
    run_open(&r, dir, 0, 0);
    assert_true(journal_applied_pos(r.journal) == THREADS * PER_THREAD);
    char v[64];
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "t7-149", v, sizeof v), 0);
    assert_string_equal(v, "v149");
    uint8_t seq8[8];
    key_put_u64(seq8, THREADS * PER_THREAD);
    struct buf b;
    buf_init(&b);
    assert_int_equal(store_get(r.store, CF_MESSAGES, seq8, 8, &b), 0);
    key_put_u64(seq8, THREADS * PER_THREAD + 1);
    assert_int_equal(store_get(r.store, CF_MESSAGES, seq8, 8, &b), STATUS_NOT_FOUND);
    buf_cleanup(&b);
    run_close(&r);
    free(dir);
}

static void test_journal_batches_everything_pending(void **state) {
    char *dir = testutil_fresh_dir("journal-batch");
    static struct run r;
    static struct done d[101];
    memset(d, 0, sizeof d);
    gate_reset();
    run_open(&r, dir, 40, 0);
    append(&r, "gate", &d[0]);
    gate_wait_entered(); /* the writer holds batch 1 = {gate} */
    for (int i = 1; i <= 100; i++) {
        char cmd[32];
        snprintf(cmd, sizeof cmd, "put k%d v", i);
        append(&r, cmd, &d[i]);
    }
    gate_open();
    run_wait(&r, 101);
    struct journal_stats st;
    journal_get_stats(r.journal, &st);
    /* {gate}, then 40 + 40 + 20: everything pending, capped by max_batch */
    assert_true(st.batches == 4);
    assert_true(st.batch_size_buckets[0] == 1); /* <= 1 */
    assert_true(st.batch_size_buckets[5] == 2); /* <= 32: the 1 and the 20 */
    assert_true(st.batch_size_buckets[6] == 4); /* <= 64 */
    for (int i = 0; i <= 100; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_true(d[i].pos == (uint64_t)i + 1);
    }
    assert_true(r.ordered);
    run_close(&r);
    free(dir);
}

static void test_journal_rejected_entry_rolls_back_but_consumes_its_position(void **state) {
    char *dir = testutil_fresh_dir("journal-reject");
    static struct run r;
    static struct done d[6];
    memset(d, 0, sizeof d);
    gate_reset();
    run_open(&r, dir, 0, 0);
    append(&r, "gate", &d[0]);
    gate_wait_entered();
    /* one batch: a good entry, a rejected one, a good one, a rejected delete */
    append(&r, "put a 1", &d[1]);
    append(&r, "bad b 2", &d[2]);
    append(&r, "put c 3", &d[3]);
    append(&r, "del nothing", &d[4]);
    append(&r, "io", &d[5]);
    gate_open();
    run_wait(&r, 6);
    assert_true(d[1].pos == 2 && d[1].status == 0);
    assert_true(d[2].pos == 3 && d[2].status == STATUS_CONFLICT);
    assert_string_equal(d[2].result, "seq 2 rejected"); /* the rejection's explanation */
    assert_true(d[3].pos == 4 && d[3].status == 0);
    assert_string_equal(d[3].result, "seq 2"); /* the rejected increment is gone */
    assert_true(d[4].pos == 5 && d[4].status == STATUS_NOT_FOUND);
    assert_true(d[5].pos == 0 && d[5].status == STATUS_IO); /* no position */
    assert_string_equal(d[5].result, "");
    assert_true(journal_applied_pos(r.journal) == 5);
    char v[64];
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "a", v, sizeof v), 0);
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "b", v, sizeof v), STATUS_NOT_FOUND);
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "io", v, sizeof v), STATUS_NOT_FOUND);
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "c", v, sizeof v), 0);
    assert_string_equal(v, "3");
    uint8_t seq8[8];
    key_put_u64(seq8, 2);
    struct buf b;
    buf_init(&b);
    assert_int_equal(store_get(r.store, CF_MESSAGES, seq8, 8, &b), 0);
    assert_memory_equal(b.data, "c=3@4", 5);
    key_put_u64(seq8, 3);
    assert_int_equal(store_get(r.store, CF_MESSAGES, seq8, 8, &b), STATUS_NOT_FOUND);
    buf_cleanup(&b);
    /* the next entry continues after the consumed positions */
    struct done next = {0};
    append(&r, "put e 5", &next);
    run_wait(&r, 7);
    assert_true(next.pos == 6);
    run_close(&r);
    free(dir);
}

/* Appends the recorded entries one by one or all at once (varying batches). */
static void replay(const char *dir, char **entries, int n, size_t max_batch, bool wait_each,
                   struct done *done) {
    static struct run r;
    run_open(&r, dir, max_batch, 0);
    for (int i = 0; i < n; i++) {
        append(&r, entries[i], &done[i]);
        if (wait_each)
            run_wait(&r, (size_t)i + 1);
    }
    run_wait(&r, (size_t)n);
    run_close(&r);
}

struct dump {
    struct buf b;
};

static bool dump_record(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len) {
    struct dump *d = ctx;
    buf_append_varint(&d->b, key_len);
    buf_append(&d->b, key, key_len);
    buf_append_varint(&d->b, value_len);
    buf_append(&d->b, value, value_len);
    return true;
}

/* Every cf's opened contents, in key order. */
static void dump_store(const char *dir, struct buf *out) {
    struct store_config cfg = {.data_dir = dir};
    struct store *s = NULL;
    assert_int_equal(store_open(&cfg, &s), 0);
    struct dump d;
    buf_init(&d.b);
    for (int cf = 0; cf < CF_COUNT; cf++) {
        buf_printf(&d.b, "[%s]", store_cf_name((enum store_cf)cf));
        int n = store_scan(s, (enum store_cf)cf, NULL, 0, NULL, 0, 100000, dump_record, &d);
        assert_true(n >= 0 && n < 100000);
    }
    store_close(s);
    *out = d.b;
}

static void test_journal_replay_is_deterministic(void **state) {
    enum { N = 400 };
    static char *entries[N];
    static struct done done1[N], done2[N];
    memset(done1, 0, sizeof done1);
    memset(done2, 0, sizeof done2);
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(x >> 33);
        char cmd[64];
        switch (r % 6) {
        case 0:
            snprintf(cmd, sizeof cmd, "bad k%u v%d", r % 17, i);
            break;
        case 1:
            snprintf(cmd, sizeof cmd, "del k%u", r % 17);
            break;
        default:
            snprintf(cmd, sizeof cmd, "put k%u v%d", r % 17, i);
        }
        entries[i] = strdup(cmd);
    }
    char *dir1 = testutil_fresh_dir("journal-replay-1");
    char *dir2 = testutil_fresh_dir("journal-replay-2");
    replay(dir1, entries, N, 0, false, done1); /* large batches */
    replay(dir2, entries, N, 1, true, done2);  /* one entry per batch */
    for (int i = 0; i < N; i++) {
        assert_int_equal(done1[i].calls, 1);
        assert_int_equal(done2[i].calls, 1);
        assert_true(done1[i].pos == done2[i].pos);
        assert_int_equal(done1[i].status, done2[i].status);
        assert_string_equal(done1[i].result, done2[i].result);
    }
    struct buf a, b;
    dump_store(dir1, &a);
    dump_store(dir2, &b);
    assert_true(a.len > 1000);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    buf_cleanup(&a);
    buf_cleanup(&b);
    for (int i = 0; i < N; i++)
        free(entries[i]);
    free(dir1);
    free(dir2);
}

static void test_journal_reopen_keeps_values_and_position(void **state) {
    char *dir = testutil_fresh_dir("journal-reopen");
    static struct run r;
    struct done d[3] = {{0}};
    run_open(&r, dir, 0, 0);
    append(&r, "put x 1", &d[0]);
    append(&r, "put y 2", &d[1]);
    run_wait(&r, 2);
    run_close(&r);
    run_open(&r, dir, 0, 0);
    assert_true(journal_applied_pos(r.journal) == 2);
    char v[64];
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "y", v, sizeof v), 0);
    assert_string_equal(v, "2");
    append(&r, "put z 3", &d[2]);
    run_wait(&r, 1);
    assert_true(d[2].pos == 3);
    assert_string_equal(d[2].result, "seq 3");
    run_close(&r);
    free(dir);
}

static void test_journal_free_space_guard_stores_nothing(void **state) {
    char *dir = testutil_fresh_dir("journal-space");
    static struct run r;
    struct done d[3] = {{0}};
    gate_reset();
    run_open(&r, dir, 0, 0);
    /* refused at the door */
    store_set_min_free_bytes(r.store, UINT64_MAX);
    assert_int_equal(journal_append(r.journal, (const uint8_t *)"put a 1", 7, on_done, &d[0]),
                     STATUS_UNAVAILABLE);
    store_set_min_free_bytes(r.store, 0);
    /* refused at commit: the disk filled while the batch was being applied */
    append(&r, "gate", &d[0]);
    gate_wait_entered();
    append(&r, "put b 2", &d[1]);
    store_set_min_free_bytes(r.store, UINT64_MAX);
    gate_open();
    run_wait(&r, 2);
    assert_true(d[0].pos == 0 && d[0].status == STATUS_UNAVAILABLE);
    assert_true(d[1].pos == 0 && d[1].status == STATUS_UNAVAILABLE);
    assert_string_equal(d[1].result, "");
    assert_true(journal_applied_pos(r.journal) == 0);
    char v[64];
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "b", v, sizeof v), STATUS_NOT_FOUND);
    struct journal_stats st;
    journal_get_stats(r.journal, &st);
    assert_true(st.failed == 2 && st.batches == 0);
    /* with room again, positions start where they were */
    store_set_min_free_bytes(r.store, 1);
    append(&r, "put c 3", &d[2]);
    run_wait(&r, 3);
    assert_true(d[2].pos == 1 && d[2].status == 0);
    run_close(&r);
    /* nothing of a, b survived in any cf */
    struct buf dump;
    dump_store(dir, &dump);
    assert_null(memmem(dump.data, dump.len, "b=2", 3));
    assert_non_null(memmem(dump.data, dump.len, "c=3@1", 5));
    buf_cleanup(&dump);
    free(dir);
}

static void test_journal_append_wait_returns_the_entry_status(void **state) {
    char *dir = testutil_fresh_dir("journal-wait");
    static struct run r;
    gate_reset();
    run_open(&r, dir, 0, 0);
    assert_int_equal(journal_append_wait(r.journal, (const uint8_t *)"put a 1", 7, DEADLINE_MS), 0);
    assert_true(journal_applied_pos(r.journal) == 1);
    assert_int_equal(journal_append_wait(r.journal, (const uint8_t *)"bad b 2", 7, DEADLINE_MS),
                     STATUS_CONFLICT);
    assert_int_equal(journal_append_wait(r.journal, (const uint8_t *)"io", 2, DEADLINE_MS),
                     STATUS_IO);
    store_set_min_free_bytes(r.store, UINT64_MAX);
    assert_int_equal(journal_append_wait(r.journal, (const uint8_t *)"put c 3", 7, DEADLINE_MS),
                     STATUS_UNAVAILABLE);
    store_set_min_free_bytes(r.store, 0);
    /* an entry that does not complete in time is given up; its completion,
     * run later by journal_close(), touches nothing of the caller's */
    assert_int_equal(journal_append_wait(r.journal, (const uint8_t *)"gate", 4, 50), STATUS_IO);
    gate_open();
    char v[64];
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "a", v, sizeof v), 0);
    assert_string_equal(v, "1");
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "b", v, sizeof v), STATUS_NOT_FOUND);
    assert_int_equal(stored(r.store, CF_ACCOUNTS, "c", v, sizeof v), STATUS_NOT_FOUND);
    run_close(&r);
    free(dir);
}

static void test_journal_close_drains_and_refuses_when_full(void **state) {
    char *dir = testutil_fresh_dir("journal-close");
    static struct run r;
    static struct done d[64];
    memset(d, 0, sizeof d);
    gate_reset();
    run_open(&r, dir, 0, 4);
    append(&r, "gate", &d[0]);
    gate_wait_entered();
    for (int i = 1; i <= 4; i++)
        append(&r, "put q 1", &d[i]);
    /* max_pending 4: the fifth waiting entry is refused and never completes */
    assert_int_equal(journal_append(r.journal, (const uint8_t *)"put q 2", 7, on_done, &d[5]),
                     STATUS_UNAVAILABLE);
    gate_open();
    /* close without polling: every accepted entry is written and completed */
    journal_close(r.journal);
    for (int i = 0; i <= 4; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].status, 0);
        assert_true(d[i].pos == (uint64_t)i + 1);
    }
    assert_int_equal(d[5].calls, 0);
    store_close(r.store);
    testutil_waker_cleanup(&r.waker);
    current_run = NULL;
    journal_close(NULL);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_group_commit_from_many_threads),
        cmocka_unit_test(test_journal_batches_everything_pending),
        cmocka_unit_test(test_journal_rejected_entry_rolls_back_but_consumes_its_position),
        cmocka_unit_test(test_journal_replay_is_deterministic),
        cmocka_unit_test(test_journal_reopen_keeps_values_and_position),
        cmocka_unit_test(test_journal_free_space_guard_stores_nothing),
        cmocka_unit_test(test_journal_append_wait_returns_the_entry_status),
        cmocka_unit_test(test_journal_close_drains_and_refuses_when_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
