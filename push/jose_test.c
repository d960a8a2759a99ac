/* push/jose_test.c: base64url, PEM keys, ES256 (raw r||s, 64 bytes) and RS256
 * JWTs verified with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>

#include "base/buf.h"
#include "base/status.h"
#include "push/jose.h"

static char *key_pem(EVP_PKEY *key, size_t *len) {
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *copy = malloc((size_t)n);
    memcpy(copy, data, (size_t)n);
    *len = (size_t)n;
    BIO_free(bio);
    return copy;
}

/* Splits a compact JWT; returns the decoded signature length in *sig_len. */
static void split_jwt(const char *jwt, size_t *signed_len, uint8_t *sig, size_t max,
                      size_t *sig_len, json_t **header) {
    const char *dot1 = strchr(jwt, '.');
    assert_non_null(dot1);
    const char *dot2 = strchr(dot1 + 1, '.');
    assert_non_null(dot2);
    assert_null(strchr(dot2 + 1, '.'));
    *signed_len = (size_t)(dot2 - jwt);
    assert_int_equal(push_jose_b64url_decode(dot2 + 1, sig, max, sig_len), 0);
    char head64[256];
    uint8_t head[256];
    size_t head_len = 0;
    assert_true((size_t)(dot1 - jwt) < sizeof head64);
    memcpy(head64, jwt, (size_t)(dot1 - jwt));
    head64[dot1 - jwt] = 0;
    assert_int_equal(push_jose_b64url_decode(head64, head, sizeof head - 1, &head_len), 0);
    *header = json_loadb((const char *)head, head_len, 0, NULL);
    assert_non_null(*header);
}

static bool verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                   size_t sig_len) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(md, sig, sig_len, msg, len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static void test_jose_es256_raw_signature(void **state) {
    EVP_PKEY *gen = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    size_t pem_len;
    char *pem = key_pem(gen, &pem_len);
    EVP_PKEY *key = NULL;
    assert_int_equal(push_jose_load_key(pem, pem_len, PUSH_JOSE_ES256, &key), 0);
    /* the wrong kind of key is refused */
    EVP_PKEY *wrong = NULL;
    assert_int_equal(push_jose_load_key(pem, pem_len, PUSH_JOSE_RS256, &wrong), STATUS_BAD_REQUEST);
    assert_int_equal(push_jose_load_key("junk", 4, PUSH_JOSE_ES256, &wrong), STATUS_BAD_REQUEST);
    /* an encrypted key is refused at once, without a passphrase prompt */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(
        PEM_write_bio_PrivateKey(bio, gen, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"passphrase"),
        1);
    char *enc;
    long enc_len = BIO_get_mem_data(bio, &enc);
    assert_non_null(strstr(enc, "ENCRYPTED"));
    assert_int_equal(push_jose_load_key(enc, (size_t)enc_len, PUSH_JOSE_ES256, &wrong),
                     STATUS_BAD_REQUEST);
    BIO_free(bio);

    for (int i = 0; i < 50; i++) { /* r or s with leading zeros must still give 64 bytes */
        json_t *header = json_pack("{s:s}", "kid", "ABC123DEFG");
        json_t *claims = json_pack("{s:s,s:I}", "iss", "TEAMID1234", "iat", (json_int_t)1700000000);
        struct buf jwt;
        buf_init(&jwt);
        assert_int_equal(push_jose_jwt(key, PUSH_JOSE_ES256, header, claims, &jwt), 0);
        uint8_t sig[128];
        size_t signed_len, sig_len;
        json_t *h;
        split_jwt((char *)jwt.data, &signed_len, sig, sizeof sig, &sig_len, &h);
        assert_int_equal(sig_len, 64);
        assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
        assert_string_equal(json_string_value(json_object_get(h, "kid")), "ABC123DEFG");
        /* raw r||s back to DER, verified by OpenSSL */
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        uint8_t *der = NULL;
        int der_len = i2d_ECDSA_SIG(es, &der);
        assert_true(verify(gen, jwt.data, signed_len, der, (size_t)der_len));
        jwt.data[3] ^= 1;
        assert_false(verify(gen, jwt.data, signed_len, der, (size_t)der_len));
        OPENSSL_free(der);
        ECDSA_SIG_free(es);
        json_decref(h);
        json_decref(header);
        json_decref(claims);
        buf_cleanup(&jwt);
    }
    uint8_t pub[PUSH_P256_POINT_LEN];
    assert_int_equal(push_jose_ec_public(key, pub), 0);
    assert_int_equal(pub[0], 0x04);
    EVP_PKEY_free(key);
    EVP_PKEY_free(gen);
    free(pem);
}

static void test_jose_rs256_signature(void **state) {
    EVP_PKEY *gen = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    size_t pem_len;
    char *pem = key_pem(gen, &pem_len);
    EVP_PKEY *key = NULL;
    assert_int_equal(push_jose_load_key(pem, pem_len, PUSH_JOSE_RS256, &key), 0);
    json_t *header = json_pack("{s:s}", "typ", "JWT");
    json_t *claims = json_pack("{s:s,s:s}", "iss", "sa@example.iam", "aud", "https://t/token");
    struct buf jwt;
    buf_init(&jwt);
    assert_int_equal(push_jose_jwt(key, PUSH_JOSE_RS256, header, claims, &jwt), 0);
    uint8_t sig[512];
    size_t signed_len, sig_len;
    json_t *h;
    split_jwt((char *)jwt.data, &signed_len, sig, sizeof sig, &sig_len, &h);
    assert_int_equal(sig_len, 256);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
    assert_true(verify(gen, jwt.data, signed_len, sig, sig_len));
    json_decref(h);
    json_decref(header);
    json_decref(claims);
    buf_cleanup(&jwt);
    EVP_PKEY_free(key);
    EVP_PKEY_free(gen);
    free(pem);
}

static void test_jose_b64url_round_trip(void **state) {
    struct buf b;
    buf_init(&b);
    push_jose_b64url((const uint8_t *)"\xfb\xff\xfe", 3, &b);
    assert_string_equal((char *)b.data, "-__-");
    uint8_t out[8];
    size_t n;
    assert_int_equal(push_jose_b64url_decode("-__-", out, sizeof out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xfb\xff\xfe", 3);
    assert_int_equal(push_jose_b64url_decode("a+b/", out, sizeof out, &n), STATUS_BAD_REQUEST);
    buf_cleanup(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jose_es256_raw_signature),
        cmocka_unit_test(test_jose_rs256_signature),
        cmocka_unit_test(test_jose_b64url_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
