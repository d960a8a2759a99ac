/*
 * server/apply_accounts.c: apply for the account kinds of entry.proto
 * (Bootstrap, InviteCreate, Register, RegisterRefused, AccountDeactivate,
 * Login, SessionTouch, SessionEnd, DeviceRemove, KeyRotate,
 * DeviceListPublish, PasswordChange, PasswordResetRequest, PasswordReset,
 * and the two-factor kinds TotpEnroll, TotpConfirm, TotpDisable).
 *
 * Each kind re-checks what its proposer checked against the state seen through
 * the transaction and the entry's own time, then writes the typed records of
 * server/records.h. Records of an account are sealed under the account's own
 * data key (its id is the owner), so purging a patient shreds them; the
 * invitation and audit records under the server's key.
 *
 * Pure: no clock, no randomness, no I/O beyond the transaction. Writer thread.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/status.h"
#include "server/apply.h"
#include "server/apply_internal.h"
#include "server/records.h"
#include "server/rules.h"
#include "server/totp.h"
#include "storage/keys.h"

#define META_KEY(k) (k), (sizeof(k) - 1)

static bool is_hash(ProtobufCBinaryData b) {
    return b.len == REC_HASH_LEN;
}

/* Checks a DeviceNew and turns it into a device record. */
static int device_from_entry(const Carechat__Entry__V1__DeviceNew *d, int64_t time,
                             struct id *device_id, struct rec_device *out) {
    memset(out, 0, sizeof *out);
    if (!d || !apply_id_field(d->device_id, device_id) || d->identity_key.len != REC_KEY_LEN ||
        d->encryption_key.len != REC_KEY_LEN || d->signature.len != REC_SIG_LEN ||
        d->encryption_key_id == 0 || d->encryption_key_expires_at <= time ||
        strlen(d->label) > RULES_LABEL_MAX)
        return STATUS_BAD_REQUEST;
    if (rules_verify_key_signature(d->identity_key.data, d->encryption_key.data,
                                   d->encryption_key_id, d->encryption_key_expires_at,
                                   d->signature.data) != 0)
        return STATUS_BAD_REQUEST;
    memcpy(out->identity_key, d->identity_key.data, REC_KEY_LEN);
    memcpy(out->encryption_key, d->encryption_key.data, REC_KEY_LEN);
    out->encryption_key_id = d->encryption_key_id;
    out->encryption_key_expires_at = d->encryption_key_expires_at;
    memcpy(out->signature, d->signature.data, REC_SIG_LEN);
    out->label = (char *)d->label; /* borrowed: never cleaned up */
    out->created_at = time;
    return STATUS_OK;
}

static int write_session(struct store_txn *txn, const Carechat__Entry__V1__SessionNew *s,
                         const struct id *account, const struct id *device, int64_t time) {
    if (!s || !is_hash(s->token_hash) || s->expires_at <= time || s->idle_expires_at <= time ||
        s->idle_expires_at > s->expires_at)
        return STATUS_BAD_REQUEST;
    int rc = apply_exists(txn, CF_SESSIONS, s->token_hash.data, s->token_hash.len);
    if (rc == 0)
        return STATUS_CONFLICT;
    if (rc != STATUS_NOT_FOUND)
        return rc;
    struct rec_session r = {
        .account_id = *account,
        .device_id = *device,
        .created_at = time,
        .expires_at = s->expires_at,
        .idle_expires_at = s->idle_expires_at,
        .stay_signed_in = s->stay_signed_in,
    };
    struct buf v;
    buf_init(&v);
    rec_session_encode(&r, &v);
    rc = txn_put(txn, CF_SESSIONS, s->token_hash.data, s->token_hash.len, account, v.data, v.len);
    buf_cleanup(&v);
    return rc;
}

/* The email must be free: STATUS_CONFLICT when an account has it. */
static int email_free(struct store_txn *txn, ProtobufCBinaryData index) {
    int rc = apply_exists(txn, CF_EMAIL_INDEX, index.data, index.len);
    if (rc == 0)
        return STATUS_CONFLICT;
    return rc == STATUS_NOT_FOUND ? STATUS_OK : rc;
}

static int create_account(struct store_txn *txn, const struct id *id, ProtobufCBinaryData index,
                          const struct rec_account *a) {
    int rc = apply_exists(txn, CF_ACCOUNTS, id->b, ID_LEN);
    if (rc == 0)
        return STATUS_CONFLICT;
    if (rc != STATUS_NOT_FOUND)
        return rc;
    rc = apply_write_account(txn, id, a);
    if (rc == 0)
        rc = txn_put(txn, CF_EMAIL_INDEX, index.data, index.len, id, id->b, ID_LEN);
    return rc;
}

int apply_bootstrap(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                    struct buf *result) {
    const Carechat__Entry__V1__Bootstrap *b = e->bootstrap;
    struct id id;
    char email[RULES_EMAIL_MAX + 1];
    if (!b || !apply_id_field(b->account_id, &id) || !is_hash(b->email_index) ||
        b->password_hash[0] == '\0' || rules_normalize_email(b->email, email) != 0 ||
        strcmp(email, b->email) != 0)
        return STATUS_BAD_REQUEST;
    int rc = apply_exists(txn, CF_META, META_KEY(REC_META_SYSADMIN));
    if (rc == 0)
        return STATUS_CONFLICT;
    if (rc != STATUS_NOT_FOUND)
        return rc;
    if ((rc = email_free(txn, b->email_index)) != 0)
        return rc;
    struct rec_account a = {
        .role = REC_ROLE_SYSADMIN,
        .active = true,
        .created_at = e->time,
        .email = b->email,
        .display_name = b->display_name,
        .birth_date = "",
        .password_hash = b->password_hash,
    };
    rc = create_account(txn, &id, b->email_index, &a);
    if (rc == 0)
        rc = txn_put(txn, CF_META, META_KEY(REC_META_SYSADMIN), NULL, id.b, ID_LEN);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_BOOTSTRAP, 0, &id, id.b, ID_LEN, NULL);
    return rc;
}

