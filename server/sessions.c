/*
 * server/sessions.c: Login, Register, Authenticate, Logout and Invite.
 *
 *   Login:     validate -> rate limits (email, address) -> find the account
 *              -> verify the password on the worker (the dummy hash for an
 *              unknown email, so both failures look and last the same)
 *              -> the second factor of an account with one (server/twofactor.h)
 *              -> Login entry (new session, maybe a new device) -> SessionResult
 *   Register:  validate -> rate limits -> check the invitation -> under 13:
 *              RegisterRefused entry (an audit record; the invitation is
 *              deleted) -> FORBIDDEN; else hash the password on the worker
 *              -> Register entry -> SessionResult
 *   Authenticate: session by token hash -> checks (a failure spends one of
 *              the address's attempts) -> SessionTouch entry -> SessionResult
 *              without token
 *   Logout:    SessionEnd entry -> OK, close 1000 (and the device's other sockets)
 *   TotpDisable: as ChangePassword's check, then the second factor -> TotpDisable
 *              entry -> OK
 *   Invite:    role check -> email free -> InviteCreate entry -> InviteResult
 *   RequestPasswordReset: rate limits (email, network) -> PasswordResetRequest
 *              entry (apply finds the account, or only audits) -> OK
 *   CompletePasswordReset: sign-in waits -> hash the new password on the
 *              worker -> PasswordReset entry (apply checks the code) -> OK
 *              and the account's connections revoked, or FORBIDDEN (a failed
 *              sign-in)
 *
 * Tokens and invitation codes are random (256 and 160 bits) and leave the
 * server only in the one response or email; the store keeps their SHA-256.
 * Reset codes (80 bits) leave only by email. Loop thread.
 */
#include "server/sessions.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/status.h"
#include "protocol/transcript.h"
#include "server/rules.h"
#include "server/twofactor.h"

#define DETAIL_BAD_LOGIN "wrong email or password"
#define DETAIL_RATE "too many attempts, retry later"
#define DETAIL_BAD_INVITE "unknown, used or expired invitation"
#define DETAIL_UNDER_AGE "registration requires age 13 or older"
#define DETAIL_2FA_REQUIRED "second factor required"
#define DETAIL_2FA_WRONG "wrong second factor"
#define SECOND_FACTOR_MAX 32
#define INVITE_CODE_BYTES 20

/* A new device as proposed (copied out of a DeviceRegistration). */
struct dev_new {
    struct id id;
    uint8_t identity_key[REC_KEY_LEN];
    uint8_t encryption_key[REC_KEY_LEN];
    uint32_t key_id;
    int64_t expires_at;
    uint8_t signature[REC_SIG_LEN];
    char label[RULES_LABEL_MAX + 1];
};

/* The state of a Login, Register or Authenticate in flight (wiped with the
 * op: it holds the session token). */
struct session_op {
    struct session_info s;
    uint8_t token[32];
    bool found;        /* Login: the email belongs to an active account */
    bool known_device; /* Login: the device is one the account has */
    bool new_device;   /* Login/Register: dev is to be created */
    bool refused;      /* Register: under 13, only the RegisterRefused entry */
    struct dev_new dev;
    uint8_t email_index[REC_HASH_LEN];
    uint8_t net[16]; /* the client's network (server/lockout.h) */
    uint8_t code_hash[REC_HASH_LEN];
    char email[RULES_EMAIL_MAX + 1];
    char birth_date[11];
    char display_name[RULES_DISPLAY_NAME_MAX + 1];
    /* The account's two-factor sign-in (only the totp_* and recovery fields
     * of the record are set) and the second factor that came; once checked,
     * the step or recovery code it matched. */
    struct rec_account totp;
    char second_factor[SECOND_FACTOR_MAX + 1];
    uint64_t totp_step;
    bool recovery;
    uint8_t recovery_hash[TOTP_HASH_LEN];
};

/* Copies the two-factor fields of `a` into so->totp. */
static void totp_copy(struct session_op *so, const struct rec_account *a) {
    so->totp.totp_state = a->totp_state;
    memcpy(so->totp.totp_secret, a->totp_secret, sizeof a->totp_secret);
    so->totp.totp_last_step = a->totp_last_step;
    so->totp.n_recovery = a->n_recovery;
    memcpy(so->totp.recovery, a->recovery, sizeof a->recovery);
}

/* Checks and copies a DeviceRegistration (keys, signature, unexpired at `now`,
 * label), choosing a new device id. Returns 0 or STATUS_BAD_REQUEST. */
static int dev_from_registration(const Carechat__V1__DeviceRegistration *r, int64_t now,
                                 struct dev_new *out) {
    const Carechat__V1__DeviceKeys *k = r ? r->keys : NULL;
    if (!k || k->device_id.len != 0 || k->identity_key.len != REC_KEY_LEN ||
        k->encryption_key.len != REC_KEY_LEN || k->signature.len != REC_SIG_LEN ||
        k->encryption_key_id == 0 || k->encryption_key_expires_at <= now ||
        strlen(r->label) > RULES_LABEL_MAX)
        return STATUS_BAD_REQUEST;
    if (rules_verify_key_signature(k->identity_key.data, k->encryption_key.data,
                                   k->encryption_key_id, k->encryption_key_expires_at,
                                   k->signature.data) != 0)
        return STATUS_BAD_REQUEST;
    out->id = id_new();
    memcpy(out->identity_key, k->identity_key.data, REC_KEY_LEN);
    memcpy(out->encryption_key, k->encryption_key.data, REC_KEY_LEN);
    out->key_id = k->encryption_key_id;
    out->expires_at = k->encryption_key_expires_at;
    memcpy(out->signature, k->signature.data, REC_SIG_LEN);
    memcpy(out->label, r->label, strlen(r->label) + 1);
    return STATUS_OK;
}

