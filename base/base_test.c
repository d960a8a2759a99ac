/* base/base_test.c: unit tests for status, buf, varint, clock, ids and randomness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"

static void test_status_wire_mapping(void **state) {
    assert_int_equal(status_wire(STATUS_OK), 0);
    assert_int_equal(status_wire(STATUS_BAD_REQUEST), 1);
    assert_int_equal(status_wire(STATUS_INTERNAL), 9);
    assert_int_equal(status_wire(STATUS_IO), 8);
    assert_int_equal(status_wire(STATUS_CORRUPT), 9);
    assert_string_equal(status_str(STATUS_NOT_FOUND), "not found");
    assert_string_equal(status_str(12345), "unknown status");
}

static void test_buf_append_and_printf(void **state) {
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%d,", i);
    assert_int_equal(b.len, strlen((char *)b.data));
    assert_memory_equal(b.data, "0,1,2,", 6);
    assert_memory_equal(b.data + b.len - 4, "999,", 4);
    buf_wipe(&b);
    assert_int_equal(b.len, 0);
    buf_cleanup(&b);
    buf_cleanup(NULL);
}

static void test_buf_varint_round_trip(void **state) {
    static const uint64_t values[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, UINT64_MAX};
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        buf_append_varint(&b, values[i]);
    const uint8_t *p = b.data, *end = b.data + b.len;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint64_t v;
        assert_int_equal(varint_read(&p, end, &v), 0);
        assert_true(v == values[i]);
    }
    assert_ptr_equal(p, end);
    /* 300 is the protobuf documentation's example: ac 02 */
    buf_reset(&b);
    buf_append_varint(&b, 300);
    assert_int_equal(b.len, 2);
    assert_int_equal(b.data[0], 0xac);
    assert_int_equal(b.data[1], 0x02);
    buf_cleanup(&b);
}

static void test_buf_varint_rejects_truncated_and_overlong(void **state) {
    uint64_t v;
    const uint8_t truncated[] = {0x80, 0x80};
    const uint8_t *p = truncated;
    assert_int_equal(varint_read(&p, truncated + 2, &v), STATUS_BAD_REQUEST);
    uint8_t overlong[11];
    memset(overlong, 0x80, sizeof overlong);
    overlong[10] = 0x01;
    p = overlong;
    assert_int_equal(varint_read(&p, overlong + 11, &v), STATUS_BAD_REQUEST);
    const uint8_t overflow[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    p = overflow;
    assert_int_equal(varint_read(&p, overflow + 10, &v), STATUS_BAD_REQUEST);
}

static void test_clock_manual_and_offset(void **state) {
    clock_set_manual(1000);
    assert_int_equal(clock_now(), 1000);
    clock_advance(500);
    assert_int_equal(clock_now(), 1500);
    clock_reset();
    int64_t real = clock_now();
    clock_set_offset(86400000);
    int64_t later = clock_now();
    assert_true(later - real >= 86400000 && later - real < 86400000 + 5000);
    clock_reset();
}

static void fixed_source(void *ctx, void *buf, size_t n) {
    memset(buf, *(int *)ctx, n);
}

static void test_rand_ids_hex_round_trip(void **state) {
    struct id a = id_new(), b = id_new(), c;
    assert_memory_not_equal(a.b, b.b, ID_LEN);
    char hex[ID_HEX_LEN + 1];
    id_to_hex(&a, hex);
    assert_int_equal(strlen(hex), 32);
    assert_int_equal(id_from_hex(hex, &c), 0);
    assert_memory_equal(a.b, c.b, ID_LEN);
    assert_int_equal(id_from_hex("zz", &c), STATUS_BAD_REQUEST);
    assert_int_equal(id_from_hex("0123456789abcdef0123456789abcdeg", &c), STATUS_BAD_REQUEST);
    int byte = 0xab;
    rand_set_source(fixed_source, &byte);
    a = id_new();
    rand_set_source(NULL, NULL);
    id_to_hex(&a, hex);
    assert_string_equal(hex, "abababababababababababababababab");
}

static int cmp_ids(const void *a, const void *b) {
    return memcmp(a, b, ID_LEN);
}

/* Small draws come from a per-thread pool read ahead (base/rand.h): across
 * many refills, and mixed with sizes that do not divide the pool, no two
 * ids are alike. */
static void test_rand_pooled_draws_never_repeat(void **state) {
    enum { N = 2000 };
    struct id *ids = calloc(N, sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < N; i++) {
        uint8_t odd[13];
        rand_bytes(odd, sizeof odd);
        ids[i] = id_new();
    }
    qsort(ids, N, sizeof *ids, cmp_ids);
    for (size_t i = 1; i < N; i++)
        assert_memory_not_equal(ids[i - 1].b, ids[i].b, ID_LEN);
    free(ids);
}

/* A forked child must not hand out the bytes its parent's pool still holds. */
static void test_rand_forked_child_draws_other_bytes(void **state) {
    uint8_t one;
    rand_bytes(&one, 1); /* the pool now holds 511 unused bytes */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct id child = id_new();
        _exit(write(fds[1], child.b, ID_LEN) == ID_LEN ? 0 : 1);
    }
    struct id parent = id_new(), child;
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(read(fds[0], child.b, ID_LEN), ID_LEN);
    close(fds[0]);
    close(fds[1]);
    assert_memory_not_equal(parent.b, child.b, ID_LEN);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_wire_mapping),
        cmocka_unit_test(test_buf_append_and_printf),
        cmocka_unit_test(test_buf_varint_round_trip),
        cmocka_unit_test(test_buf_varint_rejects_truncated_and_overlong),
        cmocka_unit_test(test_clock_manual_and_offset),
        cmocka_unit_test(test_rand_ids_hex_round_trip),
        cmocka_unit_test(test_rand_pooled_draws_never_repeat),
        cmocka_unit_test(test_rand_forked_child_draws_other_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
