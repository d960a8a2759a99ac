/*
 * tests/rawclient.c: the raw carechat.v1 client of the frame-level integration
 * tests. Server requests read while waiting for a Response are answered OK at
 * once and queued for rawc_next_request(). Single-threaded test code.
 */
#define _GNU_SOURCE /* memmem() */
#include "tests/rawclient.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "protocol/transcript.h"

#define SUBPROTOCOL "carechat.v1"

static int g_users; /* numbers the emails of rawc_make_user() */

struct rawc *rawc_open(const struct harness *h) {
    return rawc_open_from(h, NULL);
}

struct rawc *rawc_open_from(const struct harness *h, const char *source) {
    struct rawc *c = calloc(1, sizeof *c);
    assert_non_null(c);
    struct wsc_options o = {.host = h->host, .source = source, .subprotocol = SUBPROTOCOL};
    char status[128];
    assert_int_equal(wsc_connect(h->port, &o, status, sizeof status, &c->ws), 101);
    return c;
}

void rawc_free(struct rawc *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n_queued; i++)
        proto_free(c->queued[i]);
    wsc_free(c->ws);
    free(c);
}

void rawc_send_frame(struct rawc *c, const Carechat__V1__Frame *f) {
    struct buf out;
    buf_init(&out);
    assert_int_equal(proto_encode(f, &out), 0);
    assert_int_equal(wsc_send_binary(c->ws, out.data, out.len), 0);
    buf_cleanup(&out);
}

uint64_t rawc_send_request(struct rawc *c, Carechat__V1__Frame *f) {
    f->request_id = ++c->next_id;
    rawc_send_frame(c, f);
    return f->request_id;
}

Carechat__V1__Frame *rawc_recv(struct rawc *c, int timeout_ms) {
    int op, close_code;
    struct buf payload;
    buf_init(&payload);
    int rc = wsc_recv(c->ws, timeout_ms, &op, &payload, &close_code);
    if (rc == STATUS_UNAVAILABLE) {
        buf_cleanup(&payload);
        return NULL;
    }
    if (rc != 0 || op != WSC_OP_BINARY) {
        buf_cleanup(&payload);
        fail_msg("expected a frame, got rc %d op %d close %d", rc, op, close_code);
    }
    Carechat__V1__Frame *f = NULL;
    assert_int_equal(proto_decode(NULL, payload.data, payload.len, &f), 0);
    buf_cleanup(&payload);
    return f;
}

void rawc_answer_ok(struct rawc *c, uint64_t request_id) {
    Carechat__V1__Frame f;
    Carechat__V1__Response r;
    proto_response_frame(&f, &r, request_id, STATUS_OK, NULL);
    rawc_send_frame(c, &f);
}

/* Answers a server request and queues it. */
static void take_request(struct rawc *c, Carechat__V1__Frame *f) {
    rawc_answer_ok(c, f->request_id);
    if (c->n_queued == RAWC_MAX_QUEUED) {
        proto_free(f);
        fail_msg("more than %d server requests queued", RAWC_MAX_QUEUED);
    }
    c->queued[c->n_queued++] = f;
}

Carechat__V1__Frame *rawc_rpc(struct rawc *c, Carechat__V1__Frame *f) {
    uint64_t id = rawc_send_request(c, f);
    int64_t deadline = clock_monotonic_ms() + RAWC_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - clock_monotonic_ms();
        if (left <= 0)
            fail_msg("no response to request %llu", (unsigned long long)id);
        Carechat__V1__Frame *r = rawc_recv(c, (int)left);
        if (!r)
            continue;
        if (r->body_case != CARECHAT__V1__FRAME__BODY_RESPONSE) {
            take_request(c, r);
            continue;
        }
        if (r->request_id != id) {
            unsigned long long got = (unsigned long long)r->request_id;
            proto_free(r);
            fail_msg("response to request %llu while waiting for %llu", got,
                     (unsigned long long)id);
        }
        return r;
    }
}

