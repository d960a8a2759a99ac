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
#include "tests/rawclient.h"
#include "tests/rawproto.h"
#include "tests/wsclient.h"

#define TIMEOUT_MS 10000
#define ADMIN_EMAIL "root@clinic.example"
#define PASSWORD "correct horse battery"

/* ---- sessions and invitations (tests/rawclient.h) ------------------------------ */

/* Logs in and expects OK; copies the token into token[32] when given. */
static void login_ok(struct rawc *c, const char *email, struct raw_device *d, uint8_t *token) {
    rawc_login_ok(c, email, PASSWORD, d, NULL, token);
}

/* Invites `email` as `role`; returns the status and the code in code[65]. */
static int invite(struct rawc *c, const char *email, Carechat__V1__Role role, char *code) {
    int64_t expires_at = 0;
    int wire = rawc_invite(c, email, role, code, &expires_at);
    if (wire == 0) {
        assert_true(strlen(code) >= 32);
        assert_true(expires_at > clock_now() + 6LL * 24 * 3600 * 1000);
    }
    return wire;
}

static Carechat__V1__Frame *register_account(struct rawc *c, const char *code, const char *email,
                                             const char *birth, const char *name,
                                             struct raw_device *d) {
    return rawc_register(c, code, email, PASSWORD, birth, name, d);
}

static Carechat__V1__Frame *lookup(struct rawc *c, const char *email) {
    Carechat__V1__Frame f;
    Carechat__V1__LookupAccount l;
    carechat__v1__frame__init(&f);
    carechat__v1__lookup_account__init(&l);
    l.email = (char *)email;
    f.body_case = CARECHAT__V1__FRAME__BODY_LOOKUP_ACCOUNT;
    f.lookup_account = &l;
    return rawc_rpc(c, &f);
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
static void expect_server_request_and_close(struct rawc *c, Carechat__V1__Frame__BodyCase body,
                                            int code, int within_ms) {
    int64_t start = clock_monotonic_ms();
    Carechat__V1__Frame *f = rawc_recv(c, within_ms);
    assert_non_null(f);
    assert_int_equal(f->body_case, body);
    proto_free(f);
    int got = 0;
    assert_int_equal(wsc_wait_close(c->ws, within_ms, &got), 0);
    assert_int_equal(got, code);
    assert_true(clock_monotonic_ms() - start <= within_ms);
}

/* Starts receiving on `c` (Sync from the start) and reads up to QueueEmpty. */
static void sync_to_empty(struct rawc *c) {
    Carechat__V1__Frame f;
    Carechat__V1__Sync s;
    carechat__v1__frame__init(&f);
    carechat__v1__sync__init(&s);
    f.body_case = CARECHAT__V1__FRAME__BODY_SYNC;
    f.sync = &s;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    for (int i = 0; i < 100; i++) {
        Carechat__V1__Frame *q = rawc_next_request(c, 2000);
        assert_non_null(q);
        const bool empty = q->body_case == CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY;
        proto_free(q);
        if (empty)
            return;
    }
    fail_msg("no QueueEmpty");
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
    struct rawc *admin = rawc_open(h);
    Carechat__V1__Frame *r = rawc_login(admin, "ROOT@clinic.example", PASSWORD, &admin_dev);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->session->role, CARECHAT__V1__ROLE__SYSADMIN);
    assert_int_equal(r->response->session->session_token.len, 32);
    assert_true(r->response->session->idle_expires_at <= r->response->session->expires_at);
    proto_free(r);

    /* Wrong password and unknown email: the same answer. */
    struct rawc *c = rawc_open(h);
    r = rawc_login(c, ADMIN_EMAIL, "wrong password!", &prov_dev);
    raw_expect_status(r, STATUS_UNAUTHENTICATED);
    char detail1[256];
    snprintf(detail1, sizeof detail1, "%s", r->response->detail);
    proto_free(r);
    r = rawc_login(c, "nobody@clinic.example", PASSWORD, &prov_dev);
    raw_expect_status(r, STATUS_UNAUTHENTICATED);
    assert_string_equal(r->response->detail, detail1);
    proto_free(r);
    /* ... and takes similar time: an unknown email is verified against a
     * dummy Argon2id hash. The fastest of three of each is compared. */
    int64_t best[2] = {INT64_MAX, INT64_MAX};
    for (int i = 0; i < 6; i++) {
        int64_t t0 = clock_monotonic_ms();
        r = rawc_login(c, i % 2 ? "nobody@clinic.example" : ADMIN_EMAIL, "wrong password!",
                       &prov_dev);
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
    struct rawc *c2 = rawc_open(h);
    r = register_account(c2, code, "doc@clinic.example", adult, "Dr Who", &prov_dev2);
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);
    rawc_free(c2);

    /* The provider logs in again with a second device. */
    struct rawc *prov2 = rawc_open(h);
    login_ok(prov2, "doc@clinic.example", &prov_dev2, NULL);

    /* The provider invites a patient, who registers; the patient may not
     * invite a provider. */
    char pcode[65];
    assert_int_equal(invite(c, "pat@home.example", CARECHAT__V1__ROLE__PATIENT, pcode), 0);
    assert_int_equal(invite(c, "doc2@clinic.example", CARECHAT__V1__ROLE__PROVIDER, code),
                     status_wire(STATUS_FORBIDDEN));
    struct rawc *pat = rawc_open(h);
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

    /* The patient receives on its connection, then resumes on a new one with
     * the token: both stay open (a CLI send beside a running recv) until the
     * new one starts receiving, which replaces the old. */
    sync_to_empty(pat);
    struct rawc *pat2 = rawc_open(h);
    r = rawc_authenticate(pat2, pat_token, pat_dev.id);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->session->session_token.len, 0);
    assert_int_equal(r->response->session->role, CARECHAT__V1__ROLE__PATIENT);
    proto_free(r);
    r = lookup(pat, "doc@clinic.example");
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    sync_to_empty(pat2);
    expect_server_request_and_close(pat, CARECHAT__V1__FRAME__BODY_REPLACED_ELSEWHERE, 1000, 1000);
    rawc_free(pat);

    /* Logout: OK, the connection closes (1000) and the token stops working. */
    Carechat__V1__Frame f;
    Carechat__V1__Logout lo;
    carechat__v1__frame__init(&f);
    carechat__v1__logout__init(&lo);
    f.body_case = CARECHAT__V1__FRAME__BODY_LOGOUT;
    f.logout = &lo;
    int64_t t0 = clock_monotonic_ms();
    r = rawc_rpc(pat2, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    int code_got = 0;
    assert_int_equal(wsc_wait_close(pat2->ws, 1000, &code_got), 0);
    assert_int_equal(code_got, 1000);
    assert_true(clock_monotonic_ms() - t0 <= 1000);
    rawc_free(pat2);
    struct rawc *pat3 = rawc_open(h);
    r = rawc_authenticate(pat3, pat_token, pat_dev.id);
    raw_expect_status(r, STATUS_UNAUTHENTICATED);
    proto_free(r);
    rawc_free(pat3);

    /* Removing the provider's second device from the first closes its socket
     * within a second. */
    Carechat__V1__RemoveDevice rd;
    carechat__v1__frame__init(&f);
    carechat__v1__remove_device__init(&rd);
    rd.device_id = (ProtobufCBinaryData){16, prov_dev2.id};
    f.body_case = CARECHAT__V1__FRAME__BODY_REMOVE_DEVICE;
    f.remove_device = &rd;
    r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_DEVICE_LIST);
    proto_free(r);
    expect_server_request_and_close(prov2, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED, 1008, 1000);
    rawc_free(prov2);

    /* Accounts survive a restart. */
    rawc_free(c);
    rawc_free(admin);
    stop(h);
    assert_int_equal(harness_restart(h), 0);
    c = rawc_open(h);
    login_ok(c, "doc@clinic.example", &prov_dev, NULL);
    rawc_free(c);
    stop(h);
    harness_free(h);
}

