/*
 * storage/rcache_test.c: the read cache's map: hits and misses by column
 * family and key, replacement, drops, absent keys, the byte bound, long keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "storage/rcache.h"

static void assert_value(struct rcache *c, int cf, const char *key, const char *want) {
    struct buf out;
    buf_init(&out);
    enum rcache_hit hit = rcache_get(c, cf, key, strlen(key), &out);
    if (want == NULL) {
        assert_int_equal(hit, RCACHE_MISS);
    } else {
        assert_int_equal(hit, RCACHE_VALUE);
        assert_int_equal(out.len, strlen(want));
        assert_memory_equal(out.data, want, out.len);
    }
    buf_cleanup(&out);
}

static void test_rcache_get_put_drop(void **state) {
    struct rcache *c = rcache_new(1 << 20);
    assert_value(c, 1, "account-1", NULL);
    rcache_put(c, 1, "account-1", 9, "first", 5);
    assert_value(c, 1, "account-1", "first");
    assert_value(c, 2, "account-1", NULL); /* another column family */
    assert_value(c, 1, "account-2", NULL);
    rcache_put(c, 1, "account-1", 9, "second value", 12);
    assert_value(c, 1, "account-1", "second value");
    rcache_put(c, 2, "account-1", 9, "", 0); /* an empty value is a value */
    assert_value(c, 2, "account-1", "");
    struct rcache_stats st = rcache_stats(c);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 3);
    rcache_drop(c, 1, "account-1", 9);
    assert_value(c, 1, "account-1", NULL);
    assert_value(c, 2, "account-1", "");
    rcache_drop(c, 1, "never-there", 11);
    rcache_clear(c);
    assert_value(c, 2, "account-1", NULL);
    assert_int_equal(rcache_stats(c).entries, 0);
    assert_int_equal(rcache_stats(c).bytes, 0);
    rcache_free(c);
}

/* A key cached as absent answers RCACHE_ABSENT (not a miss, not an empty
 * value) until a value replaces it or it is dropped. */
static void test_rcache_absent(void **state) {
    struct rcache *c = rcache_new(1 << 20);
    struct buf out;
    buf_init(&out);
    buf_append(&out, "stale", 5);
    rcache_put_absent(c, 1, "reg-1", 5);
    assert_int_equal(rcache_get(c, 1, "reg-1", 5, &out), RCACHE_ABSENT);
    assert_int_equal(out.len, 0);
    assert_int_equal(rcache_get(c, 2, "reg-1", 5, &out), RCACHE_MISS);
    /* rcache_has() knows absent keys too, and counts nothing. */
    struct rcache_stats st = rcache_stats(c);
    assert_true(rcache_has(c, 1, "reg-1", 5));
    assert_false(rcache_has(c, 2, "reg-1", 5));
    assert_int_equal(rcache_stats(c).hits, st.hits);
    assert_int_equal(rcache_stats(c).misses, st.misses);
    rcache_put(c, 1, "reg-1", 5, "", 0);
    assert_value(c, 1, "reg-1", ""); /* an empty value, not absent */
    rcache_put_absent(c, 1, "reg-1", 5);
    assert_int_equal(rcache_get(c, 1, "reg-1", 5, &out), RCACHE_ABSENT);
    assert_int_equal(rcache_stats(c).entries, 1);
    rcache_drop(c, 1, "reg-1", 5);
    assert_false(rcache_has(c, 1, "reg-1", 5));
    assert_value(c, 1, "reg-1", NULL);
    uint8_t key[RCACHE_KEY_MAX + 1] = {0};
    rcache_put_absent(c, 1, key, sizeof key); /* too long: not cached */
    assert_int_equal(rcache_get(c, 1, key, sizeof key, &out), RCACHE_MISS);
    assert_int_equal(rcache_stats(c).entries, 0);
    buf_cleanup(&out);
    rcache_free(c);
}

/* Many keys in few buckets' worth of space: chains hold, and the bound
 * empties the cache instead of growing past it. */
static void test_rcache_bound(void **state) {
    const size_t bound = 64 * 1024;
    struct rcache *c = rcache_new(bound);
    char key[32], value[100];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    size_t most = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        rcache_put(c, 3, key, strlen(key), value, strlen(value));
        struct rcache_stats st = rcache_stats(c);
        assert_true(st.bytes <= bound);
        if (st.entries > most)
            most = st.entries;
        assert_value(c, 3, key, value); /* the newest is always there */
    }
    /* It held hundreds at a time, and dropped them all when full. */
    assert_true(most > 300);
    assert_true(rcache_stats(c).entries < most);
    assert_value(c, 3, "key-0", NULL);
    rcache_free(c);
}