/* Points a DeviceNew entry message at `d` (which must outlive it). */
static void dev_to_entry(const struct dev_new *d, Carechat__Entry__V1__DeviceNew *out) {
    carechat__entry__v1__device_new__init(out);
    out->device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)d->id.b};
    out->identity_key = (ProtobufCBinaryData){REC_KEY_LEN, (uint8_t *)d->identity_key};
    out->encryption_key = (ProtobufCBinaryData){REC_KEY_LEN, (uint8_t *)d->encryption_key};
    out->encryption_key_id = d->key_id;
    out->encryption_key_expires_at = d->expires_at;
    out->signature = (ProtobufCBinaryData){REC_SIG_LEN, (uint8_t *)d->signature};
    out->label = (char *)d->label;
}

/* ---- failed sign-ins ------------------------------------------------------------ */

/* The key of the account (its email's blind index) from the client's network. */
static void account_net_key(const struct session_op *so, uint8_t out[REC_HASH_LEN + 16]) {
    memcpy(out, so->email_index, REC_HASH_LEN);
    memcpy(out + REC_HASH_LEN, so->net, 16);
}

/* Milliseconds before a sign-in may go ahead (0: now): the failures of the
 * client's network; with an account, its failures from this network, and,
 * unless the sign-in comes from a device the account already has, its
 * failures from anywhere (so strangers' guesses never lock out a known
 * device that has the right password). */
static int64_t signin_wait(struct handlers *h, const struct session_op *so, bool with_account) {
    int64_t now = clock_monotonic_ms();
    int64_t wait = lockout_wait(h->lo_net, so->net, 16, now);
    if (with_account) {
        uint8_t key[REC_HASH_LEN + 16];
        account_net_key(so, key);
        int64_t w = lockout_wait(h->lo_account_net, key, sizeof key, now);
        if (w > wait)
            wait = w;
        w = so->known_device ? 0 : lockout_wait(h->lo_account, so->email_index, REC_HASH_LEN, now);
        if (w > wait)
            wait = w;
    }
    return wait;
}

/* Counts a failed sign-in (a wrong password, code or token). */
static void signin_failed(struct handlers *h, const struct session_op *so, bool with_account) {
    int64_t now = clock_monotonic_ms();
    lockout_fail(h->lo_net, so->net, 16, now);
    if (with_account) {
        uint8_t key[REC_HASH_LEN + 16];
        account_net_key(so, key);
        lockout_fail(h->lo_account_net, key, sizeof key, now);
        lockout_fail(h->lo_account, so->email_index, REC_HASH_LEN, now);
    }
}

/* Refuses a sign-in that must wait `wait_ms`: RATE_LIMITED with the seconds
 * to wait, and an audit record (the account tried when there is one). */
static int signin_refused(struct req *r, const struct id *account, int64_t wait_ms) {
    req_audit(r->hc, account, NULL, r->row->rule.action, STATUS_RATE_LIMITED, NULL, 0, NULL, NULL,
              NULL);
    r->retry_after_s = (uint32_t)((wait_ms + 999) / 1000);
    return req_fail(r, STATUS_RATE_LIMITED, DETAIL_RATE);
}

/* The second factor of a sign-in whose password was right: 0 when the account
 * has none active or the one that came matches (so->totp_step or
 * so->recovery_hash says which); otherwise UNAUTHENTICATED with an audit
 * record (session.2fa_refused), and a wrong one (not a missing one) counts
 * as a failed sign-in. `device` is the actor's device for the record. */
static int signin_second_factor(struct op *op, struct session_op *so, const struct id *device) {
    if (so->totp.totp_state != REC_TOTP_ACTIVE)
        return STATUS_OK;
    const char *detail = DETAIL_2FA_REQUIRED;
    if (so->second_factor[0] != '\0') {
        if (twofactor_check(&so->totp, so->second_factor, clock_now() / 1000, &so->totp_step,
                            &so->recovery, so->recovery_hash) == 0)
            return STATUS_OK;
        signin_failed(op->hc->h, so, true);
        detail = DETAIL_2FA_WRONG;
    }
    req_audit(op->hc, &so->s.account, device, REC_AUDIT_TOTP_REFUSED, STATUS_UNAUTHENTICATED, NULL,
              0, NULL, NULL, NULL);
    return op_fail(op, STATUS_UNAUTHENTICATED, detail);
}

static void new_session(struct handlers *h, struct session_op *so, int64_t now) {
    randombytes_buf(so->token, sizeof so->token);
    rules_sha256(so->token, sizeof so->token, so->s.token_hash);
    so->s.expires_at = now + h->session_max_ms;
    so->s.idle_expires_at = now + h->session_idle_ms;
    if (so->s.idle_expires_at > so->s.expires_at)
        so->s.idle_expires_at = so->s.expires_at;
}

static void session_to_entry(const struct session_op *so, Carechat__Entry__V1__SessionNew *s) {
    carechat__entry__v1__session_new__init(s);
    s->token_hash = (ProtobufCBinaryData){REC_HASH_LEN, (uint8_t *)so->s.token_hash};
    s->expires_at = so->s.expires_at;
    s->idle_expires_at = so->s.idle_expires_at;
    s->stay_signed_in = so->s.stay_signed_in;
}

/* ---- Login ------------------------------------------------------------------ */