static void test_accounts_under_13_keeps_only_audit_and_bootstrap_once(void **state) {
    struct harness *h = start_with_admin(NULL);
    struct raw_device admin_dev, kid_dev;
    raw_device_make(&admin_dev);
    raw_device_make(&kid_dev);
    struct rawc *admin = rawc_open(h);
    login_ok(admin, ADMIN_EMAIL, &admin_dev, NULL);
    char code[65];
    assert_int_equal(invite(admin, "kid@home.example", CARECHAT__V1__ROLE__PATIENT, code), 0);
    struct rawc *kid = rawc_open(h);
    char born[32];
    birth_date(13, 1, born); /* 13 tomorrow */
    Carechat__V1__Frame *r =
        register_account(kid, code, "kid@home.example", born, "Kiddo Zyxwvut", &kid_dev);
    raw_expect_status(r, STATUS_FORBIDDEN);
    assert_string_equal(r->response->detail, "registration requires age 13 or older");
    proto_free(r);
    /* The refusal stands: the code does not register with another birth date. */
    char adult[32];
    birth_date(30, 0, adult);
    r = register_account(kid, code, "kid@home.example", adult, "Kiddo Zyxwvut", &kid_dev);
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);
    rawc_free(kid);
    rawc_free(admin);
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
    assert_int_equal(count_records(s, CF_INVITES), 0);     /* spent by the refusal */
    /* bootstrap, login, invite, refused registration, the unknown code */
    assert_int_equal(count_records(s, CF_AUDIT), 5);
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
    struct rawc *c = rawc_open(h);
    struct raw_device d;
    raw_device_make(&d);
    /* The default allows 5 attempts per email, then RATE_LIMITED. */
    for (int i = 0; i < 5; i++) {
        Carechat__V1__Frame *r = rawc_login(c, "victim@clinic.example", "guess number x", &d);
        raw_expect_status(r, STATUS_UNAUTHENTICATED);
        proto_free(r);
    }
    Carechat__V1__Frame *r = rawc_login(c, "victim@clinic.example", "guess number x", &d);
    raw_expect_status(r, STATUS_RATE_LIMITED);
    proto_free(r);
    rawc_free(c);
    stop(h);
    harness_free(h);
}

