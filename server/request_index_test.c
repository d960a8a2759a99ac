/*
 * server/request_index_test.c: the index of authenticated connections by
 * device and by account (request.c): a device's connections are found among
 * others whose ids share its bucket, a connection leaves the index when
 * detached and moves when it authenticates again, a revoked one stays
 * findable (its caller checks `authenticated`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/id.h"
#include "server/conn.h"
#include "server/metrics.h"
#include "server/request.h"

#define N 6

struct fixture {
    struct metrics *metrics; /* conn_close() counts closes */
    struct handlers *h;
    struct hconn *hc[N];
};

/* Ids equal in their first bytes (one bucket) and different after. */
static struct id colliding(uint8_t tag) {
    struct id id;
    memset(id.b, 0xab, sizeof id.b);
    id.b[ID_LEN - 1] = tag;
    return id;
}

static void io_send(void *ctx, const uint8_t *frame, size_t len) {}

static void io_close(void *ctx, int code, const char *reason) {}

static struct hconn *attach(struct fixture *f) {
    struct conn *c;
    struct conn_config cc = {
        .io = {.send = io_send, .close = io_close}, .metrics = f->metrics, .max_frame = 1024};
    assert_int_equal(conn_new(&cc, &c), 0);
    return req_hconn_attach(f->h, c);
}

static void authenticate(struct hconn *hc, struct id account, struct id device) {
    struct session_info s = {.account = account, .device = device};
    req_session_established(hc, &s);
}

static int count_device(struct handlers *h, struct id device, const struct hconn *expect) {
    int n = 0;
    for (struct hconn *x = req_device_first(h, &device); x; x = req_device_next(x)) {
        assert_true(id_equal(&x->device, &device));
        if (expect)
            assert_ptr_equal(x, expect);
        n++;
    }
    return n;
}

static int count_account(struct handlers *h, struct id account) {
    int n = 0;
    for (struct hconn *x = req_account_first(h, &account); x; x = req_account_next(x)) {
        assert_true(id_equal(&x->account, &account));
        n++;
    }
    return n;
}

static int setup(void **state) {
    struct fixture *f = xcalloc(1, sizeof *f);
    f->h = xcalloc(1, sizeof *f->h);
    assert_int_equal(metrics_new(&(struct metrics_config){0}, &f->metrics), 0);
    for (int i = 0; i < N; i++)
        f->hc[i] = attach(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    for (int i = 0; i < N; i++) {
        if (!f->hc[i])
            continue;
        struct conn *c = f->hc[i]->conn;
        req_hconn_detach(f->hc[i]);
        conn_free(c);
    }
    free(f->h);
    metrics_free(f->metrics);
    free(f);
    return 0;
}

static void test_request_index_finds_each_device_among_colliding_ids(void **state) {
    struct fixture *f = *state;
    /* Devices 0..2 of account A (device 1 twice), device 3 of account B, all
     * in one bucket of each index; hc[5] never authenticates. */
    struct id a = colliding(0xa0), b = colliding(0xb0);
    authenticate(f->hc[0], a, colliding(0));
    authenticate(f->hc[1], a, colliding(1));
    authenticate(f->hc[2], a, colliding(1));
    authenticate(f->hc[3], b, colliding(3));
    authenticate(f->hc[4], a, colliding(2));
    assert_int_equal(count_device(f->h, colliding(0), f->hc[0]), 1);
    assert_int_equal(count_device(f->h, colliding(1), NULL), 2);
    assert_int_equal(count_device(f->h, colliding(3), f->hc[3]), 1);
    assert_int_equal(count_device(f->h, colliding(9), NULL), 0);
    assert_int_equal(count_account(f->h, a), 4);
    assert_int_equal(count_account(f->h, b), 1);
    assert_int_equal(count_account(f->h, colliding(0xc0)), 0);
}

static void test_request_index_forgets_detached_and_moves_reauthenticated(void **state) {
    struct fixture *f = *state;
    struct id a = colliding(0xa0), b = colliding(0xb0);
    authenticate(f->hc[0], a, colliding(0));
    authenticate(f->hc[1], a, colliding(1));
    authenticate(f->hc[2], a, colliding(1));
    /* Detached from the middle of a bucket's chain. */
    struct conn *c = f->hc[1]->conn;
    req_hconn_detach(f->hc[1]);
    conn_free(c);
    f->hc[1] = NULL;
    assert_int_equal(count_device(f->h, colliding(1), f->hc[2]), 1);
    assert_int_equal(count_account(f->h, a), 2);
    /* The same connection authenticated again, as another account's device. */
    authenticate(f->hc[2], b, colliding(3));
    assert_int_equal(count_device(f->h, colliding(1), NULL), 0);
    assert_int_equal(count_device(f->h, colliding(3), f->hc[2]), 1);
    assert_int_equal(count_account(f->h, a), 1);
    assert_int_equal(count_account(f->h, b), 1);
    /* Revoked (unauthenticated) connections stay until detached. */
    req_revoke(f->h, NULL, &f->hc[0]->device, 0, NULL);
    assert_false(f->hc[0]->authenticated);
    assert_int_equal(count_device(f->h, colliding(0), f->hc[0]), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_index_finds_each_device_among_colliding_ids,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_request_index_forgets_detached_and_moves_reauthenticated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
