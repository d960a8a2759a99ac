/*
 * storage/store_test.c: the store against real RocksDB in $TEST_TMPDIR: round
 * trips through transactions, scans, tamper and move detection on the raw
 * database, no plaintext on disk, the free-space guard, reopening, and that
 * opening never creates (nor creating overwrites) a database.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <rocksdb/c.h>

#include "base/buf.h"
#include "base/status.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/store.h"
#include "storage/store_internal.h"
#include "storage/testutil.h"

static struct store *open_store(const char *dir) {
    struct store_config cfg = {.data_dir = dir, .mode = testutil_store_mode(dir)};
    struct store *s = NULL;
    assert_int_equal(store_open(&cfg, &s), 0);
    return s;
}

static struct id make_id(uint8_t fill) {
    struct id id;
    memset(id.b, fill, ID_LEN);
    return id;
}

static void put_one(struct store *s, enum store_cf cf, const void *key, size_t key_len,
                    const struct id *owner, const char *value) {
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, cf, key, key_len, owner, value, strlen(value)), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
}

static void expect_stored(struct store *s, enum store_cf cf, const void *key, size_t key_len,
                          const char *want) {
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(s, cf, key, key_len, &v), 0);
    assert_int_equal(v.len, strlen(want));
    assert_memory_equal(v.data, want, v.len);
    buf_cleanup(&v);
}

static int get_status(struct store *s, enum store_cf cf, const void *key, size_t key_len) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(s, cf, key, key_len, &v);
    buf_cleanup(&v);
    return rc;
}

/* A read's outcome: `rc` and the value `v` are `want`, or NULL for none. */
static void expect_read(int rc, const struct buf *v, const char *want) {
    if (want == NULL) {
        assert_int_equal(rc, STATUS_NOT_FOUND);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(v->len, strlen(want));
        assert_memory_equal(v->data, want, v->len);
    }
}

/* What `r` reads for `key` of CF_ACCOUNTS: its value, or NULL for none. */
static void expect_reader(struct store_reader *r, const struct id *key, const char *want) {
    struct buf v;
    buf_init(&v);
    expect_read(store_reader_get(r, CF_ACCOUNTS, key->b, ID_LEN, &v), &v, want);
    buf_cleanup(&v);
}

/* The same, and whether it came from the reader's cache (true) or from the
 * database (false). */
static void expect_reader_from(struct store_reader *r, const struct id *key, const char *want,
                               bool cached) {
    struct store_read_cache_stats before = store_reader_stats(r);
    expect_reader(r, key, want);
    struct store_read_cache_stats after = store_reader_stats(r);
    assert_int_equal(after.hits - before.hits, cached ? 1 : 0);
    assert_int_equal(after.misses - before.misses, cached ? 0 : 1);
}

/* A reader sees every commit before its next read, whatever it cached, and
 * serves a record it holds from its cache after a commit rewrote or deleted
 * it: changed and deleted records, a rolled-back write, many keys at once
 * (past its queue's bound), and nothing of an owner whose data key was
 * destroyed, even by a commit that sealed a value under it first. */
static void test_store_reader_sees_every_commit(void **state) {
    char *dir = testutil_fresh_dir("store-reader");
    struct store *s = open_store(dir);
    struct store_reader *r = store_reader_new(s);
    struct id a = make_id(0x31), owner = make_id(0x32), b = make_id(0x33);
    expect_reader_from(r, &a, NULL, false);
    put_one(s, CF_ACCOUNTS, a.b, ID_LEN, &owner, "first");
    expect_reader_from(r, &a, "first", true); /* its absence replaced */
    put_one(s, CF_ACCOUNTS, a.b, ID_LEN, &owner, "second");
    expect_reader_from(r, &a, "second", true);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_delete(t, CF_ACCOUNTS, a.b, ID_LEN), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    expect_reader_from(r, &a, NULL, true);
    /* A key it never read is not taken from a commit: read when needed. */
    put_one(s, CF_ACCOUNTS, b.b, ID_LEN, &owner, "other");
    expect_reader_from(r, &b, "other", false);
    /* Several writes of a key in one commit: the last one counts. */
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, a.b, ID_LEN, &owner, "interim", 7), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, a.b, ID_LEN, &owner, "third", 5), 0);
    assert_int_equal(txn_delete(t, CF_ACCOUNTS, b.b, ID_LEN), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    expect_reader_from(r, &a, "third", true);
    expect_reader_from(r, &b, NULL, true);
    /* A rolled-back write is no commit: the cached value stays right. */
    assert_int_equal(store_txn_begin(s, &t), 0);
    store_txn_savepoint(t);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, a.b, ID_LEN, &owner, "never", 5), 0);
    store_txn_rollback(t);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, b.b, ID_LEN, &owner, "kept", 4), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    expect_reader_from(r, &a, "third", true);
    expect_reader_from(r, &b, "kept", true);
    /* 70,000 keys in one commit overflow its queue: it drops everything. */
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, a.b, ID_LEN, &owner, "fourth", 6), 0);
    for (uint32_t i = 0; i < 70000; i++) {
        uint8_t k[ID_LEN] = {0x40};
        memcpy(k + 1, &i, sizeof i);
        assert_int_equal(txn_put(t, CF_ACCOUNTS, k, sizeof k, &owner, "x", 1), 0);
    }
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    expect_reader_from(r, &a, "fourth", false);
    expect_reader_from(r, &b, "kept", false);
    /* The owner's data key destroyed: the cached record is gone with it. */
    expect_reader_from(r, &a, "fourth", true);
    assert_int_equal(keystore_destroy(store_keystore(s), &owner), 0);
    struct buf v;
    buf_init(&v);
    assert_true(store_reader_get(r, CF_ACCOUNTS, a.b, ID_LEN, &v) != 0);
    /* A value sealed under a key destroyed before its commit is published:
     * the reader, which learnt of the destroy before the commit and holds
     * the key as absent, must not take it. */
    struct id owner2 = make_id(0x34);
    put_one(s, CF_ACCOUNTS, b.b, ID_LEN, &owner2, "fifth");
    expect_reader(r, &b, "fifth");
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, b.b, ID_LEN, &owner2, "sixth", 5), 0);
    assert_int_equal(keystore_destroy(store_keystore(s), &owner2), 0);
    assert_int_equal(store_reader_get(r, CF_ACCOUNTS, b.b, ID_LEN, &v), STATUS_NOT_FOUND);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    assert_int_equal(get_status(s, CF_ACCOUNTS, b.b, ID_LEN), STATUS_NOT_FOUND);
    assert_int_equal(store_reader_get(r, CF_ACCOUNTS, b.b, ID_LEN, &v), STATUS_NOT_FOUND);
    buf_cleanup(&v);
    store_reader_free(r);
    store_close(s);
    free(dir);
}

