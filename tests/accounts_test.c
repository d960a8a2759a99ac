/*
 * tests/accounts_test.c: accounts, invitations, sessions and devices against
 * the real carechatd: `carechatd bootstrap` (and its refusal), login, invite,
 * register (and the under-13 refusal that keeps nothing but an audit record),
 * wrong passwords, throttling, roles, the device cap, resuming with a token,
 * replacement of a device's connection, session expiry, logout, device lists
 * and removal, and accounts surviving a restart.
 *
 * Each test starts its own server (tests/harness.h) on 127.0.0.1 with a fresh
 * data directory and talks to it with the raw WebSocket client and the
 * protocol codec; device keys are made with libsodium as a client would.
 * Every wait has a deadline.
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
#include <dirent.h>
#include <sodium.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "tests/harness.h"
#include "tests/rawproto.h"
#include "tests/wsclient.h"

#define TIMEOUT_MS 10000
#define SUBPROTOCOL "carechat.v1"
#define ADMIN_EMAIL "root@clinic.example"
#define PASSWORD "correct horse battery"

/* ---- a client connection ---------------------------------------------------- */

struct client {
    struct wsc *ws;
    uint64_t next_id;
};

static struct client *client_open(struct harness *h) {
    struct client *c = calloc(1, sizeof *c);
    struct wsc_options o = {.host = h->host, .subprotocol = SUBPROTOCOL};
    char status[128];
    assert_int_equal(wsc_connect(h->port, &o, status, sizeof status, &c->ws), 101);
    return c;
}

static void client_free(struct client *c) {
    if (!c)
        return;
    wsc_free(c->ws);
    free(c);
}

/* Receives the next frame (decoded; free with proto_free). */
static Carechat__V1__Frame *recv_frame(struct client *c, int timeout_ms) {
    int op, close_code;
    struct buf payload;
    buf_init(&payload);
    int rc = wsc_recv(c->ws, timeout_ms, &op, &payload, &close_code);
    if (rc != 0 || op != WSC_OP_BINARY)
        fail_msg("expected a frame, got rc %d op %d close %d", rc, op, close_code);
    Carechat__V1__Frame *f = NULL;
    assert_int_equal(proto_decode(NULL, payload.data, payload.len, &f), 0);
    buf_cleanup(&payload);
    return f;
}

/* Sends `f` with a fresh request id and returns the Response to it. */
static Carechat__V1__Frame *rpc(struct client *c, Carechat__V1__Frame *f) {
    f->request_id = ++c->next_id;
    struct buf out;
    buf_init(&out);
    assert_int_equal(proto_encode(f, &out), 0);
    assert_int_equal(wsc_send_binary(c->ws, out.data, out.len), 0);
    buf_cleanup(&out);
    Carechat__V1__Frame *r = recv_frame(c, TIMEOUT_MS);
    assert_int_equal(r->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
    assert_true(r->request_id == f->request_id);
    return r;
}

/* Login with a new device `d` (its id is filled in on OK) or, when `d` has an
 * id already, with that device. Returns the response (caller frees). */
static Carechat__V1__Frame *login(struct client *c, const char *email, const char *password,
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
    Carechat__V1__Frame *r = rpc(c, &f);
    if (r->response->status == CARECHAT__V1__STATUS__OK) {
        assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_SESSION);
        assert_int_equal(r->response->session->device_id.len, 16);
        memcpy(d->id, r->response->session->device_id.data, 16);
    }
    return r;
}

/* Logs in and expects OK; copies the token into token[32] when given. */
static void login_ok(struct client *c, const char *email, struct raw_device *d, uint8_t *token) {
    Carechat__V1__Frame *r = login(c, email, PASSWORD, d);
    raw_expect_status(r, STATUS_OK);
    if (token) {
        assert_int_equal(r->response->session->session_token.len, 32);
        memcpy(token, r->response->session->session_token.data, 32);
    }
    proto_free(r);
}

