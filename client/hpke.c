/*
 * client/hpke.c: RFC 9180 base mode for DHKEM(X25519, HKDF-SHA256) /
 * HKDF-SHA256 / ChaCha20-Poly1305, on libsodium and client/hkdf.h.
 *
 * The names follow the RFC's pseudocode (LabeledExtract, ExtractAndExpand,
 * KeySchedule, ComputeNonce) so each function can be read against its section.
 * Single-shot seal/open keep their context on the stack and wipe it; contexts
 * handed to callers live in sodium_malloc memory.
 */
#include "client/hpke.h"

#include <string.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/hkdf.h"
#include "client/hpke_internal.h"

/* suite_id of the KEM: "KEM" | I2OSP(kem_id, 2) (RFC 9180 4.1). */
static const uint8_t kem_suite_id[5] = {'K', 'E', 'M', 0x00, 0x20};
/* suite_id of the rest: "HPKE" | kem_id | kdf_id | aead_id (RFC 9180 5.1). */
static const uint8_t hpke_suite_id[10] = {'H', 'P', 'K', 'E', 0x00, 0x20, 0x00, 0x01, 0x00, 0x03};
static const char version_label[] = "HPKE-v1";

enum hpke_role { ROLE_SENDER = 1, ROLE_RECIPIENT = 2 };

struct hpke_ctx {
    uint64_t seq;
    enum hpke_role role;
    uint8_t key[HPKE_KEY_LEN];
    uint8_t base_nonce[HPKE_NONCE_LEN];
    uint8_t exporter_secret[32];
};

static void sodium_ready(void) {
    CHECK(sodium_init() >= 0);
}

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" | suite_id | label | ikm),
 * fed piecewise so a secret ikm is never copied. */
static void labeled_extract(const uint8_t *suite_id, size_t suite_len, const uint8_t *salt,
                            size_t salt_len, const char *label, const uint8_t *ikm, size_t ikm_len,
                            uint8_t prk[HKDF_SHA256_LEN]) {
    struct hkdf_extract x;
    hkdf_extract_init(&x, salt, salt_len);
    hkdf_extract_update(&x, (const uint8_t *)version_label, strlen(version_label));
    hkdf_extract_update(&x, suite_id, suite_len);
    hkdf_extract_update(&x, (const uint8_t *)label, strlen(label));
    hkdf_extract_update(&x, ikm, ikm_len);
    hkdf_extract_final(&x, prk);
}

/* LabeledExpand(prk, label, info, L) =
 *   Expand(prk, I2OSP(L, 2) | "HPKE-v1" | suite_id | label | info, L). */
static int labeled_expand(const uint8_t *suite_id, size_t suite_len, const uint8_t *prk,
                          const char *label, const uint8_t *info, size_t info_len, uint8_t *out,
                          size_t out_len) {
    if (out_len > HKDF_SHA256_MAX_OKM)
        return STATUS_BAD_REQUEST;
    struct buf labeled;
    buf_init(&labeled);
    buf_append_u8(&labeled, (uint8_t)(out_len >> 8));
    buf_append_u8(&labeled, (uint8_t)out_len);
    buf_append(&labeled, version_label, strlen(version_label));
    buf_append(&labeled, suite_id, suite_len);
    buf_append(&labeled, label, strlen(label));
    buf_append(&labeled, info, info_len);
    int rc = hkdf_expand(prk, HKDF_SHA256_LEN, labeled.data, labeled.len, out, out_len);
    buf_wipe(&labeled);
    buf_cleanup(&labeled);
    return rc;
}

/* ExtractAndExpand(dh, kem_context) of DHKEM (RFC 9180 4.1). */
static void extract_and_expand(const uint8_t dh[32], const uint8_t kem_context[64],
                               uint8_t shared_secret[HPKE_SECRET_LEN]) {
    uint8_t eae_prk[HKDF_SHA256_LEN];
    labeled_extract(kem_suite_id, sizeof kem_suite_id, NULL, 0, "eae_prk", dh, 32, eae_prk);
    int rc = labeled_expand(kem_suite_id, sizeof kem_suite_id, eae_prk, "shared_secret",
                            kem_context, 64, shared_secret, HPKE_SECRET_LEN);
    CHECK(rc == 0);
    sodium_memzero(eae_prk, sizeof eae_prk);
}