int apply_invite(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result) {
    const Carechat__Entry__V1__InviteCreate *in = e->invite_create;
    char email[RULES_EMAIL_MAX + 1];
    if (!in || !is_hash(in->code_hash) || !is_hash(in->email_index) ||
        rules_normalize_email(in->email, email) != 0 || strcmp(email, in->email) != 0 ||
        in->expires_at <= e->time || !rules_role_valid(in->role))
        return STATUS_BAD_REQUEST;
    struct id inviter;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &inviter, &a);
    if (rc != 0)
        return rc;
    bool allowed = rules_may_invite(a.role, in->role);
    rec_account_cleanup(&a);
    if (!allowed)
        return STATUS_FORBIDDEN;
    if ((rc = email_free(txn, in->email_index)) != 0)
        return rc;
    rc = apply_exists(txn, CF_INVITES, in->code_hash.data, in->code_hash.len);
    if (rc == 0)
        return STATUS_CONFLICT;
    if (rc != STATUS_NOT_FOUND)
        return rc;
    struct rec_invite r = {
        .role = in->role,
        .inviter = inviter,
        .email = in->email,
        .created_at = e->time,
        .expires_at = in->expires_at,
    };
    memcpy(r.email_index, in->email_index.data, REC_HASH_LEN);
    struct buf v;
    buf_init(&v);
    rec_invite_encode(&r, &v);
    rc = txn_put(txn, CF_INVITES, in->code_hash.data, in->code_hash.len, NULL, v.data, v.len);
    buf_cleanup(&v);
    if (rc == 0 && in->mail_code && in->mail_code[0]) {
        uint8_t h[REC_HASH_LEN];
        rules_sha256(in->mail_code, strlen(in->mail_code), h);
        if (memcmp(h, in->code_hash.data, REC_HASH_LEN) != 0)
            return STATUS_BAD_REQUEST;
        rc = apply_outbox_invitation(txn, e, in->email, in->mail_code, h);
    }
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_INVITE, 0, &inviter, in->code_hash.data,
                         in->code_hash.len, NULL);
    return rc;
}

int apply_register(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result) {
    const Carechat__Entry__V1__Register *r = e->register_;
    struct id account, device;
    struct rec_device dev;
    char email[RULES_EMAIL_MAX + 1];
    int y, m, d;
    if (!r || !apply_id_field(r->account_id, &account) || !is_hash(r->code_hash) ||
        !is_hash(r->email_index) || r->password_hash[0] == '\0' ||
        rules_normalize_email(r->email, email) != 0 || strcmp(email, r->email) != 0 ||
        rules_parse_date(r->birth_date, &y, &m, &d) != 0 || r->display_name[0] == '\0' ||
        strlen(r->display_name) > RULES_DISPLAY_NAME_MAX)
        return STATUS_BAD_REQUEST;
    int rc = device_from_entry(r->device, e->time, &device, &dev);
    if (rc != 0)
        return rc;
    if (rules_age_at(y, m, d, e->time) < RULES_MIN_AGE)
        return STATUS_FORBIDDEN;

    struct buf v;
    buf_init(&v);
    struct rec_invite inv;
    rc = txn_get(txn, CF_INVITES, r->code_hash.data, r->code_hash.len, &v);
    if (rc == 0)
        rc = rec_invite_decode(v.data, v.len, &inv);
    buf_cleanup(&v);
    if (rc != 0)
        return rc;
    bool valid =
        inv.expires_at > e->time && memcmp(inv.email_index, r->email_index.data, REC_HASH_LEN) == 0;
    uint32_t role = inv.role;
    struct id inviter = inv.inviter;
    rec_invite_cleanup(&inv);
    if (!valid)
        return STATUS_NOT_FOUND;
    if ((rc = email_free(txn, r->email_index)) != 0)
        return rc;
    struct rec_account a = {
        .role = role,
        .active = true,
        .created_at = e->time,
        .n_devices = 1,
        .email = r->email,
        .display_name = r->display_name,
        .birth_date = r->birth_date,
        .password_hash = r->password_hash,
        .inviter = inviter,
    };
    if ((rc = create_account(txn, &account, r->email_index, &a)) != 0)
        return rc;
    if ((rc = apply_write_device(txn, &account, &device, &dev)) != 0)
        return rc;
    if ((rc = write_session(txn, r->session, &account, &device, e->time)) != 0)
        return rc;
    if ((rc = txn_delete(txn, CF_INVITES, r->code_hash.data, r->code_hash.len)) != 0)
        return rc;
    return apply_audit(txn, e, REC_AUDIT_REGISTER, 0, &account, account.b, ID_LEN,
                       role == REC_ROLE_PATIENT ? &account : NULL);
}

int apply_register_refused(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                           struct buf *result) {
    const Carechat__Entry__V1__RegisterRefused *rr = e->register_refused;
    if (!rr || rr->reason != 1 || (rr->code_hash.len != 0 && !is_hash(rr->code_hash)))
        return STATUS_BAD_REQUEST;
    int rc = rr->code_hash.len ? txn_delete(txn, CF_INVITES, rr->code_hash.data, rr->code_hash.len)
                               : STATUS_OK;
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_REGISTER_UNDER_AGE,
                         (uint32_t)status_wire(STATUS_FORBIDDEN), NULL, NULL, 0, NULL);
    return rc;
}

/* The second factor an entry names for account `a` (with two-factor sign-in
 * active): a TOTP step later than the last one accepted, which becomes the
 * last; or the hash of a recovery code the account holds, which is deleted
 * (*recovery set). Returns 0 (a is changed: write it), STATUS_UNAUTHENTICATED
 * for a step already passed or a code not held, STATUS_BAD_REQUEST for a
 * hash of the wrong size. */