/* Invites `email` as `role`; returns the status and the code in code[65]. */
static int invite(struct client *c, const char *email, Carechat__V1__Role role, char *code) {
    Carechat__V1__Frame f;
    Carechat__V1__Invite in;
    carechat__v1__frame__init(&f);
    carechat__v1__invite__init(&in);
    in.email = (char *)email;
    in.role = role;
    f.body_case = CARECHAT__V1__FRAME__BODY_INVITE;
    f.invite = &in;
    Carechat__V1__Frame *r = rpc(c, &f);
    int wire = (int)r->response->status;
    if (wire == 0) {
        assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_INVITE);
        assert_true(strlen(r->response->invite->code) >= 32);
        assert_true(r->response->invite->expires_at > clock_now() + 6LL * 24 * 3600 * 1000);
        snprintf(code, 65, "%s", r->response->invite->code);
    }
    proto_free(r);
    return wire;
}

static Carechat__V1__Frame *register_account(struct client *c, const char *code, const char *email,
                                             const char *birth, const char *name,
                                             struct raw_device *d) {
    Carechat__V1__Frame f;
    Carechat__V1__Register rg;
    Carechat__V1__DeviceRegistration reg;
    Carechat__V1__DeviceKeys k;
    carechat__v1__frame__init(&f);
    carechat__v1__register__init(&rg);
    rg.code = (char *)code;
    rg.email = (char *)email;
    rg.password = PASSWORD;
    rg.birth_date = (char *)birth;
    rg.display_name = (char *)name;
    raw_registration(&reg, &k, d);
    rg.device = &reg;
    f.body_case = CARECHAT__V1__FRAME__BODY_REGISTER;
    f.register_ = &rg;
    Carechat__V1__Frame *r = rpc(c, &f);
    if (r->response->status == CARECHAT__V1__STATUS__OK)
        memcpy(d->id, r->response->session->device_id.data, 16);
    return r;
}

static Carechat__V1__Frame *authenticate(struct client *c, const uint8_t token[32],
                                         const uint8_t device_id[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__Authenticate a;
    carechat__v1__frame__init(&f);
    carechat__v1__authenticate__init(&a);
    a.session_token = (ProtobufCBinaryData){32, (uint8_t *)token};
    a.device_id = (ProtobufCBinaryData){16, (uint8_t *)device_id};
    f.body_case = CARECHAT__V1__FRAME__BODY_AUTHENTICATE;
    f.authenticate = &a;
    return rpc(c, &f);
}

static Carechat__V1__Frame *lookup(struct client *c, const char *email) {
    Carechat__V1__Frame f;
    Carechat__V1__LookupAccount l;
    carechat__v1__frame__init(&f);
    carechat__v1__lookup_account__init(&l);
    l.email = (char *)email;
    f.body_case = CARECHAT__V1__FRAME__BODY_LOOKUP_ACCOUNT;
    f.lookup_account = &l;
    return rpc(c, &f);
}

/* A birth date `years` years before today (UTC), minus or plus a day. */
static void birth_date(int years, int day_shift, char out[32]) {
    time_t t = (time_t)(clock_now() / 1000) + day_shift * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 32, "%04u-%02u-%02u", (unsigned)(tm.tm_year + 1900 - years) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u);
}

/* Server-side request (ReplacedElsewhere, SessionRevoked) then the close. */
static void expect_server_request_and_close(struct client *c, Carechat__V1__Frame__BodyCase body,
                                            int code, int within_ms) {
    int64_t start = clock_monotonic_ms();
    Carechat__V1__Frame *f = recv_frame(c, within_ms);
    assert_int_equal(f->body_case, body);
    proto_free(f);
    int got = 0;
    assert_int_equal(wsc_wait_close(c->ws, within_ms, &got), 0);
    assert_int_equal(got, code);
    assert_true(clock_monotonic_ms() - start <= within_ms);
}

/* ---- server with a bootstrapped administrator -------------------------------- */

