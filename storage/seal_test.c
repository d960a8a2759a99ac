/* storage/seal_test.c: sealing round trips, tamper detection, libsodium/OpenSSL interop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/status.h"
#include "storage/seal.h"

static const uint8_t KEY_A[SEAL_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                            12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                            23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY_B[SEAL_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                            12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                            23, 24, 25, 26, 27, 28, 29, 30, 31, 33};
static const char RKEY[] = "\x01\x02record-key";
/* KEY_A and KEY_B prepared by setup(). */
static struct seal_key key_a, key_b;

static struct seal_key_id test_kid(void) {
    struct seal_key_id kid;
    memset(kid.owner.b, 0x5a, ID_LEN);
    kid.version = 3;
    return kid;
}

static int setup(void **state) {
    int rc = seal_init();
    seal_key_prepare(KEY_A, &key_a);
    seal_key_prepare(KEY_B, &key_b);
    return rc;
}

static void require_sodium(void) {
    if (!seal_sodium_available())
        skip();
}

static void round_trip(enum seal_impl seal_with, enum seal_impl open_with) {
    static const size_t sizes[] = {0, 1, 15, 16, 17, 255, 4096, 100000};
    struct seal_key_id kid = test_kid();
    struct buf plain, sealed, opened;
    buf_init(&plain);
    buf_init(&sealed);
    buf_init(&opened);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        buf_reset(&plain);
        for (size_t j = 0; j < sizes[i]; j++)
            buf_append_u8(&plain, (uint8_t)(j * 31 + i));
        assert_int_equal(seal_value(seal_with, &key_a, &kid, "messages", RKEY, sizeof RKEY,
                                    plain.data, plain.len, &sealed),
                         0);
        assert_int_equal(sealed.len, plain.len + SEAL_OVERHEAD);
        assert_int_equal(sealed.data[0], SEAL_VERSION);
        if (plain.len >= 16) /* the ciphertext is not the plaintext */
            assert_memory_not_equal(sealed.data + SEAL_HEADER_LEN, plain.data, 16);
        assert_int_equal(seal_open(open_with, &key_a, "messages", RKEY, sizeof RKEY, sealed.data,
                                   sealed.len, &opened),
                         0);
        assert_int_equal(opened.len, plain.len);
        if (plain.len)
            assert_memory_equal(opened.data, plain.data, plain.len);
    }
    buf_cleanup(&plain);
    buf_cleanup(&sealed);
    buf_cleanup(&opened);
}

static void test_seal_round_trip_openssl(void **state) {
    round_trip(SEAL_OPENSSL, SEAL_OPENSSL);
}

static void test_seal_round_trip_sodium(void **state) {
    require_sodium();
    round_trip(SEAL_SODIUM, SEAL_SODIUM);
    round_trip(SEAL_AUTO, SEAL_AUTO);
}

static void test_seal_sodium_and_openssl_open_each_other(void **state) {
    require_sodium();
    round_trip(SEAL_SODIUM, SEAL_OPENSSL);
    round_trip(SEAL_OPENSSL, SEAL_SODIUM);
}

static void test_seal_header_carries_key_id(void **state) {
    struct seal_key_id kid = test_kid(), got;
    struct buf sealed;
    buf_init(&sealed);
    assert_int_equal(seal_value(SEAL_OPENSSL, &key_a, &kid, "meta", "k", 1, "v", 1, &sealed), 0);
    assert_int_equal(seal_key_id_of(sealed.data, sealed.len, &got), 0);
    assert_memory_equal(got.owner.b, kid.owner.b, ID_LEN);
    assert_int_equal(got.version, 3);
    assert_int_equal(seal_key_id_of(sealed.data, SEAL_OVERHEAD - 1, &got), STATUS_CORRUPT);
    sealed.data[0] = 3; /* an unknown version */
    assert_int_equal(seal_key_id_of(sealed.data, sealed.len, &got), STATUS_CORRUPT);
    buf_cleanup(&sealed);
}

