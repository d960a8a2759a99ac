/* base/hex_test.c: unit tests for hex text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/status.h"
#include "base/hex.h"

static void test_hex_encode_every_byte_round_trips(void **state) {
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    struct buf text, back;
    buf_init(&text);
    buf_init(&back);
    hex_encode(all, sizeof all, &text);
    assert_int_equal(text.len, 512);
    assert_memory_equal(text.data, "000102", 6);
    assert_string_equal((char *)text.data + 500, "fafbfcfdfeff");
    assert_int_equal(hex_decode((char *)text.data, text.len, &back), 0);
    assert_int_equal(back.len, 256);
    assert_memory_equal(back.data, all, sizeof all);
    buf_cleanup(&text);
    buf_cleanup(&back);
}

static void test_hex_encode_empty_is_a_string(void **state) {
    struct buf text;
    buf_init(&text);
    hex_encode(NULL, 0, &text);
    assert_non_null(text.data);
    assert_string_equal((char *)text.data, "");
    buf_cleanup(&text);
}

static void test_hex_decode_accepts_upper_case_and_rejects_junk(void **state) {
    struct buf out;
    buf_init(&out);
    assert_int_equal(hex_decode("ABcd", 4, &out), 0);
    assert_int_equal(out.len, 2);
    assert_int_equal(out.data[0], 0xab);
    assert_int_equal(out.data[1], 0xcd);
    assert_int_equal(hex_decode("abc", 3, &out), STATUS_BAD_REQUEST);
    assert_int_equal(hex_decode("zz", 2, &out), STATUS_BAD_REQUEST);
    assert_int_equal(hex_decode("00g0", 4, &out), STATUS_BAD_REQUEST);
    assert_int_equal(out.len, 2); /* failures appended nothing */
    buf_cleanup(&out);
}

static void test_hex_decode_exact_wants_the_length(void **state) {
    (void)state;
    uint8_t out[2] = {9, 9};
    assert_int_equal(hex_decode_exact("a1B2", out, 2), 0);
    assert_int_equal(out[0], 0xa1);
    assert_int_equal(out[1], 0xb2);
    out[0] = 7;
    assert_int_equal(hex_decode_exact("a1", out, 2), STATUS_BAD_REQUEST);
    assert_int_equal(hex_decode_exact("a1b2c3", out, 2), STATUS_BAD_REQUEST);
    assert_int_equal(hex_decode_exact("zzzz", out, 2), STATUS_BAD_REQUEST);
    assert_int_equal(out[0], 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_encode_every_byte_round_trips),
        cmocka_unit_test(test_hex_encode_empty_is_a_string),
        cmocka_unit_test(test_hex_decode_accepts_upper_case_and_rejects_junk),
        cmocka_unit_test(test_hex_decode_exact_wants_the_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
