/* storage/lease_test.c: single-node leases: grants, renewal, expiry, epochs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/status.h"
#include "storage/lease.h"

static int teardown(void **state) {
    clock_reset();
    return 0;
}

static void test_lease_acquire_renew_expire(void **state) {
    clock_set_manual(1000000);
    struct lease *l = NULL;
    struct lease_config cfg = {.node_id = "node-a", .ttl_ms = 10000};
    assert_int_equal(lease_new(&cfg, &l), 0);
    struct lease_grant g, h, holder;
    assert_int_equal(lease_holder(l, "maintenance", &holder), STATUS_NOT_FOUND);
    assert_int_equal(lease_acquire(l, "maintenance", &g), 0);
    assert_string_equal(g.holder, "node-a");
    assert_string_equal(g.role, "maintenance");
    assert_true(g.epoch > 0);
    assert_true(g.expires_ms == 1010000);
    assert_true(lease_valid(l, &g));
    assert_int_equal(lease_holder(l, "maintenance", &holder), 0);
    assert_true(holder.epoch == g.epoch);
    /* renewal extends the same term */
    clock_advance(6000);
    assert_int_equal(lease_renew(l, &g), 0);
    assert_true(g.expires_ms == 1016000);
    /* acquiring again while held renews too: same epoch */
    assert_int_equal(lease_acquire(l, "maintenance", &h), 0);
    assert_true(h.epoch == g.epoch);
    /* another role is independent */
    struct lease_grant n;
    assert_int_equal(lease_acquire(l, "notifier", &n), 0);
    assert_true(n.epoch != g.epoch);
    /* expiry: the grant is no longer valid and cannot be renewed */
    clock_advance(10001);
    assert_false(lease_valid(l, &h));
    assert_int_equal(lease_renew(l, &h), STATUS_CONFLICT);
    assert_int_equal(lease_holder(l, "maintenance", &holder), STATUS_NOT_FOUND);
    /* acquiring again starts a new term with a higher epoch (fencing) */
    struct lease_grant g2;
    assert_int_equal(lease_acquire(l, "maintenance", &g2), 0);
    assert_true(g2.epoch > n.epoch);
    assert_false(lease_valid(l, &h));
    assert_true(lease_valid(l, &g2));
    /* release: an old grant does nothing, the current one frees the role */
    lease_release(l, &h);
    assert_true(lease_valid(l, &g2));
    lease_release(l, &g2);
    assert_false(lease_valid(l, &g2));
    assert_int_equal(lease_renew(l, &g2), STATUS_CONFLICT);
    assert_int_equal(lease_holder(l, "maintenance", &holder), STATUS_NOT_FOUND);
    lease_free(l);
    lease_free(NULL);
}

static void test_lease_rejects_bad_names(void **state) {
    struct lease *l = NULL;
    char long_name[LEASE_MAX_HOLDER + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    struct lease_config bad = {.node_id = long_name};
    assert_int_equal(lease_new(&bad, &l), STATUS_BAD_REQUEST);
    struct lease_config negative = {.ttl_ms = -1};
    assert_int_equal(lease_new(&negative, &l), STATUS_BAD_REQUEST);
    assert_int_equal(lease_new(NULL, &l), 0);
    struct lease_grant g;
    assert_int_equal(lease_acquire(l, "", &g), STATUS_BAD_REQUEST);
    assert_int_equal(lease_acquire(l, "a-role-name-that-is-far-too-long-to-be-used", &g),
                     STATUS_BAD_REQUEST);
    assert_int_equal(lease_acquire(l, "notifier", &g), 0);
    assert_string_equal(g.holder, "local");
    lease_free(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_lease_acquire_renew_expire, teardown),
        cmocka_unit_test_teardown(test_lease_rejects_bad_names, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