static void test_seal_nonces_differ(void **state) {
    struct seal_key_id kid = test_kid();
    struct buf a, b;
    buf_init(&a);
    buf_init(&b);
    assert_int_equal(seal_value(SEAL_AUTO, &key_a, &kid, "meta", "k", 1, "same", 4, &a), 0);
    assert_int_equal(seal_value(SEAL_AUTO, &key_a, &kid, "meta", "k", 1, "same", 4, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.data + 21, b.data + 21, SEAL_NONCE_LEN);
    assert_memory_not_equal(a.data + SEAL_HEADER_LEN, b.data + SEAL_HEADER_LEN, a.len - 33);
    buf_cleanup(&a);
    buf_cleanup(&b);
}

static void expect_corrupt(enum seal_impl impl, const struct seal_key *key, const char *cf,
                           const void *rkey, size_t rkey_len, const struct buf *sealed) {
    struct buf opened;
    buf_init(&opened);
    assert_int_equal(seal_open(impl, key, cf, rkey, rkey_len, sealed->data, sealed->len, &opened),
                     STATUS_CORRUPT);
    assert_int_equal(opened.len, 0);
    buf_cleanup(&opened);
}

static void wrong_context(enum seal_impl impl) {
    struct seal_key_id kid = test_kid();
    struct buf sealed;
    buf_init(&sealed);
    assert_int_equal(
        seal_value(impl, &key_a, &kid, "messages", RKEY, sizeof RKEY, "secret", 6, &sealed), 0);
    expect_corrupt(impl, &key_b, "messages", RKEY, sizeof RKEY, &sealed);     /* wrong key */
    expect_corrupt(impl, &key_a, "inboxes", RKEY, sizeof RKEY, &sealed);      /* other cf */
    expect_corrupt(impl, &key_a, "messages", RKEY, sizeof RKEY - 1, &sealed); /* other key */
    expect_corrupt(impl, &key_a, "messages", "other", 5, &sealed);
    /* the boundary between cf name and key is bound too: "messag"+"es..." differs */
    assert_int_equal(seal_value(impl, &key_a, &kid, "ab", "c", 1, "x", 1, &sealed), 0);
    expect_corrupt(impl, &key_a, "a", "bc", 2, &sealed);
    buf_cleanup(&sealed);
}

static void test_seal_wrong_key_or_context_is_corrupt(void **state) {
    wrong_context(SEAL_OPENSSL);
    if (seal_sodium_available())
        wrong_context(SEAL_SODIUM);
}

static void flips_and_truncations(enum seal_impl impl) {
    struct seal_key_id kid = test_kid();
    struct buf sealed, copy;
    buf_init(&sealed);
    buf_init(&copy);
    assert_int_equal(seal_value(impl, &key_a, &kid, "files", RKEY, sizeof RKEY,
                                "patient data 0123456789", 23, &sealed),
                     0);
    /* every single bit of header, ciphertext and tag */
    for (size_t bit = 0; bit < sealed.len * 8; bit++) {
        buf_reset(&copy);
        buf_append(&copy, sealed.data, sealed.len);
        copy.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        expect_corrupt(impl, &key_a, "files", RKEY, sizeof RKEY, &copy);
    }
    for (size_t len = 0; len < sealed.len; len++) {
        buf_reset(&copy);
        buf_append(&copy, sealed.data, len);
        expect_corrupt(impl, &key_a, "files", RKEY, sizeof RKEY, &copy);
    }
    buf_reset(&copy);
    buf_append(&copy, sealed.data, sealed.len);
    buf_append_u8(&copy, 0);
    expect_corrupt(impl, &key_a, "files", RKEY, sizeof RKEY, &copy);
    buf_cleanup(&sealed);
    buf_cleanup(&copy);
}

static void test_seal_bit_flips_and_truncation_are_corrupt(void **state) {
    flips_and_truncations(SEAL_OPENSSL);
    if (seal_sodium_available())
        flips_and_truncations(SEAL_SODIUM);
}

static void test_seal_rejects_oversized_input(void **state) {
    struct seal_key_id kid = test_kid();
    struct buf sealed;
    buf_init(&sealed);
    char long_cf[300];
    memset(long_cf, 'c', sizeof long_cf - 1);
    long_cf[sizeof long_cf - 1] = '\0';
    assert_int_equal(seal_value(SEAL_AUTO, &key_a, &kid, long_cf, "k", 1, "v", 1, &sealed),
                     STATUS_TOO_LARGE);
    static const uint8_t big = 0;
    assert_int_equal(seal_value(SEAL_AUTO, &key_a, &kid, "meta", "k", 1, &big,
                                (size_t)SEAL_MAX_PLAIN + 1, &sealed),
                     STATUS_TOO_LARGE);
    uint8_t rkey[SEAL_MAX_RKEY + 1] = {0};
    assert_int_equal(
        seal_value(SEAL_AUTO, &key_a, &kid, "meta", rkey, sizeof rkey, "v", 1, &sealed),
        STATUS_TOO_LARGE);
    assert_int_equal(
        seal_value(SEAL_AUTO, &key_a, &kid, "meta", rkey, SEAL_MAX_RKEY, "v", 1, &sealed), 0);
    struct buf opened;
    buf_init(&opened);
    assert_int_equal(
        seal_open(SEAL_AUTO, &key_a, "meta", rkey, sizeof rkey, sealed.data, sealed.len, &opened),
        STATUS_TOO_LARGE);
    assert_int_equal(
        seal_open(SEAL_AUTO, &key_a, "meta", rkey, SEAL_MAX_RKEY, sealed.data, sealed.len, &opened),
        0);
    assert_memory_equal(opened.data, "v", 1);
    buf_cleanup(&opened);
    buf_cleanup(&sealed);
}

/* The additional data of a value of RKEY in column family `cf` with
 * `header`, written out from seal.h's description, not by seal.c. */
static void format_ad(const char *cf, const uint8_t header[SEAL_HEADER_LEN], struct buf *ad) {
    buf_append_u8(ad, (uint8_t)strlen(cf));
    buf_append(ad, cf, strlen(cf));
    const uint8_t len4[4] = {0, 0, 0, sizeof RKEY};
    buf_append(ad, len4, 4);
    buf_append(ad, RKEY, sizeof RKEY);
    buf_append(ad, header, SEAL_HEADER_LEN);
}

/* Version 2 seals each value under HMAC-SHA256(key, "carechat.v2 seal subkey"
 * || nonce), rebuilt here with OpenSSL's EVP directly; a version-1 value
 * (the data key itself) still opens. */
static void test_seal_per_value_subkey_and_version_1(void **state) {
    struct seal_key_id kid = test_kid();
    struct buf sealed, opened;
    buf_init(&sealed);
    buf_init(&opened);
    const char plain[] = "one inbox entry";
    assert_int_equal(seal_value(SEAL_OPENSSL, &key_a, &kid, "inboxes", RKEY, sizeof RKEY, plain,
                                sizeof plain, &sealed),
                     0);
    assert_int_equal(sealed.data[0], 2);
    const uint8_t *nonce = sealed.data + 1 + 16 + 4;
    uint8_t subkey[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, KEY_A, 32);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)"carechat.v2 seal subkey", 23);
    crypto_auth_hmacsha256_update(&st, nonce, 12);
    crypto_auth_hmacsha256_final(&st, subkey);
    /* The additional data: cf name, record key, header. */
    struct buf ad;
    buf_init(&ad);
    format_ad("inboxes", sealed.data, &ad);
    uint8_t out[sizeof plain];
    int n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL), 1);
    assert_int_equal(EVP_DecryptInit_ex(ctx, NULL, NULL, subkey, nonce), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &n, ad.data, (int)ad.len), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, out, &n, sealed.data + SEAL_HEADER_LEN, sizeof plain),
                     1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
                                         sealed.data + SEAL_HEADER_LEN + sizeof plain),
                     1);
    assert_int_equal(EVP_DecryptFinal_ex(ctx, out + n, &n), 1);
    EVP_CIPHER_CTX_free(ctx);
    assert_memory_equal(out, plain, sizeof plain);

    /* A version-1 value: AES-256-GCM under the data key itself. */
    sealed.data[0] = 1;
    buf_reset(&ad);
    format_ad("inboxes", sealed.data, &ad);
    ctx = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL), 1);
    assert_int_equal(EVP_EncryptInit_ex(ctx, NULL, NULL, KEY_A, nonce), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &n, ad.data, (int)ad.len), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, sealed.data + SEAL_HEADER_LEN, &n,
                                       (const uint8_t *)plain, sizeof plain),
                     1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, sealed.data + SEAL_HEADER_LEN + n, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16,
                                         sealed.data + SEAL_HEADER_LEN + sizeof plain),
                     1);
    EVP_CIPHER_CTX_free(ctx);
    assert_int_equal(seal_open(SEAL_AUTO, &key_a, "inboxes", RKEY, sizeof RKEY, sealed.data,
                               sealed.len, &opened),
                     0);
    assert_memory_equal(opened.data, plain, sizeof plain);
    /* ... and an unknown version does not */
    sealed.data[0] = 3;
    assert_int_equal(seal_open(SEAL_AUTO, &key_a, "inboxes", RKEY, sizeof RKEY, sealed.data,
                               sealed.len, &opened),
                     STATUS_CORRUPT);
    buf_cleanup(&ad);
    buf_cleanup(&sealed);
    buf_cleanup(&opened);
}