static void test_store_cf_names_are_stable(void **state) {
    assert_string_equal(store_cf_name(CF_META), "meta");
    assert_string_equal(store_cf_name(CF_MESSAGES), "messages");
    assert_string_equal(store_cf_name(CF_CHUNKS), "chunks");
    assert_string_equal(store_cf_name(CF_AUDIT), "audit");
    assert_string_equal(store_cf_name(CF_KEY_BACKUP), "key_backup");
    for (int i = 0; i < CF_COUNT; i++)
        for (int j = i + 1; j < CF_COUNT; j++)
            assert_string_not_equal(store_cf_name((enum store_cf)i),
                                    store_cf_name((enum store_cf)j));
}

static void test_store_txn_reads_its_own_writes(void **state) {
    char *dir = testutil_fresh_dir("store-own-writes");
    struct store *s = open_store(dir);
    struct id patient = make_id(7);
    struct store_txn *t = NULL;
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, "a", 1, &patient, "one", 3), 0);
    assert_int_equal(txn_get(t, CF_ACCOUNTS, "a", 1, &v), 0);
    assert_memory_equal(v.data, "one", 3);
    /* not visible outside the transaction before commit */
    assert_int_equal(get_status(s, CF_ACCOUNTS, "a", 1), STATUS_NOT_FOUND);
    /* a second write of the same key wins; a savepoint brings the first back */
    store_txn_savepoint(t);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, "a", 1, &patient, "two", 3), 0);
    assert_int_equal(txn_put(t, CF_DEVICES, "d", 1, NULL, "dev", 3), 0);
    assert_int_equal(txn_get(t, CF_ACCOUNTS, "a", 1, &v), 0);
    assert_memory_equal(v.data, "two", 3);
    store_txn_rollback(t);
    assert_int_equal(txn_get(t, CF_ACCOUNTS, "a", 1, &v), 0);
    assert_memory_equal(v.data, "one", 3);
    assert_int_equal(txn_get(t, CF_DEVICES, "d", 1, &v), STATUS_NOT_FOUND);
    /* deletes are visible too */
    assert_int_equal(txn_put(t, CF_ACCOUNTS, "b", 1, NULL, "bee", 3), 0);
    assert_int_equal(txn_delete(t, CF_ACCOUNTS, "b", 1), 0);
    assert_int_equal(txn_get(t, CF_ACCOUNTS, "b", 1, &v), STATUS_NOT_FOUND);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    expect_stored(s, CF_ACCOUNTS, "a", 1, "one");
    assert_int_equal(get_status(s, CF_ACCOUNTS, "b", 1), STATUS_NOT_FOUND);
    assert_int_equal(get_status(s, CF_DEVICES, "d", 1), STATUS_NOT_FOUND);
    /* a committed value read through a new transaction */
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_get(t, CF_ACCOUNTS, "a", 1, &v), 0);
    assert_memory_equal(v.data, "one", 3);
    store_txn_free(t);
    buf_cleanup(&v);
    store_close(s);
    free(dir);
}

/* A transaction's log is kept for the next one (store_txn_free()): an
 * abandoned transaction leaves nothing behind in it, a big one (its
 * plaintexts moved as the log grew, rolled back in part) reads and commits
 * every value it kept, and so does a small one after it. */
static void test_store_txn_log_reused_after_free(void **state) {
    char *dir = testutil_fresh_dir("store-txn-log");
    struct store *s = open_store(dir);
    struct store_txn *t = NULL;
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_OUTBOX, "gone", 4, NULL, "never", 5), 0);
    store_txn_free(t); /* abandoned */
    enum { N = 6000 };
    for (int round = 0; round < 2; round++) {
        assert_int_equal(store_txn_begin(s, &t), 0);
        assert_int_equal(txn_get(t, CF_OUTBOX, "gone", 4, &v), STATUS_NOT_FOUND);
        for (int i = 0; i < N; i++) {
            if (i == N / 2)
                store_txn_savepoint(t);
            char key[16], value[64];
            int kl = snprintf(key, sizeof key, "k%d", i);
            int vl = snprintf(value, sizeof value, "value %d of round %d", i, round);
            assert_int_equal(txn_put(t, CF_OUTBOX, key, (size_t)kl, NULL, value, (size_t)vl), 0);
        }
        store_txn_rollback(t); /* the second half */
        assert_int_equal(txn_put(t, CF_OUTBOX, "last", 4, NULL, "after", 5), 0);
        for (int i = 0; i < N; i += 499) {
            char key[16], want[64];
            int kl = snprintf(key, sizeof key, "k%d", i);
            snprintf(want, sizeof want, "value %d of round %d", i, round);
            int rc = txn_get(t, CF_OUTBOX, key, (size_t)kl, &v);
            expect_read(rc, &v, i < N / 2 ? want : NULL);
        }
        assert_int_equal(store_txn_commit(t), 0);
        store_txn_free(t);
        expect_stored(s, CF_OUTBOX, "k0", 2, round ? "value 0 of round 1" : "value 0 of round 0");
        expect_stored(s, CF_OUTBOX, "last", 4, "after");
    }
    assert_int_equal(get_status(s, CF_OUTBOX, "gone", 4), STATUS_NOT_FOUND);
    assert_int_equal(get_status(s, CF_OUTBOX, "k5999", 5), STATUS_NOT_FOUND);
    buf_cleanup(&v);
    store_close(s);
    free(dir);
}

