/*
 * server/sessions.c: Login, Register, Authenticate, Logout and Invite.
 *
 *   Login:     validate -> rate limits (email, address) -> find the account
 *              -> verify the password on the worker (the dummy hash for an
 *              unknown email, so both failures look and last the same)
 *              -> Login entry (new session, maybe a new device) -> SessionResult
 *   Register:  validate -> rate limits -> under 13: RegisterRefused entry
 *              (audit only) -> FORBIDDEN; else check the invitation -> hash the
 *              password on the worker -> Register entry -> SessionResult
 *   Authenticate: session by token hash -> checks (a failure spends one of
 *              the address's attempts) -> SessionTouch entry -> SessionResult
 *              without token
 *   Logout:    SessionEnd entry -> OK, close 1000 (and the device's other sockets)
 *   Invite:    role check -> email free -> InviteCreate entry -> InviteResult
 *
 * Tokens and invitation codes are random (256 and 160 bits) and leave the
 * server only in the one response; the store keeps their SHA-256. Loop thread.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "server/handlers_internal.h"

#define DETAIL_BAD_LOGIN "wrong email or password"
#define DETAIL_RATE "too many attempts, retry later"
#define DETAIL_BAD_INVITE "unknown, used or expired invitation"
#define DETAIL_UNDER_AGE "registration requires age 13 or older"
#define INVITE_CODE_BYTES 20

static bool rate_ok(struct hconn *hc, const uint8_t *email_index) {
    struct handlers *h = hc->h;
    int64_t now = clock_monotonic_ms();
    bool ok = ratelimit_take(h->rl_address, conn_peer_addr(hc->conn), 16, now);
    if (email_index)
        ok = ratelimit_take(h->rl_account, email_index, REC_HASH_LEN, now) && ok;
    return ok;
}

/* Sets op->email_index to the blind index of `email` and takes the address
 * and account rate limits (Login, Register). True when both allow the
 * request; otherwise answers RATE_LIMITED, releases `op` and returns false. */
static bool email_rate_ok(struct hconn *hc, struct op *op, const char *email) {
    store_blind_index(hc->h->store, email, strlen(email), op->email_index);
    if (rate_ok(hc, op->email_index))
        return true;
    conn_respond(hc->conn, op->request_id, STATUS_RATE_LIMITED, DETAIL_RATE);
    op_release(op);
    return false;
}

static void new_session(struct handlers *h, struct op *op, int64_t now) {
    randombytes_buf(op->token, sizeof op->token);
    rules_sha256(op->token, sizeof op->token, op->token_hash);
    op->expires_at = now + h->session_max_ms;
    op->idle_expires_at = now + h->session_idle_ms;
    if (op->idle_expires_at > op->expires_at)
        op->idle_expires_at = op->expires_at;
}

static void session_to_entry(const struct op *op, Carechat__Entry__V1__SessionNew *s) {
    carechat__entry__v1__session_new__init(s);
    s->token_hash = (ProtobufCBinaryData){REC_HASH_LEN, (uint8_t *)op->token_hash};
    s->expires_at = op->expires_at;
    s->idle_expires_at = op->idle_expires_at;
}

/* ---- Login ------------------------------------------------------------------ */

