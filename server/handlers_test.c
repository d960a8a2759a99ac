/*
 * server/handlers_test.c: the request handlers behind real conns (fake I/O),
 * with a real store, journal, apply and password worker: login (wrong and
 * right password), resume on a second connection replacing the first,
 * expiry of an idle session (by the sweep and on a request), requests not
 * implemented yet, and logout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/config.h"
#include "server/conn.h"
#include "server/handlers.h"
#include "server/metrics.h"
#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/store.h"

#define DEADLINE_MS 20000
#define EMAIL "admin@x.example"
#define PASSWORD "a good long password"
#define MAX_FRAMES 8

struct io {
    Carechat__V1__Frame *frames[MAX_FRAMES];
    int n;
    int close_code;
};

static void io_send(void *ctx, const uint8_t *data, size_t len) {
    struct io *io = ctx;
    assert_true(io->n < MAX_FRAMES);
    assert_int_equal(proto_decode(NULL, data, len, &io->frames[io->n]), 0);
    io->n++;
}

static void io_close(void *ctx, int code, const char *reason) {
    ((struct io *)ctx)->close_code = code;
}

struct fixture {
    char dir[512];
    struct server_config cfg;
    struct store *store;
    struct journal *journal;
    struct handlers *handlers;
    struct metrics *metrics;
    struct conn_handler ch;
};

static void pump_until(struct fixture *f, struct io *io, int n) {
    int64_t deadline = clock_monotonic_ms() + DEADLINE_MS;
    while (io->n < n && clock_monotonic_ms() < deadline) {
        journal_poll(f->journal);
        handlers_poll(f->handlers);
        if (io->n < n)
            nanosleep(&(struct timespec){.tv_nsec = 1000000L}, NULL);
    }
    assert_int_equal(io->n, n);
}

static void io_reset(struct io *io) {
    for (int i = 0; i < io->n; i++)
        proto_free(io->frames[i]);
    memset(io, 0, sizeof *io);
}

static const char *body_name(unsigned n) {
    return NULL;
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/handlers-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    f->cfg = (struct server_config)CONFIG_DEFAULTS;
    f->cfg.dev_invite_codes = true; /* no mail relay: codes in the answer */
    struct store_config sc = {.data_dir = f->dir, .mode = STORE_CREATE};
    if (store_open(&sc, &f->store) != 0)
        return -1;
    struct journal_config jc = {.store = f->store, .apply = apply_entry};
    if (journal_open(&jc, &f->journal) != 0)
        return -1;
    struct handlers_config hc = {.config = &f->cfg, .store = f->store, .journal = f->journal};
    if (handlers_new(&hc, &f->handlers) != 0)
        return -1;
    handlers_conn_handler(f->handlers, &f->ch);
    if (metrics_new(&(struct metrics_config){.body_name = body_name}, &f->metrics) != 0)
        return -1;

    /* The sysadmin, as `carechatd bootstrap` writes it. */
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(hash, PASSWORD, strlen(PASSWORD), 2, 19u << 20) != 0)
        return -1;
    struct id id = id_new();
    uint8_t index[32];
    store_blind_index(f->store, EMAIL, strlen(EMAIL), index);
    Carechat__Entry__V1__Bootstrap b;
    Carechat__Entry__V1__Entry e;
    carechat__entry__v1__bootstrap__init(&b);
    carechat__entry__v1__entry__init(&e);
    b.account_id = (ProtobufCBinaryData){16, id.b};
    b.email = EMAIL;
    b.email_index = (ProtobufCBinaryData){32, index};
    b.password_hash = hash;
    b.display_name = "Admin";
    e.version = PROTO_ENTRY_VERSION;
    e.time = clock_now();
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_BOOTSTRAP;
    e.bootstrap = &b;
    struct buf buf;
    buf_init(&buf);
    proto_entry_encode(&e, &buf);
    journal_append(f->journal, buf.data, buf.len, NULL, NULL);
    buf_cleanup(&buf);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    handlers_stopping(f->handlers); /* as carechatd stops: while the journal runs */
    journal_close(f->journal);
    handlers_free(f->handlers);
    metrics_free(f->metrics);
    store_close(f->store);
    free(f);
    clock_reset();
    return 0;
}

