/* push/ece_test.c: RFC 8291 Appendix A as a known-answer test, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/status.h"
#include "push/ece.h"
#include "push/jose.h"

static size_t b64(const char *s, uint8_t *out, size_t max) {
    size_t n = 0;
    assert_int_equal(push_jose_b64url_decode(s, out, max, &n), 0);
    return n;
}

static void test_ece_rfc8291_appendix_a(void **state) {
    uint8_t plain[64], as_priv[32], ua_pub[65], salt[16], auth[16], want[256];
    size_t plain_len =
        b64("V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24", plain, sizeof plain);
    assert_int_equal(b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw", as_priv, 32), 32);
    assert_int_equal(b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd"
                         "8pZGH6SRpkNtoIAiw4",
                         ua_pub, 65),
                     65);
    assert_int_equal(b64("DGv6ra1nlYgDCS1FRnbzlw", salt, 16), 16);
    assert_int_equal(b64("BTBZMqHH6r4Tts7J_aSIgg", auth, 16), 16);
    size_t want_len =
        b64("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLoc"
            "InmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLV"
            "WGNWQexSgSxsj_Qulcy4a-fN",
            want, sizeof want);

    EVP_PKEY *as = NULL;
    assert_int_equal(push_ece_key_from_private(as_priv, &as), 0);
    uint8_t as_pub[65], want_pub[65];
    assert_int_equal(push_jose_ec_public(as, as_pub), 0);
    assert_int_equal(b64("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6Tlz"
                         "AC8wEqKK6PBru3jl7A8",
                         want_pub, 65),
                     65);
    assert_memory_equal(as_pub, want_pub, 65);

    struct buf out;
    buf_init(&out);
    assert_int_equal(push_ece_encrypt(ua_pub, auth, as, salt, plain, plain_len, &out), 0);
    assert_int_equal(out.len, want_len);
    assert_memory_equal(out.data, want, want_len);
    buf_cleanup(&out);
    EVP_PKEY_free(as);
}

static void test_ece_fresh_key_and_salt_each_time(void **state) {
    uint8_t ua_pub[65], auth[16] = {1};
    assert_int_equal(b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd"
                         "8pZGH6SRpkNtoIAiw4",
                         ua_pub, 65),
                     65);
    struct buf a, b;
    buf_init(&a);
    buf_init(&b);
    assert_int_equal(push_ece_encrypt(ua_pub, auth, NULL, NULL, (const uint8_t *)"x", 1, &a), 0);
    assert_int_equal(push_ece_encrypt(ua_pub, auth, NULL, NULL, (const uint8_t *)"x", 1, &b), 0);
    /* header 86 bytes + 1 byte + delimiter + 16-byte tag */
    assert_int_equal(a.len, 86 + 1 + 1 + 16);
    assert_int_equal(b.len, a.len);
    assert_memory_not_equal(a.data, b.data, 16);           /* salt */
    assert_memory_not_equal(a.data + 21, b.data + 21, 65); /* sender key */
    buf_cleanup(&a);
    buf_cleanup(&b);
}

static void test_ece_refuses_bad_point_and_long_plaintext(void **state) {
    uint8_t ua_pub[65] = {0x04, 1, 2, 3}, auth[16] = {0};
    struct buf out;
    buf_init(&out);
    assert_int_equal(push_ece_encrypt(ua_pub, auth, NULL, NULL, (const uint8_t *)"x", 1, &out),
                     STATUS_BAD_REQUEST);
    static uint8_t big[PUSH_ECE_MAX_PLAIN + 1];
    assert_int_equal(push_ece_encrypt(ua_pub, auth, NULL, NULL, big, sizeof big, &out),
                     STATUS_BAD_REQUEST);
    assert_int_equal(out.len, 0);
    buf_cleanup(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ece_rfc8291_appendix_a),
        cmocka_unit_test(test_ece_fresh_key_and_salt_each_time),
        cmocka_unit_test(test_ece_refuses_bad_point_and_long_plaintext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
