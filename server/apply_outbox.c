/*
 * server/apply_outbox.c: the notification kinds (NotifySettingsSet,
 * PushRegister, PushUnregister, OutboxResult) and the outbox rows other kinds
 * write in their own batch (a message for an offline recipient, an
 * invitation, a password reset code, breach notices): records in server/records_notify.h.
 *
 * Job ids are chosen without randomness, so a replay writes the same rows:
 * SHA-256 of a label and the ids that make the job unique (the message's
 * random id and the target; the invitation's or reset's code hash), cut to 16
 * bytes.
 *
 * Coalescing: a target (an account's email, a device's push channel) has at
 * most one pending NEW_MESSAGE job; further messages while it waits write
 * nothing. Whether it is still worth sending (unread, nobody online, the
 * settings, the digest window) is decided when it falls due, by the outbox on
 * the loop thread (server/outbox.h), which then proposes an OutboxResult.
 *
 * Pure: no clock, no randomness, no I/O beyond the transaction. Writer thread.
 */
#include <string.h>

#include "base/status.h"
#include "server/apply_internal.h"
#include "server/records_notify.h"
#include "server/rules.h"

/* ---- records through the transaction ------------------------------------------------ */

static void job_id_of(const char *label, const void *a, size_t a_len, const void *b, size_t b_len,
                      uint8_t channel, uint8_t out[REC_JOB_ID_LEN]) {
    uint8_t in[32 + 64 + 64 + 1], h[REC_HASH_LEN];
    size_t n = strlen(label);
    memcpy(in, label, n);
    memcpy(in + n, a, a_len);
    n += a_len;
    memcpy(in + n, b, b_len);
    n += b_len;
    in[n++] = channel;
    rules_sha256(in, n, h);
    memcpy(out, h, REC_JOB_ID_LEN);
}

static int read_state(struct store_txn *txn, const struct id *target, uint8_t channel,
                      struct rec_notify_state *out) {
    struct key k;
    rec_key_notify_state(&k, target, channel);
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_OUTBOX, k.b, k.len, &v, &n);
    if (rc == 0)
        rc = rec_notify_state_decode(v, n, out);
    else if (rc == STATUS_NOT_FOUND) {
        memset(out, 0, sizeof *out);
        rc = STATUS_OK;
    }
    return rc;
}

static bool state_empty(const struct rec_notify_state *s) {
    static const uint8_t zero[REC_JOB_ID_LEN];
    return memcmp(s->pending, zero, REC_JOB_ID_LEN) == 0 && s->last_sent_at == 0;
}

static int write_state(struct store_txn *txn, const struct id *target, uint8_t channel,
                       const struct rec_notify_state *s) {
    struct key k;
    rec_key_notify_state(&k, target, channel);
    if (state_empty(s))
        return txn_delete(txn, CF_OUTBOX, k.b, k.len);
    struct buf v;
    buf_init(&v);
    rec_notify_state_encode(s, &v);
    int rc = txn_put(txn, CF_OUTBOX, k.b, k.len, NULL, v.data, v.len);
    buf_cleanup(&v);
    return rc;
}

static int write_job(struct store_txn *txn, const uint8_t job_id[REC_JOB_ID_LEN],
                     const struct rec_outbox_job *j, const struct id *owner) {
    struct key k;
    rec_key_outbox_job(&k, job_id);
    struct buf v;
    buf_init(&v);
    rec_outbox_job_encode(j, &v);
    int rc = txn_put(txn, CF_OUTBOX, k.b, k.len, owner, v.data, v.len);
    buf_wipe(&v);
    buf_cleanup(&v);
    return rc;
}

static int read_job(struct store_txn *txn, const uint8_t job_id[REC_JOB_ID_LEN],
                    struct rec_outbox_job *out) {
    struct key k;
    rec_key_outbox_job(&k, job_id);
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_OUTBOX, k.b, k.len, &v, &n);
    if (rc == 0)
        rc = rec_outbox_job_decode(v, n, out);
    return rc;
}

