/* storage/keys_test.c: byte order of encoded keys matches numeric order; prefix bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/status.h"
#include "storage/keys.h"

/* A seeded generator so a failure reproduces (splitmix64). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Mixes small, large and boundary values so byte carries are exercised. */
static uint64_t interesting_u64(void) {
    uint64_t r = next_u64();
    switch (r % 5) {
    case 0:
        return r >> (r % 64);
    case 1:
        return r & 0xff;
    case 2:
        return UINT64_MAX - (r & 0xffff);
    case 3:
        return (uint64_t)1 << (r % 64);
    default:
        return r;
    }
}

static void test_keys_u64_order_matches_numeric_order(void **state) {
    for (int i = 0; i < 200000; i++) {
        uint64_t a = interesting_u64(), b = interesting_u64();
        uint8_t ea[8], eb[8];
        key_put_u64(ea, a);
        key_put_u64(eb, b);
        int c = memcmp(ea, eb, 8);
        if (a < b)
            assert_true(c < 0);
        else if (a > b)
            assert_true(c > 0);
        else
            assert_int_equal(c, 0);
        assert_true(key_get_u64(ea) == a);
    }
    uint8_t e[8];
    key_put_u64(e, 0x0102030405060708ull);
    static const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(e, want, 8);
}

static void test_keys_u32_order_matches_numeric_order(void **state) {
    for (int i = 0; i < 100000; i++) {
        uint32_t a = (uint32_t)interesting_u64(), b = (uint32_t)interesting_u64();
        uint8_t ea[4], eb[4];
        key_put_u32(ea, a);
        key_put_u32(eb, b);
        int c = memcmp(ea, eb, 4);
        assert_true(a < b ? c < 0 : (a > b ? c > 0 : c == 0));
        assert_true(key_get_u32(ea) == a);
    }
}

struct composite {
    struct id conv;
    uint64_t seq;
    struct key k;
};

static int cmp_composite_logical(const void *pa, const void *pb) {
    const struct composite *a = pa, *b = pb;
    int c = memcmp(a->conv.b, b->conv.b, ID_LEN);
    if (c != 0)
        return c;
    return a->seq < b->seq ? -1 : (a->seq > b->seq ? 1 : 0);
}

static int cmp_composite_bytes(const void *pa, const void *pb) {
    const struct composite *a = pa, *b = pb;
    return key_compare(a->k.b, a->k.len, b->k.b, b->k.len);
}

static void test_keys_composite_order_matches_component_order(void **state) {
    enum { N = 4000, PARENTS = 7 };
    struct id parents[PARENTS];
    for (int i = 0; i < PARENTS; i++)
        for (int j = 0; j < ID_LEN; j++)
            parents[i].b[j] = (uint8_t)next_u64();
    parents[1] = parents[0];
    parents[1].b[ID_LEN - 1] ^= 1; /* two parents that differ in their last byte */
    struct composite *logical = calloc(N, sizeof *logical);
    struct composite *bytes = calloc(N, sizeof *bytes);
    assert_non_null(logical);
    assert_non_null(bytes);
    for (int i = 0; i < N; i++) {
        logical[i].conv = parents[next_u64() % PARENTS];
        logical[i].seq = interesting_u64();
        key_id_u64(&logical[i].k, &logical[i].conv, logical[i].seq);
        assert_int_equal(logical[i].k.len, ID_LEN + 8);
    }
    memcpy(bytes, logical, N * sizeof *logical);
    qsort(logical, N, sizeof *logical, cmp_composite_logical);
    qsort(bytes, N, sizeof *bytes, cmp_composite_bytes);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cmp_composite_logical(&logical[i], &bytes[i]), 0);
        struct id id;
        uint64_t seq;
        assert_int_equal(key_read_id(bytes[i].k.b, bytes[i].k.len, 0, &id), 0);
        assert_int_equal(key_read_u64(bytes[i].k.b, bytes[i].k.len, ID_LEN, &seq), 0);
        assert_memory_equal(id.b, bytes[i].conv.b, ID_LEN);
        assert_true(seq == bytes[i].seq);
    }
    free(logical);
    free(bytes);
}

static void test_keys_builders_lay_out_components(void **state) {
    struct id a, b, c;
    memset(a.b, 0xaa, ID_LEN);
    memset(b.b, 0xbb, ID_LEN);
    memset(c.b, 0xcc, ID_LEN);
    struct key k;
    key_id_id_u64(&k, &a, &b, 258);
    assert_int_equal(k.len, 40);
    assert_int_equal(k.b[0], 0xaa);
    assert_int_equal(k.b[16], 0xbb);
    assert_int_equal(k.b[38], 1);
    assert_int_equal(k.b[39], 2);
    key_id_id(&k, &a, &b);
    assert_int_equal(k.len, 32);
    key_id(&k, &c);
    assert_int_equal(k.len, 16);
    key_add_id(&k, &a);
    key_add_id(&k, &b);
    key_add_u32(&k, 7);
    assert_int_equal(k.len, 52);
    assert_int_equal(key_get_u32(k.b + 48), 7);
    /* reading past the end is reported, not performed */
    struct id out;
    uint64_t v;
    assert_int_equal(key_read_id(k.b, 20, 8, &out), STATUS_CORRUPT);
    assert_int_equal(key_read_u64(k.b, 20, 16, &v), STATUS_CORRUPT);
    assert_int_equal(key_read_u64(k.b, 20, 30, &v), STATUS_CORRUPT);
    assert_int_equal(key_read_u64(k.b, 24, 16, &v), 0);
}

static void test_keys_prefix_end_bounds_the_range(void **state) {
    uint8_t out[KEY_MAX];
    size_t n;
    static const uint8_t p1[] = {0x10, 0x20, 0xff, 0xff};
    assert_true(key_prefix_end(p1, sizeof p1, out, &n));
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0x10);
    assert_int_equal(out[1], 0x21);
    static const uint8_t p2[] = {0xff, 0xff};
    assert_false(key_prefix_end(p2, sizeof p2, out, &n));
    assert_false(key_prefix_end(p2, 0, out, &n));

    /* For random prefixes and keys: a key has the prefix exactly when it sorts in
     * [prefix, end). */
    for (int i = 0; i < 50000; i++) {
        uint8_t prefix[6], key[10];
        size_t plen = 1 + next_u64() % sizeof prefix;
        for (size_t j = 0; j < plen; j++) {
            uint64_t r = next_u64();
            prefix[j] = (r & 3) == 0 ? 0xff : (uint8_t)(r >> 8) & 0x03;
        }
        size_t klen = next_u64() % (sizeof key + 1);
        for (size_t j = 0; j < klen; j++) {
            uint64_t r = next_u64();
            key[j] =
                (r & 1) && j < plen ? prefix[j] : ((r & 6) == 0 ? 0xff : (uint8_t)(r >> 8) & 3);
        }
        bool has = key_has_prefix(key, klen, prefix, plen);
        bool in_range = key_compare(key, klen, prefix, plen) >= 0;
        if (key_prefix_end(prefix, plen, out, &n))
            in_range = in_range && key_compare(key, klen, out, n) < 0;
        assert_int_equal(has, in_range);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_u64_order_matches_numeric_order),
        cmocka_unit_test(test_keys_u32_order_matches_numeric_order),
        cmocka_unit_test(test_keys_composite_order_matches_component_order),
        cmocka_unit_test(test_keys_builders_lay_out_components),
        cmocka_unit_test(test_keys_prefix_end_bounds_the_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
