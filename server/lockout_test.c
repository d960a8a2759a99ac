/* server/lockout_test.c: failed sign-ins with backoff, per key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/status.h"
#include "server/lockout.h"

static struct lockout *open_lockout(unsigned free_failures, size_t entries) {
    struct lockout *l;
    struct lockout_config cfg = {.free_failures = free_failures,
                                 .base_ms = 1000,
                                 .max_ms = 8000,
                                 .forget_ms = 60000,
                                 .max_entries = entries};
    assert_int_equal(lockout_new(&cfg, &l), 0);
    return l;
}

static void test_lockout_only_failures_count_and_back_off(void **state) {
    struct lockout *l = open_lockout(3, 0);
    const char *k = "account|net";
    int64_t t = 1000000;
    /* Free failures: no wait. */
    for (int i = 0; i < 2; i++) {
        lockout_fail(l, k, strlen(k), t);
        assert_true(lockout_wait(l, k, strlen(k), t) == 0);
    }
    /* Then 1 s, 2 s, 4 s, 8 s, 8 s. */
    const int64_t waits[] = {1000, 2000, 4000, 8000, 8000};
    for (int i = 0; i < 5; i++) {
        lockout_fail(l, k, strlen(k), t);
        assert_true(lockout_wait(l, k, strlen(k), t) == waits[i]);
        assert_true(lockout_wait(l, k, strlen(k), t + waits[i]) == 0);
    }
    /* Another key is not affected. */
    assert_true(lockout_wait(l, "other", 5, t) == 0);
    /* Forgotten a minute after the last failure. */
    assert_true(lockout_wait(l, k, strlen(k), t + 60000) == 0);
    lockout_fail(l, k, strlen(k), t + 60000);
    assert_true(lockout_wait(l, k, strlen(k), t + 60000) == 0);
    lockout_free(l);
}

static void test_lockout_clear_by_prefix(void **state) {
    struct lockout *l = open_lockout(1, 0);
    uint8_t a1[48], a2[48], b[48];
    memset(a1, 'a', 48);
    memset(a2, 'a', 48);
    a2[40] = 'z'; /* the same account from another network */
    memset(b, 'b', 48);
    lockout_fail(l, a1, 48, 5);
    lockout_fail(l, a2, 48, 5);
    lockout_fail(l, b, 48, 5);
    assert_true(lockout_wait(l, a1, 48, 5) > 0 && lockout_wait(l, a2, 48, 5) > 0);
    lockout_clear(l, a1, 32);
    assert_true(lockout_wait(l, a1, 48, 5) == 0 && lockout_wait(l, a2, 48, 5) == 0);
    assert_true(lockout_wait(l, b, 48, 5) > 0);
    lockout_free(l);
}

/* A full table forgets the entry idle longest: memory stays bounded. */
static void test_lockout_table_is_bounded(void **state) {
    struct lockout *l = open_lockout(1, 8);
    for (uint32_t i = 0; i < 1000; i++)
        lockout_fail(l, &i, sizeof i, 100 + i);
    uint32_t last = 999;
    assert_true(lockout_wait(l, &last, sizeof last, 1099) > 0);
    lockout_free(l);
}

static void test_lockout_networks(void **state) {
    uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
    uint8_t v6a[16] = {0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9};
    uint8_t v6b[16] = {0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 7, 7, 7, 7, 7, 7, 7, 7};
    uint8_t n1[16], n2[16];
    lockout_network(v4, n1);
    assert_memory_equal(n1, v4, 16);
    lockout_network(v6a, n1);
    lockout_network(v6b, n2);
    assert_memory_equal(n1, n2, 16); /* one /64 */
    v6b[7] = 5;
    lockout_network(v6b, n2);
    assert_memory_not_equal(n1, n2, 16);
}

static void test_lockout_refuses_bad_config(void **state) {
    struct lockout *l;
    struct lockout_config cfg = {.free_failures = 0, .base_ms = 1, .max_ms = 1, .forget_ms = 1};
    assert_int_equal(lockout_new(&cfg, &l), STATUS_BAD_REQUEST);
    cfg = (struct lockout_config){.free_failures = 1, .base_ms = 10, .max_ms = 5, .forget_ms = 1};
    assert_int_equal(lockout_new(&cfg, &l), STATUS_BAD_REQUEST);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lockout_only_failures_count_and_back_off),
        cmocka_unit_test(test_lockout_clear_by_prefix),
        cmocka_unit_test(test_lockout_table_is_bounded),
        cmocka_unit_test(test_lockout_networks),
        cmocka_unit_test(test_lockout_refuses_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