/* --invite-burst and --invite-window pace one account's invitations (the
 * default is 30 an hour): with a burst of 2 the third is RATE_LIMITED, and
 * another account is not affected. */
static void test_accounts_invitations_paced_by_configuration(void **state) {
    const char *args[] = {"--invite-burst", "2", "--invite-window", "3600", NULL};
    struct harness *h = start_with_admin(args);
    struct raw_device d;
    raw_device_make(&d);
    struct rawc *admin = rawc_open(h);
    login_ok(admin, ADMIN_EMAIL, &d, NULL);
    char code[65], doc_code[65];
    assert_int_equal(
        invite(admin, "inv-doc@clinic.example", CARECHAT__V1__ROLE__PROVIDER, doc_code), 0);
    assert_int_equal(invite(admin, "inv-2@clinic.example", CARECHAT__V1__ROLE__PROVIDER, code), 0);
    assert_int_equal(invite(admin, "inv-3@clinic.example", CARECHAT__V1__ROLE__PROVIDER, code),
                     status_wire(STATUS_RATE_LIMITED));
    /* another account has its own allowance */
    struct rawc *doc = rawc_open(h);
    struct raw_device dd;
    raw_device_make(&dd);
    Carechat__V1__Frame *r =
        register_account(doc, doc_code, "inv-doc@clinic.example", "1980-01-02", "Doc", &dd);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    assert_int_equal(invite(doc, "inv-pat@home.example", CARECHAT__V1__ROLE__PATIENT, code), 0);
    rawc_free(doc);
    rawc_free(admin);
    stop(h);
    harness_free(h);
}

static void test_accounts_device_list_rotation_and_device_cap(void **state) {
    const char *args[] = {"--login-burst", "50", NULL};
    struct harness *h = start_with_admin(args);
    struct raw_device a, b;
    raw_device_make(&a);
    raw_device_make(&b);
    struct rawc *cb = rawc_open(h);
    login_ok(cb, ADMIN_EMAIL, &b, NULL);
    struct rawc *ca = rawc_open(h);
    Carechat__V1__Frame *r = rawc_login(ca, ADMIN_EMAIL, PASSWORD, &a);
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
        r = rawc_rpc(ca, &f);
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
    r = rawc_rpc(cb, &f);
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
    r = rawc_rpc(cb, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    r = rawc_rpc(ca, &f); /* keys of another device */
    raw_expect_status(r, STATUS_FORBIDDEN);
    proto_free(r);

    /* Four more devices make six; a seventh is TOO_LARGE. */
    struct raw_device more[5];
    for (int i = 0; i < 5; i++) {
        raw_device_make(&more[i]);
        struct rawc *ci = rawc_open(h);
        r = rawc_login(ci, ADMIN_EMAIL, PASSWORD, &more[i]);
        raw_expect_status(r, i < 4 ? STATUS_OK : STATUS_TOO_LARGE);
        proto_free(r);
        rawc_free(ci);
    }

    rawc_free(ca);
    rawc_free(cb);
    stop(h);
    harness_free(h);
}

static void test_accounts_expired_session_unauthenticated(void **state) {
    const char *args[] = {"--session-idle", "1", "--session-max", "60", NULL};
    struct harness *h = start_with_admin(args);
    struct raw_device d;
    raw_device_make(&d);
    struct rawc *c = rawc_open(h);
    uint8_t token[32];
    login_ok(c, ADMIN_EMAIL, &d, token);
    /* Idle for a second: the server logs the connection off by itself
     * (its sweep runs every second). */
    expect_server_request_and_close(c, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED, 1008, 3000);
    rawc_free(c);
    /* And the token no longer resumes. */
    c = rawc_open(h);
    Carechat__V1__Frame *r = rawc_authenticate(c, token, d.id);
    raw_expect_status(r, STATUS_UNAUTHENTICATED);
    proto_free(r);
    rawc_free(c);
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
        cmocka_unit_test(test_accounts_invitations_paced_by_configuration),
        cmocka_unit_test(test_accounts_device_list_rotation_and_device_cap),
        cmocka_unit_test(test_accounts_expired_session_unauthenticated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
