/* server/totp_test.c: HOTP and TOTP against RFC 4226 appendix D and RFC 6238
 * appendix B (the SHA-1 rows), the window and replay rules, base32 and
 * recovery codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/status.h"
#include "server/totp.h"

static const uint8_t RFC_KEY[] = "12345678901234567890";

static void test_totp_hotp_rfc4226_appendix_d(void **state) {
    const uint32_t want[10] = {755224, 287082, 359152, 969429, 338314,
                               254676, 287922, 162583, 399871, 520489};
    for (uint64_t c = 0; c < 10; c++)
        assert_int_equal(totp_hotp(RFC_KEY, 20, c, 6), want[c]);
}

static void test_totp_rfc6238_appendix_b_sha1(void **state) {
    const struct {
        int64_t t;
        uint32_t code;
    } rows[] = {{59, 94287082},         {1111111109, 7081804},  {1111111111, 14050471},
                {1234567890, 89005924}, {2000000000, 69279037}, {20000000000, 65353130}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(totp_hotp(RFC_KEY, 20, totp_step(rows[i].t), 8), rows[i].code);
}

static void code_at(uint64_t step, char out[7]) {
    snprintf(out, 7, "%06u", totp_hotp(RFC_KEY, 20, step, 6));
}

static void test_totp_verify_window_and_replay(void **state) {
    int64_t now = 1111111111;
    uint64_t s = totp_step(now), got = 0;
    char c[7];
    for (int d = -1; d <= 1; d++) {
        code_at(s + (uint64_t)d, c);
        assert_int_equal(totp_verify(RFC_KEY, c, now, 0, &got), 0);
        assert_true(got == s + (uint64_t)d);
    }
    /* Two steps away: refused. */
    code_at(s + 2, c);
    assert_int_equal(totp_verify(RFC_KEY, c, now, 0, &got), STATUS_UNAUTHENTICATED);
    code_at(s - 2, c);
    assert_int_equal(totp_verify(RFC_KEY, c, now, 0, &got), STATUS_UNAUTHENTICATED);
    /* The step accepted last, and any before it, are refused (replay). */
    code_at(s, c);
    assert_int_equal(totp_verify(RFC_KEY, c, now, s, &got), STATUS_UNAUTHENTICATED);
    code_at(s - 1, c);
    assert_int_equal(totp_verify(RFC_KEY, c, now, s, &got), STATUS_UNAUTHENTICATED);
    code_at(s + 1, c);
    assert_int_equal(totp_verify(RFC_KEY, c, now, s, &got), 0);
    /* Shapes other than 6 digits. */
    assert_int_equal(totp_verify(RFC_KEY, "12345", now, 0, &got), STATUS_UNAUTHENTICATED);
    assert_int_equal(totp_verify(RFC_KEY, "1234567", now, 0, &got), STATUS_UNAUTHENTICATED);
    assert_int_equal(totp_verify(RFC_KEY, "12a456", now, 0, &got), STATUS_UNAUTHENTICATED);
    assert_false(totp_step_unused(5, 5));
    assert_true(totp_step_unused(5, 6));
}

static void test_totp_base32_rfc4648(void **state) {
    char out[64];
    totp_base32((const uint8_t *)"foobar", 6, out, sizeof out);
    assert_string_equal(out, "MZXW6YTBOI");
    totp_base32(RFC_KEY, 20, out, sizeof out);
    assert_string_equal(out, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_int_equal(strlen(out), TOTP_SECRET_B32);
}

static void test_totp_recovery_codes(void **state) {
    char code[TOTP_RECOVERY_LEN + 1];
    uint8_t h1[TOTP_HASH_LEN], h2[TOTP_HASH_LEN];
    totp_recovery_new(code, h1);
    assert_int_equal(strlen(code), TOTP_RECOVERY_LEN);
    assert_true(code[4] == '-' && code[9] == '-' && code[14] == '-');
    assert_int_equal(totp_recovery_hash(code, h2), 0);
    assert_memory_equal(h1, h2, TOTP_HASH_LEN);
    /* Typed without dashes, in lower case. */
    char typed[32];
    size_t n = 0;
    for (const char *p = code; *p; p++)
        if (*p != '-')
            typed[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
    typed[n] = '\0';
    assert_int_equal(totp_recovery_hash(typed, h2), 0);
    assert_memory_equal(h1, h2, TOTP_HASH_LEN);
    assert_int_equal(totp_recovery_hash("ABCD-EFGH", h2), STATUS_BAD_REQUEST);
    assert_int_equal(totp_recovery_hash("ABCD-EFGH-IJKL-MNO1", h2), STATUS_BAD_REQUEST);
    assert_int_equal(totp_recovery_hash("ABCD-EFGH-IJKL-MNOPQ", h2), STATUS_BAD_REQUEST);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totp_hotp_rfc4226_appendix_d),
        cmocka_unit_test(test_totp_rfc6238_appendix_b_sha1),
        cmocka_unit_test(test_totp_verify_window_and_replay),
        cmocka_unit_test(test_totp_base32_rfc4648),
        cmocka_unit_test(test_totp_recovery_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
