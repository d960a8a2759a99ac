/*
 * base/utf8_test.c: the strict UTF-8 validator (base/utf8.h) on the edges of
 * RFC 3629: every length, overlong forms, surrogates, the top of the range,
 * truncated and stray continuation bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/utf8.h"

static bool valid(const char *s) {
    return utf8_valid((const uint8_t *)s, strlen(s));
}

static void test_utf8_accepts_well_formed(void **state) {
    (void)state;
    assert_true(valid(""));
    assert_true(valid("plain ASCII \x01\x7f"));
    assert_true(valid("\xc2\x80 \xdf\xbf"));                      /* U+0080, U+07FF */
    assert_true(valid("\xe0\xa0\x80 \xed\x9f\xbf \xef\xbf\xbf")); /* U+0800, U+D7FF, U+FFFF */
    assert_true(valid("\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf"));      /* U+10000, U+10FFFF */
    assert_true(utf8_valid((const uint8_t *)"a\0b", 3));          /* U+0000 is a character */
    assert_int_equal(utf8_char_len((const uint8_t *)"\xe2\x82\xac!", 4), 3);
    assert_int_equal(utf8_char_len((const uint8_t *)"x", 1), 1);
}

static void test_utf8_refuses_ill_formed(void **state) {
    (void)state;
    assert_false(valid("\x80"));             /* stray continuation */
    assert_false(valid("\xc0\xaf"));         /* overlong '/' */
    assert_false(valid("\xc1\xbf"));         /* overlong */
    assert_false(valid("\xe0\x9f\xbf"));     /* overlong U+07FF */
    assert_false(valid("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
    assert_false(valid("\xed\xa0\x80"));     /* surrogate U+D800 */
    assert_false(valid("\xed\xbf\xbf"));     /* surrogate U+DFFF */
    assert_false(valid("\xf4\x90\x80\x80")); /* U+110000 */
    assert_false(valid("\xf5\x80\x80\x80")); /* beyond the range */
    assert_false(valid("\xff"));
    assert_false(valid("ok \xe2\x82")); /* truncated at the end */
    assert_false(valid("\xe2\x82x"));   /* truncated in the middle */
    assert_int_equal(utf8_char_len((const uint8_t *)"\xe2\x82\xac", 2), 0);
    assert_int_equal(utf8_char_len((const uint8_t *)"", 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_accepts_well_formed),
        cmocka_unit_test(test_utf8_refuses_ill_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