static void login_verified(void *ctx, bool ok, const char *hash) {
    struct op *op = ctx;
    struct handlers *h = op->hc->h;
    if (!op_live(op)) {
        op_release(op);
        return;
    }
    struct conn *c = op->hc->conn;
    if (!ok || !op->found) {
        conn_respond(c, op->request_id, STATUS_UNAUTHENTICATED, DETAIL_BAD_LOGIN);
        static const struct id none;
        bool known = memcmp(op->account.b, none.b, ID_LEN) != 0;
        audit_propose(op->hc, known ? &op->account : NULL, NULL, REC_AUDIT_LOGIN,
                      STATUS_UNAUTHENTICATED, NULL, 0, NULL, NULL, NULL);
        op_release(op);
        return;
    }
    int64_t now = clock_now();
    if (!op->new_device) {
        struct rec_device dev;
        int rc = read_device(h, &op->account, &op->device, &dev);
        if (rc != 0) {
            conn_respond(c, op->request_id, rc == STATUS_NOT_FOUND ? rc : STATUS_INTERNAL,
                         rc == STATUS_NOT_FOUND ? "no such device" : "cannot read the device");
            if (rc == STATUS_NOT_FOUND)
                audit_propose(op->hc, &op->account, NULL, REC_AUDIT_LOGIN, rc, op->device.b, ID_LEN,
                              NULL, NULL, NULL);
            op_release(op);
            return;
        }
        rec_device_cleanup(&dev);
    }
    new_session(h, op, now);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Login l;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    entry_init(&e, now, &op->account, NULL);
    carechat__entry__v1__login__init(&l);
    if (op->new_device) {
        dev_to_entry(&op->dev, &dn);
        l.device_case = CARECHAT__ENTRY__V1__LOGIN__DEVICE_NEW_DEVICE;
        l.new_device = &dn;
    } else {
        l.device_case = CARECHAT__ENTRY__V1__LOGIN__DEVICE_DEVICE_ID;
        l.device_id = (ProtobufCBinaryData){ID_LEN, op->device.b};
    }
    session_to_entry(op, &sn);
    l.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_LOGIN;
    e.login = &l;
    propose(h, op, &e);
}

void handle_login(struct hconn *hc, uint64_t rid, const Carechat__V1__Login *m) {
    struct handlers *h = hc->h;
    struct conn *c = hc->conn;
    size_t plen = strlen(m->password);
    char email[RULES_EMAIL_MAX + 1];
    if (rules_normalize_email(m->email, email) != 0 || plen == 0 || plen > RULES_PASSWORD_MAX ||
        m->device_case == CARECHAT__V1__LOGIN__DEVICE__NOT_SET) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "email, password and device required");
        return;
    }
    struct op *op = op_new(hc, OP_LOGIN, rid);
    int64_t now = clock_now();
    if (m->device_case == CARECHAT__V1__LOGIN__DEVICE_NEW_DEVICE) {
        if (dev_from_registration(m->new_device, now, &op->dev) != 0) {
            conn_respond(c, rid, STATUS_BAD_REQUEST, "bad device keys or signature");
            op_release(op);
            return;
        }
        op->new_device = true;
        op->device = op->dev.id;
    } else if (id_from_bytes(m->device_id.data, m->device_id.len, &op->device) != 0) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "device_id must be 16 bytes");
        op_release(op);
        return;
    }
    if (!email_rate_ok(hc, op, email))
        return;
    hc->auth_busy = true;
    const char *stored_hash = NULL;
    struct rec_account a;
    memset(&a, 0, sizeof a);
    if (find_email(h, op->email_index, &op->account) == 0 &&
        read_account(h, &op->account, &a) == 0) {
        if (a.active) {
            op->found = true;
            op->role = a.role;
            snprintf(op->display_name, sizeof op->display_name, "%s", a.display_name);
            stored_hash = a.password_hash;
        }
    }
    int rc = pwhash_verify(h->pw, m->password, plen, stored_hash, login_verified, op);
    rec_account_cleanup(&a);
    if (rc != 0) {
        conn_respond(c, rid, STATUS_UNAVAILABLE, "busy, retry later");
        op_release(op);
    }
}

/* ---- Register ------------------------------------------------------------------ */

static void register_hashed(void *ctx, bool ok, const char *hash) {
    struct op *op = ctx;
    struct handlers *h = op->hc->h;
    if (!op_live(op)) {
        op_release(op);
        return;
    }
    if (!ok) {
        conn_respond(op->hc->conn, op->request_id, STATUS_UNAVAILABLE, "busy, retry later");
        op_release(op);
        return;
    }
    int64_t now = clock_now();
    new_session(h, op, now);
    op->account = id_new();
    op->device = op->dev.id;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Register r;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    entry_init(&e, now, NULL, NULL);
    carechat__entry__v1__register__init(&r);
    r.account_id = (ProtobufCBinaryData){ID_LEN, op->account.b};
    r.code_hash = (ProtobufCBinaryData){REC_HASH_LEN, op->code_hash};
    r.email = op->email;
    r.email_index = (ProtobufCBinaryData){REC_HASH_LEN, op->email_index};
    r.password_hash = (char *)hash;
    r.birth_date = op->birth_date;
    r.display_name = op->display_name;
    dev_to_entry(&op->dev, &dn);
    r.device = &dn;
    session_to_entry(op, &sn);
    r.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_REGISTER;
    e.register_ = &r;
    propose(h, op, &e);
}