/* The password was verified: proposes the Login entry. Returns as a handler. */
static int login_propose(struct op *op, bool ok) {
    struct session_op *so = OP_STATE(op, struct session_op);
    struct handlers *h = op->hc->h;
    if (!op_live(op))
        return STATUS_OK;
    if (!ok || !so->found) {
        signin_failed(h, so, true);
        /* The record names the account tried, when the email has one. */
        bool known = !id_is_zero(&so->s.account);
        req_audit(op->hc, known ? &so->s.account : NULL, NULL, REC_AUDIT_LOGIN,
                  STATUS_UNAUTHENTICATED, NULL, 0, NULL, NULL, NULL);
        return op_fail(op, STATUS_UNAUTHENTICATED, DETAIL_BAD_LOGIN);
    }
    int rc = signin_second_factor(op, so, NULL);
    if (rc != 0)
        return rc;
    uint8_t key[REC_HASH_LEN + 16];
    account_net_key(so, key);
    lockout_clear(h->lo_account_net, key, sizeof key);
    if (!so->new_device && !so->known_device) {
        req_audit(op->hc, &so->s.account, NULL, REC_AUDIT_LOGIN, STATUS_NOT_FOUND, so->s.device.b,
                  ID_LEN, NULL, NULL, NULL);
        return op_fail(op, STATUS_NOT_FOUND, "no such device");
    }
    int64_t now = clock_now();
    new_session(h, so, now);
    /* A refusal by apply is recorded against the account tried. */
    op->has_actor = true;
    op->actor = so->s.account;
    op->actor_device = so->s.device;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Login l;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    entry_init(&e, now, &so->s.account, NULL);
    carechat__entry__v1__login__init(&l);
    if (so->new_device) {
        dev_to_entry(&so->dev, &dn);
        l.device_case = CARECHAT__ENTRY__V1__LOGIN__DEVICE_NEW_DEVICE;
        l.new_device = &dn;
    } else {
        l.device_case = CARECHAT__ENTRY__V1__LOGIN__DEVICE_DEVICE_ID;
        l.device_id = (ProtobufCBinaryData){ID_LEN, so->s.device.b};
    }
    session_to_entry(so, &sn);
    l.session = &sn;
    if (so->recovery)
        l.recovery_hash = (ProtobufCBinaryData){TOTP_HASH_LEN, so->recovery_hash};
    else
        l.totp_step = so->totp_step;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_LOGIN;
    e.login = &l;
    return op_propose(op, &e);
}

static void login_verified(void *ctx, bool ok, const char *hash) {
    struct op *op = op_resume(ctx);
    op_step_done(op, login_propose(op, ok));
}

/* The keys of a sign-in: the client's network and, for an email, its blind
 * index. */
static void signin_keys(struct req *r, struct session_op *so, const char *email) {
    lockout_network(conn_peer_addr(r->conn), so->net);
    if (email)
        store_blind_index(r->h->store, email, strlen(email), so->email_index);
}

int sessions_login(struct req *r) {
    struct handlers *h = r->h;
    const Carechat__V1__Login *m = r->frame->login;
    size_t plen = strlen(m->password);
    char email[RULES_EMAIL_MAX + 1];
    if (rules_normalize_email(m->email, email) != 0 || plen == 0 || plen > RULES_PASSWORD_MAX ||
        m->device_case == CARECHAT__V1__LOGIN__DEVICE__NOT_SET)
        return req_fail(r, STATUS_BAD_REQUEST, "email, password and device required");
    if (strlen(m->second_factor) > SECOND_FACTOR_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, "second_factor is at most 32 bytes");
    struct op *op = op_new(r, sizeof(struct session_op));
    struct session_op *so = OP_STATE(op, struct session_op);
    memcpy(so->second_factor, m->second_factor, strlen(m->second_factor) + 1);
    if (m->device_case == CARECHAT__V1__LOGIN__DEVICE_NEW_DEVICE) {
        if (dev_from_registration(m->new_device, clock_now(), &so->dev) != 0)
            return req_fail(r, STATUS_BAD_REQUEST, "bad device keys or signature");
        so->new_device = true;
        so->s.device = so->dev.id;
    } else if (id_from_bytes(m->device_id.data, m->device_id.len, &so->s.device) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "device_id must be 16 bytes");
    so->s.stay_signed_in = m->stay_signed_in;
    signin_keys(r, so, email);
    const char *stored_hash = NULL;
    struct rec_account a;
    memset(&a, 0, sizeof a);
    if (req_find_email(h, so->email_index, &so->s.account) == 0 &&
        req_read_account(h, &so->s.account, &a) == 0 && a.active) {
        so->found = true;
        so->s.role = a.role;
        snprintf(so->display_name, sizeof so->display_name, "%s", a.display_name);
        stored_hash = a.password_hash;
        totp_copy(so, &a);
        struct rec_device dev;
        if (!so->new_device && req_read_device(h, &so->s.account, &so->s.device, &dev) == 0) {
            so->known_device = true;
            rec_device_cleanup(&dev);
        }
    }
    int64_t wait = signin_wait(h, so, true);
    int rc = wait > 0 ? signin_refused(r, so->found ? &so->s.account : NULL, wait)
                      : pwhash_verify(h->pw, m->password, plen, stored_hash, so->known_device,
                                      login_verified, op);
    rec_account_cleanup(&a);
    if (rc == STATUS_RATE_LIMITED)
        return rc;
    if (rc != 0)
        return req_fail(r, STATUS_UNAVAILABLE, "busy, retry later");
    op_keep(op);
    return STATUS_OK;
}

/* ---- Register ------------------------------------------------------------------ */

/* The password was hashed: proposes the Register entry. */
static int register_propose(struct op *op, bool ok, const char *hash) {
    struct session_op *so = OP_STATE(op, struct session_op);
    if (!op_live(op))
        return STATUS_OK;
    if (!ok)
        return op_fail(op, STATUS_UNAVAILABLE, "busy, retry later");
    int64_t now = clock_now();
    new_session(op->hc->h, so, now);
    so->s.account = id_new();
    so->s.device = so->dev.id;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Register reg;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    entry_init(&e, now, NULL, NULL);
    carechat__entry__v1__register__init(&reg);
    reg.account_id = (ProtobufCBinaryData){ID_LEN, so->s.account.b};
    reg.code_hash = (ProtobufCBinaryData){REC_HASH_LEN, so->code_hash};
    reg.email = so->email;
    reg.email_index = (ProtobufCBinaryData){REC_HASH_LEN, so->email_index};
    reg.password_hash = (char *)hash;
    reg.birth_date = so->birth_date;
    reg.display_name = so->display_name;
    dev_to_entry(&so->dev, &dn);
    reg.device = &dn;
    session_to_entry(so, &sn);
    reg.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_REGISTER;
    e.register_ = &reg;
    return op_propose(op, &e);
}

static void register_hashed(void *ctx, bool ok, const char *hash) {
    struct op *op = op_resume(ctx);
    op_step_done(op, register_propose(op, ok, hash));
}

/* Under 13: only an audit record (RegisterRefused, which also deletes the
 * invitation used), then FORBIDDEN. */