static int second_factor_take(struct rec_account *a, uint64_t step, ProtobufCBinaryData hash,
                              bool *recovery) {
    *recovery = false;
    if (hash.len == 0) {
        if (step == 0 || !totp_step_unused(a->totp_last_step, step))
            return STATUS_UNAUTHENTICATED;
        a->totp_last_step = step;
        return STATUS_OK;
    }
    if (hash.len != REC_HASH_LEN)
        return STATUS_BAD_REQUEST;
    for (uint32_t i = 0; i < a->n_recovery; i++) {
        if (memcmp(a->recovery[i], hash.data, REC_HASH_LEN) == 0) {
            memmove(a->recovery[i], a->recovery[i + 1], (a->n_recovery - i - 1) * REC_HASH_LEN);
            a->n_recovery--;
            *recovery = true;
            return STATUS_OK;
        }
    }
    return STATUS_UNAUTHENTICATED;
}

int apply_login(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result) {
    const Carechat__Entry__V1__Login *l = e->login;
    if (!l)
        return STATUS_BAD_REQUEST;
    struct id account, device;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &account, &a);
    if (rc != 0)
        return rc;
    /* An account with two-factor sign-in: the factor the proposer checked is
     * taken here, so a code or recovery code serves one Login only. */
    bool second_factor = a.totp_state == REC_TOTP_ACTIVE, recovery = false;
    if (second_factor &&
        (rc = second_factor_take(&a, l->totp_step, l->recovery_hash, &recovery)) != 0)
        goto out;
    if (l->device_case == CARECHAT__ENTRY__V1__LOGIN__DEVICE_DEVICE_ID) {
        struct rec_device dev;
        if (!apply_id_field(l->device_id, &device)) {
            rc = STATUS_BAD_REQUEST;
            goto out;
        }
        rc = apply_read_device(txn, &account, &device, &dev);
        if (rc != 0)
            goto out;
        rec_device_cleanup(&dev);
    } else if (l->device_case == CARECHAT__ENTRY__V1__LOGIN__DEVICE_NEW_DEVICE) {
        struct rec_device dev;
        rc = device_from_entry(l->new_device, e->time, &device, &dev);
        if (rc != 0)
            goto out;
        if (a.n_devices >= REC_MAX_DEVICES) {
            rc = STATUS_TOO_LARGE;
            goto out;
        }
        struct key k;
        key_id_id(&k, &account, &device);
        rc = apply_exists(txn, CF_DEVICES, k.b, k.len);
        if (rc == 0) {
            rc = STATUS_CONFLICT;
            goto out;
        }
        if (rc != STATUS_NOT_FOUND)
            goto out;
        if ((rc = apply_write_device(txn, &account, &device, &dev)) != 0)
            goto out;
        a.n_devices++;
    } else {
        rc = STATUS_BAD_REQUEST;
        goto out;
    }
    if ((l->device_case == CARECHAT__ENTRY__V1__LOGIN__DEVICE_NEW_DEVICE || second_factor) &&
        (rc = apply_write_account(txn, &account, &a)) != 0)
        goto out;
    rc = write_session(txn, l->session, &account, &device, e->time);
    if (rc == 0 && recovery)
        rc = apply_audit(txn, e, REC_AUDIT_TOTP_RECOVERY_USED, 0, &account, device.b, ID_LEN, NULL);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_LOGIN, 0, &account, device.b, ID_LEN, NULL);
out:
    rec_account_cleanup(&a);
    return rc;
}

static int read_session(struct store_txn *txn, ProtobufCBinaryData hash, struct rec_session *out) {
    if (!is_hash(hash))
        return STATUS_BAD_REQUEST;
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_SESSIONS, hash.data, hash.len, &v);
    if (rc == 0)
        rc = rec_session_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

/* UNAUTHENTICATED for a session created before its account's last password
 * change (PasswordChange); 0 otherwise. */
static int session_ended_by_password(struct store_txn *txn, const struct rec_session *s) {
    struct rec_account a;
    int rc = apply_read_account(txn, &s->account_id, &a);
    if (rc != 0)
        return rc;
    bool ended = s->created_at < a.sessions_after;
    rec_account_cleanup(&a);
    return ended ? STATUS_UNAUTHENTICATED : STATUS_OK;
}

int apply_password_change(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                          struct buf *result) {
    const Carechat__Entry__V1__PasswordChange *m = e->password_change;
    if (!m || !is_hash(m->keep_token_hash) || m->password_hash[0] == '\0')
        return STATUS_BAD_REQUEST;
    struct id actor;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &actor, &a);
    if (rc != 0)
        return rc;
    struct rec_session keep;
    rc = read_session(txn, m->keep_token_hash, &keep);
    if (rc == STATUS_NOT_FOUND ||
        (rc == 0 && (!id_equal(&keep.account_id, &actor) || keep.created_at < a.sessions_after)))
        rc = STATUS_UNAUTHENTICATED;
    if (rc == 0) {
        free(a.password_hash);
        a.password_hash = xstrdup(m->password_hash);
        a.sessions_after = e->time;
        rc = apply_write_account(txn, &actor, &a);
    }
    if (rc == 0) { /* the session that asked goes on */
        keep.created_at = e->time;
        struct buf v;
        buf_init(&v);
        rec_session_encode(&keep, &v);
        rc = txn_put(txn, CF_SESSIONS, m->keep_token_hash.data, m->keep_token_hash.len,
                     &keep.account_id, v.data, v.len);
        buf_cleanup(&v);
    }
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_PASSWORD_CHANGE, 0, &actor, keep.device_id.b, ID_LEN,
                         NULL);
    rec_account_cleanup(&a);
    return rc;
}

/* The account of the email blind index `index`, read into *a (clean it up).
 * Returns 0, STATUS_NOT_FOUND, or the store's status. */
static int account_by_email(struct store_txn *txn, ProtobufCBinaryData index, struct id *id,
                            struct rec_account *a) {
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_EMAIL_INDEX, index.data, index.len, &v);
    if (rc == 0 && !apply_id_field((ProtobufCBinaryData){v.len, v.data}, id))
        rc = STATUS_CORRUPT;
    buf_cleanup(&v);
    return rc == 0 ? apply_read_account(txn, id, a) : rc;
}