int apply_read_notify_settings(struct store_txn *txn, const struct id *account,
                               struct rec_notify_settings *out) {
    struct key k;
    rec_key_notify_settings(&k, account);
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_OUTBOX, k.b, k.len, &v, &n);
    if (rc == 0)
        rc = rec_notify_settings_decode(v, n, out);
    else if (rc == STATUS_NOT_FOUND) {
        *out = (struct rec_notify_settings)REC_NOTIFY_SETTINGS_DEFAULT;
        rc = STATUS_OK;
    }
    return rc;
}

static int read_reg(struct store_txn *txn, const struct id *account, const struct id *device,
                    uint8_t channel, struct rec_push_reg *out) {
    struct key k;
    rec_key_push_reg(&k, account, device, channel);
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_OUTBOX, k.b, k.len, &v, &n);
    if (rc == 0)
        rc = rec_push_reg_decode(v, n, out);
    return rc;
}

/* A NEW_MESSAGE job for `target` on `channel` unless one is pending; its id
 * from `label` and `seed` (16 bytes: the message id, or the time). */
static int notice(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, const char *label,
                  const struct id *seed, const struct id *account, const struct id *target,
                  uint8_t channel, const struct id *device, const struct id *registration) {
    struct rec_notify_state st;
    int rc = read_state(txn, target, channel, &st);
    static const uint8_t zero[REC_JOB_ID_LEN];
    if (rc != 0 || memcmp(st.pending, zero, REC_JOB_ID_LEN) != 0)
        return rc;
    job_id_of(label, seed->b, ID_LEN, target->b, ID_LEN, channel, st.pending);
    struct rec_outbox_job j = {
        .kind = REC_NOTICE_NEW_MESSAGE,
        .channel = channel,
        .account = *account,
        .created_at = e->time,
        .attempt = 1,
    };
    if (device)
        j.device = *device;
    if (registration)
        j.registration = *registration;
    if ((rc = write_job(txn, st.pending, &j, account)) != 0)
        return rc;
    return write_state(txn, target, channel, &st);
}

/* ---- hooks of other kinds ---------------------------------------------------------------- */

#define MESSAGE_LABEL "carechat.outbox.message"
#define LEFT_LABEL "carechat.outbox.left"

static int push_notices(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        const char *label, const struct id *seed, const struct id *account,
                        const struct id *device, const struct rec_notify_settings *set);

int apply_outbox_message(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         const struct id *message_id, const struct id *account,
                         const struct id *device) {
    struct rec_notify_settings set;
    int rc = apply_read_notify_settings(txn, account, &set);
    if (rc != 0)
        return rc;
    if (set.email && (rc = notice(txn, e, MESSAGE_LABEL, message_id, account, account,
                                  REC_CHANNEL_EMAIL, NULL, NULL)) != 0)
        return rc;
    return push_notices(txn, e, MESSAGE_LABEL, message_id, account, device, &set);
}

/* A push job per channel `device` registered, unless one is pending. */
static int push_notices(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        const char *label, const struct id *seed, const struct id *account,
                        const struct id *device, const struct rec_notify_settings *set) {
    int rc;
    for (uint8_t ch = REC_CHANNEL_APNS; set->push && ch < REC_CHANNEL_COUNT; ch++) {
        struct rec_push_reg g;
        rc = read_reg(txn, account, device, ch, &g);
        if (rc == STATUS_NOT_FOUND)
            continue;
        if (rc != 0)
            return rc;
        struct id reg = g.registration;
        rec_push_reg_cleanup(&g);
        if ((rc = notice(txn, e, label, seed, account, device, ch, device, &reg)) != 0)
            return rc;
    }
    return STATUS_OK;
}

int apply_outbox_read(struct store_txn *txn, const struct id *account, const struct id *device) {
    struct rec_notify_state st;
    int rc = read_state(txn, account, REC_CHANNEL_EMAIL, &st);
    if (rc == 0 && st.last_sent_at != 0) {
        st.last_sent_at = 0;
        rc = write_state(txn, account, REC_CHANNEL_EMAIL, &st);
    }
    for (uint8_t ch = REC_CHANNEL_APNS; rc == 0 && ch < REC_CHANNEL_COUNT; ch++) {
        if ((rc = read_state(txn, device, ch, &st)) == 0 && st.last_sent_at != 0) {
            st.last_sent_at = 0;
            rc = write_state(txn, device, ch, &st);
        }
    }
    return rc;
}