static int register_refuse(struct op *op, int64_t now) {
    struct session_op *so = OP_STATE(op, struct session_op);
    so->refused = true;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__RegisterRefused rr;
    entry_init(&e, now, NULL, NULL);
    carechat__entry__v1__register_refused__init(&rr);
    rr.reason = 1;
    rr.code_hash = (ProtobufCBinaryData){REC_HASH_LEN, so->code_hash};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_REGISTER_REFUSED;
    e.register_refused = &rr;
    return op_propose(op, &e);
}

static bool code_valid(const char *code) {
    size_t n = strlen(code);
    if (n < 16 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (code[i] <= 0x20 || code[i] >= 0x7f)
            return false;
    }
    return true;
}

int sessions_register(struct req *r) {
    struct handlers *h = r->h;
    const Carechat__V1__Register *m = r->frame->register_;
    int64_t now = clock_now();
    size_t plen = strlen(m->password);
    char email[RULES_EMAIL_MAX + 1];
    int y, mo, d;
    size_t name_len = strlen(m->display_name);
    if (!code_valid(m->code) || rules_normalize_email(m->email, email) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "malformed code or email");
    if (plen < h->password_min || plen > RULES_PASSWORD_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, h->password_rule);
    if (rules_parse_date(m->birth_date, &y, &mo, &d) != 0 || rules_age_at(y, mo, d, now) < 0)
        return req_fail(r, STATUS_BAD_REQUEST, "birth_date must be a past YYYY-MM-DD");
    if (name_len == 0 || name_len > RULES_DISPLAY_NAME_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, "display_name must be 1..128 bytes");
    struct op *op = op_new(r, sizeof(struct session_op));
    struct session_op *so = OP_STATE(op, struct session_op);
    if (dev_from_registration(m->device, now, &so->dev) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "bad device keys or signature");
    signin_keys(r, so, email);
    int64_t wait = signin_wait(h, so, false);
    if (wait > 0)
        return signin_refused(r, NULL, wait);
    rules_sha256(m->code, strlen(m->code), so->code_hash);
    struct buf v;
    buf_init(&v);
    struct rec_invite inv;
    int rc = store_get(h->store, CF_INVITES, so->code_hash, REC_HASH_LEN, &v);
    if (rc == 0)
        rc = rec_invite_decode(v.data, v.len, &inv);
    buf_cleanup(&v);
    if (rc == 0) {
        bool valid =
            inv.expires_at > now && memcmp(inv.email_index, so->email_index, REC_HASH_LEN) == 0;
        so->s.role = inv.role;
        rec_invite_cleanup(&inv);
        if (!valid)
            rc = STATUS_NOT_FOUND;
    }
    if (rc == STATUS_NOT_FOUND) {
        signin_failed(h, so, false);
        return req_deny(r, rc, DETAIL_BAD_INVITE, NULL, 0);
    }
    if (rc != 0)
        return req_fail(r, STATUS_INTERNAL, "cannot read the invitation");
    if (rules_age_at(y, mo, d, now) < RULES_MIN_AGE)
        return register_refuse(op, now);
    memcpy(so->email, email, strlen(email) + 1);
    memcpy(so->birth_date, m->birth_date, 11);
    memcpy(so->display_name, m->display_name, name_len + 1);
    if (pwhash_hash(h->pw, m->password, plen, register_hashed, op) != 0)
        return req_fail(r, STATUS_UNAVAILABLE, "busy, retry later");
    op_keep(op);
    return STATUS_OK;
}

/* ---- Authenticate -------------------------------------------------------------------- */

/* How far a refresh's clock may be from the server's. */
#define REFRESH_SKEW_MS (5 * 60 * 1000)

/* Whether Authenticate `m` refreshes the session `s` (token hash
 * `token_hash`) of device `dev` at `now`: the session stays signed in and
 * the refresh signature, made within REFRESH_SKEW_MS, verifies with the
 * device's identity key. */
static bool refresh_verifies(const struct rec_session *s, const struct rec_device *dev,
                             const uint8_t token_hash[REC_HASH_LEN],
                             const Carechat__V1__Authenticate *m, int64_t now) {
    if (!s->stay_signed_in || m->refresh_signature.len != REC_SIG_LEN ||
        m->refresh_at < now - REFRESH_SKEW_MS || m->refresh_at > now + REFRESH_SKEW_MS)
        return false;
    uint8_t t[TRANSCRIPT_REFRESH_LEN];
    transcript_refresh(s->device_id.b, token_hash, m->refresh_at, t);
    return crypto_sign_verify_detached(m->refresh_signature.data, t, sizeof t, dev->identity_key) ==
           0;
}

