/*
 * push/jose.c: base64url, PEM keys and JWT signing (contract in jose.h).
 */
#include "push/jose.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "base/check.h"
#include "base/log.h"
#include "base/status.h"
#include "push/secret.h"

#define MOD "push"

void push_jose_b64url(const uint8_t *in, size_t n, struct buf *out) {
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    buf_reserve(out, cap);
    sodium_bin2base64((char *)out->data + out->len, cap, in, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    out->len += strlen((char *)out->data + out->len);
}

int push_jose_b64url_decode(const char *in, uint8_t *out, size_t max, size_t *out_len) {
    size_t len = strlen(in);
    if (len > (max + 2) / 3 * 4 + 2)
        return STATUS_BAD_REQUEST;
    if (sodium_base642bin(out, max, in, len, "=", out_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return STATUS_BAD_REQUEST;
    return 0;
}

static bool key_fits(EVP_PKEY *key, enum push_jose_alg alg) {
    if (alg == PUSH_JOSE_RS256)
        return EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) >= 2048;
    char group[32];
    size_t glen = 0;
    return EVP_PKEY_is_a(key, "EC") &&
           EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                          &glen) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

/* Encrypted keys are refused: OpenSSL's default callback would prompt on the
 * terminal and block. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    return -1;
}

int push_jose_load_key(const char *pem, size_t len, enum push_jose_alg alg, EVP_PKEY **out) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = NULL;
    if (bio == NULL || len > INT32_MAX) {
        BIO_free(bio);
        return STATUS_BAD_REQUEST;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (key == NULL || !key_fits(key, alg)) {
        EVP_PKEY_free(key);
        return STATUS_BAD_REQUEST;
    }
    *out = key;
    return 0;
}

#define MAX_KEY_FILE 16384

int push_jose_read_key_file(const char *path, enum push_jose_alg alg, EVP_PKEY **out) {
    struct buf pem;
    buf_init(&pem);
    int rc = push_secret_read(path, MAX_KEY_FILE, &pem);
    if (rc == 0)
        rc = push_jose_load_key((const char *)pem.data, pem.len, alg, out);
    buf_wipe(&pem);
    buf_cleanup(&pem);
    return rc;
}

int push_jose_ec_public(EVP_PKEY *key, uint8_t out[PUSH_P256_POINT_LEN]) {
    size_t n = 0;
    if (!key_fits(key, PUSH_JOSE_ES256) ||
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out,
                                        PUSH_P256_POINT_LEN, &n) != 1 ||
        n != PUSH_P256_POINT_LEN || out[0] != 0x04) {
        ERR_clear_error();
        return STATUS_BAD_REQUEST;
    }
    return 0;
}

/* DER ECDSA-Sig-Value -> r||s, each left-padded to 32 bytes. */
static int der_to_raw(const uint8_t *der, size_t len, uint8_t raw[PUSH_ES256_SIG_LEN]) {
    const uint8_t *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    int rc = STATUS_INTERNAL;
    if (sig == NULL)
        return rc;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32)
        rc = 0;
    ECDSA_SIG_free(sig);
    return rc;
}

int push_jose_sign(EVP_PKEY *key, enum push_jose_alg alg, const uint8_t *msg, size_t len,
                   struct buf *sig) {
    int rc = STATUS_INTERNAL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *der = NULL;
    size_t der_len = 0;
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &der_len, msg, len) != 1)
        goto fail;
    der = OPENSSL_malloc(der_len);
    if (der == NULL || EVP_DigestSign(md, der, &der_len, msg, len) != 1)
        goto fail;
    if (alg == PUSH_JOSE_ES256) {
        uint8_t raw[PUSH_ES256_SIG_LEN];
        if (der_to_raw(der, der_len, raw) != 0)
            goto fail;
        buf_append(sig, raw, sizeof raw);
    } else {
        buf_append(sig, der, der_len);
    }
    rc = 0;
fail:
    if (rc != 0) {
        log_error(MOD, "signing failed: %s", ERR_reason_error_string(ERR_peek_last_error()));
        ERR_clear_error();
    }
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return rc;
}

static void append_b64_json(const json_t *v, struct buf *out) {
    char *text = json_dumps(v, JSON_COMPACT);
    CHECK(text != NULL); /* jansson fails only on allocation */
    push_jose_b64url((const uint8_t *)text, strlen(text), out);
    free(text);
}

int push_jose_jwt(EVP_PKEY *key, enum push_jose_alg alg, json_t *header, const json_t *claims,
                  struct buf *out) {
    size_t start = out->len;
    struct buf sig;
    buf_init(&sig);
    json_object_set_new(header, "alg", json_string(alg == PUSH_JOSE_ES256 ? "ES256" : "RS256"));
    append_b64_json(header, out);
    buf_append_u8(out, '.');
    append_b64_json(claims, out);
    if (push_jose_sign(key, alg, out->data + start, out->len - start, &sig) != 0) {
        out->len = start;
        out->data[start] = 0;
        buf_cleanup(&sig);
        return STATUS_INTERNAL;
    }
    buf_append_u8(out, '.');
    push_jose_b64url(sig.data, sig.len, out);
    buf_cleanup(&sig);
    return 0;
}