Carechat__V1__Frame *rawc_next_request(struct rawc *c, int timeout_ms) {
    if (c->n_queued == 0) {
        Carechat__V1__Frame *f = rawc_recv(c, timeout_ms);
        if (!f)
            return NULL;
        assert_int_not_equal(f->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
        take_request(c, f);
    }
    Carechat__V1__Frame *f = c->queued[0];
    memmove(c->queued, c->queued + 1, (c->n_queued - 1) * sizeof c->queued[0]);
    c->n_queued--;
    return f;
}

/* The identity keys of the devices this process registered or logged in, by
 * id: rawc_build_send() signs as the sending device (the server verifies
 * Envelope.signature). */
#define KNOWN_MAX 1024
static struct {
    uint8_t id[16];
    uint8_t isk[crypto_sign_SECRETKEYBYTES];
} known[KNOWN_MAX];
static size_t n_known;

static void remember_device(const struct raw_device *d) {
    for (size_t i = 0; i < n_known; i++)
        if (memcmp(known[i].id, d->id, 16) == 0)
            return;
    if (n_known == KNOWN_MAX)
        return;
    memcpy(known[n_known].id, d->id, 16);
    memcpy(known[n_known].isk, d->isk, sizeof d->isk);
    n_known++;
}

static const uint8_t *known_key(const uint8_t id[16]) {
    for (size_t i = 0; i < n_known; i++)
        if (memcmp(known[i].id, id, 16) == 0)
            return known[i].isk;
    return NULL;
}

Carechat__V1__Frame *rawc_login(struct rawc *c, const char *email, const char *password,
                                struct raw_device *d) {
    Carechat__V1__Frame f;
    Carechat__V1__Login l;
    Carechat__V1__DeviceRegistration reg;
    Carechat__V1__DeviceKeys k;
    static const uint8_t zero[16];
    carechat__v1__frame__init(&f);
    carechat__v1__login__init(&l);
    l.email = (char *)email;
    l.password = (char *)password;
    if (memcmp(d->id, zero, 16) != 0) {
        l.device_case = CARECHAT__V1__LOGIN__DEVICE_DEVICE_ID;
        l.device_id = (ProtobufCBinaryData){16, d->id};
    } else {
        raw_registration(&reg, &k, d);
        l.device_case = CARECHAT__V1__LOGIN__DEVICE_NEW_DEVICE;
        l.new_device = &reg;
    }
    f.body_case = CARECHAT__V1__FRAME__BODY_LOGIN;
    f.login = &l;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    if (r->response->status == CARECHAT__V1__STATUS__OK) {
        assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_SESSION);
        assert_int_equal(r->response->session->device_id.len, 16);
        memcpy(d->id, r->response->session->device_id.data, 16);
        remember_device(d);
    }
    return r;
}

void rawc_login_ok(struct rawc *c, const char *email, const char *password, struct raw_device *d,
                   uint8_t *account, uint8_t *token) {
    Carechat__V1__Frame *r = rawc_login(c, email, password, d);
    raw_expect_status(r, STATUS_OK);
    if (account) {
        assert_int_equal(r->response->session->account_id.len, 16);
        memcpy(account, r->response->session->account_id.data, 16);
    }
    if (token) {
        assert_int_equal(r->response->session->session_token.len, 32);
        memcpy(token, r->response->session->session_token.data, 32);
    }
    proto_free(r);
}

struct rawc *rawc_open_login(const struct harness *h, const char *email, const char *password,
                             struct raw_device *d, uint8_t *account) {
    struct rawc *c = rawc_open(h);
    rawc_login_ok(c, email, password, d, account, NULL);
    return c;
}

