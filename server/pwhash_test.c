/* server/pwhash_test.c: the password worker: hashes, verifies, wakes, drains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/status.h"
#include "server/pwhash.h"

#define DEADLINE_MS 20000

struct result {
    int calls;
    bool ok;
    char hash[crypto_pwhash_STRBYTES];
};

static void on_done(void *ctx, bool ok, const char *hash) {
    struct result *r = ctx;
    r->calls++;
    r->ok = ok;
    if (hash)
        snprintf(r->hash, sizeof r->hash, "%s", hash);
}

static void waker(void *ctx) {
    __atomic_add_fetch((int *)ctx, 1, __ATOMIC_SEQ_CST);
}

static struct pwhash *open_workers(int *wakes, unsigned workers) {
    struct pwhash *p;
    struct pwhash_config cfg = {.opslimit = PWHASH_MIN_OPSLIMIT,
                                .memlimit = PWHASH_MIN_MEMLIMIT,
                                .workers = workers,
                                .wake = waker,
                                .wake_ctx = wakes};
    assert_int_equal(pwhash_new(&cfg, &p), 0);
    return p;
}

static void wait_for(struct pwhash *p, struct result *r) {
    int64_t deadline = clock_monotonic_ms() + DEADLINE_MS;
    while (r->calls == 0 && clock_monotonic_ms() < deadline) {
        pwhash_poll(p);
        nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
    }
    assert_int_equal(r->calls, 1);
}

static void test_pwhash_hash_then_verify(void **state) {
    int wakes = 0;
    struct pwhash *p = open_workers(&wakes, 2);
    struct result h = {0};
    assert_int_equal(pwhash_hash(p, "a long password", 15, on_done, &h), 0);
    /* The callback runs only from pwhash_poll on this thread. */
    assert_int_equal(h.calls, 0);
    wait_for(p, &h);
    assert_true(h.ok);
    assert_non_null(strstr(h.hash, "$argon2id$"));
    assert_non_null(strstr(h.hash, "t=2"));
    assert_true(__atomic_load_n(&wakes, __ATOMIC_SEQ_CST) >= 1);

    struct result good = {0}, bad = {0}, dummy = {0};
    assert_int_equal(pwhash_verify(p, "a long password", 15, h.hash, false, on_done, &good), 0);
    assert_int_equal(pwhash_verify(p, "a long passwore", 15, h.hash, false, on_done, &bad), 0);
    assert_int_equal(pwhash_verify(p, "a long password", 15, NULL, false, on_done, &dummy), 0);
    wait_for(p, &good);
    wait_for(p, &bad);
    wait_for(p, &dummy);
    assert_true(good.ok);
    assert_false(bad.ok);
    assert_false(dummy.ok);
    pwhash_free(p);
}

static void test_pwhash_free_drains_with_failure(void **state) {
    int wakes = 0;
    struct pwhash *p = open_workers(&wakes, 2);
    struct result r[4] = {{0}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pwhash_hash(p, "password!!", 10, on_done, &r[i]), 0);
    pwhash_free(p);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r[i].calls, 1);
}

static void test_pwhash_refuses_weak_limits(void **state) {
    struct pwhash *p;
    struct pwhash_config weak = {.opslimit = 1, .memlimit = PWHASH_MIN_MEMLIMIT, .workers = 1};
    assert_int_equal(pwhash_new(&weak, &p), STATUS_BAD_REQUEST);
    weak = (struct pwhash_config){.opslimit = 2, .memlimit = 8u << 20, .workers = 1};
    assert_int_equal(pwhash_new(&weak, &p), STATUS_BAD_REQUEST);
    weak = (struct pwhash_config){.opslimit = 2, .memlimit = PWHASH_MIN_MEMLIMIT, .workers = 0};
    assert_int_equal(pwhash_new(&weak, &p), STATUS_BAD_REQUEST);
}

/* The order callbacks ran in. */
struct order {
    int next;
    int at[PWHASH_MAX_QUEUE + 1];
};
struct order_slot {
    struct order *o;
    int i;
};

static void on_order(void *ctx, bool ok, const char *hash) {
    struct order_slot *s = ctx;
    s->o->at[s->i] = s->o->next++;
}

/* One worker, a full normal lane of guesses: a priority verification is
 * still accepted and runs before every guess still waiting. */
static void test_pwhash_priority_lane_goes_first(void **state) {
    int wakes = 0;
    struct pwhash *p = open_workers(&wakes, 1);
    struct order o = {0};
    struct order_slot slots[PWHASH_MAX_QUEUE + 1];
    for (int i = 0; i < PWHASH_MAX_QUEUE; i++) {
        slots[i] = (struct order_slot){&o, i};
        assert_int_equal(pwhash_verify(p, "guess", 5, NULL, false, on_order, &slots[i]), 0);
    }
    struct result refused = {0};
    assert_int_equal(pwhash_verify(p, "guess", 5, NULL, false, on_done, &refused),
                     STATUS_UNAVAILABLE);
    slots[PWHASH_MAX_QUEUE] = (struct order_slot){&o, PWHASH_MAX_QUEUE};
    assert_int_equal(pwhash_verify(p, "right", 5, NULL, true, on_order, &slots[PWHASH_MAX_QUEUE]),
                     0);
    int64_t deadline = clock_monotonic_ms() + 4 * DEADLINE_MS;
    while (o.next < PWHASH_MAX_QUEUE + 1 && clock_monotonic_ms() < deadline) {
        pwhash_poll(p);
        nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
    }
    assert_int_equal(o.next, PWHASH_MAX_QUEUE + 1);
    /* At most the guess the worker had already taken ran before it. */
    assert_true(o.at[PWHASH_MAX_QUEUE] <= 1);
    pwhash_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pwhash_hash_then_verify),
        cmocka_unit_test(test_pwhash_free_drains_with_failure),
        cmocka_unit_test(test_pwhash_refuses_weak_limits),
        cmocka_unit_test(test_pwhash_priority_lane_goes_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
