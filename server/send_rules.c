/*
 * server/send_rules.c: the shape and device-set rules of a Send
 * (server/send_rules.h). Pure, any thread.
 */
#include "server/send_rules.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/status.h"
#include "protocol/transcript.h"
#include "storage/keys.h"

int send_check_shape(const struct send_shape *s, const char **detail) {
    *detail = "malformed envelope";
    if (s->version != SEND_ENVELOPE_VERSION || s->signature_len != REC_SIG_LEN ||
        s->nonce_len != REC_NONCE_LEN || s->n_wraps == 0)
        return STATUS_BAD_REQUEST;
    *detail = "Envelope.header must be empty: metadata goes in the encrypted body";
    if (s->header_len != 0)
        return STATUS_BAD_REQUEST;
    *detail = "envelope too large";
    if (s->body_len > SEND_BODY_MAX || s->n_wraps > REC_WRAPS_MAX)
        return STATUS_TOO_LARGE;
    *detail = NULL;
    return STATUS_OK;
}

int send_copy_wrap(ProtobufCBinaryData device_id, uint32_t key_id, ProtobufCBinaryData enc,
                   ProtobufCBinaryData wrapped_key, struct rec_wrap *out) {
    if (id_from_bytes(device_id.data, device_id.len, &out->device_id) != 0 ||
        enc.len != REC_ENC_LEN || wrapped_key.len != REC_WRAPPED_LEN)
        return STATUS_BAD_REQUEST;
    out->key_id = key_id;
    memcpy(out->enc, enc.data, REC_ENC_LEN);
    memcpy(out->wrapped_key, wrapped_key.data, REC_WRAPPED_LEN);
    return STATUS_OK;
}

bool send_is_recipient(const struct rec_account *a, const struct id *device) {
    if (a->list_version == 0)
        return true;
    for (uint32_t i = 0; i < a->n_list && i < REC_LIST_MAX; i++)
        if (id_equal(&a->list[i].device_id, device))
            return true;
    return false;
}

static int cmp_dev(const void *a, const void *b) {
    return memcmp((*(const struct send_device *const *)a)->id.b,
                  (*(const struct send_device *const *)b)->id.b, ID_LEN);
}

static int cmp_wrap(const void *a, const void *b) {
    return memcmp((*(const struct rec_wrap *const *)a)->device_id.b,
                  (*(const struct rec_wrap *const *)b)->device_id.b, ID_LEN);
}

static void add(struct id *list, uint32_t *n, const struct id *id) {
    if (*n < SEND_MISMATCH_MAX)
        list[(*n)++] = *id;
}

int send_check_devices(const struct send_device *devs, size_t n_devs, const struct rec_wrap *wraps,
                       size_t n_wraps, const struct id *sender_device, int64_t now,
                       struct send_mismatch *out, const struct send_device **recipient) {
    const struct send_device *dp[SEND_DEVICES_MAX];
    const struct rec_wrap *wp[REC_WRAPS_MAX];
    if (n_devs > SEND_DEVICES_MAX || n_wraps > REC_WRAPS_MAX)
        return STATUS_TOO_LARGE;
    for (size_t i = 0; i < n_devs; i++)
        dp[i] = &devs[i];
    for (size_t i = 0; i < n_wraps; i++) {
        wp[i] = &wraps[i];
        recipient[i] = NULL;
    }
    qsort(dp, n_devs, sizeof dp[0], cmp_dev);
    qsort(wp, n_wraps, sizeof wp[0], cmp_wrap);
    for (size_t i = 1; i < n_wraps; i++)
        if (id_equal(&wp[i - 1]->device_id, &wp[i]->device_id))
            return STATUS_BAD_REQUEST;
    out->n_missing = out->n_extra = out->n_stale = 0;
    bool mismatch = false;
    size_t d = 0, w = 0;
    while (d < n_devs || w < n_wraps) {
        int c = d == n_devs    ? 1
                : w == n_wraps ? -1
                               : memcmp(dp[d]->id.b, wp[w]->device_id.b, ID_LEN);
        if (c < 0) { /* a device without a wrap */
            /* A device whose key has expired is no recipient: it gets
             * nothing until it rotates its key, and holds nobody up. */
            if (!id_equal(&dp[d]->id, sender_device) && dp[d]->expires_at > now) {
                add(out->missing, &out->n_missing, &dp[d]->id);
                mismatch = true;
            }
            d++;
        } else if (c > 0) { /* a wrap for no current device */
            add(out->extra, &out->n_extra, &wp[w]->device_id);
            mismatch = true;
            w++;
        } else {
            if (dp[d]->key_id != wp[w]->key_id || dp[d]->expires_at <= now) {
                add(out->stale, &out->n_stale, &wp[w]->device_id);
                mismatch = true;
            } else
                recipient[wp[w] - wraps] =
                    id_equal(&wp[w]->device_id, sender_device) ? NULL : dp[d];
            d++;
            w++;
        }
    }
    return mismatch ? STATUS_CONFLICT : STATUS_OK;
}