Carechat__V1__Frame *rawc_authenticate(struct rawc *c, const uint8_t token[32],
                                       const uint8_t device_id[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__Authenticate a;
    carechat__v1__frame__init(&f);
    carechat__v1__authenticate__init(&a);
    a.session_token = (ProtobufCBinaryData){32, (uint8_t *)token};
    a.device_id = (ProtobufCBinaryData){16, (uint8_t *)device_id};
    f.body_case = CARECHAT__V1__FRAME__BODY_AUTHENTICATE;
    f.authenticate = &a;
    return rawc_rpc(c, &f);
}

int rawc_invite(struct rawc *c, const char *email, Carechat__V1__Role role, char *code,
                int64_t *expires_at) {
    Carechat__V1__Frame f;
    Carechat__V1__Invite in;
    carechat__v1__frame__init(&f);
    carechat__v1__invite__init(&in);
    in.email = (char *)email;
    in.role = role;
    f.body_case = CARECHAT__V1__FRAME__BODY_INVITE;
    f.invite = &in;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int wire = (int)r->response->status;
    if (wire == 0) {
        assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_INVITE);
        snprintf(code, RAWC_CODE_LEN, "%s", r->response->invite->code);
        if (expires_at)
            *expires_at = r->response->invite->expires_at;
    }
    proto_free(r);
    return wire;
}

Carechat__V1__Frame *rawc_register(struct rawc *c, const char *code, const char *email,
                                   const char *password, const char *birth_date,
                                   const char *display_name, struct raw_device *d) {
    Carechat__V1__Frame f;
    Carechat__V1__Register rg;
    Carechat__V1__DeviceRegistration reg;
    Carechat__V1__DeviceKeys k;
    carechat__v1__frame__init(&f);
    carechat__v1__register__init(&rg);
    rg.code = (char *)code;
    rg.email = (char *)email;
    rg.password = (char *)password;
    rg.birth_date = (char *)birth_date;
    rg.display_name = (char *)display_name;
    raw_registration(&reg, &k, d);
    rg.device = &reg;
    f.body_case = CARECHAT__V1__FRAME__BODY_REGISTER;
    f.register_ = &rg;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    if (r->response->status == CARECHAT__V1__STATUS__OK) {
        memcpy(d->id, r->response->session->device_id.data, 16);
        remember_device(d);
    }
    return r;
}

void rawc_make_user(const struct harness *h, struct rawc *inviter, Carechat__V1__Role role,
                    const char *password, struct rawc_user *u) {
    memset(u, 0, sizeof *u);
    snprintf(u->email, sizeof u->email, "user%d@clinic.example", ++g_users);
    char code[RAWC_CODE_LEN];
    int wire = rawc_invite(inviter, u->email, role, code, NULL);
    if (wire != 0)
        fail_msg("invite of a new account of role %d answered %d", (int)role, wire);
    struct rawc *c = rawc_open(h);
    raw_device_make(&u->dev[0]);
    Carechat__V1__Frame *r =
        rawc_register(c, code, u->email, password, "1980-02-03", "Someone", &u->dev[0]);
    raw_expect_status(r, STATUS_OK);
    memcpy(u->account, r->response->session->account_id.data, 16);
    proto_free(r);
    u->n_dev = 1;
    rawc_free(c);
}

void rawc_add_device(const struct harness *h, struct rawc_user *u, const char *password) {
    assert_true(u->n_dev < RAWC_MAX_DEVICES);
    raw_device_make(&u->dev[u->n_dev]);
    rawc_free(rawc_open_login(h, u->email, password, &u->dev[u->n_dev], NULL));
    u->n_dev++;
}