/* Under 13: only an audit record (RegisterRefused), then FORBIDDEN. */
static void register_refuse(struct hconn *hc, uint64_t rid, int64_t now) {
    struct op *op = op_new(hc, OP_REGISTER_REFUSED, rid);
    hc->auth_busy = true;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__RegisterRefused r;
    entry_init(&e, now, NULL, NULL);
    carechat__entry__v1__register_refused__init(&r);
    r.reason = 1;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_REGISTER_REFUSED;
    e.register_refused = &r;
    propose(hc->h, op, &e);
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

void handle_register(struct hconn *hc, uint64_t rid, const Carechat__V1__Register *m) {
    struct handlers *h = hc->h;
    struct conn *c = hc->conn;
    int64_t now = clock_now();
    size_t plen = strlen(m->password);
    char email[RULES_EMAIL_MAX + 1];
    int y, mo, d;
    size_t name_len = strlen(m->display_name);
    if (!code_valid(m->code) || rules_normalize_email(m->email, email) != 0) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "malformed code or email");
        return;
    }
    if (plen < h->password_min || plen > RULES_PASSWORD_MAX) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "password too short or too long");
        return;
    }
    if (rules_parse_date(m->birth_date, &y, &mo, &d) != 0 || rules_age_at(y, mo, d, now) < 0) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "birth_date must be a past YYYY-MM-DD");
        return;
    }
    if (name_len == 0 || name_len > RULES_DISPLAY_NAME_MAX) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "display_name must be 1..128 bytes");
        return;
    }
    struct op *op = op_new(hc, OP_REGISTER, rid);
    if (dev_from_registration(m->device, now, &op->dev) != 0) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "bad device keys or signature");
        op_release(op);
        return;
    }
    if (!email_rate_ok(hc, op, email))
        return;
    if (rules_age_at(y, mo, d, now) < RULES_MIN_AGE) {
        op_release(op);
        register_refuse(hc, rid, now);
        return;
    }
    rules_sha256(m->code, strlen(m->code), op->code_hash);
    struct buf v;
    buf_init(&v);
    struct rec_invite inv;
    int rc = store_get(h->store, CF_INVITES, op->code_hash, REC_HASH_LEN, &v);
    if (rc == 0)
        rc = rec_invite_decode(v.data, v.len, &inv);
    buf_cleanup(&v);
    if (rc == 0) {
        bool valid =
            inv.expires_at > now && memcmp(inv.email_index, op->email_index, REC_HASH_LEN) == 0;
        op->role = inv.role;
        rec_invite_cleanup(&inv);
        if (!valid)
            rc = STATUS_NOT_FOUND;
    }
    if (rc != 0) {
        conn_respond(c, rid, rc == STATUS_NOT_FOUND ? rc : STATUS_INTERNAL,
                     rc == STATUS_NOT_FOUND ? DETAIL_BAD_INVITE : "cannot read the invitation");
        if (rc == STATUS_NOT_FOUND)
            audit_propose(hc, NULL, NULL, REC_AUDIT_REGISTER, rc, NULL, 0, NULL, NULL, NULL);
        op_release(op);
        return;
    }
    memcpy(op->email, email, strlen(email) + 1);
    memcpy(op->birth_date, m->birth_date, 11);
    memcpy(op->display_name, m->display_name, name_len + 1);
    hc->auth_busy = true;
    if (pwhash_hash(h->pw, m->password, plen, register_hashed, op) != 0) {
        conn_respond(c, rid, STATUS_UNAVAILABLE, "busy, retry later");
        op_release(op);
    }
}

/* ---- Authenticate -------------------------------------------------------------------- */