#define INVITE_LABEL "carechat.outbox.invite"
#define RESET_LABEL "carechat.outbox.reset"

/* The email of a code (an invitation's, a password reset's) to `email`,
 * sealed under `account` (NULL: the server's key); its job id from `label`
 * and the code's hash. */
static int code_mail(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     enum rec_notice kind, const char *label, const struct id *account,
                     const char *email, const char *code, const uint8_t code_hash[REC_HASH_LEN]) {
    size_t n = strlen(code);
    if (n < 16 || n > 64 ||
        strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789-") != n)
        return STATUS_BAD_REQUEST;
    uint8_t job_id[REC_JOB_ID_LEN];
    job_id_of(label, code_hash, REC_HASH_LEN, "", 0, REC_CHANNEL_EMAIL, job_id);
    struct rec_outbox_job j = {
        .kind = (uint8_t)kind,
        .channel = REC_CHANNEL_EMAIL,
        .created_at = e->time,
        .attempt = 1,
        .email = (char *)email,
        .code = (char *)code,
    };
    if (account)
        j.account = *account;
    return write_job(txn, job_id, &j, account);
}

int apply_outbox_invitation(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            const char *email, const char *code,
                            const uint8_t code_hash[REC_HASH_LEN]) {
    return code_mail(txn, e, REC_NOTICE_INVITATION, INVITE_LABEL, NULL, email, code, code_hash);
}

int apply_outbox_password_reset(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                                const struct id *account, const char *email, const char *code,
                                const uint8_t code_hash[REC_HASH_LEN]) {
    return code_mail(txn, e, REC_NOTICE_PASSWORD_RESET, RESET_LABEL, account, email, code,
                     code_hash);
}

int apply_outbox_password_reset_withdraw(struct store_txn *txn,
                                         const uint8_t code_hash[REC_HASH_LEN]) {
    uint8_t job_id[REC_JOB_ID_LEN];
    job_id_of(RESET_LABEL, code_hash, REC_HASH_LEN, "", 0, REC_CHANNEL_EMAIL, job_id);
    struct key k;
    rec_key_outbox_job(&k, job_id);
    return txn_delete(txn, CF_OUTBOX, k.b, k.len);
}

int apply_outbox_account_email(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                               const struct id *account, enum rec_notice kind,
                               const uint8_t job_id[REC_JOB_ID_LEN]) {
    if (kind != REC_NOTICE_BREACH && kind != REC_NOTICE_NEW_MESSAGE)
        return STATUS_BAD_REQUEST;
    int rc = apply_exists(txn, CF_ACCOUNTS, account->b, ID_LEN);
    if (rc != 0)
        return rc;
    struct key k;
    rec_key_outbox_job(&k, job_id);
    if ((rc = apply_exists(txn, CF_OUTBOX, k.b, k.len)) != STATUS_NOT_FOUND)
        return rc == 0 ? STATUS_CONFLICT : rc;
    struct rec_outbox_job j = {
        .kind = (uint8_t)kind,
        .channel = REC_CHANNEL_EMAIL,
        .account = *account,
        .created_at = e->time,
        .attempt = 1,
    };
    return write_job(txn, job_id, &j, account);
}

int apply_outbox_device_removed(struct store_txn *txn, const struct id *account,
                                const struct id *device) {
    int rc = STATUS_OK;
    for (uint8_t ch = REC_CHANNEL_APNS; rc == 0 && ch < REC_CHANNEL_COUNT; ch++) {
        struct key k;
        rec_key_push_reg(&k, account, device, ch);
        rc = txn_delete(txn, CF_OUTBOX, k.b, k.len);
    }
    return rc;
}

/* ---- kinds --------------------------------------------------------------------------------- */

int apply_notify_settings(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                          struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__NotifySettingsSet *m = e->notify_settings_set;
    struct id account;
    if (!m || !apply_id_field(e->actor_account_id, &account))
        return STATUS_BAD_REQUEST;
    int rc = apply_exists(txn, CF_ACCOUNTS, account.b, ID_LEN);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_UNAUTHENTICATED;
    if (rc != 0)
        return rc;
    if (!rules_quiet_valid(m->quiet_from_min, m->quiet_until_min, m->utc_offset_min))
        return STATUS_BAD_REQUEST;
    struct rec_notify_settings s = {.email = m->email,
                                    .push = m->push,
                                    .quiet_from_min = m->quiet_from_min,
                                    .quiet_until_min = m->quiet_until_min,
                                    .utc_offset_min = m->utc_offset_min};
    struct key k;
    rec_key_notify_settings(&k, &account);
    struct buf v;
    buf_init(&v);
    rec_notify_settings_encode(&s, &v);
    rc = apply_put(txn, CF_OUTBOX, &k, &account, &v);
    buf_cleanup(&v);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_NOTIFY_WRITE, 0, &account, account.b, ID_LEN, NULL);
    return rc;
}