void rawc_build_send(Carechat__V1__Frame *f, struct rawc_send_buf *b, const uint8_t conv[16],
                     const uint8_t cmid[16], const uint8_t sender_device[16],
                     const struct rawc_wrap_to *to, size_t n_to, const char *text, bool urgent) {
    assert_true(n_to <= RAWC_MAX_WRAPS);
    randombytes_buf(b->nonce, sizeof b->nonce);
    randombytes_buf(b->sig, sizeof b->sig);
    for (size_t i = 0; i < n_to; i++) {
        randombytes_buf(b->enc[i], 32);
        randombytes_buf(b->wk[i], 48);
        carechat__v1__key_wrap__init(&b->wraps[i]);
        b->wraps[i].device_id = (ProtobufCBinaryData){16, (uint8_t *)to[i].device_id};
        b->wraps[i].key_id = to[i].key_id;
        b->wraps[i].enc = (ProtobufCBinaryData){32, b->enc[i]};
        b->wraps[i].wrapped_key = (ProtobufCBinaryData){48, b->wk[i]};
        b->wp[i] = &b->wraps[i];
    }
    carechat__v1__frame__init(f);
    carechat__v1__send__init(&b->send);
    carechat__v1__envelope__init(&b->env);
    b->env.version = TRANSCRIPT_VERSION;
    b->env.sender_device_id = (ProtobufCBinaryData){16, (uint8_t *)sender_device};
    static uint64_t counter;
    b->env.sent_at = clock_now();
    b->env.counter = ++counter;
    b->env.body = (ProtobufCBinaryData){strlen(text), (uint8_t *)text};
    b->env.body_nonce = (ProtobufCBinaryData){24, b->nonce};
    b->env.n_wraps = n_to;
    b->env.wraps = b->wp;
    b->env.signature = (ProtobufCBinaryData){64, b->sig};
    b->send.conversation_id = (ProtobufCBinaryData){16, (uint8_t *)conv};
    b->send.client_msg_id = (ProtobufCBinaryData){16, (uint8_t *)cmid};
    b->send.envelope = &b->env;
    b->send.urgent = urgent;
    f->body_case = CARECHAT__V1__FRAME__BODY_SEND;
    f->send = &b->send;
    /* Signed as the sending device when this process knows its key (the
     * random signature stays otherwise: a test of a forged one). */
    const uint8_t *isk = known_key(sender_device);
    if (isk != NULL) {
        struct transcript_wrap tw[RAWC_MAX_WRAPS];
        for (size_t i = 0; i < n_to; i++)
            tw[i] = (struct transcript_wrap){to[i].device_id, to[i].key_id, b->enc[i], b->wk[i]};
        if (transcript_sort_wraps(tw, n_to) != 0)
            return; /* two wraps for one device: the server refuses it anyway */
        struct transcript_context ctx = {
            .version = b->env.version,
            .urgent = urgent,
            .sent_at = b->env.sent_at,
            .counter = b->env.counter,
        };
        memcpy(ctx.conversation_id, conv, 16);
        memcpy(ctx.client_msg_id, cmid, 16);
        memcpy(ctx.sender_device_id, sender_device, 16);
        transcript_recipient_hash(tw, n_to, ctx.recipient_hash);
        struct buf t;
        buf_init(&t);
        transcript_envelope(&ctx, NULL, 0, b->nonce, (const uint8_t *)text, strlen(text), tw, n_to,
                            &t);
        crypto_sign_detached(b->sig, NULL, t.data, t.len, isk);
        buf_cleanup(&t);
    }
}

Carechat__V1__Frame *rawc_send_msg(struct rawc *c, const uint8_t conv[16], const uint8_t cmid[16],
                                   const uint8_t sender_device[16], const struct rawc_wrap_to *to,
                                   size_t n_to, const char *text, bool urgent) {
    Carechat__V1__Frame f;
    struct rawc_send_buf b;
    rawc_build_send(&f, &b, conv, cmid, sender_device, to, n_to, text, urgent);
    return rawc_rpc(c, &f);
}

int rawc_history_contains(struct rawc *c, const uint8_t conv[16], const char *text, bool *found) {
    Carechat__V1__Frame f;
    Carechat__V1__History m;
    carechat__v1__frame__init(&f);
    carechat__v1__history__init(&m);
    m.conversation_id = (ProtobufCBinaryData){16, (uint8_t *)conv};
    f.body_case = CARECHAT__V1__FRAME__BODY_HISTORY;
    f.history = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int rc = -(int)r->response->status;
    *found = false;
    const Carechat__V1__HistoryPage *p = rc == 0 ? r->response->history_page : NULL;
    for (size_t i = 0; p && i < p->n_messages; i++) {
        const Carechat__V1__Envelope *e = p->messages[i]->envelope;
        if (e && memmem(e->body.data, e->body.len, text, strlen(text)))
            *found = true;
    }
    proto_free(r);
    return rc;
}