static void write_password_file(const char *dir, char *path, const char *password) {
    int n = snprintf(path, PATH_MAX, "%.*s/password", PATH_MAX - 16, dir);
    assert_true(n > 0 && n < PATH_MAX);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", password);
    fclose(f);
}

static int run_bootstrap(struct harness *h, const char *email, struct buf *output) {
    char dir[PATH_MAX], pw[PATH_MAX];
    harness_tmpdir("pw", dir);
    write_password_file(dir, pw, PASSWORD);
    const char *args[] = {"bootstrap", "--data",          h->data_dir, "--email",
                          email,       "--password-file", pw,          NULL};
    int status = -1;
    assert_int_equal(harness_run(args, NULL, 60000, &status, output), 0);
    return status;
}

/* Starts a server (extra flags in `args`), stops it, bootstraps the
 * administrator and starts it again. */
static struct harness *start_with_admin(const char *const *args) {
    struct harness *h;
    assert_int_equal(harness_start(args, &h), 0);
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    struct buf out;
    buf_init(&out);
    assert_int_equal(run_bootstrap(h, "  Root@Clinic.Example ", &out), 0);
    buf_cleanup(&out);
    assert_int_equal(harness_restart(h), 0);
    return h;
}

static void stop(struct harness *h) {
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    assert_int_equal(status, 0);
}

/* ---- store inspection after a stop ------------------------------------------------ */

static bool count_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    (*(int *)ctx)++;
    return true;
}

static int count_records(struct store *s, enum store_cf cf) {
    int n = 0;
    assert_true(store_scan(s, cf, NULL, 0, NULL, 0, 1000, count_one, &n) >= 0);
    return n;
}