int sessions_authenticate(struct req *r) {
    struct handlers *h = r->h;
    const Carechat__V1__Authenticate *m = r->frame->authenticate;
    struct id device;
    if (m->session_token.len != 32 ||
        id_from_bytes(m->device_id.data, m->device_id.len, &device) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "token of 32 bytes and device_id required");
    int64_t now = clock_now();
    struct op *op = op_new(r, sizeof(struct session_op));
    struct session_op *so = OP_STATE(op, struct session_op);
    signin_keys(r, so, NULL);
    int64_t wait = signin_wait(h, so, false);
    if (wait > 0)
        return signin_refused(r, NULL, wait);
    rules_sha256(m->session_token.data, 32, so->s.token_hash);
    struct buf v;
    buf_init(&v);
    struct rec_session s;
    struct rec_account a;
    struct rec_device dev;
    memset(&a, 0, sizeof a);
    int rc = store_get(h->store, CF_SESSIONS, so->s.token_hash, REC_HASH_LEN, &v);
    if (rc == 0)
        rc = rec_session_decode(v.data, v.len, &s);
    buf_cleanup(&v);
    if (rc == 0 && (!id_equal(&s.device_id, &device) || now >= s.expires_at))
        rc = STATUS_UNAUTHENTICATED;
    if (rc == 0)
        rc = req_read_device(h, &s.account_id, &s.device_id, &dev);
    /* Past the idle expiry only a session that stays signed in, refreshed
     * under the device's identity key. */
    const bool refresh = rc == 0 && now >= s.idle_expires_at;
    if (rc == 0) {
        if (refresh && !refresh_verifies(&s, &dev, so->s.token_hash, m, now))
            rc = STATUS_UNAUTHENTICATED;
        rec_device_cleanup(&dev);
    }
    if (rc == 0)
        rc = req_read_account(h, &s.account_id, &a);
    if (rc == 0 && (!a.active || s.created_at < a.sessions_after))
        rc = STATUS_UNAUTHENTICATED;
    if (rc != 0) {
        rec_account_cleanup(&a);
        /* Only failures count, so the reconnects of many devices behind one
         * address are not throttled. */
        signin_failed(h, so, false);
        return req_deny(r, STATUS_UNAUTHENTICATED, "unknown, expired or revoked session",
                        m->device_id.data, ID_LEN);
    }
    so->s.account = s.account_id;
    so->s.device = s.device_id;
    so->s.role = a.role;
    snprintf(so->display_name, sizeof so->display_name, "%s", a.display_name);
    so->totp.totp_state = a.totp_state;
    rec_account_cleanup(&a);
    so->s.expires_at = s.expires_at;
    so->s.idle_expires_at = now + h->session_idle_ms;
    if (so->s.idle_expires_at > s.expires_at)
        so->s.idle_expires_at = s.expires_at;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__SessionTouch t;
    entry_init(&e, now, &so->s.account, &so->s.device);
    carechat__entry__v1__session_touch__init(&t);
    t.token_hash = (ProtobufCBinaryData){REC_HASH_LEN, so->s.token_hash};
    t.idle_expires_at = so->s.idle_expires_at;
    t.authenticate = true;
    so->s.stay_signed_in = s.stay_signed_in;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_TOUCH;
    e.session_touch = &t;
    return op_propose(op, &e);
}

/* ---- the completion of Login, Register and Authenticate ---------------------------- */

static const char *refusal_detail(int status, bool registering) {
    switch (status) {
    case STATUS_TOO_LARGE:
        return "too many devices (at most 6)";
    case STATUS_NOT_FOUND:
        return registering ? DETAIL_BAD_INVITE : "not found";
    case STATUS_CONFLICT:
        return "an account with this email exists";
    case STATUS_FORBIDDEN:
        return registering ? DETAIL_UNDER_AGE : "not allowed";
    case STATUS_UNAUTHENTICATED:
        return "session ended";
    default:
        return "refused";
    }
}

int sessions_established_done(struct op *op, const struct op_result *res) {
    struct session_op *so = OP_STATE(op, struct session_op);
    bool authenticate = op->row->rule.action == REC_AUDIT_AUTHENTICATE;
    bool registering = op->row->rule.action == REC_AUDIT_REGISTER;
    if (!op_live(op))
        return STATUS_OK;
    if (so->refused)
        return res->status == 0 ? op_fail(op, STATUS_FORBIDDEN, DETAIL_UNDER_AGE)
                                : op_fail(op, res->status, "cannot write now");
    if (res->status == STATUS_IO || res->status == STATUS_UNAVAILABLE)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    /* An Authenticate whose session ended meanwhile (logged out, expired). */
    if (res->status != 0 && authenticate)
        return op_fail(op, STATUS_UNAUTHENTICATED, "unknown, expired or revoked session");
    if (res->status != 0)
        return op_fail(op, res->status, refusal_detail(res->status, registering));
    struct conn *c = op->hc->conn;
    if (conn_state(c) != CONN_AWAITING_AUTH)
        return STATUS_OK;
    so->s.enrol_only =
        twofactor_required(op->hc->h, so->s.role) && so->totp.totp_state != REC_TOTP_ACTIVE;
    req_session_established(op->hc, &so->s);
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__SessionResult sr;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__session_result__init(&sr);
    sr.account_id = (ProtobufCBinaryData){ID_LEN, so->s.account.b};
    sr.device_id = (ProtobufCBinaryData){ID_LEN, so->s.device.b};
    if (!authenticate)
        sr.session_token = (ProtobufCBinaryData){sizeof so->token, so->token};
    sr.expires_at = so->s.expires_at;
    sr.idle_expires_at = so->s.idle_expires_at;
    sr.role = (Carechat__V1__Role)so->s.role;
    sr.display_name = so->display_name;
    sr.stay_signed_in = so->s.stay_signed_in;
    sr.must_enrol_second_factor = so->s.enrol_only;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_SESSION;
    resp.session = &sr;
    conn_send(c, &frame);
    return STATUS_OK;
}

/* ---- Logout ------------------------------------------------------------------------------ */

/* The session a Logout ends. */
struct logout_op {
    struct id device;
    uint8_t token_hash[REC_HASH_LEN];
};

int sessions_logout(struct req *r) {
    struct op *op = op_new(r, sizeof(struct logout_op));
    struct logout_op *lo = OP_STATE(op, struct logout_op);
    lo->device = r->hc->device;
    memcpy(lo->token_hash, r->hc->token_hash, REC_HASH_LEN);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__SessionEnd s;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__session_end__init(&s);
    s.token_hash = (ProtobufCBinaryData){REC_HASH_LEN, lo->token_hash};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_END;
    e.session_end = &s;
    return op_propose(op, &e);
}

int sessions_logout_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status == STATUS_IO || res->status == STATUS_UNAVAILABLE)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    /* The session ended meanwhile (logged out elsewhere, expired). */
    if (res->status != 0)
        return op_fail(op, STATUS_UNAUTHENTICATED, "unknown, expired or revoked session");
    struct conn *c = op->hc->conn;
    conn_respond(c, op->request_id, STATUS_OK, NULL);
    op->hc->authenticated = false;
    conn_close(c, CONN_CLOSE_NORMAL, "logged out", METRICS_CLOSE_LOGOUT);
    req_revoke(op->hc->h, NULL, &OP_STATE(op, struct logout_op)->device,
               CARECHAT__V1__REVOKE_REASON__LOGGED_OUT, op->hc);
    return STATUS_OK;
}

/* ---- ChangePassword ------------------------------------------------------------------- */

