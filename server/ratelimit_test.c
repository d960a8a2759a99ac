/* server/ratelimit_test.c: token buckets: burst, refill, independence, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/status.h"
#include "server/ratelimit.h"

static void test_ratelimit_burst_then_refused_then_refilled(void **state) {
    struct ratelimit *r;
    assert_int_equal(ratelimit_new(&(struct ratelimit_config){.burst = 3, .window_ms = 3000}, &r),
                     0);
    for (int i = 0; i < 3; i++)
        assert_true(ratelimit_take(r, "a", 1, 1000));
    assert_false(ratelimit_take(r, "a", 1, 1000));
    assert_true(ratelimit_take(r, "b", 1, 1000));  /* another key has its own bucket */
    assert_false(ratelimit_take(r, "a", 1, 1999)); /* one token takes window / burst */
    assert_true(ratelimit_take(r, "a", 1, 2000));
    assert_false(ratelimit_take(r, "a", 1, 2000));
    /* A long pause refills only up to the burst. */
    for (int i = 0; i < 3; i++)
        assert_true(ratelimit_take(r, "a", 1, 1000000));
    assert_false(ratelimit_take(r, "a", 1, 1000000));
    ratelimit_free(r);
}

static void test_ratelimit_bounded_table_keeps_working(void **state) {
    struct ratelimit *r;
    assert_int_equal(
        ratelimit_new(
            &(struct ratelimit_config){.burst = 1, .window_ms = 1000000, .max_buckets = 16}, &r),
        0);
    /* Far more keys than buckets: every new key still gets its first token. */
    for (uint32_t k = 0; k < 1000; k++)
        assert_true(ratelimit_take(r, &k, sizeof k, 5));
    /* A key that is used again right away is still limited. */
    uint32_t hot = 424242;
    assert_true(ratelimit_take(r, &hot, sizeof hot, 6));
    assert_false(ratelimit_take(r, &hot, sizeof hot, 6));
    ratelimit_free(r);
    assert_int_equal(ratelimit_new(&(struct ratelimit_config){.burst = 0, .window_ms = 1}, &r),
                     STATUS_BAD_REQUEST);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit_burst_then_refused_then_refilled),
        cmocka_unit_test(test_ratelimit_bounded_table_keeps_working),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