static struct conn *open_conn(struct fixture *f, struct io *io) {
    struct conn_config cc = {
        .io = {.send = io_send, .close = io_close, .ctx = io},
        .handler = f->ch,
        .metrics = f->metrics,
    };
    cc.peer_addr[15] = 1;
    struct conn *c;
    assert_int_equal(conn_new(&cc, &c), 0);
    return c;
}

static void send_frame(struct conn *c, Carechat__V1__Frame *frame, uint64_t id) {
    frame->request_id = id;
    struct buf b;
    buf_init(&b);
    assert_int_equal(proto_encode(frame, &b), 0);
    conn_on_message(c, b.data, b.len);
    buf_cleanup(&b);
}

struct keys {
    uint8_t pk[32], sk[64], ek[32], sig[64];
};

static void send_login(struct conn *c, uint64_t id, const char *password) {
    static struct keys k;
    crypto_sign_keypair(k.pk, k.sk);
    randombytes_buf(k.ek, 32);
    int64_t expires = clock_now() + 86400000;
    uint8_t msg[70];
    memcpy(msg, "carechat.v1 encryption key", 26);
    memcpy(msg + 26, k.ek, 32);
    key_put_u32(msg + 58, 1);
    key_put_u64(msg + 62, (uint64_t)expires);
    crypto_sign_detached(k.sig, NULL, msg, sizeof msg, k.sk);
    Carechat__V1__Frame f;
    Carechat__V1__Login l;
    Carechat__V1__DeviceRegistration r;
    Carechat__V1__DeviceKeys dk;
    carechat__v1__frame__init(&f);
    carechat__v1__login__init(&l);
    carechat__v1__device_registration__init(&r);
    carechat__v1__device_keys__init(&dk);
    dk.identity_key = (ProtobufCBinaryData){32, k.pk};
    dk.encryption_key = (ProtobufCBinaryData){32, k.ek};
    dk.encryption_key_id = 1;
    dk.encryption_key_expires_at = expires;
    dk.signature = (ProtobufCBinaryData){64, k.sig};
    r.keys = &dk;
    l.email = EMAIL;
    l.password = (char *)password;
    l.device_case = CARECHAT__V1__LOGIN__DEVICE_NEW_DEVICE;
    l.new_device = &r;
    f.body_case = CARECHAT__V1__FRAME__BODY_LOGIN;
    f.login = &l;
    send_frame(c, &f, id);
}