void handle_authenticate(struct hconn *hc, uint64_t rid, const Carechat__V1__Authenticate *m) {
    struct handlers *h = hc->h;
    struct conn *c = hc->conn;
    struct id device;
    if (m->session_token.len != 32 ||
        id_from_bytes(m->device_id.data, m->device_id.len, &device) != 0) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "token of 32 bytes and device_id required");
        return;
    }
    int64_t now = clock_now();
    struct op *op = op_new(hc, OP_AUTHENTICATE, rid);
    rules_sha256(m->session_token.data, 32, op->token_hash);
    struct buf v;
    buf_init(&v);
    struct rec_session s;
    struct rec_account a;
    struct rec_device dev;
    memset(&a, 0, sizeof a);
    int rc = store_get(h->store, CF_SESSIONS, op->token_hash, REC_HASH_LEN, &v);
    if (rc == 0)
        rc = rec_session_decode(v.data, v.len, &s);
    buf_cleanup(&v);
    if (rc == 0 && (memcmp(s.device_id.b, device.b, ID_LEN) != 0 || now >= s.expires_at ||
                    now >= s.idle_expires_at))
        rc = STATUS_UNAUTHENTICATED;
    if (rc == 0)
        rc = read_device(h, &s.account_id, &s.device_id, &dev);
    if (rc == 0) {
        rec_device_cleanup(&dev);
        rc = read_account(h, &s.account_id, &a);
    }
    if (rc == 0 && !a.active)
        rc = STATUS_UNAUTHENTICATED;
    if (rc != 0) {
        rec_account_cleanup(&a);
        /* Only failures spend the address's attempts, so the reconnects of
         * many devices behind one address are not throttled. */
        if (!rate_ok(hc, NULL))
            conn_respond(c, rid, STATUS_RATE_LIMITED, DETAIL_RATE);
        else
            conn_respond(c, rid, STATUS_UNAUTHENTICATED, "unknown, expired or revoked session");
        audit_propose(hc, NULL, NULL, REC_AUDIT_AUTHENTICATE, STATUS_UNAUTHENTICATED, device.b,
                      ID_LEN, NULL, NULL, NULL);
        op_release(op);
        return;
    }
    op->account = s.account_id;
    op->device = s.device_id;
    op->role = a.role;
    snprintf(op->display_name, sizeof op->display_name, "%s", a.display_name);
    rec_account_cleanup(&a);
    op->expires_at = s.expires_at;
    op->idle_expires_at = now + h->session_idle_ms;
    if (op->idle_expires_at > s.expires_at)
        op->idle_expires_at = s.expires_at;
    hc->auth_busy = true;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__SessionTouch t;
    entry_init(&e, now, &op->account, &op->device);
    carechat__entry__v1__session_touch__init(&t);
    t.token_hash = (ProtobufCBinaryData){REC_HASH_LEN, op->token_hash};
    t.idle_expires_at = op->idle_expires_at;
    t.authenticate = true;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_TOUCH;
    e.session_touch = &t;
    propose(h, op, &e);
}

/* ---- Logout ------------------------------------------------------------------------------ */

void handle_logout(struct hconn *hc, uint64_t rid) {
    struct op *op = op_new(hc, OP_LOGOUT, rid);
    op->account = hc->account;
    op->device = hc->device;
    memcpy(op->token_hash, hc->token_hash, REC_HASH_LEN);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__SessionEnd s;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__session_end__init(&s);
    s.token_hash = (ProtobufCBinaryData){REC_HASH_LEN, op->token_hash};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_END;
    e.session_end = &s;
    propose(hc->h, op, &e);
}

/* ---- Invite ---------------------------------------------------------------------------------- */

