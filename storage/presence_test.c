/* storage/presence_test.c: online/offline per device, connection counting, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "base/status.h"
#include "storage/presence.h"

static struct id device(uint32_t n) {
    struct id id;
    memset(id.b, 0, ID_LEN);
    /* vary the first bytes too, which the table hashes */
    id.b[0] = (uint8_t)(n * 97);
    id.b[1] = (uint8_t)(n >> 8);
    memcpy(id.b + 8, &n, sizeof n);
    return id;
}

static void test_presence_second_connection_replaces_first(void **state) {
    struct presence *p = NULL;
    assert_int_equal(presence_new(&p), 0);
    struct id d = device(1);
    struct presence_info info;
    assert_false(presence_is_online(p, &d));
    assert_int_equal(presence_get(p, &d, &info), STATUS_NOT_FOUND);
    presence_connect(p, &d, 1000);
    assert_true(presence_is_online(p, &d));
    /* a reconnect opens the new socket before the old one is closed */
    presence_connect(p, &d, 2000);
    assert_int_equal(presence_disconnect(p, &d, 2001), 0);
    assert_true(presence_is_online(p, &d));
    assert_int_equal(presence_get(p, &d, &info), 0);
    assert_int_equal(info.connections, 1);
    assert_true(info.since_ms == 1000); /* online since the first connect */
    assert_int_equal(presence_disconnect(p, &d, 5000), 0);
    assert_false(presence_is_online(p, &d));
    assert_int_equal(presence_get(p, &d, &info), 0);
    assert_false(info.online);
    assert_true(info.since_ms == 5000); /* offline since */
    /* an unmatched disconnect is reported and changes nothing */
    assert_int_equal(presence_disconnect(p, &d, 6000), STATUS_NOT_FOUND);
    assert_int_equal(presence_get(p, &d, &info), 0);
    assert_true(info.since_ms == 5000);
    struct id unknown = device(2);
    assert_int_equal(presence_disconnect(p, &unknown, 1), STATUS_NOT_FOUND);
    presence_free(p);
    presence_free(NULL);
}

enum { THREADS = 4, DEVICES = 500 };

struct worker {
    struct presence *p;
    int index;
};

static void *churn(void *arg) {
    struct worker *w = arg;
    for (int round = 0; round < 20; round++) {
        for (uint32_t i = 0; i < DEVICES; i++) {
            struct id d = device((uint32_t)w->index * DEVICES + i);
            presence_connect(w->p, &d, round);
            if (round < 19 || i % 2)
                presence_disconnect(w->p, &d, round);
        }
    }
    return NULL;
}

static void test_presence_is_consistent_across_threads(void **state) {
    struct presence *p = NULL;
    assert_int_equal(presence_new(&p), 0);
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){.p = p, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, churn, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    /* even-numbered devices stayed connected in the last round */
    assert_true(presence_online_count(p) == THREADS * DEVICES / 2);
    for (uint32_t i = 0; i < THREADS * DEVICES; i++) {
        struct id d = device(i);
        assert_int_equal(presence_is_online(p, &d), (i % DEVICES) % 2 == 0);
    }
    presence_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presence_second_connection_replaces_first),
        cmocka_unit_test(test_presence_is_consistent_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