/* What txn_view() shows for `key` of CF_OUTBOX: its value, or NULL for
 * none; txn_get() of the same key must agree. */
static void expect_view(struct store_txn *t, const char *key, const char *want) {
    const uint8_t *data = NULL;
    size_t len = 0;
    int rc = txn_view(t, CF_OUTBOX, key, strlen(key), &data, &len);
    if (want == NULL) {
        assert_int_equal(rc, STATUS_NOT_FOUND);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(data, want, len);
    }
    struct buf v;
    buf_init(&v);
    expect_read(txn_get(t, CF_OUTBOX, key, strlen(key), &v), &v, want);
    buf_cleanup(&v);
}

/* txn_view() answers, without a copy, from each place a value can be: the
 * database (a read the cache has not seen), the read cache, the
 * transaction's own log (a put, a delete), and an absence. */
static void test_store_txn_view_from_each_source(void **state) {
    char *dir = testutil_fresh_dir("store-view");
    struct store *s = open_store(dir);
    put_one(s, CF_OUTBOX, "db", 2, NULL, "stored");
    put_one(s, CF_OUTBOX, "other", 5, NULL, "second");
    store_close(s); /* reopened with an empty read cache */
    s = open_store(dir);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    struct store_read_cache_stats before = store_read_cache_stats(s);
    expect_view(t, "db", "stored"); /* the view from the database, txn_get's from the cache */
    assert_int_equal(store_read_cache_stats(s).misses, before.misses + 1);
    assert_int_equal(store_read_cache_stats(s).hits, before.hits + 1);
    expect_view(t, "other", "second");
    expect_view(t, "db", "stored");
    expect_view(t, "none", NULL);
    assert_int_equal(txn_put(t, CF_OUTBOX, "db", 2, NULL, "written", 7), 0);
    expect_view(t, "db", "written");
    assert_int_equal(txn_delete(t, CF_OUTBOX, "other", 5), 0);
    expect_view(t, "other", NULL);
    store_txn_free(t);
    store_close(s);
    free(dir);
}

/* What a transaction reads for `key` of CF_OUTBOX: its value, or NULL for
 * none. */
static void expect_txn(struct store_txn *t, const char *key, const char *want) {
    struct buf v;
    buf_init(&v);
    expect_read(txn_get(t, CF_OUTBOX, key, strlen(key), &v), &v, want);
    buf_cleanup(&v);
}

/* The read cache remembers absent keys, and never answers "absent" for a key
 * written since: by a later commit, by the transaction itself, or after a
 * rollback brought the absence back; a committed delete is absent again. */
static void test_store_txn_cache_knows_absent_keys(void **state) {
    char *dir = testutil_fresh_dir("store-absent");
    struct store *s = open_store(dir);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    expect_txn(t, "reg-1", NULL);
    expect_txn(t, "reg-1", NULL);
    uint64_t hits = store_read_cache_stats(s).hits;
    expect_txn(t, "reg-1", NULL);
    assert_int_equal(store_read_cache_stats(s).hits, hits + 1); /* absent, from the cache */
    assert_int_equal(txn_put(t, CF_OUTBOX, "reg-1", 5, NULL, "one", 3), 0);
    expect_txn(t, "reg-1", "one");
    store_txn_savepoint(t);
    assert_int_equal(txn_put(t, CF_OUTBOX, "reg-2", 5, NULL, "two", 3), 0);
    store_txn_rollback(t);
    expect_txn(t, "reg-2", NULL);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    expect_stored(s, CF_OUTBOX, "reg-1", 5, "one");

    assert_int_equal(store_txn_begin(s, &t), 0);
    expect_txn(t, "reg-1", "one");
    expect_txn(t, "reg-2", NULL);
    assert_int_equal(txn_delete(t, CF_OUTBOX, "reg-1", 5), 0);
    expect_txn(t, "reg-1", NULL);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    put_one(s, CF_OUTBOX, "reg-2", 5, NULL, "two");

    assert_int_equal(store_txn_begin(s, &t), 0);
    hits = store_read_cache_stats(s).hits;
    expect_txn(t, "reg-1", NULL);
    expect_txn(t, "reg-2", "two");
    assert_int_equal(store_read_cache_stats(s).hits, hits + 2); /* both published */
    store_txn_free(t);
    assert_int_equal(get_status(s, CF_OUTBOX, "reg-1", 5), STATUS_NOT_FOUND);
    /* Absent only in an abandoned transaction: the value stays. */
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_delete(t, CF_OUTBOX, "reg-2", 5), 0);
    expect_txn(t, "reg-2", NULL);
    store_txn_free(t);
    /* A rollback to a savepoint brings the committed value back, which the
     * cache kept through the write. */
    assert_int_equal(store_txn_begin(s, &t), 0);
    expect_txn(t, "reg-2", "two");
    store_txn_savepoint(t);
    assert_int_equal(txn_put(t, CF_OUTBOX, "reg-2", 5, NULL, "three", 5), 0);
    expect_txn(t, "reg-2", "three");
    store_txn_rollback(t);
    hits = store_read_cache_stats(s).hits;
    expect_txn(t, "reg-2", "two");
    assert_int_equal(store_read_cache_stats(s).hits, hits + 1);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    expect_stored(s, CF_OUTBOX, "reg-2", 5, "two");
    store_close(s);
    free(dir);
}

/* In CF_CONVERSATIONS the cache keeps records (an id) and two-id indexes,
 * never the accounts' conversation index (tag | id | time | id), which apply
 * only writes and listings only scan: its deleted keys would otherwise pile
 * up as absent entries (as when an older server's messages moved them). */