/* A value of the pinned format, computed outside CareChat (Python's hmac and
 * cryptography's AESGCM): KEY_A, key id (0x5a * 16, 3), nonce a0..ab, cf
 * "inboxes", record key RKEY (with its NUL), plaintext "pinned format". */
static const uint8_t PINNED_NONCE[SEAL_NONCE_LEN] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5,
                                                     0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};
/* HMAC-SHA256(KEY_A, "carechat.v2 seal subkey" || PINNED_NONCE) */
static const uint8_t PINNED_SUBKEY[SEAL_KEY_LEN] = {
    0x61, 0xf1, 0x8d, 0xd4, 0x84, 0x54, 0x2f, 0xed, 0x13, 0xed, 0xf1, 0xa2, 0x55, 0x6a, 0x37, 0x08,
    0x06, 0x6e, 0xb8, 0xa5, 0x88, 0xc8, 0xd5, 0x63, 0x04, 0x89, 0xe3, 0xcf, 0x02, 0xfc, 0xdc, 0x6f};
static const uint8_t PINNED_VALUE[] = {
    0x02, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x00, 0x00, 0x00, 0x03, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa,
    0xab, 0x28, 0x16, 0x97, 0x77, 0x7f, 0x53, 0xb0, 0xf1, 0x4c, 0x68, 0x81, 0x96, 0x9a, 0x4d, 0x12,
    0x39, 0x74, 0xcb, 0x88, 0x87, 0xb5, 0xce, 0xee, 0x10, 0xa6, 0x84, 0x2a, 0xb2, 0x76};

