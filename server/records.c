/*
 * server/records.c: byte encodings of the account, invitation, device, session
 * and audit records (layout rules in records.h). Pure, any thread.
 */
#include "server/records.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/status.h"
#include "server/record_codec.h"
#include "storage/keys.h"

/* Longest byte string a record field may hold (a crypto_pwhash_str string is
 * 128 bytes; emails 254; labels 64; names 128). */
#define FIELD_MAX 4096

static void put_str(struct buf *b, const char *s) {
    rec_put_bytes(b, s ? s : "", s ? strlen(s) : 0);
}

/* True when the record ended before this field (trailing fields default to 0). */
static bool at_end(const struct rec_reader *r) {
    return r->p == r->end;
}

/* The fields below read as zero when the record ended before them. */
static void get_raw(struct rec_reader *r, void *out, size_t n) {
    const uint8_t *p = r->bad || at_end(r) ? NULL : rec_take(r, n);
    if (p)
        memcpy(out, p, n);
    else
        memset(out, 0, n);
}

static uint8_t get_u8(struct rec_reader *r) {
    return at_end(r) ? 0 : rec_get_u8(r);
}

static uint32_t get_u32(struct rec_reader *r) {
    return at_end(r) ? 0 : rec_get_u32(r);
}

static uint64_t get_u64(struct rec_reader *r) {
    return at_end(r) ? 0 : rec_get_u64(r);
}

/* A length-prefixed field of exactly `n` bytes (or empty when the record ended). */
static void get_fixed(struct rec_reader *r, void *out, size_t n) {
    if (r->bad || at_end(r)) {
        memset(out, 0, n);
        return;
    }
    uint32_t len = get_u32(r);
    if (len != n) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    get_raw(r, out, n);
}

/* A length-prefixed string, checked and, when `copy`, copied NUL-terminated
 * ("" when the record ended); NULL when not `copy`. */
static char *take_str(struct rec_reader *r, bool copy) {
    uint32_t len = 0;
    if (!r->bad && !at_end(r))
        len = get_u32(r);
    if (r->bad || len > FIELD_MAX || (size_t)(r->end - r->p) < len || memchr(r->p, 0, len)) {
        r->bad = true;
        return copy ? xstrdup("") : NULL;
    }
    char *s = NULL;
    if (copy) {
        s = xmalloc(len + 1);
        memcpy(s, r->p, len);
        s[len] = '\0';
    }
    r->p += len;
    return s;
}

static char *get_str(struct rec_reader *r) {
    return take_str(r, true);
}

static void get_id(struct rec_reader *r, struct id *id) {
    get_raw(r, id->b, ID_LEN);
}

static bool reader_start(struct rec_reader *r, const uint8_t *data, size_t len) {
    rec_reader_init(r, data, len);
    return len >= 1 && get_u8(r) == REC_FORMAT;
}

void rec_account_encode(const struct rec_account *a, struct buf *out) {
    rec_put_u8(out, REC_FORMAT);
    rec_put_u32(out, a->role);
    rec_put_u8(out, a->active ? 1 : 0);
    rec_put_u64(out, (uint64_t)a->created_at);
    rec_put_u32(out, a->n_devices);
    put_str(out, a->email);
    put_str(out, a->display_name);
    put_str(out, a->birth_date);
    put_str(out, a->password_hash);
    rec_put_u64(out, a->list_version);
    rec_put_id(out, &a->list_signer);
    buf_append(out, a->list_signature, REC_SIG_LEN);
    rec_put_u32(out, a->n_list);
    for (uint32_t i = 0; i < a->n_list; i++) {
        rec_put_id(out, &a->list[i].device_id);
        buf_append(out, a->list[i].identity_key, REC_KEY_LEN);
    }
    rec_put_id(out, &a->inviter);
    rec_put_u64(out, (uint64_t)a->deactivated_at);
    put_str(out, a->hold_reason ? a->hold_reason : "");
    rec_put_u64(out, (uint64_t)a->sessions_after);
    buf_append(out, a->list_prev_hash, REC_HASH_LEN);
    rec_put_u8(out, a->list_reset ? 1 : 0);
    rec_put_u64(out, (uint64_t)a->list_reset_at);
    buf_append(out, a->reset_code_hash, REC_HASH_LEN);
    rec_put_u64(out, (uint64_t)a->reset_expires_at);
    rec_put_u32(out, a->reset_attempts);
    rec_put_u8(out, a->totp_state);
    buf_append(out, a->totp_secret, REC_TOTP_SECRET_LEN);
    rec_put_u64(out, a->totp_last_step);
    rec_put_u32(out, a->n_recovery);
    for (uint32_t i = 0; i < a->n_recovery; i++)
        buf_append(out, a->recovery[i], REC_HASH_LEN);
}

