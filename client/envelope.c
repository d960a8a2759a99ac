/*
 * client/envelope.c: message envelope crypto and device keys (layouts in
 * envelope.h). libsodium for Ed25519, SHA-256 and XChaCha20-Poly1305;
 * client/hpke.h for the per-device wraps.
 */
#include "client/envelope.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/status.h"
#include "client/hpke.h"
#include "client/statement.h"
#include "protocol/transcript.h"

static const char wrap_context[] = "carechat.v1 wrap";
static const char inner_context[] = "carechat.v2 message";

#define WRAP_INFO_LEN (sizeof wrap_context - 1 + ID_LEN + 4)
#define BODY_KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
_Static_assert(BODY_KEY_LEN == ENVELOPE_BODY_KEY_LEN, "body key length");

struct envelope_identity {
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
};

struct envelope_enc_key {
    uint8_t sk[HPKE_SK_LEN];
    struct envelope_device_key pub;
};

static void sodium_ready(void) {
    CHECK(sodium_init() >= 0);
}

/* sodium_malloc that aborts like xmalloc: out of memory is not recoverable.
 * For long-lived keys only: each call costs an mmap and mprotects, so per-message
 * secrets live on the stack or the plain heap and are wiped (wipe_free()). */
static void *secret_alloc(size_t n) {
    sodium_ready();
    void *p = sodium_malloc(n);
    CHECK(p != NULL);
    return p;
}