void handle_invite(struct hconn *hc, uint64_t rid, const Carechat__V1__Invite *m) {
    struct handlers *h = hc->h;
    struct conn *c = hc->conn;
    char email[RULES_EMAIL_MAX + 1];
    if (rules_normalize_email(m->email, email) != 0 || !rules_role_valid((uint32_t)m->role)) {
        conn_respond(c, rid, STATUS_BAD_REQUEST, "email and role required");
        return;
    }
    if (!rules_may_invite(hc->role, (uint32_t)m->role)) {
        deny(hc, rid, STATUS_FORBIDDEN, "your role may not invite this role", NULL, 0);
        return;
    }
    if (!ratelimit_take(h->rl_invite, hc->account.b, ID_LEN, clock_monotonic_ms())) {
        conn_respond(c, rid, STATUS_RATE_LIMITED, "too many invitations, retry later");
        return;
    }
    struct op *op = op_new(hc, OP_INVITE, rid);
    store_blind_index(h->store, email, strlen(email), op->email_index);
    struct id existing;
    int rc = find_email(h, op->email_index, &existing);
    if (rc != STATUS_NOT_FOUND) {
        conn_respond(c, rid, rc == 0 ? STATUS_CONFLICT : STATUS_INTERNAL,
                     rc == 0 ? "an account with this email exists" : "cannot read the store");
        op_release(op);
        return;
    }
    uint8_t raw[INVITE_CODE_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(op->code, sizeof op->code, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    rules_sha256(op->code, strlen(op->code), op->code_hash);
    int64_t now = clock_now();
    op->expires_at = now + h->invite_ttl_ms;
    memcpy(op->email, email, strlen(email) + 1);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InviteCreate in;
    entry_init(&e, now, &hc->account, &hc->device);
    carechat__entry__v1__invite_create__init(&in);
    in.code_hash = (ProtobufCBinaryData){REC_HASH_LEN, op->code_hash};
    in.email = op->email;
    in.email_index = (ProtobufCBinaryData){REC_HASH_LEN, op->email_index};
    in.role = (uint32_t)m->role;
    in.expires_at = op->expires_at;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INVITE_CREATE;
    e.invite_create = &in;
    propose(h, op, &e);
}

/* ---- completions
 * ---------------------------------------------------------------------------------- */

static const char *detail_for(enum op_kind kind, int status) {
    switch (status) {
    case STATUS_TOO_LARGE:
        return "too many devices (at most 6)";
    case STATUS_NOT_FOUND:
        return kind == OP_REGISTER ? DETAIL_BAD_INVITE : "not found";
    case STATUS_CONFLICT:
        return "an account with this email exists";
    case STATUS_FORBIDDEN:
        return kind == OP_REGISTER ? DETAIL_UNDER_AGE : "not allowed";
    case STATUS_UNAUTHENTICATED:
        return "session ended";
    default:
        return "refused";
    }
}

void sessions_entry_done(struct op *op, int status) {
    if (!op_live(op))
        return;
    struct conn *c = op->hc->conn;
    if (op->kind == OP_REGISTER_REFUSED) {
        conn_respond(c, op->request_id, status == 0 ? STATUS_FORBIDDEN : status,
                     status == 0 ? DETAIL_UNDER_AGE : "cannot write now");
        return;
    }
    if (status == STATUS_IO || status == STATUS_UNAVAILABLE) {
        conn_respond(c, op->request_id, STATUS_UNAVAILABLE, "cannot write now");
        return;
    }
    if (status != 0 && (op->kind == OP_AUTHENTICATE || op->kind == OP_LOGOUT)) {
        /* The session ended meanwhile (logged out elsewhere, expired). */
        conn_respond(c, op->request_id, STATUS_UNAUTHENTICATED,
                     "unknown, expired or revoked session");
        return;
    }
    if (status != 0) {
        conn_respond(c, op->request_id, status, detail_for(op->kind, status));
        return;
    }
    switch (op->kind) {
    case OP_LOGIN:
    case OP_REGISTER:
    case OP_AUTHENTICATE:
        if (conn_state(c) != CONN_AWAITING_AUTH)
            return;
        session_established(op->hc, op);
        respond_session(op, op->kind != OP_AUTHENTICATE);
        break;
    case OP_LOGOUT:
        conn_respond(c, op->request_id, STATUS_OK, NULL);
        op->hc->authenticated = false;
        conn_close(c, CONN_CLOSE_NORMAL, "logged out", METRICS_CLOSE_LOGOUT);
        revoke(op->hc->h, NULL, &op->device, CARECHAT__V1__REVOKE_REASON__LOGGED_OUT, op->hc);
        break;
    case OP_INVITE: {
        Carechat__V1__Frame frame;
        Carechat__V1__Response resp;
        Carechat__V1__InviteResult ir;
        proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
        carechat__v1__invite_result__init(&ir);
        ir.code = op->code;
        ir.expires_at = op->expires_at;
        resp.result_case = CARECHAT__V1__RESPONSE__RESULT_INVITE;
        resp.invite = &ir;
        conn_send(c, &frame);
        break;
    }
    default:
        break;
    }
}