/* The subkey the old code derived: libsodium's one-shot HMAC over context || nonce. */
static void one_shot_subkey(const uint8_t nonce[SEAL_NONCE_LEN], uint8_t out[SEAL_KEY_LEN]) {
    uint8_t msg[23 + SEAL_NONCE_LEN];
    memcpy(msg, "carechat.v2 seal subkey", 23);
    memcpy(msg + 23, nonce, SEAL_NONCE_LEN);
    crypto_auth_hmacsha256(out, msg, sizeof msg, KEY_A);
}

static void expect_pinned_value_opens(enum seal_impl impl, const struct seal_key *key) {
    struct buf opened;
    buf_init(&opened);
    assert_int_equal(seal_open(impl, key, "inboxes", RKEY, sizeof RKEY, PINNED_VALUE,
                               sizeof PINNED_VALUE, &opened),
                     0);
    assert_int_equal(opened.len, 13);
    assert_memory_equal(opened.data, "pinned format", 13);
    buf_cleanup(&opened);
}

/* A prepared key derives exactly the subkey of the format: a value computed
 * outside CareChat opens, and values sealed now open under the one-shot HMAC
 * subkey of their nonce. A wrong prepared state (context missing or absorbed
 * twice, another key) fails both. */
static void test_seal_prepared_key_keeps_the_pinned_format(void **state) {
    uint8_t subkey[SEAL_KEY_LEN];
    one_shot_subkey(PINNED_NONCE, subkey);
    assert_memory_equal(subkey, PINNED_SUBKEY, SEAL_KEY_LEN);
    assert_memory_equal(PINNED_VALUE + 1 + ID_LEN + 4, PINNED_NONCE, SEAL_NONCE_LEN);
    expect_pinned_value_opens(SEAL_OPENSSL, &key_a);
    if (seal_sodium_available())
        expect_pinned_value_opens(SEAL_SODIUM, &key_a);
    struct buf sealed;
    buf_init(&sealed);
    buf_append(&sealed, PINNED_VALUE, sizeof PINNED_VALUE);
    expect_corrupt(SEAL_AUTO, &key_b, "inboxes", RKEY, sizeof RKEY, &sealed);

    /* values sealed now: the AES key is the one-shot subkey of their own nonce */
    struct seal_key_id kid = test_kid();
    for (int i = 0; i < 4; i++) {
        assert_int_equal(
            seal_value(SEAL_AUTO, &key_a, &kid, "messages", RKEY, sizeof RKEY, "now", 3, &sealed),
            0);
        one_shot_subkey(sealed.data + 1 + ID_LEN + 4, subkey);
        struct buf ad;
        buf_init(&ad);
        format_ad("messages", sealed.data, &ad);
        uint8_t plain[3];
        assert_int_equal(seal_aead_decrypt(SEAL_OPENSSL, subkey, sealed.data + 1 + ID_LEN + 4,
                                           ad.data, ad.len, sealed.data + SEAL_HEADER_LEN,
                                           sealed.len - SEAL_HEADER_LEN, plain),
                         0);
        assert_memory_equal(plain, "now", 3);
        buf_cleanup(&ad);
    }
    buf_cleanup(&sealed);
    sodium_memzero(subkey, sizeof subkey);
}

