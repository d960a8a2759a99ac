/* server/wsframe.h against RFC 6455 section 5.2's layout, at each edge of
 * the three length forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/wsframe.h"

static void expect_header(uint64_t len, const uint8_t *want, size_t want_len) {
    uint8_t h[WSFRAME_HEADER_MAX];
    size_t n = wsframe_header(h, len);
    assert_int_equal(n, want_len);
    assert_memory_equal(h, want, want_len);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wsframe_seven_bit_lengths),
        cmocka_unit_test(test_wsframe_sixteen_bit_lengths),
        cmocka_unit_test(test_wsframe_sixty_four_bit_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