static void test_store_cache_skips_the_activity_index(void **state) {
    char *dir = testutil_fresh_dir("store-activity");
    struct store *s = open_store(dir);
    uint8_t record[ID_LEN] = {1}, pair[1 + 2 * ID_LEN] = {2},
            activity[1 + ID_LEN + 8 + ID_LEN] = {1};
    size_t before = store_read_cache_stats(s).entries;
    for (int i = 0; i < 100; i++) { /* an entry moved a hundred times */
        struct store_txn *t = NULL;
        assert_int_equal(store_txn_begin(s, &t), 0);
        activity[1 + ID_LEN + 7] = (uint8_t)i;
        if (i > 0) {
            activity[1 + ID_LEN + 7] = (uint8_t)(i - 1);
            assert_int_equal(txn_delete(t, CF_CONVERSATIONS, activity, sizeof activity), 0);
            activity[1 + ID_LEN + 7] = (uint8_t)i;
        }
        assert_int_equal(txn_put(t, CF_CONVERSATIONS, activity, sizeof activity, NULL, "c", 1), 0);
        assert_int_equal(store_txn_commit(t), 0);
        store_txn_free(t);
    }
    assert_int_equal(store_read_cache_stats(s).entries, before);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_CONVERSATIONS, record, sizeof record, NULL, "r", 1), 0);
    assert_int_equal(txn_put(t, CF_CONVERSATIONS, pair, sizeof pair, NULL, "p", 1), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    assert_int_equal(store_read_cache_stats(s).entries, before + 2);
    expect_stored(s, CF_CONVERSATIONS, activity, sizeof activity, "c");
    store_close(s);
    free(dir);
}

struct collected {
    int n;
    uint64_t seqs[64];
    int stop_after; /* 0: never stop */
};

static bool collect(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len) {
    struct collected *c = ctx;
    uint64_t seq = 0;
    assert_int_equal(key_read_u64(key, key_len, ID_LEN, &seq), 0);
    char want[32];
    snprintf(want, sizeof want, "message %llu", (unsigned long long)seq);
    assert_int_equal(value_len, strlen(want));
    assert_memory_equal(value, want, value_len);
    c->seqs[c->n++] = seq;
    return c->stop_after == 0 || c->n < c->stop_after;
}

static void test_store_scan_prefix_after_and_limit(void **state) {
    char *dir = testutil_fresh_dir("store-scan");
    struct store *s = open_store(dir);
    struct id conv_a = make_id(0x11), conv_b = make_id(0x11);
    conv_b.b[ID_LEN - 1] = 0x12; /* sorts right after conv_a's range */
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    for (uint64_t seq = 1; seq <= 50; seq++) {
        char value[32];
        struct key k;
        key_id_u64(&k, &conv_a, seq * 1000); /* not contiguous: clients never assume +1 */
        snprintf(value, sizeof value, "message %llu", (unsigned long long)seq * 1000);
        assert_int_equal(txn_put(t, CF_MESSAGES, k.b, k.len, NULL, value, strlen(value)), 0);
        if (seq <= 10) {
            key_id_u64(&k, &conv_b, seq);
            snprintf(value, sizeof value, "message %llu", (unsigned long long)seq);
            assert_int_equal(txn_put(t, CF_MESSAGES, k.b, k.len, NULL, value, strlen(value)), 0);
        }
    }
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);

    struct collected c = {0};
    assert_int_equal(store_scan(s, CF_MESSAGES, conv_a.b, ID_LEN, NULL, 0, 20, collect, &c), 20);
    assert_int_equal(c.n, 20);
    for (int i = 0; i < 20; i++)
        assert_true(c.seqs[i] == (uint64_t)(i + 1) * 1000);
    /* next page: after the last key seen */
    struct key after;
    key_id_u64(&after, &conv_a, 20000);
    memset(&c, 0, sizeof c);
    assert_int_equal(
        store_scan(s, CF_MESSAGES, conv_a.b, ID_LEN, after.b, after.len, 64, collect, &c), 30);
    assert_true(c.seqs[0] == 21000);
    assert_true(c.seqs[29] == 50000);
    /* a key between stored ones also works as `after` */
    key_id_u64(&after, &conv_a, 49999);
    memset(&c, 0, sizeof c);
    assert_int_equal(
        store_scan(s, CF_MESSAGES, conv_a.b, ID_LEN, after.b, after.len, 64, collect, &c), 1);
    /* the callback can stop the scan */
    memset(&c, 0, sizeof c);
    c.stop_after = 3;
    assert_int_equal(store_scan(s, CF_MESSAGES, conv_b.b, ID_LEN, NULL, 0, 64, collect, &c), 3);
    /* other prefixes do not leak into the range */
    memset(&c, 0, sizeof c);
    assert_int_equal(store_scan(s, CF_MESSAGES, conv_b.b, ID_LEN, NULL, 0, 64, collect, &c), 10);
    assert_true(c.seqs[9] == 10);
    struct id none = make_id(0x11);
    none.b[ID_LEN - 1] = 0x13;
    memset(&c, 0, sizeof c);
    assert_int_equal(store_scan(s, CF_MESSAGES, none.b, ID_LEN, NULL, 0, 64, collect, &c), 0);
    assert_int_equal(store_scan(s, CF_MESSAGES, conv_a.b, ID_LEN, NULL, 0, 0, collect, &c), 0);
    store_close(s);
    free(dir);
}

/* Keys in the order a scan visited them (or expected), each record's value
 * being its key. */
struct keyset {
    size_t n;
    struct key k[512];
};

static void keyset_add(struct keyset *ks, const uint8_t *key, size_t key_len) {
    assert_true(ks->n < sizeof ks->k / sizeof ks->k[0] && key_len <= KEY_MAX);
    memcpy(ks->k[ks->n].b, key, key_len);
    ks->k[ks->n++].len = key_len;
}