void hpke_keypair(uint8_t pk[HPKE_PK_LEN], uint8_t sk[HPKE_SK_LEN]) {
    sodium_ready();
    rand_bytes(sk, HPKE_SK_LEN);
    CHECK(crypto_scalarmult_base(pk, sk) == 0);
}

int hpke_derive_keypair(const uint8_t *ikm, size_t ikm_len, uint8_t pk[HPKE_PK_LEN],
                        uint8_t sk[HPKE_SK_LEN]) {
    if (ikm_len < HPKE_SK_LEN)
        return STATUS_BAD_REQUEST;
    sodium_ready();
    uint8_t dkp_prk[HKDF_SHA256_LEN];
    labeled_extract(kem_suite_id, sizeof kem_suite_id, NULL, 0, "dkp_prk", ikm, ikm_len, dkp_prk);
    int rc =
        labeled_expand(kem_suite_id, sizeof kem_suite_id, dkp_prk, "sk", NULL, 0, sk, HPKE_SK_LEN);
    CHECK(rc == 0);
    sodium_memzero(dkp_prk, sizeof dkp_prk);
    CHECK(crypto_scalarmult_base(pk, sk) == 0);
    return 0;
}

int hpke_encap_with_ephemeral(const uint8_t pk_r[HPKE_PK_LEN], const uint8_t sk_e[HPKE_SK_LEN],
                              uint8_t shared_secret[HPKE_SECRET_LEN], uint8_t enc[HPKE_ENC_LEN]) {
    sodium_ready();
    uint8_t dh[32];
    /* crypto_scalarmult refuses (-1) an all-zero result: RFC 9180 7.1.4 says to
     * fail there rather than derive a key everyone knows. */
    if (crypto_scalarmult(dh, sk_e, pk_r) != 0) {
        sodium_memzero(dh, sizeof dh);
        return STATUS_BAD_REQUEST;
    }
    uint8_t kem_context[2 * 32];
    CHECK(crypto_scalarmult_base(kem_context, sk_e) == 0);
    memcpy(kem_context + 32, pk_r, 32);
    extract_and_expand(dh, kem_context, shared_secret);
    memcpy(enc, kem_context, HPKE_ENC_LEN);
    sodium_memzero(dh, sizeof dh);
    return 0;
}

int hpke_decap(const uint8_t enc[HPKE_ENC_LEN], const uint8_t sk_r[HPKE_SK_LEN],
               uint8_t shared_secret[HPKE_SECRET_LEN]) {
    sodium_ready();
    uint8_t dh[32];
    if (crypto_scalarmult(dh, sk_r, enc) != 0) {
        sodium_memzero(dh, sizeof dh);
        return STATUS_CORRUPT;
    }
    uint8_t kem_context[2 * 32];
    memcpy(kem_context, enc, 32);
    CHECK(crypto_scalarmult_base(kem_context + 32, sk_r) == 0);
    extract_and_expand(dh, kem_context, shared_secret);
    sodium_memzero(dh, sizeof dh);
    return 0;
}

void hpke_key_schedule(const uint8_t shared_secret[HPKE_SECRET_LEN], const uint8_t *info,
                       size_t info_len, struct hpke_schedule *out) {
    const uint8_t *s = hpke_suite_id;
    const size_t n = sizeof hpke_suite_id;
    uint8_t *ksc = out->key_schedule_context;
    ksc[0] = 0x00; /* mode_base */
    labeled_extract(s, n, NULL, 0, "psk_id_hash", NULL, 0, ksc + 1);
    labeled_extract(s, n, NULL, 0, "info_hash", info, info_len, ksc + 1 + 32);
    /* Base mode: psk is empty, so the shared secret is the only input. */
    labeled_extract(s, n, shared_secret, HPKE_SECRET_LEN, "secret", NULL, 0, out->secret);
    const size_t ksc_len = sizeof out->key_schedule_context;
    int rc = labeled_expand(s, n, out->secret, "key", ksc, ksc_len, out->key, sizeof out->key);
    rc |= labeled_expand(s, n, out->secret, "base_nonce", ksc, ksc_len, out->base_nonce,
                         sizeof out->base_nonce);
    rc |= labeled_expand(s, n, out->secret, "exp", ksc, ksc_len, out->exporter_secret,
                         sizeof out->exporter_secret);
    CHECK(rc == 0);
}

