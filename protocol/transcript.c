/*
 * protocol/transcript.c: the signed byte strings of a message
 * (protocol/transcript.h). Pure; any thread.
 */
#include "protocol/transcript.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static const char recipients_context[] = "carechat.v2 recipients";
static const char envelope_context[] = "carechat.v2 envelope";
static const char recall_context[] = "carechat.v2 recall";
static const char removal_context[] = "carechat.v2 removal";
static const char refresh_context[] = "carechat.v1 session refresh";

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static int cmp_wrap(const void *a, const void *b) {
    return memcmp(((const struct transcript_wrap *)a)->device_id,
                  ((const struct transcript_wrap *)b)->device_id, TRANSCRIPT_ID_LEN);
}

int transcript_sort_wraps(struct transcript_wrap *w, size_t n) {
    qsort(w, n, sizeof *w, cmp_wrap);
    for (size_t i = 1; i < n; i++)
        if (cmp_wrap(&w[i - 1], &w[i]) == 0)
            return -1;
    return 0;
}

void transcript_recipient_hash(const struct transcript_wrap *w, size_t n,
                               uint8_t out[TRANSCRIPT_HASH_LEN]) {
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)recipients_context,
                              sizeof recipients_context - 1);
    uint8_t u32[4];
    put_u32(u32, (uint32_t)n);
    crypto_hash_sha256_update(&st, u32, 4);
    for (size_t i = 0; i < n; i++) {
        crypto_hash_sha256_update(&st, w[i].device_id, TRANSCRIPT_ID_LEN);
        put_u32(u32, w[i].key_id);
        crypto_hash_sha256_update(&st, u32, 4);
    }
    crypto_hash_sha256_final(&st, out);
}

void transcript_binding(const struct transcript_context *ctx, uint8_t out[TRANSCRIPT_BINDING_LEN]) {
    uint8_t *p = out;
    put_u32(p, ctx->version);
    p += 4;
    memcpy(p, ctx->conversation_id, TRANSCRIPT_ID_LEN);
    p += TRANSCRIPT_ID_LEN;
    memcpy(p, ctx->client_msg_id, TRANSCRIPT_ID_LEN);
    p += TRANSCRIPT_ID_LEN;
    memcpy(p, ctx->sender_device_id, TRANSCRIPT_ID_LEN);
    p += TRANSCRIPT_ID_LEN;
    *p++ = ctx->urgent ? 1 : 0;
    put_u64(p, (uint64_t)ctx->sent_at);
    p += 8;
    put_u64(p, ctx->counter);
    p += 8;
    memcpy(p, ctx->recipient_hash, TRANSCRIPT_HASH_LEN);
}

void transcript_envelope(const struct transcript_context *ctx, const uint8_t *header,
                         size_t header_len, const uint8_t nonce[24], const uint8_t *body,
                         size_t body_len, const struct transcript_wrap *w, size_t n,
                         struct buf *out) {
    uint8_t b[TRANSCRIPT_BINDING_LEN], header_hash[32], body_hash[32], u32[4];
    transcript_binding(ctx, b);
    crypto_hash_sha256(header_hash, header, header_len);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, nonce, 24);
    crypto_hash_sha256_update(&st, body, body_len);
    crypto_hash_sha256_final(&st, body_hash);
    buf_reserve(out, sizeof envelope_context - 1 + sizeof b + 64 + 4 +
                         n * (TRANSCRIPT_ID_LEN + 4 + TRANSCRIPT_ENC_LEN + TRANSCRIPT_WRAPPED_LEN));
    buf_append(out, envelope_context, sizeof envelope_context - 1);
    buf_append(out, b, sizeof b);
    buf_append(out, header_hash, 32);
    buf_append(out, body_hash, 32);
    put_u32(u32, (uint32_t)n);
    buf_append(out, u32, 4);
    for (size_t i = 0; i < n; i++) {
        buf_append(out, w[i].device_id, TRANSCRIPT_ID_LEN);
        put_u32(u32, w[i].key_id);
        buf_append(out, u32, 4);
        buf_append(out, w[i].enc, TRANSCRIPT_ENC_LEN);
        buf_append(out, w[i].wrapped_key, TRANSCRIPT_WRAPPED_LEN);
    }
}

/* context (without its NUL) || a || b */
static void context_and_ids(const char *context, size_t context_len,
                            const uint8_t a[TRANSCRIPT_ID_LEN], const uint8_t b[TRANSCRIPT_ID_LEN],
                            uint8_t *out) {
    memcpy(out, context, context_len);
    memcpy(out + context_len, a, TRANSCRIPT_ID_LEN);
    memcpy(out + context_len + TRANSCRIPT_ID_LEN, b, TRANSCRIPT_ID_LEN);
}

void transcript_recall(const uint8_t conversation_id[TRANSCRIPT_ID_LEN],
                       const uint8_t client_msg_id[TRANSCRIPT_ID_LEN],
                       uint8_t out[TRANSCRIPT_RECALL_LEN]) {
    context_and_ids(recall_context, sizeof recall_context - 1, conversation_id, client_msg_id, out);
}

void transcript_removal(const uint8_t conversation_id[TRANSCRIPT_ID_LEN],
                        const uint8_t message_id[TRANSCRIPT_ID_LEN],
                        uint8_t out[TRANSCRIPT_REMOVAL_LEN]) {
    context_and_ids(removal_context, sizeof removal_context - 1, conversation_id, message_id, out);
}

void transcript_refresh(const uint8_t device_id[TRANSCRIPT_ID_LEN],
                        const uint8_t token_hash[TRANSCRIPT_HASH_LEN], int64_t refresh_at,
                        uint8_t out[TRANSCRIPT_REFRESH_LEN]) {
    const size_t n = sizeof refresh_context - 1;
    memcpy(out, refresh_context, n);
    memcpy(out + n, device_id, TRANSCRIPT_ID_LEN);
    memcpy(out + n + TRANSCRIPT_ID_LEN, token_hash, TRANSCRIPT_HASH_LEN);
    put_u64(out + n + TRANSCRIPT_ID_LEN + TRANSCRIPT_HASH_LEN, (uint64_t)refresh_at);
}