static bool collect_key(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len) {
    assert_int_equal(value_len, key_len);
    assert_memory_equal(value, key, key_len);
    keyset_add(ctx, key, key_len);
    return true;
}

static int compare_keys(const void *a, const void *b) {
    const struct key *ka = a, *kb = b;
    return key_compare(ka->b, ka->len, kb->b, kb->len);
}

/* Scans CF_INBOXES under `prefix` in pages of `page` records, each after the
 * last key of the one before, as a client pages with a cursor. */
static void scan_in_pages(struct store *s, const uint8_t *prefix, size_t prefix_len, size_t page,
                          struct keyset *got) {
    int n;
    do {
        size_t before = got->n;
        const struct key *after = before ? &got->k[before - 1] : NULL;
        n = store_scan(s, CF_INBOXES, prefix, prefix_len, after ? after->b : NULL,
                       after ? after->len : 0, page, collect_key, got);
        assert_true(n >= 0);
        assert_int_equal((size_t)n, got->n - before);
    } while (n > 0);
}

/* That `got` holds exactly the keys of the sorted `all` that start with
 * `prefix`, in order. */
static void expect_keys(const struct keyset *all, const uint8_t *prefix, size_t prefix_len,
                        const struct keyset *got) {
    size_t j = 0;
    for (size_t i = 0; i < all->n; i++) {
        if (!key_has_prefix(all->k[i].b, all->k[i].len, prefix, prefix_len))
            continue;
        assert_true(j < got->n);
        assert_int_equal(compare_keys(&got->k[j], &all->k[i]), 0);
        j++;
    }
    assert_int_equal(got->n, j);
}

/* CF_INBOXES has a 16-byte prefix extractor. Keys of 40 parents written in
 * three SST files (three flushes, below the level-0 compaction trigger), each
 * file with parent ids of its own interleaved in key order: paging through
 * the whole column family or a 1-byte prefix seeks to a cursor whose 16-byte
 * prefix only one file holds, and must still visit the other files' keys.
 * Keys shorter than the prefix (outside the extractor's domain) and a scan by
 * a full parent id (prefix mode) work too. */
static void test_store_scan_pages_across_sst_files(void **state) {
    char *dir = testutil_fresh_dir("store-scan-sst");
    struct store *s = open_store(dir);
    static struct keyset all, got;
    memset(&all, 0, sizeof all);
    for (uint8_t file = 0; file < 3; file++) {
        struct store_txn *t = NULL;
        assert_int_equal(store_txn_begin(s, &t), 0);
        for (uint8_t parent = 0; parent < 40; parent++) {
            struct id id;
            memset(id.b, 0x5a, ID_LEN);
            id.b[0] = parent;
            id.b[1] = file;
            struct key k;
            key_id(&k, &id); /* an inbox head: the prefix alone */
            for (uint64_t pos = 0; pos <= 3; pos++) {
                if (pos > 0)
                    key_id_u64(&k, &id, pos);
                assert_int_equal(txn_put(t, CF_INBOXES, k.b, k.len, NULL, k.b, k.len), 0);
                keyset_add(&all, k.b, k.len);
            }
        }
        if (file == 0) {
            static const uint8_t short1[1] = {7}, short8[8] = {7, 0xee, 1, 2, 3, 4, 5, 6};
            assert_int_equal(txn_put(t, CF_INBOXES, short1, 1, NULL, short1, 1), 0);
            assert_int_equal(txn_put(t, CF_INBOXES, short8, 8, NULL, short8, 8), 0);
            keyset_add(&all, short1, 1);
            keyset_add(&all, short8, 8);
        }
        assert_int_equal(store_txn_commit(t), 0);
        store_txn_free(t);
        assert_int_equal(store_flush(s), 0);
    }
    qsort(all.k, all.n, sizeof all.k[0], compare_keys);

    memset(&got, 0, sizeof got);
    scan_in_pages(s, NULL, 0, 5, &got);
    expect_keys(&all, NULL, 0, &got);
    assert_int_equal(got.n, 3 * 40 * 4 + 2);

    static const uint8_t seven[1] = {7};
    memset(&got, 0, sizeof got);
    scan_in_pages(s, seven, 1, 2, &got);
    expect_keys(&all, seven, 1, &got);
    assert_int_equal(got.n, 3 * 4 + 2);

    struct id parent;
    memset(parent.b, 0x5a, ID_LEN);
    parent.b[0] = 7;
    parent.b[1] = 1;
    memset(&got, 0, sizeof got);
    scan_in_pages(s, parent.b, ID_LEN, 1, &got);
    expect_keys(&all, parent.b, ID_LEN, &got);
    assert_int_equal(got.n, 4);
    store_close(s);
    free(dir);
}

/* Opens the raw RocksDB under DIR/db with every column family. */
static rocksdb_t *raw_open(const char *dir, rocksdb_column_family_handle_t **cfs,
                           rocksdb_options_t **opts) {
    char *path = testutil_path(dir, "db");
    const char *names[CF_COUNT + 1];
    const rocksdb_options_t *cf_opts[CF_COUNT + 1];
    *opts = rocksdb_options_create();
    names[0] = "default";
    cf_opts[0] = *opts;
    for (int i = 0; i < CF_COUNT; i++) {
        names[i + 1] = store_cf_name((enum store_cf)i);
        cf_opts[i + 1] = *opts;
    }
    char *err = NULL;
    rocksdb_t *db =
        rocksdb_open_column_families(*opts, path, CF_COUNT + 1, names, cf_opts, cfs, &err);
    assert_null(err);
    free(path);
    return db;
}

static void raw_close(rocksdb_t *db, rocksdb_column_family_handle_t **cfs,
                      rocksdb_options_t *opts) {
    for (int i = 0; i <= CF_COUNT; i++)
        rocksdb_column_family_handle_destroy(cfs[i]);
    rocksdb_close(db);
    rocksdb_options_destroy(opts);
}