/* Past a few thousand entries the table grows: every entry is still found,
 * and a drop or a clear still finds them. */
static void test_rcache_grows(void **state) {
    struct rcache *c = rcache_new(64 << 20);
    char key[32], value[32];
    for (int i = 0; i < 50000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(value, sizeof value, "value-%d", i);
        if (i % 3)
            rcache_put(c, 1, key, strlen(key), value, strlen(value));
        else
            rcache_put_absent(c, 1, key, strlen(key));
    }
    assert_int_equal(rcache_stats(c).entries, 50000);
    struct buf out;
    buf_init(&out);
    for (int i = 0; i < 50000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(value, sizeof value, "value-%d", i);
        if (i % 3)
            assert_value(c, 1, key, value);
        else
            assert_int_equal(rcache_get(c, 1, key, strlen(key), &out), RCACHE_ABSENT);
    }
    rcache_drop(c, 1, "key-1", 5);
    assert_value(c, 1, "key-1", NULL);
    rcache_clear(c);
    assert_int_equal(rcache_stats(c).entries, 0);
    assert_int_equal(rcache_stats(c).bytes, 0);
    assert_value(c, 1, "key-2", NULL);
    buf_cleanup(&out);
    rcache_free(c);
}

/* Dropped entries are reused for later inserts: each replacement of a key
 * by a value of another size, across the small entries' size, still reads
 * back exactly (ASan would see a reused entry written past its end). */
static void test_rcache_reuses_dropped_entries(void **state) {
    struct rcache *c = rcache_new(1 << 20);
    char key[32];
    uint8_t value[400];
    static const size_t sizes[] = {0, 1, 100, 150, 160, 161, 200, 399};
    const size_t n_sizes = sizeof sizes / sizeof sizes[0];
    for (int round = 0; round < 40; round++)
        for (int k = 0; k < 64; k++) {
            snprintf(key, sizeof key, "k%d", k);
            size_t len = sizes[(size_t)(round + k) % n_sizes];
            memset(value, 'a' + (round + k) % 26, len);
            if ((round + k) % 5 == 0)
                rcache_drop(c, 1, key, strlen(key));
            rcache_put(c, 1, key, strlen(key), value, len);
        }
    struct buf out;
    buf_init(&out);
    for (int k = 0; k < 64; k++) {
        snprintf(key, sizeof key, "k%d", k);
        size_t len = sizes[(size_t)(39 + k) % n_sizes];
        memset(value, 'a' + (39 + k) % 26, len);
        assert_int_equal(rcache_get(c, 1, key, strlen(key), &out), RCACHE_VALUE);
        assert_int_equal(out.len, len);
        assert_memory_equal(out.data, value, len);
    }
    assert_int_equal(rcache_stats(c).entries, 64);
    buf_cleanup(&out);
    rcache_free(c);
}

static void test_rcache_long_keys_and_values(void **state) {
    struct rcache *c = rcache_new(4096);
    uint8_t key[RCACHE_KEY_MAX + 1];
    memset(key, 7, sizeof key);
    rcache_put(c, 1, key, sizeof key, "x", 1);
    struct buf out;
    buf_init(&out);
    assert_int_equal(rcache_get(c, 1, key, sizeof key, &out), RCACHE_MISS);
    assert_int_equal(rcache_stats(c).entries, 0);
    rcache_put(c, 1, key, RCACHE_KEY_MAX, "x", 1);
    assert_int_equal(rcache_get(c, 1, key, RCACHE_KEY_MAX, &out), RCACHE_VALUE);
    /* A value above the bound is not cached, and drops the old one. */
    static uint8_t big[8192];
    rcache_put(c, 1, key, RCACHE_KEY_MAX, big, sizeof big);
    assert_int_equal(rcache_get(c, 1, key, RCACHE_KEY_MAX, &out), RCACHE_MISS);
    buf_cleanup(&out);
    rcache_free(c);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rcache_get_put_drop),
        cmocka_unit_test(test_rcache_absent),
        cmocka_unit_test(test_rcache_bound),
        cmocka_unit_test(test_rcache_grows),
        cmocka_unit_test(test_rcache_reuses_dropped_entries),
        cmocka_unit_test(test_rcache_long_keys_and_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