static bool reset_pending(const struct rec_account *a) {
    static const uint8_t none[REC_HASH_LEN];
    return memcmp(a->reset_code_hash, none, REC_HASH_LEN) != 0;
}

/* Forgets the account's reset record. */
static void reset_clear(struct rec_account *a) {
    memset(a->reset_code_hash, 0, REC_HASH_LEN);
    a->reset_expires_at = 0;
    a->reset_attempts = 0;
}

int apply_password_reset_request(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                                 struct buf *result) {
    const Carechat__Entry__V1__PasswordResetRequest *m = e->password_reset_request;
    if (!m || !is_hash(m->email_index) || !is_hash(m->code_hash) || m->expires_at <= e->time ||
        m->attempts == 0)
        return STATUS_BAD_REQUEST;
    uint8_t h[REC_HASH_LEN];
    rules_sha256(m->mail_code, strlen(m->mail_code), h);
    if (memcmp(h, m->code_hash.data, REC_HASH_LEN) != 0)
        return STATUS_BAD_REQUEST;
    struct id account;
    struct rec_account a;
    int rc = account_by_email(txn, m->email_index, &account, &a);
    if (rc == STATUS_NOT_FOUND)
        return apply_audit(txn, e, REC_AUDIT_PASSWORD_RESET_REQUEST,
                           (uint32_t)status_wire(STATUS_NOT_FOUND), NULL, NULL, 0, NULL);
    if (rc != 0)
        return rc;
    if (!a.active) {
        rc = apply_audit(txn, e, REC_AUDIT_PASSWORD_RESET_REQUEST,
                         (uint32_t)status_wire(STATUS_NOT_FOUND), NULL, account.b, ID_LEN, NULL);
        goto out;
    }
    /* The new code replaces the old one, and its email if still unsent. */
    if (reset_pending(&a) &&
        (rc = apply_outbox_password_reset_withdraw(txn, a.reset_code_hash)) != 0)
        goto out;
    memcpy(a.reset_code_hash, m->code_hash.data, REC_HASH_LEN);
    a.reset_expires_at = m->expires_at;
    a.reset_attempts = m->attempts;
    if ((rc = apply_write_account(txn, &account, &a)) != 0)
        goto out;
    if ((rc = apply_outbox_password_reset(txn, e, &account, a.email, m->mail_code,
                                          m->code_hash.data)) != 0)
        goto out;
    rc = apply_audit(txn, e, REC_AUDIT_PASSWORD_RESET_REQUEST, 0, NULL, account.b, ID_LEN, NULL);
out:
    rec_account_cleanup(&a);
    return rc;
}

int apply_totp_enroll(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                      struct buf *result) {
    const Carechat__Entry__V1__TotpEnroll *m = e->totp_enroll;
    if (!m || m->secret.len != REC_TOTP_SECRET_LEN)
        return STATUS_BAD_REQUEST;
    struct id actor;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &actor, &a);
    if (rc != 0)
        return rc;
    if (a.totp_state == REC_TOTP_ACTIVE)
        rc = STATUS_CONFLICT;
    if (rc == 0) {
        a.totp_state = REC_TOTP_PENDING;
        memcpy(a.totp_secret, m->secret.data, REC_TOTP_SECRET_LEN);
        a.totp_last_step = 0;
        a.n_recovery = 0;
        rc = apply_write_account(txn, &actor, &a);
    }
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_TOTP_ENROLL, 0, &actor, NULL, 0, NULL);
    rec_account_cleanup(&a);
    return rc;
}

int apply_password_reset(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                         struct buf *result) {
    const Carechat__Entry__V1__PasswordReset *m = e->password_reset;
    if (!m || !is_hash(m->email_index) || !is_hash(m->code_hash) || m->password_hash[0] == '\0')
        return STATUS_BAD_REQUEST;
    uint32_t refused = (uint32_t)status_wire(STATUS_FORBIDDEN);
    struct id account;
    struct rec_account a;
    int rc = account_by_email(txn, m->email_index, &account, &a);
    if (rc == STATUS_NOT_FOUND)
        return apply_audit(txn, e, REC_AUDIT_PASSWORD_RESET, refused, NULL, NULL, 0, NULL);
    if (rc != 0)
        return rc;
    if (!a.active || !reset_pending(&a)) {
        rc = apply_audit(txn, e, REC_AUDIT_PASSWORD_RESET, refused, NULL, account.b, ID_LEN, NULL);
        goto out;
    }
    bool match = sodium_memcmp(a.reset_code_hash, m->code_hash.data, REC_HASH_LEN) == 0;
    bool valid = match && a.reset_expires_at > e->time && a.reset_attempts > 0;
    if (valid) {
        free(a.password_hash);
        a.password_hash = xstrdup(m->password_hash);
        a.sessions_after = e->time;
        rc = apply_outbox_password_reset_withdraw(txn, a.reset_code_hash);
        reset_clear(&a);
    } else if (match || a.reset_attempts <= 1 || a.reset_expires_at <= e->time) {
        /* Used up: a right code too late, the last wrong try, or expired. */
        rc = apply_outbox_password_reset_withdraw(txn, a.reset_code_hash);
        reset_clear(&a);
    } else {
        a.reset_attempts--;
    }
    if (rc == 0)
        rc = apply_write_account(txn, &account, &a);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_PASSWORD_RESET, valid ? 0 : refused, NULL, account.b,
                         ID_LEN, NULL);
    if (rc == 0 && valid)
        buf_append(result, account.b, ID_LEN);
out:
    rec_account_cleanup(&a);
    return rc;
}

