/*
 * server/records_notify.c: keys and byte encodings of the notification records
 * (layout in records_notify.h). Pure, any thread.
 */
#include "server/records_notify.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/status.h"
#include "server/record_codec.h"

/* Longest string field: an FCM token (4096) or a Web Push endpoint (2048). */
#define FIELD_MAX REC_PUSH_TOKEN_MAX

static void put_str(struct buf *b, const char *s) {
    rec_put_bytes(b, s ? s : "", s ? strlen(s) : 0);
}

/* A length-prefixed string copied NUL-terminated; NULL for an empty one. */
static char *get_str(struct rec_reader *r) {
    uint32_t len = rec_get_u32(r);
    if (r->bad || len > FIELD_MAX || (size_t)(r->end - r->p) < len || memchr(r->p, 0, len)) {
        r->bad = true;
        return NULL;
    }
    if (len == 0)
        return NULL;
    char *s = xmalloc(len + 1);
    memcpy(s, r->p, len);
    s[len] = '\0';
    r->p += len;
    return s;
}

static bool start(struct rec_reader *r, const uint8_t *data, size_t len) {
    rec_reader_init(r, data, len);
    return len >= 1 && rec_get_u8(r) == REC_NOTIFY_FORMAT;
}

static void free_str(char **s) {
    if (*s) {
        sodium_memzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* ---- keys ---------------------------------------------------------------------- */

void rec_key_outbox_job(struct key *k, const uint8_t job_id[REC_JOB_ID_LEN]) {
    key_init(k);
    uint8_t tag = REC_OUTBOX_TAG_JOB;
    key_add_bytes(k, &tag, 1);
    key_add_bytes(k, job_id, REC_JOB_ID_LEN);
}

void rec_key_notify_state(struct key *k, const struct id *target, uint8_t channel) {
    key_init(k);
    uint8_t tag = REC_OUTBOX_TAG_STATE;
    key_add_bytes(k, &tag, 1);
    key_add_id(k, target);
    key_add_bytes(k, &channel, 1);
}

void rec_key_push_reg(struct key *k, const struct id *account, const struct id *device,
                      uint8_t channel) {
    key_init(k);
    uint8_t tag = REC_OUTBOX_TAG_REG;
    key_add_bytes(k, &tag, 1);
    key_add_id(k, account);
    key_add_id(k, device);
    key_add_bytes(k, &channel, 1);
}

void rec_key_notify_settings(struct key *k, const struct id *account) {
    key_init(k);
    uint8_t tag = REC_OUTBOX_TAG_SETTINGS;
    key_add_bytes(k, &tag, 1);
    key_add_id(k, account);
}

/* ---- records ---------------------------------------------------------------------- */

void rec_outbox_job_encode(const struct rec_outbox_job *j, struct buf *out) {
    rec_put_u8(out, REC_NOTIFY_FORMAT);
    rec_put_u8(out, j->kind);
    rec_put_u8(out, j->channel);
    rec_put_id(out, &j->account);
    rec_put_id(out, &j->device);
    rec_put_id(out, &j->registration);
    rec_put_u64(out, (uint64_t)j->created_at);
    rec_put_u32(out, j->attempt);
    rec_put_u64(out, (uint64_t)j->next_at);
    put_str(out, j->email);
    put_str(out, j->code);
}

int rec_outbox_job_decode(const uint8_t *data, size_t len, struct rec_outbox_job *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->kind = rec_get_u8(&r);
    out->channel = rec_get_u8(&r);
    rec_get_id(&r, &out->account);
    rec_get_id(&r, &out->device);
    rec_get_id(&r, &out->registration);
    out->created_at = (int64_t)rec_get_u64(&r);
    out->attempt = rec_get_u32(&r);
    out->next_at = (int64_t)rec_get_u64(&r);
    out->email = get_str(&r);
    out->code = get_str(&r);
    if (r.bad || r.p != r.end || out->kind >= REC_NOTICE_COUNT ||
        out->channel >= REC_CHANNEL_COUNT || out->attempt == 0) {
        rec_outbox_job_cleanup(out);
        return STATUS_CORRUPT;
    }
    return STATUS_OK;
}

void rec_outbox_job_cleanup(struct rec_outbox_job *j) {
    if (!j)
        return;
    free_str(&j->email);
    free_str(&j->code);
}

void rec_notify_state_encode(const struct rec_notify_state *s, struct buf *out) {
    rec_put_u8(out, REC_NOTIFY_FORMAT);
    rec_put_bytes(out, s->pending, REC_JOB_ID_LEN);
    rec_put_u64(out, (uint64_t)s->last_sent_at);
}

int rec_notify_state_decode(const uint8_t *data, size_t len, struct rec_notify_state *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    if (rec_get_u32(&r) != REC_JOB_ID_LEN)
        r.bad = true;
    const uint8_t *p = rec_take(&r, REC_JOB_ID_LEN);
    if (p)
        memcpy(out->pending, p, REC_JOB_ID_LEN);
    out->last_sent_at = (int64_t)rec_get_u64(&r);
    if (r.bad || r.p != r.end) {
        memset(out, 0, sizeof *out);
        return STATUS_CORRUPT;
    }
    return STATUS_OK;
}

void rec_push_reg_encode(const struct rec_push_reg *g, struct buf *out) {
    rec_put_u8(out, REC_NOTIFY_FORMAT);
    rec_put_id(out, &g->registration);
    put_str(out, g->token);
    rec_put_u8(out, g->apns_sandbox ? 1 : 0);
    put_str(out, g->p256dh);
    put_str(out, g->auth);
    rec_put_u64(out, (uint64_t)g->created_at);
}

int rec_push_reg_decode(const uint8_t *data, size_t len, struct rec_push_reg *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    rec_get_id(&r, &out->registration);
    out->token = get_str(&r);
    out->apns_sandbox = rec_get_u8(&r) != 0;
    out->p256dh = get_str(&r);
    out->auth = get_str(&r);
    out->created_at = (int64_t)rec_get_u64(&r);
    if (r.bad || r.p != r.end || !out->token) {
        rec_push_reg_cleanup(out);
        return STATUS_CORRUPT;
    }
    return STATUS_OK;
}

void rec_push_reg_cleanup(struct rec_push_reg *g) {
    if (!g)
        return;
    free_str(&g->token);
    free_str(&g->p256dh);
    free_str(&g->auth);
}

void rec_notify_settings_encode(const struct rec_notify_settings *s, struct buf *out) {
    rec_put_u8(out, REC_NOTIFY_FORMAT);
    rec_put_u8(out, s->email ? 1 : 0);
    rec_put_u8(out, s->push ? 1 : 0);
    rec_put_u32(out, s->quiet_from_min);
    rec_put_u32(out, s->quiet_until_min);
    rec_put_u32(out, (uint32_t)s->utc_offset_min);
}

int rec_notify_settings_decode(const uint8_t *data, size_t len, struct rec_notify_settings *out) {
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->email = rec_get_u8(&r) != 0;
    out->push = rec_get_u8(&r) != 0;
    out->quiet_from_min = out->quiet_until_min = 0;
    out->utc_offset_min = 0;
    if (!r.bad && r.p != r.end) { /* absent in records written before quiet hours */
        out->quiet_from_min = rec_get_u32(&r);
        out->quiet_until_min = rec_get_u32(&r);
        out->utc_offset_min = (int32_t)rec_get_u32(&r);
    }
    if (r.bad || r.p != r.end)
        return STATUS_CORRUPT;
    return STATUS_OK;
}
