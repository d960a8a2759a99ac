/* storage/bus_test.c: hints reach the subscribers of their topic on bus_poll(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "base/status.h"
#include "storage/bus.h"
#include "storage/testutil.h"

struct sink {
    int calls;
    char last[64];
    struct bus *bus;
    uint64_t unsubscribe; /* a subscription to end from inside the callback */
};

static void record(void *ctx, const uint8_t *topic, size_t topic_len, const uint8_t *msg,
                   size_t msg_len) {
    struct sink *s = ctx;
    s->calls++;
    size_t n = msg_len < sizeof s->last - 1 ? msg_len : sizeof s->last - 1;
    memcpy(s->last, msg, n);
    s->last[n] = '\0';
    if (s->unsubscribe) {
        assert_int_equal(bus_unsubscribe(s->bus, s->unsubscribe), 0);
        s->unsubscribe = 0;
    }
}

static void test_bus_delivers_by_topic_on_poll(void **state) {
    struct testutil_waker waker;
    testutil_waker_init(&waker);
    struct bus_config cfg = {.wake = testutil_wake, .wake_ctx = &waker};
    struct bus *b = NULL;
    assert_int_equal(bus_new(&cfg, &b), 0);
    struct sink typing1 = {.bus = b}, typing2 = {.bus = b}, other = {.bus = b};
    uint64_t id1, id2, id3;
    assert_int_equal(bus_subscribe(b, "typing/c1", 9, record, &typing1, &id1), 0);
    assert_int_equal(bus_subscribe(b, "typing/c1", 9, record, &typing2, &id2), 0);
    assert_int_equal(bus_subscribe(b, "typing/c2", 9, record, &other, &id3), 0);
    assert_true(id1 > 0 && id2 > id1);
    assert_int_equal(bus_publish(b, "typing/c1", 9, "alice", 5), 0);
    assert_true(waker.wakes == 1);
    /* nothing is delivered before poll: delivery is asynchronous */
    assert_int_equal(typing1.calls, 0);
    assert_int_equal(bus_poll(b), 2);
    assert_int_equal(typing1.calls, 1);
    assert_int_equal(typing2.calls, 1);
    assert_int_equal(other.calls, 0);
    assert_string_equal(typing2.last, "alice");
    /* a prefix of a topic is another topic */
    assert_int_equal(bus_publish(b, "typing/c", 8, "x", 1), 0);
    assert_int_equal(bus_poll(b), 0);
    /* a callback that unsubscribes a later subscriber stops its delivery at once */
    typing1.unsubscribe = id2;
    assert_int_equal(bus_publish(b, "typing/c1", 9, "bob", 3), 0);
    assert_int_equal(bus_poll(b), 1);
    assert_string_equal(typing1.last, "bob");
    assert_string_equal(typing2.last, "alice");
    assert_int_equal(bus_unsubscribe(b, id2), STATUS_NOT_FOUND);
    assert_int_equal(bus_unsubscribe(b, id1), 0);
    assert_int_equal(bus_publish(b, "typing/c1", 9, "carol", 5), 0);
    assert_int_equal(bus_poll(b), 0);
    struct bus_stats st;
    bus_get_stats(b, &st);
    assert_true(st.published == 4 && st.delivered == 3 && st.dropped == 0);
    bus_free(b);
    testutil_waker_cleanup(&waker);
}

static void test_bus_limits_and_drops(void **state) {
    struct bus_config cfg = {.max_queued = 3, .max_message = 8};
    struct bus *b = NULL;
    assert_int_equal(bus_new(&cfg, &b), 0);
    struct sink s = {.bus = b};
    uint64_t id;
    char topic[BUS_MAX_TOPIC + 1];
    memset(topic, 't', sizeof topic);
    assert_int_equal(bus_subscribe(b, topic, sizeof topic, record, &s, &id), STATUS_TOO_LARGE);
    assert_int_equal(bus_subscribe(b, topic, 0, record, &s, &id), STATUS_BAD_REQUEST);
    assert_int_equal(bus_subscribe(b, topic, BUS_MAX_TOPIC, record, &s, &id), 0);
    assert_int_equal(bus_publish(b, topic, BUS_MAX_TOPIC, "123456789", 9), STATUS_TOO_LARGE);
    for (int i = 0; i < 3; i++)
        assert_int_equal(bus_publish(b, topic, BUS_MAX_TOPIC, "m", 1), 0);
    /* the queue is full: the hint is dropped, which only loses a hint */
    assert_int_equal(bus_publish(b, topic, BUS_MAX_TOPIC, "m", 1), STATUS_UNAVAILABLE);
    assert_int_equal(bus_poll(b), 3);
    assert_int_equal(bus_publish(b, topic, BUS_MAX_TOPIC, "m", 1), 0);
    struct bus_stats st;
    bus_get_stats(b, &st);
    assert_true(st.dropped == 1 && st.published == 4);
    bus_free(b); /* with one hint still queued */
    bus_free(NULL);
}

enum { PUBLISHERS = 4, EACH = 200 };

static void *publish_many(void *arg) {
    struct bus *b = arg;
    for (int i = 0; i < EACH; i++)
        assert_int_equal(bus_publish(b, "presence", 8, "on", 2), 0);
    return NULL;
}

static void test_bus_publish_from_many_threads(void **state) {
    struct testutil_waker waker;
    testutil_waker_init(&waker);
    struct bus_config cfg = {.wake = testutil_wake, .wake_ctx = &waker};
    struct bus *b = NULL;
    assert_int_equal(bus_new(&cfg, &b), 0);
    struct sink s = {.bus = b};
    uint64_t id;
    assert_int_equal(bus_subscribe(b, "presence", 8, record, &s, &id), 0);
    pthread_t threads[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, publish_many, b), 0);
    int64_t until = testutil_now_ms() + 30000;
    uint64_t seen = 0;
    while (s.calls < PUBLISHERS * EACH && testutil_now_ms() < until) {
        bus_poll(b);
        seen = testutil_waker_wait(&waker, seen, 50);
    }
    for (int i = 0; i < PUBLISHERS; i++)
        pthread_join(threads[i], NULL);
    bus_poll(b);
    assert_int_equal(s.calls, PUBLISHERS * EACH);
    bus_free(b);
    testutil_waker_cleanup(&waker);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_delivers_by_topic_on_poll),
        cmocka_unit_test(test_bus_limits_and_drops),
        cmocka_unit_test(test_bus_publish_from_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