/* Keys prepared independently from the same bytes (also in place, and copied
 * as the key store hands them out) are the same key, and sealing leaves a
 * prepared key as it was. */
static void test_seal_prepared_keys_are_interchangeable(void **state) {
    struct seal_key fresh, in_place, copy;
    memset(&fresh, 0xff, sizeof fresh);
    seal_key_prepare(KEY_A, &fresh);
    assert_memory_equal(&fresh, &key_a, sizeof fresh); /* every byte written, same state */
    memset(&in_place, 0, sizeof in_place);
    memcpy(in_place.bytes, KEY_A, SEAL_KEY_LEN);
    seal_key_prepare(in_place.bytes, &in_place);
    assert_memory_equal(&in_place, &key_a, sizeof in_place);
    copy = fresh;
    expect_pinned_value_opens(SEAL_AUTO, &in_place);
    expect_pinned_value_opens(SEAL_AUTO, &copy);

    struct seal_key_id kid = test_kid();
    struct buf sealed, opened;
    buf_init(&sealed);
    buf_init(&opened);
    const struct seal_key *sealers[] = {&key_a, &fresh, &in_place, &copy};
    const struct seal_key *openers[] = {&copy, &in_place, &key_a, &fresh};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(seal_value(SEAL_AUTO, sealers[i], &kid, "messages", RKEY, sizeof RKEY,
                                    "same key", 8, &sealed),
                         0);
        assert_int_equal(seal_open(SEAL_AUTO, openers[i], "messages", RKEY, sizeof RKEY,
                                   sealed.data, sealed.len, &opened),
                         0);
        assert_int_equal(opened.len, 8);
        assert_memory_equal(opened.data, "same key", 8);
        expect_corrupt(SEAL_AUTO, &key_b, "messages", RKEY, sizeof RKEY, &sealed);
    }
    /* used many times, none changed */
    seal_key_prepare(KEY_A, &in_place);
    assert_memory_equal(&fresh, &in_place, sizeof fresh);
    assert_memory_equal(&key_a, &in_place, sizeof fresh);
    assert_memory_equal(&copy, &in_place, sizeof fresh);
    sodium_memzero(&fresh, sizeof fresh);
    sodium_memzero(&in_place, sizeof in_place);
    sodium_memzero(&copy, sizeof copy);
    buf_cleanup(&sealed);
    buf_cleanup(&opened);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_round_trip_openssl),
        cmocka_unit_test(test_seal_round_trip_sodium),
        cmocka_unit_test(test_seal_sodium_and_openssl_open_each_other),
        cmocka_unit_test(test_seal_header_carries_key_id),
        cmocka_unit_test(test_seal_nonces_differ),
        cmocka_unit_test(test_seal_wrong_key_or_context_is_corrupt),
        cmocka_unit_test(test_seal_bit_flips_and_truncation_are_corrupt),
        cmocka_unit_test(test_seal_rejects_oversized_input),
        cmocka_unit_test(test_seal_per_value_subkey_and_version_1),
        cmocka_unit_test(test_seal_prepared_key_keeps_the_pinned_format),
        cmocka_unit_test(test_seal_prepared_keys_are_interchangeable),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