/* The change in flight: the caller's keys as for a sign-in, and the new
 * password until it is hashed (wiped then). */
struct password_op {
    struct session_op so;
    char new_password[RULES_PASSWORD_MAX + 1];
    size_t new_len;
};

/* The new password was hashed: proposes the PasswordChange entry. */
static int password_propose(struct op *op, bool ok, const char *hash) {
    if (!op_live(op))
        return STATUS_OK;
    if (!ok)
        return op_fail(op, STATUS_UNAVAILABLE, "busy, retry later");
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PasswordChange pc;
    entry_init(&e, clock_now(), &op->hc->account, &op->hc->device);
    carechat__entry__v1__password_change__init(&pc);
    pc.password_hash = (char *)hash;
    pc.keep_token_hash = (ProtobufCBinaryData){REC_HASH_LEN, op->hc->token_hash};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PASSWORD_CHANGE;
    e.password_change = &pc;
    return op_propose(op, &e);
}

static void password_hashed(void *ctx, bool ok, const char *hash) {
    struct op *op = op_resume(ctx);
    op_step_done(op, password_propose(op, ok, hash));
}

/* The current password was checked: hashes the new one. */
static int password_check(struct op *op, bool ok) {
    struct password_op *po = OP_STATE(op, struct password_op);
    struct handlers *h = op->hc->h;
    int rc = STATUS_OK;
    if (!op_live(op))
        goto out;
    if (!ok) {
        signin_failed(h, &po->so, true);
        rc = op_fail(op, STATUS_UNAUTHENTICATED, "wrong current password");
        goto out;
    }
    uint8_t key[REC_HASH_LEN + 16];
    account_net_key(&po->so, key);
    lockout_clear(h->lo_account_net, key, sizeof key);
    if (pwhash_hash(h->pw, po->new_password, po->new_len, password_hashed, op) != 0) {
        rc = op_fail(op, STATUS_UNAVAILABLE, "busy, retry later");
        goto out;
    }
    op_keep(op);
out:
    sodium_memzero(po->new_password, sizeof po->new_password);
    return rc;
}

static void password_verified(void *ctx, bool ok, const char *hash) {
    struct op *op = op_resume(ctx);
    op_step_done(op, password_check(op, ok));
}

int sessions_change_password(struct req *r) {
    struct handlers *h = r->h;
    const Carechat__V1__ChangePassword *m = r->frame->change_password;
    size_t old_len = strlen(m->current_password), new_len = strlen(m->new_password);
    if (old_len == 0 || old_len > RULES_PASSWORD_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, "the current password is required");
    if (new_len < h->password_min || new_len > RULES_PASSWORD_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, h->password_rule);
    if (new_len == old_len && sodium_memcmp(m->new_password, m->current_password, new_len) == 0)
        return req_fail(r, STATUS_BAD_REQUEST, "the new password is the current one");
    struct rec_account a;
    int rc = req_read_account(h, &r->hc->account, &a);
    if (rc != 0)
        return rc;
    struct op *op = op_new(r, sizeof(struct password_op));
    struct password_op *po = OP_STATE(op, struct password_op);
    po->so.s.account = r->hc->account;
    po->so.known_device = true;
    signin_keys(r, &po->so, a.email);
    memcpy(po->new_password, m->new_password, new_len);
    po->new_len = new_len;
    int64_t wait = signin_wait(h, &po->so, true);
    rc = wait > 0 ? signin_refused(r, &r->hc->account, wait)
                  : pwhash_verify(h->pw, m->current_password, old_len, a.password_hash, true,
                                  password_verified, op);
    rec_account_cleanup(&a);
    if (rc != 0) {
        sodium_memzero(po->new_password, sizeof po->new_password);
        return rc == STATUS_RATE_LIMITED ? rc
                                         : req_fail(r, STATUS_UNAVAILABLE, "busy, retry later");
    }
    op_keep(op);
    return STATUS_OK;
}

int sessions_change_password_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op,
                       res->status == STATUS_UNAUTHENTICATED ? STATUS_UNAUTHENTICATED : res->status,
                       "the session ended meanwhile");
    /* Every other session of the account ends now; this one goes on. */
    req_revoke(op->hc->h, &op->hc->account, NULL, CARECHAT__V1__REVOKE_REASON__PASSWORD_CHANGED,
               op->hc);
    if (op_live(op))
        conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}

/* ---- password reset ------------------------------------------------------------------- */

#define RESET_CODE_BYTES 10 /* 20 hex digits: 80 bits against at most 5 tries */
#define RESET_ATTEMPTS 5
#define RESET_CODE_MAX 64 /* what a reset code may be (push/job.h PUSH_MAX_CODE) */
#define DETAIL_BAD_RESET "invalid or expired code"

/* A reset in flight: the caller's keys as for a sign-in (its network, the
 * email's blind index) and the code's hash. */
struct reset_op {
    struct session_op so;
    uint8_t code_hash[REC_HASH_LEN];
};

/* Makes the op of a reset for `email_in` (normalised into out): r->op, its
 * state in *ro with the sign-in keys. Returns 0, or BAD_REQUEST (no op made)
 * for what is not an email address. */
static int reset_keys(struct req *r, const char *email_in, char out[RULES_EMAIL_MAX + 1],
                      struct reset_op **ro) {
    if (rules_normalize_email(email_in, out) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "an email address is required");
    struct op *op = op_new(r, sizeof(struct reset_op));
    *ro = OP_STATE(op, struct reset_op);
    signin_keys(r, &(*ro)->so, out);
    return STATUS_OK;
}