/* Fills a context from a shared secret; wipes the schedule it went through. */
static void ctx_init(struct hpke_ctx *ctx, enum hpke_role role,
                     const uint8_t shared_secret[HPKE_SECRET_LEN], const uint8_t *info,
                     size_t info_len) {
    struct hpke_schedule ks;
    hpke_key_schedule(shared_secret, info, info_len, &ks);
    ctx->seq = 0;
    ctx->role = role;
    memcpy(ctx->key, ks.key, sizeof ctx->key);
    memcpy(ctx->base_nonce, ks.base_nonce, sizeof ctx->base_nonce);
    memcpy(ctx->exporter_secret, ks.exporter_secret, sizeof ctx->exporter_secret);
    sodium_memzero(&ks, sizeof ks);
}

/* ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn). */
static void compute_nonce(const struct hpke_ctx *ctx, uint8_t nonce[HPKE_NONCE_LEN]) {
    memcpy(nonce, ctx->base_nonce, HPKE_NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[HPKE_NONCE_LEN - 1 - i] ^= (uint8_t)(ctx->seq >> (8 * i));
}

static int ctx_seal(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                    size_t pt_len, uint8_t *ct) {
    if (ctx->role != ROLE_SENDER)
        return STATUS_BAD_REQUEST;
    if (pt_len > crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX)
        return STATUS_TOO_LARGE;
    /* The RFC's seq is Nn bytes wide; ours stops at 2^64 - 1, far earlier and
     * still never reusing a nonce. */
    if (ctx->seq == UINT64_MAX)
        return STATUS_CONFLICT;
    uint8_t nonce[HPKE_NONCE_LEN];
    compute_nonce(ctx, nonce);
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, pt, pt_len, aad, aad_len, NULL, nonce,
                                              ctx->key);
    ctx->seq++;
    return 0;
}

static int ctx_open(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *ct,
                    size_t ct_len, uint8_t *pt) {
    if (ctx->role != ROLE_RECIPIENT)
        return STATUS_BAD_REQUEST;
    if (ctx->seq == UINT64_MAX)
        return STATUS_CONFLICT;
    if (ct_len < HPKE_TAG_LEN)
        return STATUS_CORRUPT;
    uint8_t nonce[HPKE_NONCE_LEN];
    compute_nonce(ctx, nonce);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ct_len, aad, aad_len, nonce,
                                                  ctx->key) != 0)
        return STATUS_CORRUPT;
    ctx->seq++;
    return 0;
}

int hpke_seal(const uint8_t pk_r[HPKE_PK_LEN], const uint8_t *info, size_t info_len,
              const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
              uint8_t enc[HPKE_ENC_LEN], uint8_t *ct) {
    if (pt_len > crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX)
        return STATUS_TOO_LARGE;
    uint8_t sk_e[HPKE_SK_LEN];
    uint8_t shared_secret[HPKE_SECRET_LEN];
    struct hpke_ctx ctx;
    sodium_ready();
    rand_bytes(sk_e, sizeof sk_e);
    int rc = hpke_encap_with_ephemeral(pk_r, sk_e, shared_secret, enc);
    if (rc == 0) {
        ctx_init(&ctx, ROLE_SENDER, shared_secret, info, info_len);
        rc = ctx_seal(&ctx, aad, aad_len, pt, pt_len, ct);
    }
    sodium_memzero(sk_e, sizeof sk_e);
    sodium_memzero(shared_secret, sizeof shared_secret);
    sodium_memzero(&ctx, sizeof ctx);
    return rc;
}