static void wipe_free(void *p, size_t n) {
    sodium_memzero(p, n);
    free(p);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* ---- device keys ---- */

int envelope_identity_new(struct envelope_identity **out) {
    struct envelope_identity *identity = secret_alloc(sizeof *identity);
    uint8_t seed[crypto_sign_SEEDBYTES];
    rand_bytes(seed, sizeof seed);
    CHECK(crypto_sign_seed_keypair(identity->pk, identity->sk, seed) == 0);
    sodium_memzero(seed, sizeof seed);
    *out = identity;
    return 0;
}

void envelope_identity_public(const struct envelope_identity *identity,
                              uint8_t pk[ENVELOPE_SIGN_PK_LEN]) {
    memcpy(pk, identity->pk, ENVELOPE_SIGN_PK_LEN);
}

void envelope_identity_free(struct envelope_identity *identity) {
    sodium_free(identity);
}

void envelope_identity_export(const struct envelope_identity *identity,
                              uint8_t seed[ENVELOPE_IDENTITY_SEED_LEN]) {
    CHECK(crypto_sign_ed25519_sk_to_seed(seed, identity->sk) == 0);
}

int envelope_identity_import(const uint8_t seed[ENVELOPE_IDENTITY_SEED_LEN],
                             struct envelope_identity **out) {
    struct envelope_identity *identity = secret_alloc(sizeof *identity);
    CHECK(crypto_sign_seed_keypair(identity->pk, identity->sk, seed) == 0);
    *out = identity;
    return 0;
}

void envelope_identity_sign(const struct envelope_identity *identity, const uint8_t *msg,
                            size_t len, uint8_t sig[ENVELOPE_SIG_LEN]) {
    CHECK(crypto_sign_detached(sig, NULL, msg, len, identity->sk) == 0);
}

int envelope_signature_verify(const uint8_t pk[ENVELOPE_SIGN_PK_LEN], const uint8_t *msg,
                              size_t len, const uint8_t sig[ENVELOPE_SIG_LEN]) {
    sodium_ready();
    if (crypto_sign_verify_detached(sig, msg, len, pk) != 0)
        return STATUS_CORRUPT;
    return 0;
}

static void device_key_statement(const struct envelope_device_key *key,
                                 uint8_t out[STATEMENT_ENCRYPTION_KEY_LEN]) {
    statement_encryption_key(key->pk, key->key_id, key->expires_at_ms, out);
}

int envelope_device_key_verify(const struct envelope_device_key *key,
                               const uint8_t identity_pk[ENVELOPE_SIGN_PK_LEN], int64_t now_ms) {
    uint8_t statement[STATEMENT_ENCRYPTION_KEY_LEN];
    device_key_statement(key, statement);
    sodium_ready();
    if (crypto_sign_verify_detached(key->sig, statement, sizeof statement, identity_pk) != 0)
        return STATUS_CORRUPT;
    if (now_ms >= key->expires_at_ms)
        return STATUS_CONFLICT;
    return 0;
}

/* Fills in the public statement of `key` (whose sk is set) and signs it. */
static void sign_enc_key(const struct envelope_identity *identity, const struct id *device_id,
                         uint32_t key_id, int64_t expires_at_ms, struct envelope_enc_key *key) {
    memset(&key->pub, 0, sizeof key->pub);
    key->pub.device_id = *device_id;
    key->pub.key_id = key_id;
    key->pub.expires_at_ms = expires_at_ms;
    CHECK(crypto_scalarmult_base(key->pub.pk, key->sk) == 0);
    uint8_t statement[STATEMENT_ENCRYPTION_KEY_LEN];
    device_key_statement(&key->pub, statement);
    CHECK(crypto_sign_detached(key->pub.sig, NULL, statement, sizeof statement, identity->sk) == 0);
}

int envelope_enc_key_new(const struct envelope_identity *identity, const struct id *device_id,
                         uint32_t key_id, int64_t expires_at_ms, struct envelope_enc_key **out) {
    if (key_id == 0 || expires_at_ms <= clock_now())
        return STATUS_BAD_REQUEST;
    struct envelope_enc_key *key = secret_alloc(sizeof *key);
    uint8_t pk[HPKE_PK_LEN];
    hpke_keypair(pk, key->sk);
    sign_enc_key(identity, device_id, key_id, expires_at_ms, key);
    *out = key;
    return 0;
}

int envelope_enc_key_import(const struct envelope_identity *identity, const struct id *device_id,
                            uint32_t key_id, int64_t expires_at_ms,
                            const uint8_t sk[ENVELOPE_ENC_PK_LEN], struct envelope_enc_key **out) {
    if (key_id == 0)
        return STATUS_BAD_REQUEST;
    struct envelope_enc_key *key = secret_alloc(sizeof *key);
    memcpy(key->sk, sk, HPKE_SK_LEN);
    sign_enc_key(identity, device_id, key_id, expires_at_ms, key);
    *out = key;
    return 0;
}

const struct envelope_device_key *envelope_enc_key_public(const struct envelope_enc_key *key) {
    return &key->pub;
}

void envelope_enc_key_free(struct envelope_enc_key *key) {
    sodium_free(key);
}

/* ---- messages ---- */

/* The recipient hash over `n` (device, key id) pairs sorted by device id. */
static void recipient_hash(const struct envelope_ref *refs, size_t n,
                           uint8_t out[TRANSCRIPT_HASH_LEN]) {
    struct transcript_wrap *tw = xcalloc(n + 1, sizeof *tw);
    for (size_t i = 0; i < n; i++)
        tw[i] =
            (struct transcript_wrap){.device_id = refs[i].device_id.b, .key_id = refs[i].key_id};
    transcript_recipient_hash(tw, n, out);
    free(tw);
}

/* The message's context (protocol/transcript.h) for `env`, whose recipient
 * list is `refs` (sorted). */
static void context_of(const struct envelope *env, const struct envelope_ref *refs, size_t n,
                       struct transcript_context *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->version = env->version;
    memcpy(ctx->conversation_id, env->header.conversation_id.b, ID_LEN);
    memcpy(ctx->client_msg_id, env->header.client_msg_id.b, ID_LEN);
    memcpy(ctx->sender_device_id, env->header.sender_device_id.b, ID_LEN);
    ctx->urgent = env->header.urgent;
    ctx->sent_at = env->header.sent_at;
    ctx->counter = env->header.counter;
    recipient_hash(refs, n, ctx->recipient_hash);
}

/* Binding B of `env` with recipient list `refs`. */
static void encode_binding(const struct envelope *env, const struct envelope_ref *refs, size_t n,
                           uint8_t out[ENVELOPE_BINDING_LEN]) {
    struct transcript_context ctx;
    context_of(env, refs, n, &ctx);
    transcript_binding(&ctx, out);
}

static void wrap_info(const struct id *device_id, uint32_t key_id, uint8_t out[WRAP_INFO_LEN]) {
    memcpy(out, wrap_context, sizeof wrap_context - 1);
    memcpy(out + sizeof wrap_context - 1, device_id->b, ID_LEN);
    put_u32(out + sizeof wrap_context - 1 + ID_LEN, key_id);
}

/* The recipient list of a whole envelope: its wraps' (device, key id). */
static struct envelope_ref *refs_of_wraps(const struct envelope *env) {
    struct envelope_ref *refs = xcalloc(env->n_wraps + 1, sizeof *refs);
    for (size_t i = 0; i < env->n_wraps; i++)
        refs[i] = (struct envelope_ref){env->wraps[i].device_id, env->wraps[i].key_id};
    return refs;
}

/* The signed transcript of `env` (protocol/transcript.h), appended to `t`. */
static void build_transcript(const struct envelope *env, struct buf *t) {
    struct envelope_ref *refs = refs_of_wraps(env);
    struct transcript_context ctx;
    context_of(env, refs, env->n_wraps, &ctx);
    free(refs);
    struct transcript_wrap *tw = xcalloc(env->n_wraps + 1, sizeof *tw);
    for (size_t i = 0; i < env->n_wraps; i++)
        tw[i] = (struct transcript_wrap){.device_id = env->wraps[i].device_id.b,
                                         .key_id = env->wraps[i].key_id,
                                         .enc = env->wraps[i].enc,
                                         .wrapped_key = env->wraps[i].wrapped_key};
    transcript_envelope(&ctx, env->opaque_header, env->opaque_header_len, env->nonce, env->body,
                        env->body_len, tw, env->n_wraps, t);
    free(tw);
}

#define INNER_LEN (sizeof inner_context - 1 + ENVELOPE_BINDING_LEN + 64)

/* The inner signature's statement (layout in envelope.h). */
static void inner_statement(const struct envelope *env, const uint8_t b[ENVELOPE_BINDING_LEN],
                            const uint8_t *msg, size_t msg_len, uint8_t out[INNER_LEN]) {
    memcpy(out, inner_context, sizeof inner_context - 1);
    memcpy(out + sizeof inner_context - 1, b, ENVELOPE_BINDING_LEN);
    uint8_t *p = out + sizeof inner_context - 1 + ENVELOPE_BINDING_LEN;
    crypto_hash_sha256(p, env->opaque_header, env->opaque_header_len);
    crypto_hash_sha256(p + 32, msg, msg_len);
}

size_t envelope_padded_len(size_t message_len) {
    const size_t need = 4 + message_len;
    const size_t cap = ENVELOPE_MAX_BODY_LEN - ENVELOPE_SIG_LEN - ENVELOPE_TAG_LEN;
    size_t bucket = ENVELOPE_MIN_PADDED;
    while (bucket < need && bucket < cap)
        bucket *= 2;
    return bucket < cap ? bucket : cap;
}

static int compare_wraps(const void *a, const void *b) {
    const struct envelope_wrap *x = a, *y = b;
    return memcmp(x->device_id.b, y->device_id.b, ID_LEN);
}

static int compare_refs(const void *a, const void *b) {
    const struct envelope_ref *x = a, *y = b;
    return memcmp(x->device_id.b, y->device_id.b, ID_LEN);
}

/* 0 when the wraps are strictly ascending by device id (which also rules out a
 * device listed twice). */
static int check_wrap_order(const struct envelope_wrap *wraps, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (compare_wraps(&wraps[i - 1], &wraps[i]) >= 0)
            return STATUS_BAD_REQUEST;
    return 0;
}

int envelope_seal(const struct envelope_header *header, const uint8_t *body, size_t body_len,
                  const struct envelope_recipient *recipients, size_t n_recipients,
                  const struct envelope_identity *sender, struct envelope *out) {
    uint8_t body_key[ENVELOPE_BODY_KEY_LEN];
    int rc = envelope_seal_keep_key(header, body, body_len, recipients, n_recipients, sender, out,
                                    body_key);
    sodium_memzero(body_key, sizeof body_key);
    return rc;
}

int envelope_seal_keep_key(const struct envelope_header *header, const uint8_t *body,
                           size_t body_len, const struct envelope_recipient *recipients,
                           size_t n_recipients, const struct envelope_identity *sender,
                           struct envelope *out, uint8_t body_key_out[ENVELOPE_BODY_KEY_LEN]) {
    if (n_recipients == 0 || n_recipients > ENVELOPE_MAX_WRAPS)
        return STATUS_BAD_REQUEST;
    if (body_len > ENVELOPE_MAX_MESSAGE_LEN)
        return STATUS_TOO_LARGE;
    const int64_t now = clock_now();
    for (size_t i = 0; i < n_recipients; i++) {
        int rc = envelope_device_key_verify(recipients[i].key, recipients[i].identity_pk, now);
        if (rc != 0)
            return rc;
    }

    int rc = 0;
    struct envelope env;
    memset(&env, 0, sizeof env);
    uint8_t body_key[BODY_KEY_LEN];
    struct buf transcript;
    buf_init(&transcript);

    env.version = ENVELOPE_VERSION;
    env.header = *header;
    /* The recipient list, sorted by device id, is known before anything is
     * sealed: its hash is part of binding B. */
    struct envelope_ref *refs = xcalloc(n_recipients, sizeof *refs);
    for (size_t i = 0; i < n_recipients; i++)
        refs[i] = (struct envelope_ref){recipients[i].key->device_id, recipients[i].key->key_id};
    qsort(refs, n_recipients, sizeof *refs, compare_refs);
    for (size_t i = 1; i < n_recipients; i++) {
        if (memcmp(refs[i - 1].device_id.b, refs[i].device_id.b, ID_LEN) == 0) {
            free(refs);
            return STATUS_BAD_REQUEST;
        }
    }
    uint8_t h[ENVELOPE_BINDING_LEN];
    encode_binding(&env, refs, n_recipients, h);
    free(refs);

    /* plaintext: inner signature || length (4) || message || zero padding */
    uint8_t st[INNER_LEN];
    inner_statement(&env, h, body, body_len, st);
    const size_t pt_len = ENVELOPE_SIG_LEN + envelope_padded_len(body_len);
    uint8_t *pt = xcalloc(1, pt_len + 1);
    CHECK(crypto_sign_detached(pt, NULL, st, sizeof st, sender->sk) == 0);
    put_u32(pt + ENVELOPE_SIG_LEN, (uint32_t)body_len);
    if (body_len > 0)
        memcpy(pt + ENVELOPE_SIG_LEN + 4, body, body_len);
    rand_bytes(body_key, BODY_KEY_LEN);
    rand_bytes(env.nonce, sizeof env.nonce);
    env.body_len = pt_len + ENVELOPE_TAG_LEN;
    env.body = xmalloc(env.body_len);
    crypto_aead_xchacha20poly1305_ietf_encrypt(env.body, NULL, pt, pt_len, h, sizeof h, NULL,
                                               env.nonce, body_key);
    wipe_free(pt, pt_len + 1);

    env.n_wraps = n_recipients;
    env.wraps = xcalloc(n_recipients, sizeof *env.wraps);
    for (size_t i = 0; i < n_recipients; i++) {
        const struct envelope_device_key *k = recipients[i].key;
        struct envelope_wrap *w = &env.wraps[i];
        w->device_id = k->device_id;
        w->key_id = k->key_id;
        uint8_t info[WRAP_INFO_LEN];
        wrap_info(&k->device_id, k->key_id, info);
        rc = hpke_seal(k->pk, info, sizeof info, h, sizeof h, body_key, BODY_KEY_LEN, w->enc,
                       w->wrapped_key);
        if (rc != 0)
            goto fail;
    }
    qsort(env.wraps, env.n_wraps, sizeof *env.wraps, compare_wraps);
    rc = check_wrap_order(env.wraps, env.n_wraps);
    if (rc != 0)
        goto fail;

    build_transcript(&env, &transcript);
    CHECK(crypto_sign_detached(env.sig, NULL, transcript.data, transcript.len, sender->sk) == 0);

    buf_cleanup(&transcript);
    memcpy(body_key_out, body_key, BODY_KEY_LEN);
    sodium_memzero(body_key, sizeof body_key);
    *out = env;
    return 0;

fail:
    buf_cleanup(&transcript);
    sodium_memzero(body_key, sizeof body_key);
    envelope_cleanup(&env);
    return rc;
}

static const struct envelope_wrap *find_wrap(const struct envelope *env, const struct id *device) {
    struct envelope_wrap probe;
    probe.device_id = *device;
    return bsearch(&probe, env->wraps, env->n_wraps, sizeof *env->wraps, compare_wraps);
}

/* Shape checks of an envelope to open: `wrapped` when it must carry wraps
 * (envelope_verify(), envelope_unwrap()). */
static int check_shape_of(const struct envelope *env, bool wrapped) {
    if (env->n_wraps > ENVELOPE_MAX_WRAPS || env->n_recipients > ENVELOPE_MAX_WRAPS ||
        env->body_len > ENVELOPE_MAX_BODY_LEN)
        return STATUS_TOO_LARGE;
    if (env->version != ENVELOPE_VERSION || (wrapped && env->n_wraps == 0) ||
        env->opaque_header_len != 0 || env->body_len < ENVELOPE_SIG_LEN + ENVELOPE_TAG_LEN + 4)
        return STATUS_BAD_REQUEST;
    return check_wrap_order(env->wraps, env->n_wraps);
}

static int check_shape(const struct envelope *env) {
    return check_shape_of(env, true);
}

int envelope_verify(const struct envelope *env, const uint8_t sender_pk[ENVELOPE_SIGN_PK_LEN]) {
    int rc = check_shape(env);
    if (rc != 0)
        return rc;
    struct buf transcript;
    buf_init(&transcript);
    build_transcript(env, &transcript);
    sodium_ready();
    rc = crypto_sign_verify_detached(env->sig, transcript.data, transcript.len, sender_pk);
    buf_cleanup(&transcript);
    return rc != 0 ? STATUS_CORRUPT : 0;
}

/* Binding B of `env` over the recipient list the sender signed: as the
 * server delivered it (checked: strictly ascending, and naming `mine`'s
 * device with its key when `mine` is not NULL), or the wraps of a whole
 * envelope. Returns 0; STATUS_BAD_REQUEST (not ascending, or neither
 * recipients nor wraps); STATUS_CORRUPT (`mine` not among them). */
static int binding_of(const struct envelope *env, const struct envelope_wrap *mine,
                      uint8_t h[ENVELOPE_BINDING_LEN]) {
    struct envelope_ref *refs = NULL;
    size_t n_refs = env->n_recipients;
    if (n_refs > 0) {
        bool found = mine == NULL;
        for (size_t i = 0; i < n_refs; i++) {
            if (i > 0 && compare_refs(&env->recipients[i - 1], &env->recipients[i]) >= 0)
                return STATUS_BAD_REQUEST;
            if (mine && memcmp(env->recipients[i].device_id.b, mine->device_id.b, ID_LEN) == 0 &&
                env->recipients[i].key_id == mine->key_id)
                found = true;
        }
        if (!found)
            return STATUS_CORRUPT;
        refs = xmemdup(env->recipients, n_refs * sizeof *refs);
    } else if (env->n_wraps > 0) {
        refs = refs_of_wraps(env);
        n_refs = env->n_wraps;
    } else {
        return STATUS_BAD_REQUEST;
    }
    encode_binding(env, refs, n_refs, h);
    free(refs);
    return 0;
}

int envelope_unwrap(const struct envelope *env, const struct envelope_enc_key *key,
                    uint8_t body_key[ENVELOPE_BODY_KEY_LEN]) {
    int rc = check_shape(env);
    if (rc != 0)
        return rc;
    const struct envelope_wrap *w = find_wrap(env, &key->pub.device_id);
    if (w == NULL)
        return STATUS_NOT_FOUND;
    if (w->key_id != key->pub.key_id)
        return STATUS_CONFLICT;
    uint8_t h[ENVELOPE_BINDING_LEN];
    rc = binding_of(env, w, h);
    if (rc != 0)
        return rc;
    uint8_t info[WRAP_INFO_LEN];
    wrap_info(&w->device_id, w->key_id, info);
    uint8_t k[BODY_KEY_LEN];
    rc = hpke_open(key->sk, w->enc, info, sizeof info, h, sizeof h, w->wrapped_key,
                   sizeof w->wrapped_key, k);
    if (rc == 0)
        memcpy(body_key, k, BODY_KEY_LEN);
    sodium_memzero(k, sizeof k);
    return rc != 0 ? STATUS_CORRUPT : 0;
}

int envelope_open_body(const struct envelope *env, const uint8_t sender_pk[ENVELOPE_SIGN_PK_LEN],
                       const uint8_t body_key[ENVELOPE_BODY_KEY_LEN], struct buf *body_out) {
    buf_wipe(body_out);
    int rc = check_shape_of(env, false);
    if (rc != 0)
        return rc;
    uint8_t h[ENVELOPE_BINDING_LEN];
    rc = binding_of(env, NULL, h);
    if (rc != 0)
        return rc;
    const size_t pt_len = env->body_len - ENVELOPE_TAG_LEN;
    uint8_t *pt = xmalloc(pt_len);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, env->body, env->body_len, h,
                                                   sizeof h, env->nonce, body_key) != 0)
        rc = STATUS_CORRUPT;
    size_t msg_len = 0;
    if (rc == 0) {
        const uint8_t *lp = pt + ENVELOPE_SIG_LEN;
        msg_len = (size_t)lp[0] << 24 | (size_t)lp[1] << 16 | (size_t)lp[2] << 8 | lp[3];
        /* The padding is zeros up to the bucket: anything else is not ours. */
        if (msg_len > pt_len - ENVELOPE_SIG_LEN - 4 ||
            pt_len - ENVELOPE_SIG_LEN != envelope_padded_len(msg_len))
            rc = STATUS_CORRUPT;
        for (size_t i = ENVELOPE_SIG_LEN + 4 + msg_len; rc == 0 && i < pt_len; i++)
            if (pt[i] != 0)
                rc = STATUS_CORRUPT;
    }
    if (rc == 0) {
        const uint8_t *msg = pt + ENVELOPE_SIG_LEN + 4;
        uint8_t st[INNER_LEN];
        inner_statement(env, h, msg, msg_len, st);
        if (crypto_sign_verify_detached(pt, st, sizeof st, sender_pk) != 0) {
            rc = STATUS_CORRUPT;
        } else {
            buf_reserve(body_out, msg_len + 1);
            if (msg_len > 0)
                memcpy(body_out->data, msg, msg_len);
            body_out->len = msg_len;
            body_out->data[msg_len] = '\0';
        }
    }
    wipe_free(pt, pt_len);
    return rc;
}