int apply_totp_confirm(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result) {
    const Carechat__Entry__V1__TotpConfirm *m = e->totp_confirm;
    if (!m || m->totp_step == 0 || m->n_recovery_hashes == 0 ||
        m->n_recovery_hashes > REC_RECOVERY_MAX || !is_hash(m->secret_hash))
        return STATUS_BAD_REQUEST;
    for (size_t i = 0; i < m->n_recovery_hashes; i++) {
        if (!is_hash(m->recovery_hashes[i]))
            return STATUS_BAD_REQUEST;
    }
    struct id actor;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &actor, &a);
    if (rc != 0)
        return rc;
    uint8_t pending[REC_HASH_LEN];
    rules_sha256(a.totp_secret, REC_TOTP_SECRET_LEN, pending);
    if (a.totp_state != REC_TOTP_PENDING ||
        sodium_memcmp(pending, m->secret_hash.data, REC_HASH_LEN) != 0)
        rc = STATUS_CONFLICT; /* nothing pending, or enrolled again since */
    sodium_memzero(pending, sizeof pending);
    if (rc == 0) {
        a.totp_state = REC_TOTP_ACTIVE;
        a.totp_last_step = m->totp_step;
        a.n_recovery = (uint32_t)m->n_recovery_hashes;
        for (size_t i = 0; i < m->n_recovery_hashes; i++)
            memcpy(a.recovery[i], m->recovery_hashes[i].data, REC_HASH_LEN);
        rc = apply_write_account(txn, &actor, &a);
    }
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_TOTP_CONFIRM, 0, &actor, NULL, 0, NULL);
    rec_account_cleanup(&a);
    return rc;
}

int apply_totp_disable(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result) {
    const Carechat__Entry__V1__TotpDisable *m = e->totp_disable;
    if (!m)
        return STATUS_BAD_REQUEST;
    struct id actor;
    struct rec_account a;
    bool recovery = false;
    int rc = apply_actor_account(txn, e, &actor, &a);
    if (rc != 0)
        return rc;
    if (a.totp_state != REC_TOTP_ACTIVE)
        rc = STATUS_CONFLICT;
    if (rc == 0)
        rc = second_factor_take(&a, m->totp_step, m->recovery_hash, &recovery);
    if (rc == 0) {
        a.totp_state = REC_TOTP_NONE;
        sodium_memzero(a.totp_secret, sizeof a.totp_secret);
        a.totp_last_step = 0;
        a.n_recovery = 0;
        memset(a.recovery, 0, sizeof a.recovery);
        rc = apply_write_account(txn, &actor, &a);
    }
    if (rc == 0 && recovery)
        rc = apply_audit(txn, e, REC_AUDIT_TOTP_RECOVERY_USED, 0, &actor, NULL, 0, NULL);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_TOTP_DISABLE, 0, &actor, NULL, 0, NULL);
    rec_account_cleanup(&a);
    return rc;
}

int apply_invite_revoke(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    const Carechat__Entry__V1__InviteRevoke *m = e->invite_revoke;
    if (!m || !is_hash(m->code_hash))
        return STATUS_BAD_REQUEST;
    struct id actor;
    uint32_t role;
    int rc = apply_actor_role(txn, e, &actor, &role);
    if (rc != 0)
        return rc;
    bool admin = role == REC_ROLE_ADMIN || role == REC_ROLE_SYSADMIN;
    struct buf v;
    buf_init(&v);
    struct rec_invite in;
    rc = txn_get(txn, CF_INVITES, m->code_hash.data, m->code_hash.len, &v);
    if (rc == 0)
        rc = rec_invite_decode(v.data, v.len, &in);
    buf_wipe(&v);
    buf_cleanup(&v);
    if (rc != 0)
        return rc;
    bool mine = id_equal(&in.inviter, &actor), expired = in.expires_at <= e->time;
    rec_invite_cleanup(&in);
    if ((!mine && !admin) || expired)
        return STATUS_NOT_FOUND;
    rc = txn_delete(txn, CF_INVITES, m->code_hash.data, m->code_hash.len);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_INVITE_REVOKE, 0, &actor, m->code_hash.data,
                         m->code_hash.len, NULL);
    return rc;
}

int apply_session_touch(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    const Carechat__Entry__V1__SessionTouch *t = e->session_touch;
    if (!t)
        return STATUS_BAD_REQUEST;
    struct rec_session s;
    int rc = read_session(txn, t->token_hash, &s);
    if (rc != 0)
        return rc;
    if (rec_session_ended(&s, e->time))
        return STATUS_UNAUTHENTICATED;
    if ((rc = session_ended_by_password(txn, &s)) != 0)
        return rc;
    int64_t idle = t->idle_expires_at < s.expires_at ? t->idle_expires_at : s.expires_at;
    if (idle > s.idle_expires_at)
        s.idle_expires_at = idle;
    struct buf v;
    buf_init(&v);
    rec_session_encode(&s, &v);
    rc = txn_put(txn, CF_SESSIONS, t->token_hash.data, t->token_hash.len, &s.account_id, v.data,
                 v.len);
    buf_cleanup(&v);
    if (rc == 0 && t->authenticate)
        rc = apply_audit(txn, e, REC_AUDIT_AUTHENTICATE, 0, &s.account_id, s.device_id.b, ID_LEN,
                         NULL);
    return rc;
}

int apply_session_end(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                      struct buf *result) {
    const Carechat__Entry__V1__SessionEnd *end = e->session_end;
    if (!end)
        return STATUS_BAD_REQUEST;
    struct rec_session s;
    int rc = read_session(txn, end->token_hash, &s);
    if (rc != 0)
        return rc;
    rc = txn_delete(txn, CF_SESSIONS, end->token_hash.data, end->token_hash.len);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_LOGOUT, 0, &s.account_id, s.device_id.b, ID_LEN, NULL);
    return rc;
}