/* rec_account_decode(), with its strings copied or left NULL. */
static int decode_account(const uint8_t *data, size_t len, struct rec_account *out, bool strings) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!reader_start(&r, data, len))
        return STATUS_CORRUPT;
    out->role = get_u32(&r);
    out->active = get_u8(&r) != 0;
    out->created_at = (int64_t)get_u64(&r);
    out->n_devices = get_u32(&r);
    out->email = take_str(&r, strings);
    out->display_name = take_str(&r, strings);
    out->birth_date = take_str(&r, strings);
    out->password_hash = take_str(&r, strings);
    out->list_version = get_u64(&r);
    get_id(&r, &out->list_signer);
    get_raw(&r, out->list_signature, REC_SIG_LEN);
    out->n_list = get_u32(&r);
    if (out->n_list > REC_LIST_MAX)
        r.bad = true;
    for (uint32_t i = 0; !r.bad && i < out->n_list; i++) {
        get_id(&r, &out->list[i].device_id);
        get_raw(&r, out->list[i].identity_key, REC_KEY_LEN);
    }
    get_id(&r, &out->inviter);
    if (!r.bad && !at_end(&r)) /* absent in records written before 0.2 */
        out->deactivated_at = (int64_t)get_u64(&r);
    if (!r.bad && !at_end(&r)) /* absent in records written before 0.3 */
        out->hold_reason = take_str(&r, strings);
    if (!r.bad && !at_end(&r)) /* absent in records written before 0.3's password change */
        out->sessions_after = (int64_t)get_u64(&r);
    if (!r.bad && !at_end(&r)) { /* absent before device-list hashes */
        get_raw(&r, out->list_prev_hash, REC_HASH_LEN);
        out->list_reset = get_u8(&r) != 0;
        out->list_reset_at = (int64_t)get_u64(&r);
    }
    if (!r.bad && !at_end(&r)) { /* absent before password reset */
        get_raw(&r, out->reset_code_hash, REC_HASH_LEN);
        out->reset_expires_at = (int64_t)get_u64(&r);
        out->reset_attempts = get_u32(&r);
    }
    if (!r.bad && !at_end(&r)) { /* absent before two-factor sign-in */
        out->totp_state = get_u8(&r);
        get_raw(&r, out->totp_secret, REC_TOTP_SECRET_LEN);
        out->totp_last_step = get_u64(&r);
        out->n_recovery = get_u32(&r);
        if (out->totp_state > REC_TOTP_ACTIVE || out->n_recovery > REC_RECOVERY_MAX)
            r.bad = true;
        for (uint32_t i = 0; !r.bad && i < out->n_recovery; i++)
            get_raw(&r, out->recovery[i], REC_HASH_LEN);
    }
    if (r.bad || r.p != r.end) {
        rec_account_cleanup(out);
        return STATUS_CORRUPT;
    }
    return STATUS_OK;
}

int rec_account_decode(const uint8_t *data, size_t len, struct rec_account *out) {
    return decode_account(data, len, out, true);
}

int rec_account_decode_lean(const uint8_t *data, size_t len, struct rec_account *out) {
    return decode_account(data, len, out, false);
}

void rec_account_cleanup(struct rec_account *a) {
    if (!a)
        return;
    free(a->hold_reason);
    free(a->email);
    free(a->display_name);
    free(a->birth_date);
    if (a->password_hash) {
        sodium_memzero(a->password_hash, strlen(a->password_hash));
        free(a->password_hash);
    }
    a->email = a->display_name = a->birth_date = a->password_hash = NULL;
    sodium_memzero(a->totp_secret, sizeof a->totp_secret);
}

void rec_invite_encode(const struct rec_invite *i, struct buf *out) {
    rec_put_u8(out, REC_FORMAT);
    rec_put_u32(out, i->role);
    rec_put_id(out, &i->inviter);
    rec_put_bytes(out, i->email_index, REC_HASH_LEN);
    put_str(out, i->email);
    rec_put_u64(out, (uint64_t)i->created_at);
    rec_put_u64(out, (uint64_t)i->expires_at);
}

int rec_invite_decode(const uint8_t *data, size_t len, struct rec_invite *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!reader_start(&r, data, len))
        return STATUS_CORRUPT;
    out->role = get_u32(&r);
    get_id(&r, &out->inviter);
    get_fixed(&r, out->email_index, REC_HASH_LEN);
    out->email = get_str(&r);
    out->created_at = (int64_t)get_u64(&r);
    out->expires_at = (int64_t)get_u64(&r);
    if (r.bad || r.p != r.end) {
        rec_invite_cleanup(out);
        return STATUS_CORRUPT;
    }
    return STATUS_OK;
}

void rec_invite_cleanup(struct rec_invite *i) {
    if (!i)
        return;
    free(i->email);
    i->email = NULL;
}