static void put_list(struct buf *out, const struct id *ids, uint32_t n) {
    uint8_t c[4];
    key_put_u32(c, n);
    buf_append(out, c, 4);
    for (uint32_t i = 0; i < n; i++)
        buf_append(out, ids[i].b, ID_LEN);
}

void send_mismatch_encode(const struct send_mismatch *m, struct buf *out) {
    put_list(out, m->missing, m->n_missing);
    put_list(out, m->extra, m->n_extra);
    put_list(out, m->stale, m->n_stale);
}

static int get_list(const uint8_t **p, const uint8_t *end, struct id *ids, uint32_t *n) {
    if (end - *p < 4)
        return STATUS_CORRUPT;
    *n = key_get_u32(*p);
    *p += 4;
    if (*n > SEND_MISMATCH_MAX || (size_t)(end - *p) / ID_LEN < *n)
        return STATUS_CORRUPT;
    for (uint32_t i = 0; i < *n; i++, *p += ID_LEN)
        memcpy(ids[i].b, *p, ID_LEN);
    return STATUS_OK;
}

int send_mismatch_decode(const uint8_t *data, size_t len, struct send_mismatch *out) {
    const uint8_t *p = data, *end = data + len;
    int rc = get_list(&p, end, out->missing, &out->n_missing);
    if (rc == 0)
        rc = get_list(&p, end, out->extra, &out->n_extra);
    if (rc == 0)
        rc = get_list(&p, end, out->stale, &out->n_stale);
    return rc;
}

int send_verify_signature(const uint8_t identity_key[REC_KEY_LEN], const struct id *conversation_id,
                          const struct id *client_msg_id, bool urgent,
                          const Carechat__V1__Envelope *env, const struct rec_wrap *wraps) {
    if (env->signature.len != REC_SIG_LEN || env->body_nonce.len != REC_NONCE_LEN ||
        env->sender_device_id.len != ID_LEN || env->n_wraps > REC_WRAPS_MAX)
        return STATUS_BAD_REQUEST;
    struct transcript_wrap *tw = xcalloc(env->n_wraps + 1, sizeof *tw);
    for (size_t i = 0; i < env->n_wraps; i++)
        tw[i] = (struct transcript_wrap){.device_id = wraps[i].device_id.b,
                                         .key_id = wraps[i].key_id,
                                         .enc = wraps[i].enc,
                                         .wrapped_key = wraps[i].wrapped_key};
    int rc = STATUS_BAD_REQUEST;
    if (transcript_sort_wraps(tw, env->n_wraps) == 0) {
        struct transcript_context ctx = {
            .version = env->version,
            .urgent = urgent,
            .sent_at = env->sent_at,
            .counter = env->counter,
        };
        memcpy(ctx.conversation_id, conversation_id->b, ID_LEN);
        memcpy(ctx.client_msg_id, client_msg_id->b, ID_LEN);
        memcpy(ctx.sender_device_id, env->sender_device_id.data, ID_LEN);
        transcript_recipient_hash(tw, env->n_wraps, ctx.recipient_hash);
        struct buf t;
        buf_init(&t);
        transcript_envelope(&ctx, env->header.data, env->header.len, env->body_nonce.data,
                            env->body.data, env->body.len, tw, env->n_wraps, &t);
        if (crypto_sign_verify_detached(env->signature.data, t.data, t.len, identity_key) == 0)
            rc = STATUS_OK;
        buf_cleanup(&t);
    }
    free(tw);
    return rc;
}

int send_verify_recall(const uint8_t identity_key[REC_KEY_LEN], const struct id *conversation_id,
                       const struct id *client_msg_id, const struct id *message_id, bool by_sender,
                       const uint8_t sig[REC_SIG_LEN]) {
    uint8_t recall[TRANSCRIPT_RECALL_LEN], removal[TRANSCRIPT_REMOVAL_LEN];
    transcript_recall(conversation_id->b, client_msg_id->b, recall);
    transcript_removal(conversation_id->b, message_id->b, removal);
    bool ok =
        crypto_sign_verify_detached(sig, removal, sizeof removal, identity_key) == 0 ||
        (by_sender && crypto_sign_verify_detached(sig, recall, sizeof recall, identity_key) == 0);
    return ok ? STATUS_OK : STATUS_BAD_REQUEST;
}