int sessions_request_reset(struct req *r) {
    struct handlers *h = r->h;
    char email[RULES_EMAIL_MAX + 1];
    struct reset_op *ro = NULL;
    int rc = reset_keys(r, r->frame->request_password_reset->email, email, &ro);
    if (rc != 0)
        return rc;
    if (!h->cfg.mail)
        return req_fail(r, STATUS_UNAVAILABLE,
                        "password reset codes go by email, and this server has no mail "
                        "configured (--smtp-url)");
    int64_t now_ms = clock_monotonic_ms();
    if (!ratelimit_take(h->rl_reset_net, ro->so.net, 16, now_ms) ||
        !ratelimit_take(h->rl_reset_email, ro->so.email_index, REC_HASH_LEN, now_ms)) {
        req_audit(r->hc, NULL, NULL, r->row->rule.action, STATUS_RATE_LIMITED, NULL, 0, NULL, NULL,
                  NULL);
        return req_fail(r, STATUS_RATE_LIMITED, "too many reset requests, retry later");
    }
    /* Whether the email has an account is apply's to find out: both cases
     * take the same one journal write before the same answer. */
    char code[2 * RESET_CODE_BYTES + 1];
    uint8_t raw[RESET_CODE_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(code, sizeof code, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    rules_sha256(code, strlen(code), ro->code_hash);
    int64_t now = clock_now();
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PasswordResetRequest m;
    entry_init(&e, now, NULL, NULL);
    carechat__entry__v1__password_reset_request__init(&m);
    m.email_index = (ProtobufCBinaryData){REC_HASH_LEN, ro->so.email_index};
    m.code_hash = (ProtobufCBinaryData){REC_HASH_LEN, ro->code_hash};
    m.expires_at = now + h->reset_ttl_ms;
    m.attempts = RESET_ATTEMPTS;
    m.mail_code = code;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PASSWORD_RESET_REQUEST;
    e.password_reset_request = &m;
    rc = op_propose(r->op, &e);
    sodium_memzero(code, sizeof code);
    return rc;
}

int sessions_request_reset_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status != 0)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}

/* The new password was hashed: proposes the PasswordReset entry, which
 * decides about the code. */
static int reset_propose(struct op *op, bool ok, const char *hash) {
    struct reset_op *ro = OP_STATE(op, struct reset_op);
    if (!op_live(op))
        return STATUS_OK;
    if (!ok)
        return op_fail(op, STATUS_UNAVAILABLE, "busy, retry later");
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PasswordReset m;
    entry_init(&e, clock_now(), NULL, NULL);
    carechat__entry__v1__password_reset__init(&m);
    m.email_index = (ProtobufCBinaryData){REC_HASH_LEN, ro->so.email_index};
    m.code_hash = (ProtobufCBinaryData){REC_HASH_LEN, ro->code_hash};
    m.password_hash = (char *)hash;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PASSWORD_RESET;
    e.password_reset = &m;
    return op_propose(op, &e);
}

static void reset_hashed(void *ctx, bool ok, const char *hash) {
    struct op *op = op_resume(ctx);
    op_step_done(op, reset_propose(op, ok, hash));
}

int sessions_complete_reset(struct req *r) {
    struct handlers *h = r->h;
    const Carechat__V1__CompletePasswordReset *m = r->frame->complete_password_reset;
    size_t code_len = strlen(m->code), new_len = strlen(m->new_password);
    if (code_len == 0 || code_len > RESET_CODE_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, "an email and a code of 1..64 bytes are required");
    if (new_len < h->password_min || new_len > RULES_PASSWORD_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, h->password_rule);
    char email[RULES_EMAIL_MAX + 1];
    struct reset_op *ro = NULL;
    int rc = reset_keys(r, m->email, email, &ro);
    if (rc != 0)
        return rc;
    int64_t wait = signin_wait(h, &ro->so, true);
    if (wait > 0)
        return signin_refused(r, NULL, wait);
    rules_sha256(m->code, code_len, ro->code_hash);
    /* The new password is hashed whatever the code, so that a wrong code, an
     * unknown email and the right code take the same steps. */
    if (pwhash_hash(h->pw, m->new_password, new_len, reset_hashed, r->op) != 0)
        return req_fail(r, STATUS_UNAVAILABLE, "busy, retry later");
    op_keep(r->op);
    return STATUS_OK;
}

int sessions_complete_reset_done(struct op *op, const struct op_result *res) {
    struct reset_op *ro = OP_STATE(op, struct reset_op);
    struct handlers *h = op->hc->h;
    if (res->status == STATUS_IO || res->status == STATUS_UNAVAILABLE)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    if (res->status != 0)
        return op_fail(op, res->status, "refused");
    struct id account;
    if (id_from_bytes(res->data, res->len, &account) != 0) {
        signin_failed(h, &ro->so, true);
        return op_fail(op, STATUS_FORBIDDEN, DETAIL_BAD_RESET);
    }
    uint8_t key[REC_HASH_LEN + 16];
    account_net_key(&ro->so, key);
    lockout_clear(h->lo_account_net, key, sizeof key);
    /* Every session of the account has ended: its live connections are told. */
    req_revoke(h, &account, NULL, CARECHAT__V1__REVOKE_REASON__PASSWORD_CHANGED, NULL);
    if (op_live(op))
        conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}

/* ---- Invite ---------------------------------------------------------------------------------- */

/* The invitation as proposed: the code leaves the server by email (the
 * outbox row apply writes with it), or in the answer with --dev-invite-codes. */
struct invite_op {
    bool answer_code;
    char code[64];
    int64_t expires_at;
    uint8_t code_hash[REC_HASH_LEN];
    uint8_t email_index[REC_HASH_LEN];
    char email[RULES_EMAIL_MAX + 1];
};