int apply_device_remove(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    const Carechat__Entry__V1__DeviceRemove *r = e->device_remove;
    struct id account, device;
    if (!r || !apply_id_field(r->device_id, &device))
        return STATUS_BAD_REQUEST;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &account, &a);
    if (rc != 0)
        return rc;
    struct rec_device dev;
    rc = apply_read_device(txn, &account, &device, &dev);
    if (rc != 0)
        goto out;
    rec_device_cleanup(&dev);
    if (a.n_devices <= 1) {
        rc = STATUS_CONFLICT;
        goto out;
    }
    struct key k;
    key_id_id(&k, &account, &device);
    if ((rc = txn_delete(txn, CF_DEVICES, k.b, k.len)) != 0)
        goto out;
    a.n_devices--;
    if ((rc = apply_write_account(txn, &account, &a)) != 0)
        goto out;
    if ((rc = apply_outbox_device_removed(txn, &account, &device)) != 0)
        goto out;
    rc = apply_audit(txn, e, REC_AUDIT_DEVICE_REMOVE, 0, &account, device.b, ID_LEN, NULL);
out:
    rec_account_cleanup(&a);
    return rc;
}

int apply_key_rotate(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    const Carechat__Entry__V1__KeyRotate *r = e->key_rotate;
    struct id account, device;
    if (!r || !apply_id_field(e->actor_account_id, &account) ||
        !apply_id_field(e->actor_device_id, &device) || r->encryption_key.len != REC_KEY_LEN ||
        r->signature.len != REC_SIG_LEN || r->encryption_key_expires_at <= e->time)
        return STATUS_BAD_REQUEST;
    struct rec_device dev;
    int rc = apply_read_device(txn, &account, &device, &dev);
    if (rc != 0)
        return rc;
    if (r->encryption_key_id <= dev.encryption_key_id ||
        rules_verify_key_signature(dev.identity_key, r->encryption_key.data, r->encryption_key_id,
                                   r->encryption_key_expires_at, r->signature.data) != 0) {
        rc = STATUS_BAD_REQUEST;
        goto out;
    }
    memcpy(dev.encryption_key, r->encryption_key.data, REC_KEY_LEN);
    dev.encryption_key_id = r->encryption_key_id;
    dev.encryption_key_expires_at = r->encryption_key_expires_at;
    memcpy(dev.signature, r->signature.data, REC_SIG_LEN);
    rc = apply_write_device(txn, &account, &device, &dev);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_DEVICE_ROTATE_KEY, 0, &account, device.b, ID_LEN, NULL);
out:
    rec_device_cleanup(&dev);
    return rc;
}

int apply_device_rename(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    const Carechat__Entry__V1__DeviceRename *r = e->device_rename;
    struct id account, device;
    if (!r || !apply_id_field(r->device_id, &device) || !rules_label_ok(r->label) ||
        !apply_id_field(e->actor_account_id, &account))
        return STATUS_BAD_REQUEST;
    struct rec_device dev;
    int rc = apply_read_device(txn, &account, &device, &dev);
    if (rc != 0)
        return rc;
    char *old = dev.label;
    dev.label = r->label; /* borrowed for the write */
    rc = apply_write_device(txn, &account, &device, &dev);
    dev.label = old;
    rec_device_cleanup(&dev);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_DEVICE_RENAME, 0, &account, device.b, ID_LEN, NULL);
    return rc;
}

int apply_device_list(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                      struct buf *result) {
    const Carechat__Entry__V1__DeviceListPublish *p = e->device_list_publish;
    struct id account, actor_device, signer;
    if (!p || !apply_id_field(e->actor_device_id, &actor_device) ||
        !apply_id_field(p->signer_device_id, &signer) || p->signature.len != REC_SIG_LEN)
        return STATUS_BAD_REQUEST;
    if (p->n_devices > REC_LIST_MAX)
        return STATUS_TOO_LARGE;
    if (memcmp(signer.b, actor_device.b, ID_LEN) != 0)
        return STATUS_FORBIDDEN;
    struct rec_account a;
    int rc = apply_actor_account(txn, e, &account, &a);
    if (rc != 0)
        return rc;
    struct rec_list_item items[REC_LIST_MAX];
    const uint8_t *signer_key = NULL;
    uint8_t key_copy[REC_KEY_LEN];
    if (p->n_devices == 0 || p->n_devices > a.n_devices) {
        rc = STATUS_CONFLICT;
        goto out;
    }
    for (size_t i = 0; i < p->n_devices; i++) {
        const Carechat__Entry__V1__DeviceListItem *it = p->devices[i];
        if (!apply_id_field(it->device_id, &items[i].device_id) ||
            it->identity_key.len != REC_KEY_LEN) {
            rc = STATUS_BAD_REQUEST;
            goto out;
        }
        memcpy(items[i].identity_key, it->identity_key.data, REC_KEY_LEN);
        struct rec_device dev;
        rc = apply_read_device(txn, &account, &items[i].device_id, &dev);
        if (rc == STATUS_NOT_FOUND) {
            rc = STATUS_CONFLICT;
            goto out;
        }
        if (rc != 0)
            goto out;
        bool same = memcmp(dev.identity_key, items[i].identity_key, REC_KEY_LEN) == 0;
        rec_device_cleanup(&dev);
        if (!same) {
            rc = STATUS_CONFLICT;
            goto out;
        }
    }
    uint8_t stored_hash[REC_HASH_LEN];
    rules_device_list_hash(&account, a.list_version, a.list, a.n_list, a.list_prev_hash,
                           stored_hash);
    rc = rules_device_list_follows(a.list_version, stored_hash, a.list, a.n_list, a.list_reset,
                                   p->version, p->prev_list_hash.data, p->prev_list_hash.len,
                                   &signer, items, p->n_devices, &signer_key);
    if (rc != 0)
        goto out;
    memcpy(key_copy, signer_key, REC_KEY_LEN);
    rc = rules_verify_device_list(&account, p->version, items, p->n_devices,
                                  p->prev_list_hash.len ? p->prev_list_hash.data : NULL, key_copy,
                                  p->signature.data);
    if (rc != 0)
        goto out;
    a.list_version = p->version;
    a.list_reset = false;
    memset(a.list_prev_hash, 0, REC_HASH_LEN);
    if (p->prev_list_hash.len == REC_HASH_LEN)
        memcpy(a.list_prev_hash, p->prev_list_hash.data, REC_HASH_LEN);
    a.list_signer = signer;
    memcpy(a.list_signature, p->signature.data, REC_SIG_LEN);
    a.n_list = (uint32_t)p->n_devices;
    memcpy(a.list, items, p->n_devices * sizeof items[0]);
    rc = apply_write_account(txn, &account, &a);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_DEVICE_PUBLISH, 0, &account, account.b, ID_LEN, NULL);