static Carechat__V1__Response *response(struct io *io, int i, uint64_t id) {
    assert_int_equal(io->frames[i]->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
    assert_true(io->frames[i]->request_id == id);
    return io->frames[i]->response;
}

static void test_handlers_login_resume_replace_expire_logout(void **state) {
    struct fixture *f = *state;
    struct io io1 = {0}, io2 = {0};
    struct conn *c1 = open_conn(f, &io1);

    /* A wrong password, then the right one. */
    send_login(c1, 1, "not the password");
    assert_int_equal(io1.n, 0); /* answered later, off the loop thread's back */
    pump_until(f, &io1, 1);
    assert_int_equal(response(&io1, 0, 1)->status, CARECHAT__V1__STATUS__UNAUTHENTICATED);
    send_login(c1, 2, PASSWORD);
    pump_until(f, &io1, 2);
    Carechat__V1__Response *r = response(&io1, 1, 2);
    assert_int_equal(r->status, CARECHAT__V1__STATUS__OK);
    assert_int_equal(conn_state(c1), CONN_AUTHENTICATED);
    uint8_t token[32], device[16];
    memcpy(token, r->session->session_token.data, 32);
    memcpy(device, r->session->device_id.data, 16);
    /* Once authenticated, Login is a conflict (and no second session). */
    send_login(c1, 3, PASSWORD);
    assert_int_equal(io1.n, 3);
    assert_int_equal(response(&io1, 2, 3)->status, CARECHAT__V1__STATUS__CONFLICT);
    assert_string_equal(response(&io1, 2, 3)->detail, "already authenticated");
    io_reset(&io1);

    /* c1 receives (Sync: its answer and QueueEmpty). */
    Carechat__V1__Frame fr;
    Carechat__V1__Sync sy;
    carechat__v1__frame__init(&fr);
    carechat__v1__sync__init(&sy);
    fr.body_case = CARECHAT__V1__FRAME__BODY_SYNC;
    fr.sync = &sy;
    send_frame(c1, &fr, 4);
    pump_until(f, &io1, 2);
    assert_int_equal(response(&io1, 0, 4)->status, CARECHAT__V1__STATUS__OK);
    assert_int_equal(io1.frames[1]->body_case, CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY);
    io_reset(&io1);

    /* Resume on a second connection: both stay until it starts receiving,
     * which replaces the first. */
    struct conn *c2 = open_conn(f, &io2);
    Carechat__V1__Authenticate a;
    carechat__v1__frame__init(&fr);
    carechat__v1__authenticate__init(&a);
    a.session_token = (ProtobufCBinaryData){32, token};
    a.device_id = (ProtobufCBinaryData){16, device};
    fr.body_case = CARECHAT__V1__FRAME__BODY_AUTHENTICATE;
    fr.authenticate = &a;
    send_frame(c2, &fr, 1);
    pump_until(f, &io2, 1);
    assert_int_equal(response(&io2, 0, 1)->status, CARECHAT__V1__STATUS__OK);
    assert_int_equal(io1.n, 0);
    assert_int_equal(conn_state(c1), CONN_AUTHENTICATED);
    carechat__v1__frame__init(&fr);
    fr.body_case = CARECHAT__V1__FRAME__BODY_SYNC;
    fr.sync = &sy;
    send_frame(c2, &fr, 2);
    pump_until(f, &io2, 3);
    assert_int_equal(io1.n, 1);
    assert_int_equal(io1.frames[0]->body_case, CARECHAT__V1__FRAME__BODY_REPLACED_ELSEWHERE);
    assert_int_equal(io1.close_code, CONN_CLOSE_NORMAL);
    conn_free(c1);
    io_reset(&io1);
    io_reset(&io2);

    /* Logout on a fresh login: OK, then close 1000. */
    struct io io3 = {0};
    struct conn *c3 = open_conn(f, &io3);
    send_login(c3, 1, PASSWORD);
    pump_until(f, &io3, 1);
    io_reset(&io3);
    Carechat__V1__Logout lo;
    carechat__v1__frame__init(&fr);
    carechat__v1__logout__init(&lo);
    fr.body_case = CARECHAT__V1__FRAME__BODY_LOGOUT;
    fr.logout = &lo;
    send_frame(c3, &fr, 2);
    pump_until(f, &io3, 1);
    assert_int_equal(response(&io3, 0, 2)->status, CARECHAT__V1__STATUS__OK);
    assert_int_equal(io3.close_code, CONN_CLOSE_NORMAL);
    conn_free(c3);
    io_reset(&io3);

    /* Another device logs in; then sixteen idle minutes pass. */
    struct io io4 = {0};
    struct conn *c4 = open_conn(f, &io4);
    send_login(c4, 1, PASSWORD);
    pump_until(f, &io4, 1);
    assert_int_equal(response(&io4, 0, 1)->status, CARECHAT__V1__STATUS__OK);
    io_reset(&io4);
    clock_set_manual(clock_now() + 16 * 60 * 1000);

    /* A request on an expired session is refused; the session ends. */
    send_frame(c2, &fr, 3);
    assert_int_equal(io2.n, 2);
    assert_int_equal(response(&io2, 0, 3)->status, CARECHAT__V1__STATUS__UNAUTHENTICATED);
    assert_int_equal(io2.frames[1]->body_case, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED);
    assert_int_equal(io2.frames[1]->session_revoked->reason, CARECHAT__V1__REVOKE_REASON__EXPIRED);
    assert_int_equal(io2.close_code, CONN_CLOSE_POLICY);
    conn_free(c2);
    io_reset(&io2);

    /* The once-a-second sweep logs the other, idle connection off by itself. */
    handlers_tick(f->handlers);
    assert_int_equal(io4.n, 1);
    assert_int_equal(io4.frames[0]->body_case, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED);
    assert_int_equal(io4.close_code, CONN_CLOSE_POLICY);
    conn_free(c4);
    io_reset(&io4);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handlers_login_resume_replace_expire_logout, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