int sessions_invite(struct req *r) {
    struct handlers *h = r->h;
    const Carechat__V1__Invite *m = r->frame->invite;
    char email[RULES_EMAIL_MAX + 1];
    if (rules_normalize_email(m->email, email) != 0 || !rules_role_valid((uint32_t)m->role))
        return req_fail(r, STATUS_BAD_REQUEST, "email and role required");
    if (!rules_may_invite(r->hc->role, (uint32_t)m->role))
        return req_deny(r, STATUS_FORBIDDEN, "your role may not invite this role", NULL, 0);
    bool dev = h->cfg.config->dev_invite_codes;
    if (!h->cfg.mail && !dev)
        return req_fail(r, STATUS_UNAVAILABLE,
                        "invitations go by email, and this server has no mail configured "
                        "(--smtp-url)");
    if (!ratelimit_take(h->rl_invite, r->hc->account.b, ID_LEN, clock_monotonic_ms()))
        return req_fail(r, STATUS_RATE_LIMITED, "too many invitations, retry later");
    struct op *op = op_new(r, sizeof(struct invite_op));
    struct invite_op *io = OP_STATE(op, struct invite_op);
    store_blind_index(h->store, email, strlen(email), io->email_index);
    struct id existing;
    int rc = req_find_email(h, io->email_index, &existing);
    if (rc == 0)
        return req_fail(r, STATUS_CONFLICT, "an account with this email exists");
    if (rc != STATUS_NOT_FOUND)
        return req_fail(r, STATUS_INTERNAL, "cannot read the store");
    uint8_t raw[INVITE_CODE_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(io->code, sizeof io->code, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    rules_sha256(io->code, strlen(io->code), io->code_hash);
    int64_t now = clock_now();
    io->expires_at = now + h->invite_ttl_ms;
    memcpy(io->email, email, strlen(email) + 1);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InviteCreate in;
    entry_init(&e, now, &r->hc->account, &r->hc->device);
    carechat__entry__v1__invite_create__init(&in);
    in.code_hash = (ProtobufCBinaryData){REC_HASH_LEN, io->code_hash};
    in.email = io->email;
    in.email_index = (ProtobufCBinaryData){REC_HASH_LEN, io->email_index};
    in.role = (uint32_t)m->role;
    in.expires_at = io->expires_at;
    io->answer_code = dev;
    if (h->cfg.mail)
        in.mail_code = io->code;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INVITE_CREATE;
    e.invite_create = &in;
    return op_propose(op, &e);
}

int sessions_invite_done(struct op *op, const struct op_result *res) {
    struct invite_op *io = OP_STATE(op, struct invite_op);
    if (!op_live(op))
        return STATUS_OK;
    if (res->status == STATUS_IO || res->status == STATUS_UNAVAILABLE)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    if (res->status != 0)
        return op_fail(op, res->status, refusal_detail(res->status, false));
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__InviteResult ir;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__invite_result__init(&ir);
    ir.code = io->answer_code ? io->code : "";
    ir.expires_at = io->expires_at;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_INVITE;
    resp.invite = &ir;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}

/* ---- TotpDisable ----------------------------------------------------------------------- */

/* The password was checked: checks the second factor and proposes the
 * TotpDisable entry. */
static int totp_disable_propose(struct op *op, bool ok) {
    struct session_op *so = OP_STATE(op, struct session_op);
    struct handlers *h = op->hc->h;
    if (!op_live(op))
        return STATUS_OK;
    if (!ok) {
        signin_failed(h, so, true);
        req_audit(op->hc, &op->hc->account, &op->hc->device, REC_AUDIT_TOTP_DISABLE,
                  STATUS_UNAUTHENTICATED, NULL, 0, NULL, NULL, NULL);
        return op_fail(op, STATUS_UNAUTHENTICATED, "wrong password");
    }
    int rc = signin_second_factor(op, so, &op->hc->device);
    if (rc != 0)
        return rc;
    uint8_t key[REC_HASH_LEN + 16];
    account_net_key(so, key);
    lockout_clear(h->lo_account_net, key, sizeof key);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__TotpDisable td;
    entry_init(&e, clock_now(), &op->hc->account, &op->hc->device);
    carechat__entry__v1__totp_disable__init(&td);
    if (so->recovery)
        td.recovery_hash = (ProtobufCBinaryData){TOTP_HASH_LEN, so->recovery_hash};
    else
        td.totp_step = so->totp_step;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_TOTP_DISABLE;
    e.totp_disable = &td;
    return op_propose(op, &e);
}

static void totp_disable_verified(void *ctx, bool ok, const char *hash) {
    struct op *op = op_resume(ctx);
    op_step_done(op, totp_disable_propose(op, ok));
}

int sessions_totp_disable(struct req *r) {
    struct handlers *h = r->h;
    const Carechat__V1__TotpDisable *m = r->frame->totp_disable;
    size_t plen = strlen(m->password), flen = strlen(m->second_factor);
    if (plen == 0 || plen > RULES_PASSWORD_MAX || flen == 0 || flen > SECOND_FACTOR_MAX)
        return req_fail(r, STATUS_BAD_REQUEST, "the password and a code are required");
    struct rec_account a;
    int rc = req_read_account(h, &r->hc->account, &a);
    if (rc != 0)
        return rc;
    if (a.totp_state != REC_TOTP_ACTIVE) {
        rc = req_fail(r, STATUS_CONFLICT, "two-factor sign-in is not active");
    } else if (twofactor_required(h, a.role)) {
        rc = req_deny(r, STATUS_FORBIDDEN, "this server requires two-factor sign-in of staff", NULL,
                      0);
    }
    if (rc != 0) {
        rec_account_cleanup(&a);
        return rc;
    }
    struct op *op = op_new(r, sizeof(struct session_op));
    struct session_op *so = OP_STATE(op, struct session_op);
    so->s.account = r->hc->account;
    so->known_device = true;
    signin_keys(r, so, a.email);
    totp_copy(so, &a);
    memcpy(so->second_factor, m->second_factor, flen + 1);
    int64_t wait = signin_wait(h, so, true);
    rc = wait > 0 ? signin_refused(r, &r->hc->account, wait)
                  : pwhash_verify(h->pw, m->password, plen, a.password_hash, true,
                                  totp_disable_verified, op);
    rec_account_cleanup(&a);
    if (rc != 0)
        return rc == STATUS_RATE_LIMITED ? rc
                                         : req_fail(r, STATUS_UNAVAILABLE, "busy, retry later");
    op_keep(op);
    return STATUS_OK;
}

int sessions_totp_disable_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status == STATUS_IO || res->status == STATUS_UNAVAILABLE)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    if (res->status == STATUS_UNAUTHENTICATED)
        return op_fail(op, STATUS_UNAUTHENTICATED, DETAIL_2FA_WRONG);
    if (res->status != 0)
        return op_fail(op, res->status, "two-factor sign-in changed meanwhile");
    conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}
