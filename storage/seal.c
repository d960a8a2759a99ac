/*
 * storage/seal.c: AES-256-GCM sealing of stored values (format in seal.h).
 *
 * Invariants: both implementations take the same key, nonce and additional data
 * and write ciphertext followed by the 16-byte tag, so either opens the other's
 * output; nothing is written to `out` unless the tag verified. A prepared key
 * is only read (each value's subkey comes from a copy of its HMAC state, wiped
 * after use), so threads may share one. Any thread.
 */
#include "storage/seal.h"

#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "base/log.h"
#include "base/rand.h"
#include "base/status.h"
#include "storage/keys.h"

int seal_init(void) {
    if (sodium_init() < 0) {
        log_error("storage", "libsodium failed to initialise");
        return STATUS_INTERNAL;
    }
    return 0;
}

bool seal_sodium_available(void) {
    return sodium_init() >= 0 && crypto_aead_aes256gcm_is_available();
}

static int pick_impl(enum seal_impl impl, enum seal_impl *out) {
    if (impl == SEAL_AUTO) {
        *out = seal_sodium_available() ? SEAL_SODIUM : SEAL_OPENSSL;
        return 0;
    }
    if (impl == SEAL_SODIUM && !seal_sodium_available())
        return STATUS_UNAVAILABLE;
    *out = impl;
    return 0;
}

static const char subkey_context[] = "carechat.v2 seal subkey";

void seal_key_prepare(const uint8_t bytes[SEAL_KEY_LEN], struct seal_key *out) {
    if (bytes != out->bytes)
        memcpy(out->bytes, bytes, SEAL_KEY_LEN);
    /* Both pad blocks are compressed here; the context (23 bytes) only waits in
     * the inner hash's buffer, where each value's nonce joins it. */
    crypto_auth_hmacsha256_init(&out->subkey, out->bytes, SEAL_KEY_LEN);
    crypto_auth_hmacsha256_update(&out->subkey, (const uint8_t *)subkey_context,
                                  sizeof subkey_context - 1);
}

/* The AES key of a value: version 2's per-value subkey, or version 1's data key. */
static void value_key(uint8_t version, const struct seal_key *key, const uint8_t *nonce,
                      uint8_t out[SEAL_KEY_LEN]) {
    if (version == SEAL_VERSION_1) {
        memcpy(out, key->bytes, SEAL_KEY_LEN);
        return;
    }
    /* final() consumes the state: work on a copy, wiped like the key. */
    crypto_auth_hmacsha256_state st = key->subkey;
    crypto_auth_hmacsha256_update(&st, nonce, SEAL_NONCE_LEN);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

static void write_header(uint8_t h[SEAL_HEADER_LEN], const struct seal_key_id *kid) {
    h[0] = SEAL_VERSION;
    memcpy(h + 1, kid->owner.b, ID_LEN);
    key_put_u32(h + 1 + ID_LEN, kid->version);
    rand_bytes(h + 1 + ID_LEN + 4, SEAL_NONCE_LEN);
}

/* The additional data: cf name, record key and header, each length-prefixed
 * where their length varies so that no two (cf, key) pairs share an encoding.
 * Built in the caller's array of SEAL_AD_MAX bytes; returns its length, or
 * STATUS_TOO_LARGE. */
#define SEAL_AD_MAX (1 + 255 + 4 + SEAL_MAX_RKEY + SEAL_HEADER_LEN)

static int build_ad(uint8_t ad[SEAL_AD_MAX], const char *cf_name, const void *rkey, size_t rkey_len,
                    const uint8_t header[SEAL_HEADER_LEN]) {
    size_t cf_len = strlen(cf_name);
    if (cf_len > 255 || rkey_len > SEAL_MAX_RKEY)
        return STATUS_TOO_LARGE;
    uint8_t *p = ad;
    *p++ = (uint8_t)cf_len;
    memcpy(p, cf_name, cf_len);
    p += cf_len;
    key_put_u32(p, (uint32_t)rkey_len);
    p += 4;
    memcpy(p, rkey, rkey_len);
    p += rkey_len;
    memcpy(p, header, SEAL_HEADER_LEN);
    return (int)(p + SEAL_HEADER_LEN - ad);
}

static int openssl_encrypt(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad,
                           size_t ad_len, const uint8_t *plain, size_t plain_len, uint8_t *ct,
                           uint8_t *tag) {
    int ok = 0, n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1 &&
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)ad_len) == 1 &&
        EVP_EncryptUpdate(ctx, ct, &n, plain, (int)plain_len) == 1 &&
        EVP_EncryptFinal_ex(ctx, ct + n, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        log_error("storage", "OpenSSL AES-256-GCM encryption failed");
        return STATUS_INTERNAL;
    }
    return 0;
}

/* Returns 0, STATUS_CORRUPT when the tag does not verify, STATUS_INTERNAL. */
static int openssl_decrypt(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad,
                           size_t ad_len, const uint8_t *ct, size_t ct_len, const uint8_t *tag,
                           uint8_t *plain) {
    int n = 0, rc = STATUS_INTERNAL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)ad_len) != 1 ||
        EVP_DecryptUpdate(ctx, plain, &n, ct, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, (void *)tag) != 1) {
        log_error("storage", "OpenSSL AES-256-GCM decryption could not start");
        goto out;
    }
    rc = EVP_DecryptFinal_ex(ctx, plain + n, &n) == 1 ? 0 : STATUS_CORRUPT;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int seal_aead_encrypt(enum seal_impl impl, const uint8_t key[SEAL_KEY_LEN],
                      const uint8_t nonce[SEAL_NONCE_LEN], const uint8_t *ad, size_t ad_len,
                      const uint8_t *plain, size_t plain_len, uint8_t *out) {
    enum seal_impl use;
    int rc = pick_impl(impl, &use);
    if (rc < 0)
        return rc;
    if (use == SEAL_OPENSSL)
        return openssl_encrypt(key, nonce, ad, ad_len, plain, plain_len, out, out + plain_len);
    unsigned long long clen = 0;
    if (crypto_aead_aes256gcm_encrypt(out, &clen, plain, plain_len, ad, ad_len, NULL, nonce, key) !=
            0 ||
        clen != plain_len + SEAL_TAG_LEN) {
        log_error("storage", "libsodium AES-256-GCM encryption failed");
        return STATUS_INTERNAL;
    }
    return 0;
}