out:
    rec_account_cleanup(&a);
    return rc;
}

int apply_deactivate(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    const Carechat__Entry__V1__AccountDeactivate *d = e->account_deactivate;
    struct id target, actor;
    if (!d || !apply_id_field(d->account_id, &target))
        return STATUS_BAD_REQUEST;
    struct rec_account a, t;
    int rc = apply_actor_account(txn, e, &actor, &a);
    if (rc != 0)
        return rc;
    uint32_t actor_role = a.role;
    rec_account_cleanup(&a);
    if (memcmp(actor.b, target.b, ID_LEN) == 0)
        return STATUS_BAD_REQUEST;
    if ((rc = apply_read_account(txn, &target, &t)) != 0)
        return rc;
    bool own = false;
    if (actor_role == REC_ROLE_PROVIDER && t.role == REC_ROLE_PATIENT)
        rc = apply_care_relation(txn, &target, &t, &actor, &own);
    if (rc == 0 && !rules_may_deactivate(actor_role, t.role, own))
        rc = STATUS_FORBIDDEN;
    if (rc == 0 && !t.active)
        rc = STATUS_CONFLICT;
    if (rc == 0) {
        t.active = false;
        t.deactivated_at = e->time;
        rc = apply_write_account(txn, &target, &t);
    }
    /* The lifecycle starts (a legal hold already on the account stays). */
    struct rec_lifecycle l = {0};
    if (rc == 0 && (rc = apply_read_lifecycle(txn, &target, &l)) == STATUS_NOT_FOUND)
        rc = STATUS_OK;
    if (rc == 0) {
        rules_lifecycle_start(&l, e->time, d->review_ms, d->restricted_ms);
        rc = apply_write_lifecycle(txn, &target, &l);
    }
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_ACCOUNT_DEACTIVATE, 0, &actor, target.b, ID_LEN,
                         t.role == REC_ROLE_PATIENT ? &target : NULL);
    rec_account_cleanup(&t);
    return rc;
}

/* The target of a lifecycle kind and the active actor's role. */
static int lifecycle_target(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            ProtobufCBinaryData account_id, struct id *actor, uint32_t *role,
                            struct id *target) {
    if (!apply_id_field(account_id, target))
        return STATUS_BAD_REQUEST;
    return apply_actor_role(txn, e, actor, role);
}

int apply_reactivate(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    const Carechat__Entry__V1__AccountReactivate *m = e->account_reactivate;
    struct id actor, target;
    uint32_t role;
    if (!m)
        return STATUS_BAD_REQUEST;
    int rc = lifecycle_target(txn, e, m->account_id, &actor, &role, &target);
    if (rc != 0)
        return rc;
    if (role != REC_ROLE_ADMIN && role != REC_ROLE_SYSADMIN)
        return STATUS_FORBIDDEN;
    struct rec_lifecycle l;
    rc = apply_read_lifecycle(txn, &target, &l);
    if (rc == STATUS_NOT_FOUND) /* an active account, if it exists at all */
        return apply_exists(txn, CF_ACCOUNTS, target.b, ID_LEN) == 0 ? STATUS_CONFLICT
                                                                     : STATUS_NOT_FOUND;
    if (rc != 0)
        return rc;
    if (l.state == REC_LC_ACTIVE || l.state == REC_LC_PURGED)
        return STATUS_CONFLICT;
    if (l.state == REC_LC_RESTRICTED && role != REC_ROLE_SYSADMIN)
        return STATUS_FORBIDDEN;
    struct rec_account t;
    if ((rc = apply_read_account(txn, &target, &t)) != 0)
        return rc;
    t.active = true;
    t.deactivated_at = 0;
    free(t.hold_reason);
    t.hold_reason = NULL;
    rc = apply_write_account(txn, &target, &t);
    uint8_t k[1 + ID_LEN];
    rec_lifecycle_key(&target, k);
    if (rc == 0)
        rc = txn_delete(txn, CF_ACCOUNTS, k, sizeof k);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_ACCOUNT_REACTIVATE, 0, &actor, target.b, ID_LEN,
                         t.role == REC_ROLE_PATIENT ? &target : NULL);
    rec_account_cleanup(&t);
    return rc;
}

int apply_device_list_reset(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            struct buf *result) {
    const Carechat__Entry__V1__DeviceListReset *m = e->device_list_reset;
    struct id actor, target;
    if (!m || !apply_id_field(m->account_id, &target))
        return STATUS_BAD_REQUEST;
    struct rec_account a, t;
    int rc = apply_actor_account(txn, e, &actor, &a);
    if (rc != 0)
        return rc;
    const bool admin = a.role == REC_ROLE_ADMIN || a.role == REC_ROLE_SYSADMIN;
    rec_account_cleanup(&a);
    if (!admin)
        return STATUS_FORBIDDEN;
    if ((rc = apply_read_account(txn, &target, &t)) != 0)
        return rc;
    t.list_reset = true;
    t.list_reset_at = e->time;
    rc = apply_write_account(txn, &target, &t);
    if (rc == 0)
        rc = apply_audit(txn, e, REC_AUDIT_DEVICE_LIST_RESET, 0, &actor, target.b, ID_LEN,
                         t.role == REC_ROLE_PATIENT ? &target : NULL);
    rec_account_cleanup(&t);
    return rc;
}