static bool valid_token(const char *s, size_t max) {
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= max;
}

int apply_push_register(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__PushRegister *m = e->push_register;
    struct id account, device, reg;
    if (!m || !apply_id_field(e->actor_account_id, &account) ||
        !apply_id_field(e->actor_device_id, &device) || !apply_id_field(m->registration_id, &reg) ||
        m->channel < REC_CHANNEL_APNS || m->channel >= REC_CHANNEL_COUNT ||
        !valid_token(m->token, REC_PUSH_TOKEN_MAX))
        return STATUS_BAD_REQUEST;
    bool webpush = m->channel == REC_CHANNEL_WEBPUSH;
    if (webpush != (valid_token(m->webpush_p256dh, 128) && valid_token(m->webpush_auth, 64)))
        return STATUS_BAD_REQUEST;
    struct key k;
    key_id_id(&k, &account, &device);
    int rc = apply_exists(txn, CF_DEVICES, k.b, k.len);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_UNAUTHENTICATED;
    if (rc != 0)
        return rc;
    struct rec_push_reg g = {
        .registration = reg,
        .token = m->token,
        .apns_sandbox = m->channel == REC_CHANNEL_APNS && m->apns_sandbox,
        .p256dh = webpush ? m->webpush_p256dh : NULL,
        .auth = webpush ? m->webpush_auth : NULL,
        .created_at = e->time,
    };
    rec_key_push_reg(&k, &account, &device, (uint8_t)m->channel);
    struct buf v;
    buf_init(&v);
    rec_push_reg_encode(&g, &v);
    rc = apply_put(txn, CF_OUTBOX, &k, &account, &v);
    buf_wipe(&v);
    buf_cleanup(&v);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_PUSH_REGISTER, 0, &account, reg.b, ID_LEN, NULL);
    return rc;
}

int apply_push_unregister(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                          struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__PushUnregister *m = e->push_unregister;
    struct id account, device, reg;
    if (!m || !apply_id_field(e->actor_account_id, &account) ||
        !apply_id_field(m->device_id, &device) || !apply_id_field(m->registration_id, &reg) ||
        m->channel < REC_CHANNEL_APNS || m->channel >= REC_CHANNEL_COUNT)
        return STATUS_BAD_REQUEST;
    struct rec_push_reg g;
    int rc = read_reg(txn, &account, &device, (uint8_t)m->channel, &g);
    if (rc != 0)
        return rc;
    bool same = id_equal(&g.registration, &reg);
    rec_push_reg_cleanup(&g);
    if (!same)
        return STATUS_NOT_FOUND;
    struct key k;
    rec_key_push_reg(&k, &account, &device, (uint8_t)m->channel);
    if ((rc = txn_delete(txn, CF_OUTBOX, k.b, k.len)) == 0)
        rc = apply_audit(txn, e, REC_AUDIT_PUSH_UNREGISTER, 0, &account, reg.b, ID_LEN, NULL);
    return rc;
}

int apply_push_device_left(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                           struct buf *result) {
    (void)result;
    struct id account, device;
    if (!e->push_device_left || !apply_id_field(e->actor_account_id, &account) ||
        !apply_id_field(e->actor_device_id, &device) || e->time <= 0)
        return STATUS_BAD_REQUEST;
    struct key k;
    key_id_id(&k, &account, &device);
    int rc = apply_exists(txn, CF_DEVICES, k.b, k.len);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_UNAUTHENTICATED;
    struct rec_notify_settings set;
    if (rc != 0 || (rc = apply_read_notify_settings(txn, &account, &set)) != 0)
        return rc;
    struct id seed = {{0}};
    key_put_u64(seed.b, (uint64_t)e->time);
    return push_notices(txn, e, LEFT_LABEL, &seed, &account, &device, &set);
}