void rec_device_encode(const struct rec_device *d, struct buf *out) {
    rec_put_u8(out, REC_FORMAT);
    buf_append(out, d->identity_key, REC_KEY_LEN);
    buf_append(out, d->encryption_key, REC_KEY_LEN);
    rec_put_u32(out, d->encryption_key_id);
    rec_put_u64(out, (uint64_t)d->encryption_key_expires_at);
    buf_append(out, d->signature, REC_SIG_LEN);
    put_str(out, d->label);
    rec_put_u64(out, (uint64_t)d->created_at);
}

/* rec_device_decode(), with its label copied or left NULL. */
static int decode_device(const uint8_t *data, size_t len, struct rec_device *out, bool strings) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!reader_start(&r, data, len))
        return STATUS_CORRUPT;
    get_raw(&r, out->identity_key, REC_KEY_LEN);
    get_raw(&r, out->encryption_key, REC_KEY_LEN);
    out->encryption_key_id = get_u32(&r);
    out->encryption_key_expires_at = (int64_t)get_u64(&r);
    get_raw(&r, out->signature, REC_SIG_LEN);
    out->label = take_str(&r, strings);
    out->created_at = (int64_t)get_u64(&r);
    if (r.bad || r.p != r.end) {
        rec_device_cleanup(out);
        return STATUS_CORRUPT;
    }
    return STATUS_OK;
}

int rec_device_decode(const uint8_t *data, size_t len, struct rec_device *out) {
    return decode_device(data, len, out, true);
}

int rec_device_decode_lean(const uint8_t *data, size_t len, struct rec_device *out) {
    return decode_device(data, len, out, false);
}

void rec_device_cleanup(struct rec_device *d) {
    if (!d)
        return;
    free(d->label);
    d->label = NULL;
}

void rec_session_encode(const struct rec_session *s, struct buf *out) {
    rec_put_u8(out, REC_FORMAT);
    rec_put_id(out, &s->account_id);
    rec_put_id(out, &s->device_id);
    rec_put_u64(out, (uint64_t)s->created_at);
    rec_put_u64(out, (uint64_t)s->expires_at);
    rec_put_u64(out, (uint64_t)s->idle_expires_at);
    if (s->stay_signed_in)
        rec_put_u8(out, 1);
}

bool rec_session_ended(const struct rec_session *s, int64_t now) {
    return s->expires_at <= now || (s->idle_expires_at <= now && !s->stay_signed_in);
}

int rec_session_decode(const uint8_t *data, size_t len, struct rec_session *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!reader_start(&r, data, len))
        return STATUS_CORRUPT;
    get_id(&r, &out->account_id);
    get_id(&r, &out->device_id);
    out->created_at = (int64_t)get_u64(&r);
    out->expires_at = (int64_t)get_u64(&r);
    out->idle_expires_at = (int64_t)get_u64(&r);
    if (!r.bad && r.p != r.end)
        out->stay_signed_in = get_u8(&r) == 1;
    return r.bad || r.p != r.end ? STATUS_CORRUPT : STATUS_OK;
}

/* The format of an audit record with repeats (records.h). */
#define AUDIT_FORMAT_REPEATED 2

void rec_audit_canonical(const struct rec_audit *a, struct buf *out) {
    rec_put_u8(out, a->repeated ? AUDIT_FORMAT_REPEATED : REC_FORMAT);
    rec_put_u64(out, a->index);
    rec_put_u64(out, (uint64_t)a->time);
    rec_put_u32(out, a->action);
    rec_put_u32(out, a->outcome);
    rec_put_id(out, &a->actor);
    rec_put_id(out, &a->device);
    rec_put_bytes(out, a->object, a->object_len <= REC_AUDIT_OBJECT_MAX ? a->object_len : 0);
    rec_put_id(out, &a->patient);
    put_str(out, a->source);
    if (a->repeated)
        rec_put_u32(out, a->repeated);
    rec_put_bytes(out, a->prev_hash, REC_HASH_LEN);
}

void rec_audit_encode(const struct rec_audit *a, struct buf *out) {
    rec_audit_canonical(a, out);
    rec_put_bytes(out, a->hash, REC_HASH_LEN);
}