int envelope_open(const struct envelope *env, const uint8_t sender_pk[ENVELOPE_SIGN_PK_LEN],
                  const struct envelope_enc_key *key, struct buf *body_out) {
    buf_wipe(body_out);
    uint8_t body_key[BODY_KEY_LEN];
    int rc = envelope_unwrap(env, key, body_key);
    if (rc == 0)
        rc = envelope_open_body(env, sender_pk, body_key, body_out);
    sodium_memzero(body_key, sizeof body_key);
    return rc;
}

void envelope_cleanup(struct envelope *env) {
    if (!env)
        return;
    free(env->opaque_header);
    free(env->body);
    free(env->wraps);
    free(env->recipients);
    env->recipients = NULL;
    env->n_recipients = 0;
    env->opaque_header = NULL;
    env->opaque_header_len = 0;
    env->body = NULL;
    env->body_len = 0;
    env->wraps = NULL;
    env->n_wraps = 0;
}

void envelope_wire(const struct envelope *env, struct envelope_wire *out) {
    out->wraps = xcalloc(env->n_wraps ? env->n_wraps : 1, sizeof *out->wraps);
    out->wrapp = xcalloc(env->n_wraps ? env->n_wraps : 1, sizeof *out->wrapp);
    for (size_t i = 0; i < env->n_wraps; i++) {
        Carechat__V1__KeyWrap *w = &out->wraps[i];
        carechat__v1__key_wrap__init(w);
        w->device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)env->wraps[i].device_id.b};
        w->key_id = env->wraps[i].key_id;
        w->enc = (ProtobufCBinaryData){ENVELOPE_ENC_LEN, (uint8_t *)env->wraps[i].enc};
        w->wrapped_key =
            (ProtobufCBinaryData){ENVELOPE_WRAPPED_KEY_LEN, (uint8_t *)env->wraps[i].wrapped_key};
        out->wrapp[i] = w;
    }
    Carechat__V1__Envelope *pe = &out->pe;
    carechat__v1__envelope__init(pe);
    pe->version = env->version;
    pe->sender_device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)env->header.sender_device_id.b};
    pe->header = (ProtobufCBinaryData){env->opaque_header_len, env->opaque_header};
    pe->body = (ProtobufCBinaryData){env->body_len, env->body};
    pe->body_nonce = (ProtobufCBinaryData){ENVELOPE_NONCE_LEN, (uint8_t *)env->nonce};
    pe->n_wraps = env->n_wraps;
    pe->wraps = out->wrapp;
    pe->signature = (ProtobufCBinaryData){ENVELOPE_SIG_LEN, (uint8_t *)env->sig};
    pe->sent_at = env->header.sent_at;
    pe->counter = env->header.counter;
}

void envelope_wire_cleanup(struct envelope_wire *w) {
    free(w->wrapp);
    free(w->wraps);
    w->wrapp = NULL;
    w->wraps = NULL;
}
