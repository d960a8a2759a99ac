/* client/hkdf.c: HKDF-SHA256 (RFC 5869) on libsodium's HMAC-SHA256. */
#include "client/hkdf.h"

#include <string.h>

#include "base/status.h"

void hkdf_extract_init(struct hkdf_extract *x, const uint8_t *salt, size_t salt_len) {
    /* RFC 5869 2.2: a missing salt is HashLen zeros (HMAC pads a shorter key with
     * zeros anyway; spelling it out keeps NULL away from libsodium). */
    static const uint8_t zero_salt[HKDF_SHA256_LEN];
    if (salt_len == 0) {
        salt = zero_salt;
        salt_len = sizeof zero_salt;
    }
    crypto_auth_hmacsha256_init(&x->st, salt, salt_len);
}

void hkdf_extract_update(struct hkdf_extract *x, const uint8_t *ikm, size_t len) {
    if (len > 0)
        crypto_auth_hmacsha256_update(&x->st, ikm, len);
}

void hkdf_extract_final(struct hkdf_extract *x, uint8_t prk[HKDF_SHA256_LEN]) {
    crypto_auth_hmacsha256_final(&x->st, prk);
    sodium_memzero(x, sizeof *x);
}

void hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                  uint8_t prk[HKDF_SHA256_LEN]) {
    struct hkdf_extract x;
    hkdf_extract_init(&x, salt, salt_len);
    hkdf_extract_update(&x, ikm, ikm_len);
    hkdf_extract_final(&x, prk);
}

int hkdf_expand(const uint8_t *prk, size_t prk_len, const uint8_t *info, size_t info_len,
                uint8_t *okm, size_t okm_len) {
    if (prk_len < HKDF_SHA256_LEN || okm_len > HKDF_SHA256_MAX_OKM)
        return STATUS_BAD_REQUEST;

    crypto_auth_hmacsha256_state st;
    uint8_t t[HKDF_SHA256_LEN];
    size_t done = 0;
    /* T(i) = HMAC(PRK, T(i-1) | info | i), i = 1..255; T(0) is empty. */
    for (unsigned i = 1; done < okm_len; i++) {
        uint8_t counter = (uint8_t)i;
        crypto_auth_hmacsha256_init(&st, prk, prk_len);
        if (i > 1)
            crypto_auth_hmacsha256_update(&st, t, sizeof t);
        if (info_len > 0)
            crypto_auth_hmacsha256_update(&st, info, info_len);
        crypto_auth_hmacsha256_update(&st, &counter, 1);
        crypto_auth_hmacsha256_final(&st, t);
        size_t n = okm_len - done < sizeof t ? okm_len - done : sizeof t;
        memcpy(okm + done, t, n);
        done += n;
    }
    sodium_memzero(&st, sizeof st);
    sodium_memzero(t, sizeof t);
    return 0;
}

int hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len) {
    uint8_t prk[HKDF_SHA256_LEN];
    hkdf_extract(salt, salt_len, ikm, ikm_len, prk);
    int rc = hkdf_expand(prk, sizeof prk, info, info_len, okm, okm_len);
    sodium_memzero(prk, sizeof prk);
    return rc;
}