int hpke_open(const uint8_t sk_r[HPKE_SK_LEN], const uint8_t enc[HPKE_ENC_LEN], const uint8_t *info,
              size_t info_len, const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
              uint8_t *pt) {
    uint8_t shared_secret[HPKE_SECRET_LEN];
    struct hpke_ctx ctx;
    int rc = hpke_decap(enc, sk_r, shared_secret);
    if (rc == 0) {
        ctx_init(&ctx, ROLE_RECIPIENT, shared_secret, info, info_len);
        rc = ctx_open(&ctx, aad, aad_len, ct, ct_len, pt);
    }
    sodium_memzero(shared_secret, sizeof shared_secret);
    sodium_memzero(&ctx, sizeof ctx);
    return rc;
}

/* A context in sodium_malloc memory (guard pages, locked, wiped on free). */
static struct hpke_ctx *ctx_alloc(void) {
    sodium_ready();
    struct hpke_ctx *ctx = sodium_malloc(sizeof *ctx);
    CHECK(ctx != NULL);
    return ctx;
}

int hpke_setup_sender_with_ephemeral(const uint8_t pk_r[HPKE_PK_LEN], const uint8_t *info,
                                     size_t info_len, const uint8_t sk_e[HPKE_SK_LEN],
                                     uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx **out) {
    uint8_t shared_secret[HPKE_SECRET_LEN];
    int rc = hpke_encap_with_ephemeral(pk_r, sk_e, shared_secret, enc);
    if (rc != 0)
        return rc;
    struct hpke_ctx *ctx = ctx_alloc();
    ctx_init(ctx, ROLE_SENDER, shared_secret, info, info_len);
    sodium_memzero(shared_secret, sizeof shared_secret);
    *out = ctx;
    return 0;
}

int hpke_setup_sender(const uint8_t pk_r[HPKE_PK_LEN], const uint8_t *info, size_t info_len,
                      uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx **out) {
    uint8_t sk_e[HPKE_SK_LEN];
    sodium_ready();
    rand_bytes(sk_e, sizeof sk_e);
    int rc = hpke_setup_sender_with_ephemeral(pk_r, info, info_len, sk_e, enc, out);
    sodium_memzero(sk_e, sizeof sk_e);
    return rc;
}

int hpke_setup_recipient(const uint8_t sk_r[HPKE_SK_LEN], const uint8_t enc[HPKE_ENC_LEN],
                         const uint8_t *info, size_t info_len, struct hpke_ctx **out) {
    uint8_t shared_secret[HPKE_SECRET_LEN];
    int rc = hpke_decap(enc, sk_r, shared_secret);
    if (rc != 0)
        return rc;
    struct hpke_ctx *ctx = ctx_alloc();
    ctx_init(ctx, ROLE_RECIPIENT, shared_secret, info, info_len);
    sodium_memzero(shared_secret, sizeof shared_secret);
    *out = ctx;
    return 0;
}

int hpke_ctx_seal(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                  size_t pt_len, uint8_t *ct) {
    return ctx_seal(ctx, aad, aad_len, pt, pt_len, ct);
}

int hpke_ctx_open(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *ct,
                  size_t ct_len, uint8_t *pt) {
    return ctx_open(ctx, aad, aad_len, ct, ct_len, pt);
}

int hpke_ctx_export(const struct hpke_ctx *ctx, const uint8_t *exporter_context, size_t context_len,
                    uint8_t *out, size_t out_len) {
    if (out_len > HPKE_MAX_EXPORT)
        return STATUS_BAD_REQUEST;
    return labeled_expand(hpke_suite_id, sizeof hpke_suite_id, ctx->exporter_secret, "sec",
                          exporter_context, context_len, out, out_len);
}

void hpke_ctx_free(struct hpke_ctx *ctx) {
    /* sodium_free wipes before unmapping. */
    sodium_free(ctx);
}