/* True when any regular file under `dir` contains `needle`. */
static bool tree_contains(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            found = tree_contains(path, needle);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        uint8_t *data = malloc((size_t)st.st_size + 1);
        size_t n = fread(data, 1, (size_t)st.st_size, f);
        fclose(f);
        size_t nl = strlen(needle);
        for (size_t i = 0; !found && i + nl <= n; i++)
            found = memcmp(data + i, needle, nl) == 0;
        free(data);
    }
    closedir(d);
    return found;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_accounts_invite_register_login_roles(void **state) {
    const char *args[] = {"--login-burst", "50", NULL};
    struct harness *h = start_with_admin(args);
    struct raw_device admin_dev, prov_dev, prov_dev2, pat_dev;
    raw_device_make(&admin_dev);
    raw_device_make(&prov_dev);
    raw_device_make(&prov_dev2);
    raw_device_make(&pat_dev);

    /* The sysadmin logs in (the email is matched case-insensitively). */
    struct client *admin = client_open(h);
    Carechat__V1__Frame *r = login(admin, "ROOT@clinic.example", PASSWORD, &admin_dev);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->session->role, CARECHAT__V1__ROLE__SYSADMIN);
    assert_int_equal(r->response->session->session_token.len, 32);
    assert_true(r->response->session->idle_expires_at <= r->response->session->expires_at);
    proto_free(r);

    /* Wrong password and unknown email: the same answer. */
    struct client *c = client_open(h);
    r = login(c, ADMIN_EMAIL, "wrong password!", &prov_dev);
    raw_expect_status(r, STATUS_UNAUTHENTICATED);
    char detail1[256];
    snprintf(detail1, sizeof detail1, "%s", r->response->detail);
    proto_free(r);
    r = login(c, "nobody@clinic.example", PASSWORD, &prov_dev);
    raw_expect_status(r, STATUS_UNAUTHENTICATED);
    assert_string_equal(r->response->detail, detail1);
    proto_free(r);
    /* ... and takes similar time: an unknown email is verified against a
     * dummy Argon2id hash. The fastest of three of each is compared. */
    int64_t best[2] = {INT64_MAX, INT64_MAX};
    for (int i = 0; i < 6; i++) {
        int64_t t0 = clock_monotonic_ms();
        r = login(c, i % 2 ? "nobody@clinic.example" : ADMIN_EMAIL, "wrong password!", &prov_dev);
        int64_t took = clock_monotonic_ms() - t0;
        raw_expect_status(r, STATUS_UNAUTHENTICATED);
        proto_free(r);
        if (took < best[i % 2])
            best[i % 2] = took;
    }
    printf("login failure: wrong password %lld ms, unknown email %lld ms\n", (long long)best[0],
           (long long)best[1]);
    assert_true(best[1] >= 5);
    assert_true(best[0] <= 3 * best[1] + 5 && best[1] <= 3 * best[0] + 5);

    /* Sysadmin invites a provider, who registers; the code works once. */
    char code[65];
    assert_int_equal(invite(admin, "doc@clinic.example", CARECHAT__V1__ROLE__PROVIDER, code), 0);
    assert_int_equal(invite(admin, "ROOT@clinic.example", CARECHAT__V1__ROLE__PATIENT, code + 0) ==
                         status_wire(STATUS_CONFLICT),
                     1);
    assert_int_equal(invite(admin, "doc@clinic.example", CARECHAT__V1__ROLE__PROVIDER, code), 0);
    char adult[32];
    birth_date(40, 0, adult);
    r = register_account(c, code, "doc@clinic.example", adult, "Dr Who", &prov_dev);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->session->role, CARECHAT__V1__ROLE__PROVIDER);
    assert_string_equal(r->response->session->display_name, "Dr Who");
    proto_free(r);
    struct client *c2 = client_open(h);
    r = register_account(c2, code, "doc@clinic.example", adult, "Dr Who", &prov_dev2);
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);
    client_free(c2);

    /* The provider logs in again with a second device. */
    struct client *prov2 = client_open(h);
    login_ok(prov2, "doc@clinic.example", &prov_dev2, NULL);

    /* The provider invites a patient, who registers; the patient may not
     * invite a provider. */
    char pcode[65];
    assert_int_equal(invite(c, "pat@home.example", CARECHAT__V1__ROLE__PATIENT, pcode), 0);
    assert_int_equal(invite(c, "doc2@clinic.example", CARECHAT__V1__ROLE__PROVIDER, code),
                     status_wire(STATUS_FORBIDDEN));
    struct client *pat = client_open(h);
    birth_date(13, -1, adult);
    r = register_account(pat, pcode, "pat@home.example", adult, "Pat", &pat_dev);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->session->role, CARECHAT__V1__ROLE__PATIENT);
    uint8_t pat_token[32];
    memcpy(pat_token, r->response->session->session_token.data, 32);
    proto_free(r);
    assert_int_equal(invite(pat, "doc3@clinic.example", CARECHAT__V1__ROLE__PROVIDER, code),
                     status_wire(STATUS_FORBIDDEN));

    /* Lookup: a patient sees staff, not other patients; staff see anyone. */
    r = lookup(pat, "DOC@clinic.example");
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->account->role, CARECHAT__V1__ROLE__PROVIDER);
    assert_string_equal(r->response->account->email, "");
    proto_free(r);
    r = lookup(pat, "pat@home.example");
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    r = lookup(c, "pat@home.example");
    raw_expect_status(r, STATUS_OK);
    assert_string_equal(r->response->account->display_name, "Pat");
    proto_free(r);
    r = lookup(admin, "pat@home.example");
    raw_expect_status(r, STATUS_OK);
    assert_string_equal(r->response->account->email, "pat@home.example");
    proto_free(r);
    r = lookup(c, "ghost@home.example");
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);

    /* The patient resumes on a new connection with the token; the old
     * connection of that device is replaced. */
    struct client *pat2 = client_open(h);
    r = authenticate(pat2, pat_token, pat_dev.id);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->session->session_token.len, 0);
    assert_int_equal(r->response->session->role, CARECHAT__V1__ROLE__PATIENT);
    proto_free(r);
    expect_server_request_and_close(pat, CARECHAT__V1__FRAME__BODY_REPLACED_ELSEWHERE, 1000, 1000);
    client_free(pat);

    /* Logout: OK, the connection closes (1000) and the token stops working. */
    Carechat__V1__Frame f;
    Carechat__V1__Logout lo;
    carechat__v1__frame__init(&f);
    carechat__v1__logout__init(&lo);
    f.body_case = CARECHAT__V1__FRAME__BODY_LOGOUT;
    f.logout = &lo;
    int64_t t0 = clock_monotonic_ms();
    r = rpc(pat2, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    int code_got = 0;
    assert_int_equal(wsc_wait_close(pat2->ws, 1000, &code_got), 0);
    assert_int_equal(code_got, 1000);
    assert_true(clock_monotonic_ms() - t0 <= 1000);
    client_free(pat2);
    struct client *pat3 = client_open(h);
    r = authenticate(pat3, pat_token, pat_dev.id);
    raw_expect_status(r, STATUS_UNAUTHENTICATED);
    proto_free(r);
    client_free(pat3);

    /* Removing the provider's second device from the first closes its socket
     * within a second. */
    Carechat__V1__RemoveDevice rd;
    carechat__v1__frame__init(&f);
    carechat__v1__remove_device__init(&rd);
    rd.device_id = (ProtobufCBinaryData){16, prov_dev2.id};
    f.body_case = CARECHAT__V1__FRAME__BODY_REMOVE_DEVICE;
    f.remove_device = &rd;
    r = rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_DEVICE_LIST);
    proto_free(r);
    expect_server_request_and_close(prov2, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED, 1008, 1000);
    client_free(prov2);

    /* Accounts survive a restart. */
    client_free(c);
    client_free(admin);
    stop(h);
    assert_int_equal(harness_restart(h), 0);
    c = client_open(h);
    login_ok(c, "doc@clinic.example", &prov_dev, NULL);
    client_free(c);
    stop(h);
    harness_free(h);
}