static void test_store_moved_or_tampered_record_is_corrupt_and_logged(void **state) {
    char *dir = testutil_fresh_dir("store-moved");
    struct store *s = open_store(dir);
    struct id patient = make_id(0x42);
    put_one(s, CF_MESSAGES, "key-1", 5, &patient, "sealed ciphertext of a message");
    store_close(s);

    /* someone with access to the files copies the value elsewhere, flips a bit */
    rocksdb_column_family_handle_t *cfs[CF_COUNT + 1];
    rocksdb_options_t *opts;
    rocksdb_t *db = raw_open(dir, cfs, &opts);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(db, ro, cfs[CF_MESSAGES + 1], "key-1", 5, &len, &err);
    assert_non_null(v);
    /* the raw value is a seal, not the plaintext */
    assert_null(memmem(v, len, "ciphertext of", 13));
    rocksdb_put_cf(db, wo, cfs[CF_MESSAGES + 1], "key-2", 5, v, len, &err);
    rocksdb_put_cf(db, wo, cfs[CF_INBOXES + 1], "key-1", 5, v, len, &err);
    v[len - 1] ^= 0x01;
    rocksdb_put_cf(db, wo, cfs[CF_MESSAGES + 1], "key-3", 5, v, len, &err);
    assert_null(err);
    rocksdb_free(v);
    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_destroy(wo);
    raw_close(db, cfs, opts);

    s = open_store(dir);
    expect_stored(s, CF_MESSAGES, "key-1", 5, "sealed ciphertext of a message");
    testutil_capture_begin();
    int moved_key = get_status(s, CF_MESSAGES, "key-2", 5);
    int moved_cf = get_status(s, CF_INBOXES, "key-1", 5);
    int flipped = get_status(s, CF_MESSAGES, "key-3", 5);
    struct collected c = {0};
    int scanned = store_scan(s, CF_INBOXES, NULL, 0, NULL, 0, 10, collect, &c);
    char *log = testutil_capture_end();
    assert_int_equal(moved_key, STATUS_CORRUPT);
    assert_int_equal(moved_cf, STATUS_CORRUPT);
    assert_int_equal(flipped, STATUS_CORRUPT);
    assert_int_equal(scanned, STATUS_CORRUPT);
    assert_int_equal(c.n, 0);
    assert_non_null(strstr(log, "record messages/"));
    assert_non_null(strstr(log, "record inboxes/"));
    assert_non_null(strstr(log, "does not open"));
    free(log);
    store_close(s);
    free(dir);
}

static void test_store_plaintext_never_reaches_the_disk(void **state) {
    static const char marker[] = "Jane Doe, born 1984-02-29, HIV positive";
    char *dir = testutil_fresh_dir("store-plaintext");
    /* the search itself finds plaintext when it is there */
    char *control = testutil_path(dir, "control.txt");
    assert_int_equal(testutil_write_file(control, marker, sizeof marker - 1, 0600), 0);
    assert_true(testutil_tree_contains(dir, marker, sizeof marker - 1));
    unlink(control);
    free(control);

    struct store *s = open_store(dir);
    struct id patient = make_id(0x77);
    struct buf big;
    buf_init(&big);
    for (int i = 0; i < 1000; i++) /* large enough for a blob file */
        buf_append(&big, marker, sizeof marker - 1);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, "acct", 4, &patient, marker, sizeof marker - 1), 0);
    assert_int_equal(txn_put(t, CF_MESSAGES, "msg", 3, &patient, marker, sizeof marker - 1), 0);
    assert_int_equal(txn_put(t, CF_CHUNKS, "chunk", 5, &patient, big.data, big.len), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    /* in the WAL only */
    assert_false(testutil_tree_contains(dir, marker, sizeof marker - 1));
    assert_int_equal(store_flush(s), 0);
    /* in SST and blob files */
    assert_false(testutil_tree_contains(dir, marker, sizeof marker - 1));
    store_close(s);
    assert_false(testutil_tree_contains(dir, marker, sizeof marker - 1));
    /* and it is all still there */
    s = open_store(dir);
    expect_stored(s, CF_ACCOUNTS, "acct", 4, marker);
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(s, CF_CHUNKS, "chunk", 5, &v), 0);
    assert_int_equal(v.len, big.len);
    assert_memory_equal(v.data, big.data, big.len);
    buf_cleanup(&v);
    buf_cleanup(&big);
    store_close(s);
    free(dir);
}

static void test_store_reopen_keeps_values(void **state) {
    char *dir = testutil_fresh_dir("store-reopen");
    struct store *s = open_store(dir);
    struct id patient = make_id(3);
    put_one(s, CF_AUDIT, "a1", 2, NULL, "audit one");
    put_one(s, CF_FILES, "f1", 2, &patient, "file meta");
    uint8_t bi1[32], bi2[32], bi3[32];
    store_blind_index(s, "jane@example.org", 16, bi1);
    store_blind_index(s, "john@example.org", 16, bi2);
    assert_memory_not_equal(bi1, bi2, 32);
    assert_true(store_size_bytes(s) > 0);
    store_close(s);
    s = open_store(dir);
    expect_stored(s, CF_AUDIT, "a1", 2, "audit one");
    expect_stored(s, CF_FILES, "f1", 2, "file meta");
    store_blind_index(s, "jane@example.org", 16, bi3);
    assert_memory_equal(bi1, bi3, 32); /* the secret persists */
    store_close(s);
    /* another store has another secret */
    char *other = testutil_fresh_dir("store-reopen-other");
    s = open_store(other);
    store_blind_index(s, "jane@example.org", 16, bi3);
    assert_memory_not_equal(bi1, bi3, 32);
    store_close(s);
    free(other);
    free(dir);
}