int apply_legal_hold(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    const Carechat__Entry__V1__LegalHoldSet *m = e->legal_hold_set;
    struct id actor, target;
    uint32_t role;
    if (!m || (m->hold && (m->reason[0] == '\0' || strlen(m->reason) > RULES_REASON_MAX)))
        return STATUS_BAD_REQUEST;
    int rc = lifecycle_target(txn, e, m->account_id, &actor, &role, &target);
    if (rc != 0)
        return rc;
    if (role != REC_ROLE_SYSADMIN)
        return STATUS_FORBIDDEN;
    struct rec_lifecycle l = {.state = REC_LC_ACTIVE};
    rc = apply_read_lifecycle(txn, &target, &l);
    if (rc == STATUS_NOT_FOUND)
        rc = STATUS_OK;
    if (rc != 0)
        return rc;
    if (l.state == REC_LC_PURGED || l.hold == m->hold)
        return STATUS_CONFLICT;
    struct rec_account t;
    if ((rc = apply_read_account(txn, &target, &t)) != 0)
        return rc;
    if (m->hold) {
        l.hold = true;
        l.hold_since = e->time;
    } else
        rules_lifecycle_release(&l, e->time);
    free(t.hold_reason);
    t.hold_reason = xstrdup(m->hold ? m->reason : "");
    rc = apply_write_account(txn, &target, &t);
    if (rc == 0)
        rc = apply_write_lifecycle(txn, &target, &l);
    if (rc == 0)
        rc = apply_audit(txn, e, m->hold ? REC_AUDIT_LEGAL_HOLD : REC_AUDIT_LEGAL_HOLD_RELEASE, 0,
                         &actor, target.b, ID_LEN, t.role == REC_ROLE_PATIENT ? &target : NULL);
    rec_account_cleanup(&t);
    return rc;
}

int apply_retention_advance(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                            struct buf *result) {
    const Carechat__Entry__V1__RetentionAdvance *m = e->retention_advance;
    struct id target;
    if (!m || !apply_id_field(m->account_id, &target) ||
        (m->email_index.len != 0 && !is_hash(m->email_index)))
        return STATUS_BAD_REQUEST;
    struct rec_lifecycle l;
    int rc = apply_read_lifecycle(txn, &target, &l);
    if (rc != 0)
        return rc;
    uint32_t next = rules_lifecycle_due(&l, e->time);
    if (next == l.state)
        return STATUS_CONFLICT;
    if (next == REC_LC_PURGED) {
        /* The account record and its email's index entry go now (the index
         * entry's key is the email's blind index, which only the proposer
         * can compute); every other record of the account becomes
         * unreadable once the server destroys its data key. */
        struct buf v;
        buf_init(&v);
        rc = m->email_index.len
                 ? txn_get(txn, CF_EMAIL_INDEX, m->email_index.data, m->email_index.len, &v)
                 : STATUS_NOT_FOUND;
        bool names_it = rc == 0 && v.len == ID_LEN && memcmp(v.data, target.b, ID_LEN) == 0;
        buf_cleanup(&v);
        if (rc != 0 && rc != STATUS_NOT_FOUND)
            return rc;
        if (names_it &&
            (rc = txn_delete(txn, CF_EMAIL_INDEX, m->email_index.data, m->email_index.len)) != 0)
            return rc;
        if ((rc = txn_delete(txn, CF_ACCOUNTS, target.b, ID_LEN)) != 0)
            return rc;
        if ((rc = apply_key_backup_purge(txn, &target)) != 0)
            return rc;
        buf_append(result, target.b, ID_LEN);
    }
    l.state = next;
    l.changed_at = e->time;
    if ((rc = apply_write_lifecycle(txn, &target, &l)) != 0)
        return rc;
    return apply_audit(txn, e,
                       next == REC_LC_PURGED ? REC_AUDIT_ACCOUNT_PURGE : REC_AUDIT_ACCOUNT_RESTRICT,
                       0, NULL, target.b, ID_LEN, &target);
}

/* Whether the record under `hash` in `cf` has expired at `now` (false when
 * it is gone or does not decode: nothing to sweep). */
static bool expired(struct store_txn *txn, enum store_cf cf, ProtobufCBinaryData hash,
                    int64_t now) {
    if (!is_hash(hash))
        return false;
    struct buf v;
    buf_init(&v);
    bool gone = false;
    if (txn_get(txn, cf, hash.data, hash.len, &v) == 0) {
        if (cf == CF_INVITES) {
            struct rec_invite in;
            if (rec_invite_decode(v.data, v.len, &in) == 0) {
                gone = in.expires_at <= now;
                rec_invite_cleanup(&in);
            }
        } else {
            struct rec_session s;
            gone = rec_session_decode(v.data, v.len, &s) == 0 && rec_session_ended(&s, now);
        }
    }
    buf_wipe(&v);
    buf_cleanup(&v);
    return gone;
}

int apply_sweep(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result) {
    const Carechat__Entry__V1__Sweep *m = e->sweep;
    if (!m)
        return STATUS_BAD_REQUEST;
    if (m->n_invite_code_hashes > APPLY_SWEEP_MAX || m->n_session_token_hashes > APPLY_SWEEP_MAX)
        return STATUS_TOO_LARGE;
    int rc = STATUS_OK;
    uint32_t invites = 0, sessions = 0;
    for (size_t i = 0; rc == 0 && i < m->n_invite_code_hashes; i++)
        if (expired(txn, CF_INVITES, m->invite_code_hashes[i], e->time) &&
            (rc = txn_delete(txn, CF_INVITES, m->invite_code_hashes[i].data,
                             m->invite_code_hashes[i].len)) == 0)
            invites++;
    for (size_t i = 0; rc == 0 && i < m->n_session_token_hashes; i++)
        if (expired(txn, CF_SESSIONS, m->session_token_hashes[i], e->time) &&
            (rc = txn_delete(txn, CF_SESSIONS, m->session_token_hashes[i].data,
                             m->session_token_hashes[i].len)) == 0)
            sessions++;
    uint8_t counts[8];
    key_put_u32(counts, invites);
    key_put_u32(counts + 4, sessions);
    buf_append(result, counts, sizeof counts);
    return rc;
}