int rec_audit_decode(const uint8_t *data, size_t len, struct rec_audit *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    rec_reader_init(&r, data, len);
    uint8_t format = len >= 1 ? get_u8(&r) : 0;
    if (format != REC_FORMAT && format != AUDIT_FORMAT_REPEATED)
        return STATUS_CORRUPT;
    out->index = get_u64(&r);
    out->time = (int64_t)get_u64(&r);
    out->action = get_u32(&r);
    out->outcome = get_u32(&r);
    get_id(&r, &out->actor);
    get_id(&r, &out->device);
    if (!r.bad && !at_end(&r)) {
        uint32_t n = get_u32(&r);
        if (n > REC_AUDIT_OBJECT_MAX)
            r.bad = true;
        else {
            get_raw(&r, out->object, n);
            out->object_len = n;
        }
    }
    get_id(&r, &out->patient);
    char *src = get_str(&r);
    if (strlen(src) > REC_AUDIT_SOURCE_MAX)
        r.bad = true;
    else
        memcpy(out->source, src, strlen(src) + 1);
    free(src);
    if (format == AUDIT_FORMAT_REPEATED && (out->repeated = get_u32(&r)) == 0)
        r.bad = true;
    get_fixed(&r, out->prev_hash, REC_HASH_LEN);
    get_fixed(&r, out->hash, REC_HASH_LEN);
    return r.bad || r.p != r.end ? STATUS_CORRUPT : STATUS_OK;
}

void rec_lifecycle_encode(const struct rec_lifecycle *l, struct buf *out) {
    rec_put_u8(out, REC_FORMAT);
    rec_put_u32(out, l->state);
    rec_put_u64(out, (uint64_t)l->deactivated_at);
    rec_put_u64(out, (uint64_t)l->restricted_at);
    rec_put_u64(out, (uint64_t)l->purge_at);
    rec_put_u64(out, (uint64_t)l->changed_at);
    rec_put_u8(out, l->hold ? 1 : 0);
    rec_put_u64(out, (uint64_t)l->hold_since);
}

int rec_lifecycle_decode(const uint8_t *data, size_t len, struct rec_lifecycle *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!reader_start(&r, data, len))
        return STATUS_CORRUPT;
    out->state = get_u32(&r);
    out->deactivated_at = (int64_t)get_u64(&r);
    out->restricted_at = (int64_t)get_u64(&r);
    out->purge_at = (int64_t)get_u64(&r);
    out->changed_at = (int64_t)get_u64(&r);
    out->hold = get_u8(&r) != 0;
    out->hold_since = (int64_t)get_u64(&r);
    if (r.bad || r.p != r.end || out->state < REC_LC_ACTIVE || out->state > REC_LC_PURGED)
        return STATUS_CORRUPT;
    return STATUS_OK;
}

void rec_lifecycle_key(const struct id *account, uint8_t out[1 + ID_LEN]) {
    out[0] = REC_LIFECYCLE_TAG;
    memcpy(out + 1, account->b, ID_LEN);
}

void rec_breach_encode(const struct rec_breach *b, struct buf *out) {
    rec_put_u8(out, REC_FORMAT);
    rec_put_u64(out, (uint64_t)b->declared_at);
    rec_put_id(out, &b->declared_by);
    rec_put_u64(out, (uint64_t)b->discovered_at);
    rec_put_u64(out, (uint64_t)b->deadline);
    rec_put_u32(out, b->n_notices);
    put_str(out, b->description ? b->description : "");
}

int rec_breach_decode(const uint8_t *data, size_t len, struct rec_breach *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!reader_start(&r, data, len))
        return STATUS_CORRUPT;
    out->declared_at = (int64_t)get_u64(&r);
    get_id(&r, &out->declared_by);
    out->discovered_at = (int64_t)get_u64(&r);
    out->deadline = (int64_t)get_u64(&r);
    out->n_notices = get_u32(&r);
    out->description = get_str(&r);
    if (r.bad || r.p != r.end) {
        rec_breach_cleanup(out);
        return STATUS_CORRUPT;
    }
    return STATUS_OK;
}

void rec_breach_notice_encode(const struct rec_breach_notice *n, struct buf *out) {
    rec_put_u8(out, REC_FORMAT);
    rec_put_u32(out, n->state);
    rec_put_u64(out, (uint64_t)n->queued_at);
    rec_put_u64(out, (uint64_t)n->settled_at);
    buf_append(out, n->job_id, sizeof n->job_id);
}

int rec_breach_notice_decode(const uint8_t *data, size_t len, struct rec_breach_notice *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!reader_start(&r, data, len))
        return STATUS_CORRUPT;
    out->state = get_u32(&r);
    out->queued_at = (int64_t)get_u64(&r);
    out->settled_at = (int64_t)get_u64(&r);
    get_raw(&r, out->job_id, sizeof out->job_id);
    if (r.bad || r.p != r.end || out->state < REC_BREACH_PENDING || out->state > REC_BREACH_FAILED)
        return STATUS_CORRUPT;
    return STATUS_OK;
}

void rec_breach_key(const struct id *incident, const struct id *account,
                    uint8_t out[1 + 2 * ID_LEN]) {
    out[0] = REC_BREACH_TAG;
    memcpy(out + 1, incident->b, ID_LEN);
    if (account)
        memcpy(out + 1 + ID_LEN, account->b, ID_LEN);
}

void rec_breach_cleanup(struct rec_breach *b) {
    if (!b)
        return;
    free(b->description);
    b->description = NULL;
}