static void test_store_refuses_a_foreign_key_store(void **state) {
    char *dir = testutil_fresh_dir("store-foreign");
    struct store *s = open_store(dir);
    put_one(s, CF_ACCOUNTS, "a", 1, NULL, "x");
    store_close(s);
    /* an empty key directory is no key store: refused, nothing generated in it */
    char *keys = testutil_fresh_dir("store-foreign-keys");
    struct store_config cfg = {.data_dir = dir, .key_dir = keys};
    s = NULL;
    testutil_capture_begin();
    int rc = store_open(&cfg, &s);
    char *log = testutil_capture_end();
    assert_int_equal(rc, STATUS_NOT_FOUND);
    assert_null(s);
    assert_non_null(strstr(log, "holds no key store"));
    free(log);
    char *generated = testutil_path(keys, "master.key");
    struct stat st;
    assert_int_not_equal(stat(generated, &st), 0);
    free(generated);
    /* the key store of another database: the check record cannot open */
    char *other = testutil_fresh_dir("store-foreign-other");
    store_close(open_store(other));
    char *other_keys = testutil_path(other, "keys");
    cfg.key_dir = other_keys;
    testutil_capture_begin();
    rc = store_open(&cfg, &s);
    log = testutil_capture_end();
    assert_int_equal(rc, STATUS_CORRUPT);
    assert_null(s);
    assert_non_null(strstr(log, "does not belong to this database"));
    free(log);
    free(other_keys);
    free(other);
    /* another master key over the right key directory */
    char *master = testutil_path(keys, "other.key");
    static const uint8_t other_master[32] = {9};
    assert_int_equal(testutil_write_file(master, other_master, 32, 0600), 0);
    struct store_config cfg2 = {.data_dir = dir, .master_key_path = master};
    testutil_capture_begin();
    rc = store_open(&cfg2, &s);
    log = testutil_capture_end();
    assert_int_equal(rc, STATUS_CORRUPT);
    assert_non_null(strstr(log, "wrapped by master key"));
    free(log);
    /* the original configuration still works */
    s = open_store(dir);
    expect_stored(s, CF_ACCOUNTS, "a", 1, "x");
    store_close(s);
    free(master);
    free(keys);
    free(dir);
}

static void test_store_free_space_guard_refuses_commits(void **state) {
    char *dir = testutil_fresh_dir("store-space");
    struct store *s = open_store(dir);
    assert_int_equal(store_check_space(s), 0);
    store_set_min_free_bytes(s, UINT64_MAX); /* more than any volume has */
    assert_int_equal(store_check_space(s), STATUS_UNAVAILABLE);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, "a", 1, NULL, "x", 1), 0);
    assert_int_equal(store_txn_commit(t), STATUS_UNAVAILABLE);
    assert_int_equal(get_status(s, CF_ACCOUNTS, "a", 1), STATUS_NOT_FOUND);
    /* with room again the same transaction commits */
    store_set_min_free_bytes(s, 1);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    expect_stored(s, CF_ACCOUNTS, "a", 1, "x");
    store_close(s);
    free(dir);
}

static void test_store_key_volume_has_its_own_reserve(void **state) {
    char *dir = testutil_fresh_dir("store-key-space");
    store_close(open_store(dir));
    struct store_config cfg = {.data_dir = dir, .min_free_bytes = 1, .min_free_key_bytes = 1};
    struct store *s = NULL;
    assert_int_equal(store_open(&cfg, &s), 0);
    assert_int_equal(store_check_space(s), 0);
    store_close(s);
    cfg.min_free_key_bytes = UINT64_MAX; /* more than any volume has */
    assert_int_equal(store_open(&cfg, &s), 0);
    testutil_capture_begin();
    int rc = store_check_space(s);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, "a", 1, NULL, "x", 1), 0);
    int commit = store_txn_commit(t);
    char *log = testutil_capture_end();
    store_txn_free(t);
    assert_int_equal(rc, STATUS_UNAVAILABLE);
    assert_int_equal(commit, STATUS_UNAVAILABLE);
    assert_non_null(strstr(log, "on the key volume"));
    free(log);
    assert_int_equal(get_status(s, CF_ACCOUNTS, "a", 1), STATUS_NOT_FOUND);
    store_close(s);
    free(dir);
}

/* A write that fails in RocksDB (here EFBIG: the WAL may not grow past
 * RLIMIT_FSIZE, which fails the append as a full disk does) returns an error
 * instead of aborting, and every later commit is refused without touching
 * RocksDB; reopened, the store has what was committed before. */
static void test_store_failed_write_refuses_later_writes(void **state) {
    char *dir = testutil_fresh_dir("store-failed-write");
    struct store *s = open_store(dir);
    put_one(s, CF_ACCOUNTS, "before", 6, NULL, "kept");
    enum { BIG = 256 * 1024 };
    char *big = malloc(BIG + 1);
    memset(big, 'b', BIG);
    big[BIG] = '\0';
    struct rlimit old, small = {.rlim_cur = 64 * 1024, .rlim_max = RLIM_INFINITY};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, "big", 3, NULL, big, BIG), 0);
    testutil_capture_begin();
    int rc = store_txn_commit(t);
    int again = store_txn_commit(t);
    char *log = testutil_capture_end();
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, STATUS_UNAVAILABLE);
    assert_int_equal(again, STATUS_UNAVAILABLE);
    assert_non_null(strstr(log, "refusing every write"));
    free(log);
    store_txn_free(t);
    /* small writes are refused too, reads go on */
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_ACCOUNTS, "after", 5, NULL, "x", 1), 0);
    assert_int_equal(store_txn_commit(t), STATUS_UNAVAILABLE);
    store_txn_free(t);
    assert_int_equal(store_check_space(s), STATUS_UNAVAILABLE);
    expect_stored(s, CF_ACCOUNTS, "before", 6, "kept");
    store_close(s);
    s = open_store(dir);
    expect_stored(s, CF_ACCOUNTS, "before", 6, "kept");
    assert_int_equal(get_status(s, CF_ACCOUNTS, "big", 3), STATUS_NOT_FOUND);
    assert_int_equal(get_status(s, CF_ACCOUNTS, "after", 5), STATUS_NOT_FOUND);
    put_one(s, CF_ACCOUNTS, "after", 5, NULL, "y");
    store_close(s);
    free(big);
    free(dir);
}

