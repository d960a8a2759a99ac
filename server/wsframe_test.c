/* server/wsframe.h: headers against RFC 6455 section 5.2's layout at each
 * edge of the three length forms, and the queue's frames: whole, in order,
 * cut at frame boundaries, and its buffer bounded while it never drains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/wsframe.h"

/* The header of a `len`-byte frame is want[], and wsframe_length() reads
 * the frame's whole length back from it. */
static void expect_header(uint64_t len, const uint8_t *want, size_t want_len) {
    uint8_t h[WSFRAME_HEADER_MAX];
    size_t n = wsframe_header(h, len);
    assert_int_equal(n, want_len);
    assert_memory_equal(h, want, want_len);
    assert_int_equal(wsframe_length(h), want_len + len);
}

static void test_wsframe_seven_bit_lengths(void **state) {
    (void)state;
    expect_header(0, (const uint8_t[]){0x82, 0}, 2);
    expect_header(1, (const uint8_t[]){0x82, 1}, 2);
    expect_header(125, (const uint8_t[]){0x82, 125}, 2);
}

static void test_wsframe_sixteen_bit_lengths(void **state) {
    (void)state;
    expect_header(126, (const uint8_t[]){0x82, 126, 0x00, 0x7e}, 4);
    expect_header(300, (const uint8_t[]){0x82, 126, 0x01, 0x2c}, 4);
    expect_header(65535, (const uint8_t[]){0x82, 126, 0xff, 0xff}, 4);
}

static void test_wsframe_sixty_four_bit_lengths(void **state) {
    (void)state;
    expect_header(65536, (const uint8_t[]){0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}, 10);
    expect_header(0x0102030405060708ull, (const uint8_t[]){0x82, 127, 1, 2, 3, 4, 5, 6, 7, 8}, 10);
}

/* A payload of `len` bytes all `fill`. */
static void push_filled(struct wsframe_queue *q, size_t len, uint8_t fill) {
    uint8_t *p = malloc(len ? len : 1);
    memset(p, fill, len);
    wsframe_queue_push(q, p, len);
    free(p);
}

/* Checks that bytes[0, n) are whole frames with the payload lengths
 * lens[*next...] and fills (uint8_t)*next, advancing *next. */
static void expect_frames(const uint8_t *bytes, size_t n, const size_t *lens, size_t *next) {
    size_t at = 0;
    while (at < n) {
        uint8_t h[WSFRAME_HEADER_MAX];
        size_t hl = wsframe_header(h, lens[*next]);
        assert_memory_equal(bytes + at, h, hl);
        for (size_t i = 0; i < lens[*next]; i++)
            assert_int_equal(bytes[at + hl + i], (uint8_t)*next);
        at += hl + lens[*next];
        (*next)++;
    }
    assert_int_equal(at, n);
}

static void test_wsframe_queue_peeks_whole_frames_in_order(void **state) {
    (void)state;
    static const size_t lens[] = {0, 1, 125, 126, 3000, 65535, 65536, 200000, 7, 9};
    const size_t count = sizeof lens / sizeof lens[0];
    struct wsframe_queue q;
    wsframe_queue_init(&q);
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        push_filled(&q, lens[i], (uint8_t)i);
        uint8_t h[WSFRAME_HEADER_MAX];
        total += wsframe_header(h, lens[i]) + lens[i];
    }
    assert_int_equal(wsframe_queue_len(&q), total);
    size_t next = 0, n;
    /* 0, 1, 125, 126 and 3000 fit in 8 KiB; 65535 alone exceeds it */
    const uint8_t *p = wsframe_queue_peek(&q, 8192, &n);
    expect_frames(p, n, lens, &next);
    assert_int_equal(next, 5);
    wsframe_queue_consumed(&q, n);
    p = wsframe_queue_peek(&q, 8192, &n);
    expect_frames(p, n, lens, &next); /* one frame longer than the limit */
    assert_int_equal(next, 6);
    wsframe_queue_consumed(&q, n);
    while ((p = wsframe_queue_peek(&q, 70000, &n)) != NULL) {
        expect_frames(p, n, lens, &next);
        wsframe_queue_consumed(&q, n);
    }
    assert_int_equal(next, count);
    assert_int_equal(wsframe_queue_len(&q), 0);
    assert_null(q.out.data); /* it had grown past the cap: freed */
    wsframe_queue_cleanup(&q);
}

/* A queue that never drains (a frame pushed for every one sent) keeps its
 * buffer within twice what it holds. */
static void test_wsframe_queue_stays_bounded_without_draining(void **state) {
    (void)state;
    struct wsframe_queue q;
    wsframe_queue_init(&q);
    size_t lens[2000], next = 0;
    for (size_t i = 0; i < 2000; i++)
        lens[i] = 100 + i % 50;
    size_t pushed = 0;
    for (; pushed < 10; pushed++)
        push_filled(&q, lens[pushed], (uint8_t)pushed);
    while (next < 2000) {
        size_t n;
        const uint8_t *p = wsframe_queue_peek(&q, 1, &n); /* one frame */
        expect_frames(p, n, lens, &next);
        wsframe_queue_consumed(&q, n);
        if (pushed < 2000) {
            push_filled(&q, lens[pushed], (uint8_t)pushed);
            pushed++;
        }
        assert_true(q.out.len <= 2 * wsframe_queue_len(&q) + 200);
        assert_int_equal(q.out.data ? q.out.data[q.out.len] : 0, 0);
    }
    assert_int_equal(wsframe_queue_len(&q), 0);
    assert_null(wsframe_queue_peek(&q, 100, &(size_t){0}));
    wsframe_queue_cleanup(&q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wsframe_seven_bit_lengths),
        cmocka_unit_test(test_wsframe_sixteen_bit_lengths),
        cmocka_unit_test(test_wsframe_sixty_four_bit_lengths),
        cmocka_unit_test(test_wsframe_queue_peeks_whole_frames_in_order),
        cmocka_unit_test(test_wsframe_queue_stays_bounded_without_draining),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
