/*
 * client/hkdf_test.c: HKDF-SHA256 against RFC 5869 appendix A (test cases 1-3,
 * the SHA-256 ones), and its bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/status.h"
#include "base/hex.h"
#include "client/hkdf.h"

/* One appendix A case, as the RFC prints it (hex). */
struct rfc5869_case {
    const char *ikm, *salt, *info, *prk, *okm;
    size_t l;
};

/* A.1 Test Case 1: basic test case with SHA-256. */
static const struct rfc5869_case case1 = {
    .ikm = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    .salt = "000102030405060708090a0b0c",
    .info = "f0f1f2f3f4f5f6f7f8f9",
    .l = 42,
    .prk = "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
    .okm = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
};

/* A.2 Test Case 2: longer inputs and outputs (three Expand blocks). */
static const struct rfc5869_case case2 = {
    .ikm = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
           "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
           "404142434445464748494a4b4c4d4e4f",
    .salt = "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
    .info = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
            "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
    .l = 82,
    .prk = "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
    .okm = "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
           "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
           "cc30c58179ec3e87c14c01d5c1f3434f1d87",
};

/* A.3 Test Case 3: zero-length salt and info. */
static const struct rfc5869_case case3 = {
    .ikm = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    .salt = "",
    .info = "",
    .l = 42,
    .prk = "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
    .okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
};

static struct buf unhex(const char *hex) {
    struct buf b;
    buf_init(&b);
    assert_int_equal(hex_decode(hex, strlen(hex), &b), 0);
    buf_append(&b, "", 0); /* data is non-NULL even for "" */
    return b;
}

static void assert_hex_equal(const uint8_t *got, size_t n, const char *want) {
    struct buf text;
    buf_init(&text);
    hex_encode(got, n, &text);
    assert_string_equal((char *)text.data, want);
    buf_cleanup(&text);
}

static void check_case(const struct rfc5869_case *c) {
    struct buf ikm = unhex(c->ikm), salt = unhex(c->salt), info = unhex(c->info);
    uint8_t prk[HKDF_SHA256_LEN];
    uint8_t okm[128];
    assert_true(c->l <= sizeof okm);

    hkdf_extract(salt.data, salt.len, ikm.data, ikm.len, prk);
    assert_hex_equal(prk, sizeof prk, c->prk);
    assert_int_equal(hkdf_expand(prk, sizeof prk, info.data, info.len, okm, c->l), 0);
    assert_hex_equal(okm, c->l, c->okm);

    memset(okm, 0, sizeof okm);
    assert_int_equal(
        hkdf_sha256(salt.data, salt.len, ikm.data, ikm.len, info.data, info.len, okm, c->l), 0);
    assert_hex_equal(okm, c->l, c->okm);

    buf_cleanup(&ikm);
    buf_cleanup(&salt);
    buf_cleanup(&info);
}

static void test_hkdf_rfc5869_case1_basic(void **state) {
    check_case(&case1);
}

static void test_hkdf_rfc5869_case2_long_inputs(void **state) {
    check_case(&case2);
}

static void test_hkdf_rfc5869_case3_empty_salt_and_info(void **state) {
    check_case(&case3);
}

static void test_hkdf_extract_in_pieces_equals_one_shot(void **state) {
    struct buf ikm = unhex(case2.ikm), salt = unhex(case2.salt);
    struct hkdf_extract x;
    uint8_t prk[HKDF_SHA256_LEN];
    hkdf_extract_init(&x, salt.data, salt.len);
    hkdf_extract_update(&x, ikm.data, 1);
    hkdf_extract_update(&x, NULL, 0);
    hkdf_extract_update(&x, ikm.data + 1, 40);
    hkdf_extract_update(&x, ikm.data + 41, ikm.len - 41);
    hkdf_extract_final(&x, prk);
    assert_hex_equal(prk, sizeof prk, case2.prk);
    buf_cleanup(&ikm);
    buf_cleanup(&salt);
}

/* A NULL salt means HashLen zeros (RFC 5869 2.2): case 3's PRK again. */
static void test_hkdf_null_salt_is_zeros(void **state) {
    struct buf ikm = unhex(case3.ikm);
    uint8_t zeros[HKDF_SHA256_LEN] = {0};
    uint8_t a[HKDF_SHA256_LEN], b[HKDF_SHA256_LEN];
    hkdf_extract(NULL, 0, ikm.data, ikm.len, a);
    hkdf_extract(zeros, sizeof zeros, ikm.data, ikm.len, b);
    assert_memory_equal(a, b, sizeof a);
    assert_hex_equal(a, sizeof a, case3.prk);
    buf_cleanup(&ikm);
}

static void test_hkdf_expand_bounds(void **state) {
    struct buf prk = unhex(case1.prk);
    static uint8_t okm[HKDF_SHA256_MAX_OKM + 1];
    memset(okm, 0xaa, sizeof okm);
    /* 255 blocks is the most the one-byte counter allows ... */
    assert_int_equal(hkdf_expand(prk.data, prk.len, NULL, 0, okm, HKDF_SHA256_MAX_OKM), 0);
    assert_int_equal(okm[HKDF_SHA256_MAX_OKM], 0xaa);
    /* ... and its first 42 bytes are the 42-byte answer (same info). */
    uint8_t short_okm[42];
    assert_int_equal(hkdf_expand(prk.data, prk.len, NULL, 0, short_okm, sizeof short_okm), 0);
    assert_memory_equal(okm, short_okm, sizeof short_okm);
    /* One byte more would wrap the counter: refused, nothing written. */
    memset(okm, 0xaa, sizeof okm);
    assert_int_equal(hkdf_expand(prk.data, prk.len, NULL, 0, okm, HKDF_SHA256_MAX_OKM + 1),
                     STATUS_BAD_REQUEST);
    assert_int_equal(okm[0], 0xaa);
    /* A PRK shorter than HashLen is not a PRK. */
    assert_int_equal(hkdf_expand(prk.data, HKDF_SHA256_LEN - 1, NULL, 0, okm, 32),
                     STATUS_BAD_REQUEST);
    /* L = 0 is allowed and writes nothing. */
    assert_int_equal(hkdf_expand(prk.data, prk.len, NULL, 0, okm, 0), 0);
    assert_int_equal(okm[0], 0xaa);
    buf_cleanup(&prk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hkdf_rfc5869_case1_basic),
        cmocka_unit_test(test_hkdf_rfc5869_case2_long_inputs),
        cmocka_unit_test(test_hkdf_rfc5869_case3_empty_salt_and_info),
        cmocka_unit_test(test_hkdf_extract_in_pieces_equals_one_shot),
        cmocka_unit_test(test_hkdf_null_salt_is_zeros),
        cmocka_unit_test(test_hkdf_expand_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