int seal_aead_decrypt(enum seal_impl impl, const uint8_t key[SEAL_KEY_LEN],
                      const uint8_t nonce[SEAL_NONCE_LEN], const uint8_t *ad, size_t ad_len,
                      const uint8_t *ct, size_t ct_len, uint8_t *plain) {
    enum seal_impl use;
    int rc = pick_impl(impl, &use);
    if (rc < 0)
        return rc;
    if (ct_len < SEAL_TAG_LEN)
        return STATUS_CORRUPT;
    const size_t plain_len = ct_len - SEAL_TAG_LEN;
    if (use == SEAL_OPENSSL)
        return openssl_decrypt(key, nonce, ad, ad_len, ct, plain_len, ct + plain_len, plain);
    unsigned long long mlen = 0;
    if (crypto_aead_aes256gcm_decrypt(plain, &mlen, NULL, ct, ct_len, ad, ad_len, nonce, key) !=
            0 ||
        mlen != plain_len)
        return STATUS_CORRUPT;
    return 0;
}

int seal_value(enum seal_impl impl, const struct seal_key *key, const struct seal_key_id *kid,
               const char *cf_name, const void *rkey, size_t rkey_len, const void *plain,
               size_t plain_len, struct buf *out) {
    enum seal_impl use;
    int rc = pick_impl(impl, &use);
    if (rc < 0)
        return rc;
    if (plain_len > SEAL_MAX_PLAIN)
        return STATUS_TOO_LARGE;
    uint8_t header[SEAL_HEADER_LEN];
    uint8_t vkey[SEAL_KEY_LEN] = {0};
    write_header(header, kid);
    uint8_t ad[SEAL_AD_MAX];
    int ad_len = build_ad(ad, cf_name, rkey, rkey_len, header);
    if (ad_len < 0) {
        rc = ad_len;
        goto out;
    }
    buf_reset(out);
    buf_reserve(out, SEAL_OVERHEAD + plain_len);
    memcpy(out->data, header, SEAL_HEADER_LEN);
    uint8_t *ct = out->data + SEAL_HEADER_LEN;
    const uint8_t *nonce = header + 1 + ID_LEN + 4;
    value_key(SEAL_VERSION, key, nonce, vkey);
    rc = seal_aead_encrypt(use, vkey, nonce, ad, (size_t)ad_len, plain, plain_len, ct);
    if (rc < 0)
        goto out;
    out->len = SEAL_OVERHEAD + plain_len;
    out->data[out->len] = '\0';
out:
    sodium_memzero(vkey, sizeof vkey);
    if (rc < 0)
        buf_reset(out);
    return rc;
}

int seal_key_id_of(const void *sealed, size_t sealed_len, struct seal_key_id *out) {
    const uint8_t *p = sealed;
    if (sealed_len < SEAL_OVERHEAD || (p[0] != SEAL_VERSION && p[0] != SEAL_VERSION_1))
        return STATUS_CORRUPT;
    memcpy(out->owner.b, p + 1, ID_LEN);
    out->version = key_get_u32(p + 1 + ID_LEN);
    return 0;
}

int seal_open(enum seal_impl impl, const struct seal_key *key, const char *cf_name,
              const void *rkey, size_t rkey_len, const void *sealed, size_t sealed_len,
              struct buf *out) {
    buf_reset(out);
    enum seal_impl use;
    int rc = pick_impl(impl, &use);
    if (rc < 0)
        return rc;
    struct seal_key_id kid;
    if (seal_key_id_of(sealed, sealed_len, &kid) < 0)
        return STATUS_CORRUPT;
    if (sealed_len - SEAL_OVERHEAD > SEAL_MAX_PLAIN)
        return STATUS_CORRUPT;
    const uint8_t *header = sealed;
    const uint8_t *nonce = header + 1 + ID_LEN + 4;
    const uint8_t *ct = header + SEAL_HEADER_LEN;
    size_t plain_len = sealed_len - SEAL_OVERHEAD;
    uint8_t ad[SEAL_AD_MAX];
    int ad_len = build_ad(ad, cf_name, rkey, rkey_len, header);
    if (ad_len < 0)
        return ad_len;
    buf_reserve(out, plain_len);
    uint8_t vkey[SEAL_KEY_LEN];
    value_key(header[0], key, nonce, vkey);
    rc = seal_aead_decrypt(use, vkey, nonce, ad, (size_t)ad_len, ct, plain_len + SEAL_TAG_LEN,
                           out->data);
    sodium_memzero(vkey, sizeof vkey);
    if (rc < 0)
        goto out;
    out->len = plain_len;
    out->data[out->len] = '\0';
out:
    if (rc < 0 && out->data) {
        /* OpenSSL writes plaintext before it checks the tag: never leave it. */
        sodium_memzero(out->data, out->cap);
        buf_reset(out);
    }
    return rc;
}