static void test_accounts_under_13_keeps_only_audit_and_bootstrap_once(void **state) {
    struct harness *h = start_with_admin(NULL);
    struct raw_device admin_dev, kid_dev;
    raw_device_make(&admin_dev);
    raw_device_make(&kid_dev);
    struct client *admin = client_open(h);
    login_ok(admin, ADMIN_EMAIL, &admin_dev, NULL);
    char code[65];
    assert_int_equal(invite(admin, "kid@home.example", CARECHAT__V1__ROLE__PATIENT, code), 0);
    struct client *kid = client_open(h);
    char born[32];
    birth_date(13, 1, born); /* 13 tomorrow */
    Carechat__V1__Frame *r =
        register_account(kid, code, "kid@home.example", born, "Kiddo Zyxwvut", &kid_dev);
    raw_expect_status(r, STATUS_FORBIDDEN);
    assert_string_equal(r->response->detail, "registration requires age 13 or older");
    proto_free(r);
    client_free(kid);
    client_free(admin);
    stop(h);

    assert_false(tree_contains(h->data_dir, "kid@home.example"));
    assert_false(tree_contains(h->data_dir, "Kiddo Zyxwvut"));
    assert_false(tree_contains(h->data_dir, born));

    struct store *s;
    struct store_config sc = {.data_dir = h->data_dir};
    assert_int_equal(store_open(&sc, &s), 0);
    assert_int_equal(count_records(s, CF_ACCOUNTS), 1);    /* the sysadmin only */
    assert_int_equal(count_records(s, CF_EMAIL_INDEX), 1); /* the sysadmin only */
    assert_int_equal(count_records(s, CF_DEVICES), 1);     /* the sysadmin's */
    /* bootstrap, login, invite, refused registration */
    assert_int_equal(count_records(s, CF_AUDIT), 4);
    store_close(s);

    /* A second bootstrap is refused with a clear message. */
    struct buf out;
    buf_init(&out);
    assert_int_not_equal(run_bootstrap(h, "other@clinic.example", &out), 0);
    buf_append_u8(&out, 0);
    assert_non_null(strstr((char *)out.data, "already exists"));
    buf_cleanup(&out);
    harness_free(h);
}