static void test_store_rejects_bad_config(void **state) {
    struct store *s = NULL;
    struct store_config empty = {0};
    assert_int_equal(store_open(&empty, &s), STATUS_BAD_REQUEST);
    assert_int_equal(store_open(NULL, &s), STATUS_BAD_REQUEST);
    struct store_config unwritable = {.data_dir = "/proc/carechat-cannot-exist",
                                      .mode = STORE_CREATE};
    assert_int_equal(store_open(&unwritable, &s), STATUS_IO);
    assert_null(s);
    store_close(NULL);
}

/* The names and sizes of the regular files under `dir`, recursively. */
static void list_files(const char *dir, struct buf *out) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = testutil_path(dir, de->d_name);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        if (S_ISDIR(st.st_mode))
            list_files(p, out);
        else
            buf_printf(out, "%s %lld\n", p, (long long)st.st_size);
        free(p);
    }
    closedir(d);
}

static int open_status(const char *dir, enum store_mode mode, const char *key_dir, char **log) {
    struct store_config cfg = {.data_dir = dir, .mode = mode, .key_dir = key_dir};
    struct store *s = NULL;
    testutil_capture_begin();
    int rc = store_open(&cfg, &s);
    *log = testutil_capture_end();
    store_close(s);
    return rc;
}

static void expect_open_status(const char *dir, enum store_mode mode, const char *key_dir,
                               int status, const char *said) {
    char *log = NULL;
    int rc = open_status(dir, mode, key_dir, &log);
    if (rc != status || strstr(log, said) == NULL)
        fail_msg("store_open returned %d (expected %d), log: %s", rc, status, log);
    free(log);
}

static void test_store_open_never_creates_and_create_never_overwrites(void **state) {
    char *dir = testutil_fresh_dir("store-modes");
    char *missing = testutil_path(dir, "missing");
    struct stat st;
    /* no directory, or an empty one: refused, and still nothing there */
    expect_open_status(missing, STORE_OPEN, NULL, STATUS_NOT_FOUND, "No such file");
    assert_int_not_equal(stat(missing, &st), 0);
    expect_open_status(dir, STORE_OPEN, NULL, STATUS_NOT_FOUND, "there is no database");
    char *db = testutil_path(dir, "db"), *keys = testutil_path(dir, "keys");
    assert_int_not_equal(stat(db, &st), 0);
    assert_int_not_equal(stat(keys, &st), 0);

    /* a database with flushed records, then CURRENT and the WAL lost */
    struct store *s = open_store(dir);
    put_one(s, CF_ACCOUNTS, "a", 1, NULL, "x");
    assert_int_equal(store_flush(s), 0);
    put_one(s, CF_ACCOUNTS, "b", 1, NULL, "y");
    store_close(s);
    expect_open_status(dir, STORE_CREATE, NULL, STATUS_CONFLICT, "exists");
    DIR *d = opendir(db);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (strcmp(de->d_name, "CURRENT") == 0 || (n > 4 && !strcmp(de->d_name + n - 4, ".log"))) {
            char *p = testutil_path(db, de->d_name);
            assert_int_equal(unlink(p), 0);
            free(p);
        }
    }
    closedir(d);
    struct buf before, after;
    buf_init(&before);
    buf_init(&after);
    list_files(dir, &before);
    expect_open_status(dir, STORE_OPEN, NULL, STATUS_NOT_FOUND, "holds keys");
    expect_open_status(dir, STORE_CREATE, NULL, STATUS_CONFLICT, "exists");
    list_files(dir, &after);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);

    /* the database gone, its keys left: no new database beside them */
    char *moved = testutil_path(dir, "db-elsewhere");
    assert_int_equal(rename(db, moved), 0);
    expect_open_status(dir, STORE_CREATE, NULL, STATUS_CONFLICT, "holds the keys");
    assert_int_not_equal(stat(db, &st), 0);
    /* a fresh key directory with a fresh database is fine */
    char *keys2 = testutil_path(dir, "keys2");
    char *log = NULL;
    assert_int_equal(open_status(dir, STORE_CREATE, keys2, &log), 0);
    free(log);
    buf_cleanup(&before);
    buf_cleanup(&after);
    free(keys2);
    free(moved);
    free(keys);
    free(db);
    free(missing);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_cf_names_are_stable),
        cmocka_unit_test(test_store_txn_reads_its_own_writes),
        cmocka_unit_test(test_store_txn_log_reused_after_free),
        cmocka_unit_test(test_store_txn_view_from_each_source),
        cmocka_unit_test(test_store_txn_cache_knows_absent_keys),
        cmocka_unit_test(test_store_cache_skips_the_activity_index),
        cmocka_unit_test(test_store_scan_prefix_after_and_limit),
        cmocka_unit_test(test_store_scan_pages_across_sst_files),
        cmocka_unit_test(test_store_moved_or_tampered_record_is_corrupt_and_logged),
        cmocka_unit_test(test_store_plaintext_never_reaches_the_disk),
        cmocka_unit_test(test_store_reopen_keeps_values),
        cmocka_unit_test(test_store_refuses_a_foreign_key_store),
        cmocka_unit_test(test_store_free_space_guard_refuses_commits),
        cmocka_unit_test(test_store_key_volume_has_its_own_reserve),
        cmocka_unit_test(test_store_failed_write_refuses_later_writes),
        cmocka_unit_test(test_store_rejects_bad_config),
        cmocka_unit_test(test_store_reader_sees_every_commit),
        cmocka_unit_test(test_store_open_never_creates_and_create_never_overwrites),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