/* The job ended: its row goes, and its target's pending mark if it is this
 * job's; a delivered notice starts the target's window. */
static int job_ended(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     const uint8_t job_id[REC_JOB_ID_LEN], const struct rec_outbox_job *j,
                     bool delivered) {
    struct key k;
    rec_key_outbox_job(&k, job_id);
    int rc = txn_delete(txn, CF_OUTBOX, k.b, k.len);
    if (rc != 0 || j->kind != REC_NOTICE_NEW_MESSAGE)
        return rc;
    const struct id *target = j->channel == REC_CHANNEL_EMAIL ? &j->account : &j->device;
    struct rec_notify_state st;
    if ((rc = read_state(txn, target, j->channel, &st)) != 0)
        return rc;
    if (memcmp(st.pending, job_id, REC_JOB_ID_LEN) == 0)
        memset(st.pending, 0, REC_JOB_ID_LEN);
    if (delivered)
        st.last_sent_at = e->time;
    return write_state(txn, target, j->channel, &st);
}

int apply_outbox_result(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__OutboxResult *m = e->outbox_result;
    if (!m || m->job_id.len != REC_JOB_ID_LEN || m->attempt == 0 ||
        m->outcome < REC_OUTBOX_DELIVERED || m->outcome > REC_OUTBOX_CANCELLED ||
        (m->outcome == REC_OUTBOX_RETRY && m->next_at <= 0))
        return STATUS_BAD_REQUEST;
    const uint8_t *id = m->job_id.data;
    struct rec_outbox_job j;
    int rc = read_job(txn, id, &j);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_OK; /* already settled, or purged with its account */
    if (rc != 0)
        return rc;
    if (j.attempt != m->attempt)
        goto out; /* a result of an attempt that was settled already */
    switch (m->outcome) {
    case REC_OUTBOX_RETRY: {
        j.attempt++;
        j.next_at = m->next_at;
        bool owned = !id_is_zero(&j.account);
        rc = write_job(txn, id, &j, owned ? &j.account : NULL);
        break;
    }
    case REC_OUTBOX_DELIVERED:
    case REC_OUTBOX_CANCELLED:
        rc = job_ended(txn, e, id, &j, m->outcome == REC_OUTBOX_DELIVERED);
        break;
    case REC_OUTBOX_DROPPED:
        if ((rc = job_ended(txn, e, id, &j, false)) == 0)
            rc = apply_audit(txn, e, REC_AUDIT_NOTIFY_DROPPED, 0, NULL, id, REC_JOB_ID_LEN, NULL);
        break;
    case REC_OUTBOX_TOKEN_DEAD: {
        if ((rc = job_ended(txn, e, id, &j, false)) != 0 || j.channel == REC_CHANNEL_EMAIL)
            break;
        struct rec_push_reg g;
        rc = read_reg(txn, &j.account, &j.device, j.channel, &g);
        if (rc == STATUS_NOT_FOUND) {
            rc = STATUS_OK;
            break;
        }
        if (rc != 0)
            break;
        bool same = id_equal(&g.registration, &j.registration);
        rec_push_reg_cleanup(&g);
        if (!same)
            break; /* registered again meanwhile: the new token is not known dead */
        struct key k;
        rec_key_push_reg(&k, &j.account, &j.device, j.channel);
        if ((rc = txn_delete(txn, CF_OUTBOX, k.b, k.len)) == 0)
            rc = apply_audit(txn, e, REC_AUDIT_PUSH_TOKEN_DEAD, 0, NULL, j.registration.b, ID_LEN,
                             NULL);
        break;
    }
    }
    /* A breach notice that ended tells its incident: sent, or failed. */
    if (rc == 0 && j.kind == REC_NOTICE_BREACH && m->outcome != REC_OUTBOX_RETRY)
        rc = apply_breach_notice_settled(txn, id, m->outcome == REC_OUTBOX_DELIVERED, e->time);
out:
    rec_outbox_job_cleanup(&j);
    return rc;
}