static void test_accounts_login_throttled(void **state) {
    struct harness *h;
    assert_int_equal(harness_start(NULL, &h), 0);
    struct client *c = client_open(h);
    struct raw_device d;
    raw_device_make(&d);
    /* The default allows 5 attempts per email, then RATE_LIMITED. */
    for (int i = 0; i < 5; i++) {
        Carechat__V1__Frame *r = login(c, "victim@clinic.example", "guess number x", &d);
        raw_expect_status(r, STATUS_UNAUTHENTICATED);
        proto_free(r);
    }
    Carechat__V1__Frame *r = login(c, "victim@clinic.example", "guess number x", &d);
    raw_expect_status(r, STATUS_RATE_LIMITED);
    proto_free(r);
    client_free(c);
    stop(h);
    harness_free(h);
}

static void test_accounts_device_list_rotation_and_device_cap(void **state) {
    const char *args[] = {"--login-burst", "50", NULL};
    struct harness *h = start_with_admin(args);
    struct raw_device a, b;
    raw_device_make(&a);
    raw_device_make(&b);
    struct client *cb = client_open(h);
    login_ok(cb, ADMIN_EMAIL, &b, NULL);
    struct client *ca = client_open(h);
    Carechat__V1__Frame *r = login(ca, ADMIN_EMAIL, PASSWORD, &a);
    raw_expect_status(r, STATUS_OK);
    uint8_t account[16];
    memcpy(account, r->response->session->account_id.data, 16);
    proto_free(r);

    /* Sign version 1 over both devices, sorted by id, with device a. */
    struct raw_device *sorted[2] = {&a, &b};
    if (memcmp(a.id, b.id, 16) > 0) {
        sorted[0] = &b;
        sorted[1] = &a;
    }
    for (uint64_t version = 1; version <= 2; version++) {
        uint8_t msg[23 + 16 + 8 + 4 + 2 * 48];
        size_t n = 0;
        memcpy(msg, "carechat.v1 device list", 23);
        n = 23;
        memcpy(msg + n, account, 16);
        n += 16;
        key_put_u64(msg + n, 1);
        n += 8;
        key_put_u32(msg + n, 2);
        n += 4;
        for (int i = 0; i < 2; i++) {
            memcpy(msg + n, sorted[i]->id, 16);
            memcpy(msg + n + 16, sorted[i]->ipk, 32);
            n += 48;
        }
        uint8_t sig[64];
        crypto_sign_detached(sig, NULL, msg, n, a.isk);
        Carechat__V1__Frame f;
        Carechat__V1__PublishDeviceList p;
        Carechat__V1__DeviceList l;
        Carechat__V1__DeviceListEntry e[2], *ep[2] = {&e[0], &e[1]};
        carechat__v1__frame__init(&f);
        carechat__v1__publish_device_list__init(&p);
        carechat__v1__device_list__init(&l);
        for (int i = 0; i < 2; i++) {
            carechat__v1__device_list_entry__init(&e[i]);
            e[i].device_id = (ProtobufCBinaryData){16, i ? b.id : a.id};
            e[i].identity_key = (ProtobufCBinaryData){32, i ? b.ipk : a.ipk};
        }
        l.account_id = (ProtobufCBinaryData){16, account};
        l.version = 1;
        l.n_devices = 2;
        l.devices = ep;
        l.signer_device_id = (ProtobufCBinaryData){16, a.id};
        l.signature = (ProtobufCBinaryData){64, sig};
        p.list = &l;
        f.body_case = CARECHAT__V1__FRAME__BODY_PUBLISH_DEVICE_LIST;
        f.publish_device_list = &p;
        r = rpc(ca, &f);
        /* Version 1 is accepted once; the same version again is CONFLICT. */
        raw_expect_status(r, version == 1 ? STATUS_OK : STATUS_CONFLICT);
        if (version == 1) {
            assert_int_equal(r->response->device_list->list->version, 1);
            assert_int_equal(r->response->device_list->list->n_devices, 2);
        }
        proto_free(r);
    }

    /* ListDevices returns the signed list and both devices' keys. */
    Carechat__V1__Frame f;
    Carechat__V1__ListDevices ld;
    ProtobufCBinaryData ids[1] = {{16, account}};
    carechat__v1__frame__init(&f);
    carechat__v1__list_devices__init(&ld);
    ld.n_account_ids = 1;
    ld.account_ids = ids;
    f.body_case = CARECHAT__V1__FRAME__BODY_LIST_DEVICES;
    f.list_devices = &ld;
    r = rpc(cb, &f);
    raw_expect_status(r, STATUS_OK);
    Carechat__V1__DeviceBundles *bundles = r->response->device_bundles;
    assert_int_equal(bundles->n_accounts, 1);
    assert_int_equal(bundles->accounts[0]->list->version, 1);
    assert_int_equal(bundles->accounts[0]->n_devices, 2);
    proto_free(r);

    /* Rotating b's encryption key: a higher key id, signed by b. */
    randombytes_buf(b.epk, 32);
    b.key_id = 2;
    raw_device_sign_key(&b);
    Carechat__V1__RotateEncryptionKey rk;
    Carechat__V1__DeviceKeys k;
    carechat__v1__frame__init(&f);
    carechat__v1__rotate_encryption_key__init(&rk);
    carechat__v1__device_keys__init(&k);
    k.device_id = (ProtobufCBinaryData){16, b.id};
    k.identity_key = (ProtobufCBinaryData){32, b.ipk};
    k.encryption_key = (ProtobufCBinaryData){32, b.epk};
    k.encryption_key_id = 2;
    k.encryption_key_expires_at = b.expires_at;
    k.signature = (ProtobufCBinaryData){64, b.sig};
    rk.keys = &k;
    f.body_case = CARECHAT__V1__FRAME__BODY_ROTATE_ENCRYPTION_KEY;
    f.rotate_encryption_key = &rk;
    r = rpc(cb, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    r = rpc(ca, &f); /* keys of another device */
    raw_expect_status(r, STATUS_FORBIDDEN);
    proto_free(r);

    /* Four more devices make six; a seventh is TOO_LARGE. */
    struct raw_device more[5];
    for (int i = 0; i < 5; i++) {
        raw_device_make(&more[i]);
        struct client *ci = client_open(h);
        r = login(ci, ADMIN_EMAIL, PASSWORD, &more[i]);
        raw_expect_status(r, i < 4 ? STATUS_OK : STATUS_TOO_LARGE);
        proto_free(r);
        client_free(ci);
    }

    client_free(ca);
    client_free(cb);
    stop(h);
    harness_free(h);
}

static void test_accounts_expired_session_unauthenticated(void **state) {
    const char *args[] = {"--session-idle", "1", "--session-max", "60", NULL};
    struct harness *h = start_with_admin(args);
    struct raw_device d;
    raw_device_make(&d);
    struct client *c = client_open(h);
    uint8_t token[32];
    login_ok(c, ADMIN_EMAIL, &d, token);
    /* Idle for a second: the server logs the connection off by itself
     * (its sweep runs every second). */
    expect_server_request_and_close(c, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED, 1008, 3000);
    client_free(c);
    /* And the token no longer resumes. */
    c = client_open(h);
    Carechat__V1__Frame *r = authenticate(c, token, d.id);
    raw_expect_status(r, STATUS_UNAUTHENTICATED);
    proto_free(r);
    client_free(c);
    stop(h);
    harness_free(h);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accounts_invite_register_login_roles),
        cmocka_unit_test(test_accounts_under_13_keeps_only_audit_and_bootstrap_once),
        cmocka_unit_test(test_accounts_login_throttled),
        cmocka_unit_test(test_accounts_device_list_rotation_and_device_cap),
        cmocka_unit_test(test_accounts_expired_session_unauthenticated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
