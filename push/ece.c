/*
 * push/ece.c: RFC 8291 / RFC 8188 encryption (contract in ece.h).
 */
#include "push/ece.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include "base/status.h"

#define HMAC_LEN crypto_auth_hmacsha256_BYTES

/* out = HMAC-SHA256(key, a || b || c) */
static void hmac3(const uint8_t *key, size_t key_len, const void *a, size_t a_len, const void *b,
                  size_t b_len, const void *c, size_t c_len, uint8_t out[HMAC_LEN]) {
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, a, a_len);
    crypto_auth_hmacsha256_update(&st, b, b_len);
    crypto_auth_hmacsha256_update(&st, c, c_len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

static EVP_PKEY *key_from_params(const uint8_t *priv, const uint8_t *pub, size_t pub_len) {
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    BIGNUM *bn = priv != NULL ? BN_bin2bn(priv, 32, NULL) : NULL;
    if (ctx == NULL || bld == NULL || (priv != NULL && bn == NULL) ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len) != 1 ||
        (bn != NULL && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn) != 1))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, bn != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) !=
            1)
        key = NULL;
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bn);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return key;
}

int push_ece_key_from_private(const uint8_t priv[32], EVP_PKEY **out) {
    int rc = STATUS_BAD_REQUEST;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *pub = group != NULL ? EC_POINT_new(group) : NULL;
    BIGNUM *d = BN_bin2bn(priv, 32, NULL);
    uint8_t point[PUSH_P256_POINT_LEN];
    if (pub == NULL || d == NULL || BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(group)) >= 0 ||
        EC_POINT_mul(group, pub, d, NULL, NULL, NULL) != 1 ||
        EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, point, sizeof point, NULL) !=
            sizeof point)
        goto out;
    *out = key_from_params(priv, point, sizeof point);
    if (*out != NULL)
        rc = 0;
out:
    BN_clear_free(d);
    EC_POINT_free(pub);
    EC_GROUP_free(group);
    ERR_clear_error();
    return rc;
}

/* The P-256 shared secret of `ours` and `theirs`. */
static int ecdh(EVP_PKEY *ours, EVP_PKEY *theirs, uint8_t secret[32]) {
    size_t n = 32;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(ours, NULL);
    int ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
             EVP_PKEY_derive_set_peer(ctx, theirs) == 1 && EVP_PKEY_derive(ctx, secret, &n) == 1 &&
             n == 32;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok ? 0 : STATUS_INTERNAL;
}

static int aes128gcm(const uint8_t key[16], const uint8_t nonce[12], const uint8_t *in, size_t len,
                     uint8_t *out) {
    int n = 0, m = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c != NULL && EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, nonce) == 1 &&
             EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1 &&
             EVP_EncryptFinal_ex(c, out + n, &m) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + n + m) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : STATUS_INTERNAL;
}

int push_ece_encrypt(const uint8_t ua_public[PUSH_P256_POINT_LEN],
                     const uint8_t auth[PUSH_ECE_AUTH_LEN], EVP_PKEY *as_key, const uint8_t *salt,
                     const uint8_t *plain, size_t plain_len, struct buf *out) {
    static const uint8_t one = 1;
    static const char key_info[] = "WebPush: info"; /* with its NUL */
    static const char cek_info[] = "Content-Encoding: aes128gcm";
    static const char nonce_info[] = "Content-Encoding: nonce";
    int rc = STATUS_INTERNAL;
    EVP_PKEY *ua = NULL, *own = NULL;
    uint8_t as_public[PUSH_P256_POINT_LEN], salt_buf[PUSH_ECE_SALT_LEN];
    uint8_t secret[32], prk_key[HMAC_LEN], ikm[HMAC_LEN], prk[HMAC_LEN], cek[HMAC_LEN],
        nonce[HMAC_LEN], record[PUSH_ECE_RS];
    if (plain_len > PUSH_ECE_MAX_PLAIN || (as_key == NULL) != (salt == NULL))
        return STATUS_BAD_REQUEST;
    ua = key_from_params(NULL, ua_public, PUSH_P256_POINT_LEN);
    if (ua == NULL || ua_public[0] != 0x04) {
        rc = STATUS_BAD_REQUEST;
        goto out;
    }
    if (as_key == NULL) {
        as_key = own = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        randombytes_buf(salt_buf, sizeof salt_buf);
        salt = salt_buf;
    }
    if (as_key == NULL || push_jose_ec_public(as_key, as_public) != 0 ||
        ecdh(as_key, ua, secret) != 0)
        goto out;

    /* RFC 8291 section 3.3-3.4, then RFC 8188 section 2.2-2.3 */
    hmac3(auth, PUSH_ECE_AUTH_LEN, secret, sizeof secret, NULL, 0, NULL, 0, prk_key);
    {
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, prk_key, sizeof prk_key);
        crypto_auth_hmacsha256_update(&st, (const uint8_t *)key_info, sizeof key_info);
        crypto_auth_hmacsha256_update(&st, ua_public, PUSH_P256_POINT_LEN);
        crypto_auth_hmacsha256_update(&st, as_public, PUSH_P256_POINT_LEN);
        crypto_auth_hmacsha256_update(&st, &one, 1);
        crypto_auth_hmacsha256_final(&st, ikm);
        sodium_memzero(&st, sizeof st);
    }
    hmac3(salt, PUSH_ECE_SALT_LEN, ikm, sizeof ikm, NULL, 0, NULL, 0, prk);
    hmac3(prk, sizeof prk, cek_info, sizeof cek_info, &one, 1, NULL, 0, cek);
    hmac3(prk, sizeof prk, nonce_info, sizeof nonce_info, &one, 1, NULL, 0, nonce);

    memcpy(record, plain, plain_len);
    record[plain_len] = 0x02; /* the last (and only) record's delimiter, no padding */
    size_t start = out->len;
    uint8_t header[PUSH_ECE_SALT_LEN + 4 + 1] = {0};
    memcpy(header, salt, PUSH_ECE_SALT_LEN);
    header[PUSH_ECE_SALT_LEN + 2] = PUSH_ECE_RS >> 8; /* rs = 4096, big endian */
    header[PUSH_ECE_SALT_LEN + 4] = PUSH_P256_POINT_LEN;
    buf_append(out, header, sizeof header);
    buf_append(out, as_public, sizeof as_public);
    buf_reserve(out, plain_len + 1 + 16);
    if (aes128gcm(cek, nonce, record, plain_len + 1, out->data + out->len) != 0) {
        out->len = start;
        out->data[start] = 0;
        goto out;
    }
    out->len += plain_len + 1 + 16;
    out->data[out->len] = 0;
    rc = 0;
out:
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(prk_key, sizeof prk_key);
    sodium_memzero(ikm, sizeof ikm);
    sodium_memzero(prk, sizeof prk);
    sodium_memzero(cek, sizeof cek);
    sodium_memzero(nonce, sizeof nonce);
    sodium_memzero(record, sizeof record);
    EVP_PKEY_free(own);
    EVP_PKEY_free(ua);
    return rc;
}
