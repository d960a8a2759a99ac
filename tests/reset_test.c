/*
 * tests/reset_test.c: password reset by an emailed code on the real carechatd
 * (issue 13), with a real SMTP relay (tests/mailpeer.h).
 *
 * A patient signed in on two devices forgets the password:
 * 1. RequestPasswordReset for an unknown email answers OK and mails nothing;
 *    for the patient's email OK, and the mail arrives with the code and
 *    nothing else personal (no name, no address in the body).
 * 2. A wrong code is FORBIDDEN "invalid or expired code"; the right one sets
 *    the new password: both devices' connections get SessionRevoked
 *    { PASSWORD_CHANGED } and close 1008, their tokens no longer
 *    authenticate, the old password no longer signs in and the new one does;
 *    a second use of the code is FORBIDDEN.
 * 3. A new code, 5 wrong tries: then the right code is FORBIDDEN too.
 * 4. A new code used after its 15 minutes (the clock moved by a restart) is
 *    FORBIDDEN.
 * 5. The audit log has the requests and resets against the account, and no
 *    code or email is in carechatd's log.
 * 6. Requests are limited per email, the same for an unknown email.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/mailpeer.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"
#include "tests/wsclient.h"

#define PASSWORD "correct-horse-battery-staple"
#define NEW_PASSWORD "a-new-and-longer-passphrase"
#define NEWER_PASSWORD "yet-another-long-passphrase"
#define NOBODY "nobody@clinic.example"
#define CODE_LEN 64
#define RESET_BURST 6

static struct mailpeer g_peer;
static struct harness *g_h;

/* The status of RequestPasswordReset for `email` on a fresh connection
 * (negated wire status, 0 for OK). */
static int request(const char *email) {
    struct rawc *c = rawc_open(g_h);
    Carechat__V1__Frame f;
    Carechat__V1__RequestPasswordReset m;
    carechat__v1__frame__init(&f);
    carechat__v1__request_password_reset__init(&m);
    m.email = (char *)email;
    f.body_case = CARECHAT__V1__FRAME__BODY_REQUEST_PASSWORD_RESET;
    f.request_password_reset = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int rc = -(int)r->response->status;
    proto_free(r);
    rawc_free(c);
    return rc;
}

/* The status of CompletePasswordReset on a fresh connection; a refusal must
 * be FORBIDDEN with the one detail. */
static int complete(const char *email, const char *code, const char *password) {
    struct rawc *c = rawc_open(g_h);
    Carechat__V1__Frame f;
    Carechat__V1__CompletePasswordReset m;
    carechat__v1__frame__init(&f);
    carechat__v1__complete_password_reset__init(&m);
    m.email = (char *)email;
    m.code = (char *)code;
    m.new_password = (char *)password;
    f.body_case = CARECHAT__V1__FRAME__BODY_COMPLETE_PASSWORD_RESET;
    f.complete_password_reset = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int rc = -(int)r->response->status;
    if (rc == STATUS_FORBIDDEN)
        assert_string_equal(r->response->detail, "invalid or expired code");
    proto_free(r);
    rawc_free(c);
    return rc;
}

static int login(const struct rawc_user *u, const char *password) {
    struct rawc *c = rawc_open(g_h);
    struct raw_device d = u->dev[0];
    Carechat__V1__Frame *r = rawc_login(c, u->email, password, &d);
    int rc = -(int)r->response->status;
    proto_free(r);
    rawc_free(c);
    return rc;
}

static int authenticate(const uint8_t token[32], const uint8_t device[16]) {
    struct rawc *c = rawc_open(g_h);
    Carechat__V1__Frame *r = rawc_authenticate(c, token, device);
    int rc = -(int)r->response->status;
    proto_free(r);
    rawc_free(c);
    return rc;
}

/* Waits until `n` mails went to `u` (its invitation, then reset codes). */
static void wait_mails(const struct rawc_user *u, int n) {
    int64_t deadline = clock_monotonic_ms() + MAILPEER_WAIT_MS;
    while (mailpeer_mails_to(&g_peer, u->email) < n && clock_monotonic_ms() < deadline)
        mailpeer_sleep_ms(50);
    assert_int_equal(mailpeer_mails_to(&g_peer, u->email), n);
}

/* Waits for the `n`th reset mail to `u` (after its invitation) and copies
 * its code; checks that the mail holds nothing personal but the recipient's
 * address in To:. */
static void mailed_code(const struct rawc_user *u, int n, char code[CODE_LEN + 1]) {
    wait_mails(u, 1 + n);
    struct buf raw;
    buf_init(&raw);
    mailpeer_read(&g_peer, "mail", mailpeer_mail_to(&g_peer, u->email), ".eml", &raw);
    const char *m = (const char *)raw.data;
    char to[256], subject[256];
    mailpeer_header(m, "To", to, sizeof to);
    assert_string_equal(to, u->email);
    mailpeer_header(m, "Subject", subject, sizeof subject);
    assert_string_equal(subject, "Your CareChat password reset code");
    const char *body = strstr(m, "\r\n\r\n");
    assert_non_null(body);
    assert_null(strchr(body, '@'));
    assert_null(strstr(body, "Someone")); /* the display name */
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, u->account, 16);
    assert_null(strstr(m, hex));
    const char *p = strstr(body, "Your reset code: ");
    assert_non_null(p);
    p += strlen("Your reset code: ");
    size_t len = strcspn(p, "\r\n");
    assert_int_equal(len, 20);
    memcpy(code, p, len);
    code[len] = '\0';
    buf_cleanup(&raw);
}

/* Expects SessionRevoked { PASSWORD_CHANGED } and the close 1008 on `c`. */
static void expect_revoked(struct rawc *c) {
    Carechat__V1__Frame *q = rawc_recv(c, 5000);
    assert_non_null(q);
    assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED);
    assert_int_equal(q->session_revoked->reason, CARECHAT__V1__REVOKE_REASON__PASSWORD_CHANGED);
    proto_free(q);
    int code = 0;
    assert_int_equal(wsc_wait_close(c->ws, 5000, &code), 0);
    assert_int_equal(code, 1008);
}

/* The records with `action` and wire `outcome` naming `object` (NULL: none). */
static size_t audit_count(struct rawc *admin, const char *action, int outcome,
                          const uint8_t *object) {
    Carechat__V1__Frame f;
    Carechat__V1__QueryAudit q;
    carechat__v1__frame__init(&f);
    carechat__v1__query_audit__init(&q);
    q.limit = 500;
    f.body_case = CARECHAT__V1__FRAME__BODY_QUERY_AUDIT;
    f.query_audit = &q;
    Carechat__V1__Frame *r = rawc_rpc(admin, &f);
    raw_expect_status(r, STATUS_OK);
    size_t n = 0;
    for (size_t i = 0; i < r->response->audit_page->n_records; i++) {
        const Carechat__V1__AuditRecord *a = r->response->audit_page->records[i];
        bool same = object ? a->object_id.len == 16 && memcmp(a->object_id.data, object, 16) == 0
                           : a->object_id.len == 0;
        n += strcmp(a->action, action) == 0 && (int)a->outcome == outcome && same &&
             a->actor_account_id.len == 0;
    }
    proto_free(r);
    return n;
}

static void restart_ahead(int64_t offset_ms) {
    int status = -1;
    assert_int_equal(harness_stop(g_h, &status), 0);
    assert_int_equal(status, 0);
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)offset_ms);
    assert_true(g_h->n_args + 2 <= HARNESS_MAX_ARGS);
    g_h->args[g_h->n_args++] = strdup("--clock-offset");
    g_h->args[g_h->n_args++] = strdup(v);
    assert_int_equal(harness_restart(g_h), 0);
}

static void test_reset_by_mail(void **state) {
    (void)state;
    struct raw_device root_dev;
    raw_device_make(&root_dev);
    struct rawc *root =
        rawc_open_login(g_h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
    struct rawc_user pat;
    rawc_make_user(g_h, root, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &pat);
    rawc_add_device(g_h, &pat, PASSWORD);
    rawc_free(root);
    wait_mails(&pat, 1); /* the invitation */
    uint8_t token_a[32], token_b[32];
    struct rawc *a = rawc_open(g_h), *b = rawc_open(g_h);
    rawc_login_ok(a, pat.email, PASSWORD, &pat.dev[0], NULL, token_a);
    rawc_login_ok(b, pat.email, PASSWORD, &pat.dev[1], NULL, token_b);

    /* 1. The same answer for an unknown email; only the patient gets mail. */
    assert_int_equal(request(NOBODY), 0);
    assert_int_equal(request(pat.email), 0);
    char code[CODE_LEN + 1], code2[CODE_LEN + 1], code3[CODE_LEN + 1];
    mailed_code(&pat, 1, code);
    assert_int_equal(mailpeer_mails_to(&g_peer, NOBODY), 0);

    /* 2. A wrong code, then the right one: every session ends. */
    assert_int_equal(complete(pat.email, "0123456789abcdef0123", NEW_PASSWORD), STATUS_FORBIDDEN);
    assert_int_equal(complete(NOBODY, code, NEW_PASSWORD), STATUS_FORBIDDEN);
    assert_int_equal(complete(pat.email, code, "short"), STATUS_BAD_REQUEST);
    assert_int_equal(complete(pat.email, code, NEW_PASSWORD), 0);
    expect_revoked(a);
    expect_revoked(b);
    rawc_free(a);
    rawc_free(b);
    assert_int_equal(authenticate(token_a, pat.dev[0].id), STATUS_UNAUTHENTICATED);
    assert_int_equal(authenticate(token_b, pat.dev[1].id), STATUS_UNAUTHENTICATED);
    assert_int_equal(login(&pat, PASSWORD), STATUS_UNAUTHENTICATED);
    assert_int_equal(login(&pat, NEW_PASSWORD), 0);
    assert_int_equal(complete(pat.email, code, NEWER_PASSWORD), STATUS_FORBIDDEN);

    /* 3. Five wrong tries kill a code. */
    assert_int_equal(request(pat.email), 0);
    mailed_code(&pat, 2, code2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(complete(pat.email, "0123456789abcdef0123", NEWER_PASSWORD),
                         STATUS_FORBIDDEN);
    assert_int_equal(complete(pat.email, code2, NEWER_PASSWORD), STATUS_FORBIDDEN);
    assert_int_equal(login(&pat, NEW_PASSWORD), 0);

    /* 5. No code and no address in the log (this start's). */
    assert_false(harness_log_contains(g_h, code));
    assert_false(harness_log_contains(g_h, code2));
    assert_false(harness_log_contains(g_h, pat.email));
    assert_false(harness_log_contains(g_h, NOBODY));

    /* 4. Expired after 15 minutes. */
    assert_int_equal(request(pat.email), 0);
    mailed_code(&pat, 3, code3);
    restart_ahead(15 * 60 * 1000 + 1000);
    assert_int_equal(complete(pat.email, code3, NEWER_PASSWORD), STATUS_FORBIDDEN);
    assert_int_equal(login(&pat, NEW_PASSWORD), 0);
    assert_false(harness_log_contains(g_h, code3));

    /* 5. The audit log: requests and resets against the account, never the
     * code or the address. */
    raw_device_make(&root_dev);
    root = rawc_open_login(g_h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
    assert_int_equal(audit_count(root, "account.password_reset_request", 0, pat.account), 3);
    assert_int_equal(
        audit_count(root, "account.password_reset_request", status_wire(STATUS_NOT_FOUND), NULL),
        1);
    assert_int_equal(audit_count(root, "account.password_reset", 0, pat.account), 1);
    /* 1 + 1 + 5 + 1 + 1 refusals against the account, 1 for the unknown email */
    assert_int_equal(
        audit_count(root, "account.password_reset", status_wire(STATUS_FORBIDDEN), pat.account), 9);
    assert_int_equal(
        audit_count(root, "account.password_reset", status_wire(STATUS_FORBIDDEN), NULL), 1);
    rawc_free(root);

    /* 6. Requests per email are limited (the restart refilled the buckets),
     * the same for an email without an account. */
    for (int i = 0; i < RESET_BURST; i++) {
        assert_int_equal(request(pat.email), 0);
        assert_int_equal(request(NOBODY), 0);
    }
    assert_int_equal(request(pat.email), STATUS_RATE_LIMITED);
    assert_int_equal(request(NOBODY), STATUS_RATE_LIMITED);
}

static int setup(void **state) {
    (void)state;
    mailpeer_start(&g_peer, NULL);
    static char smtp[64], burst[16];
    snprintf(smtp, sizeof smtp, "smtp://127.0.0.1:%d", g_peer.smtp_port);
    snprintf(burst, sizeof burst, "%d", RESET_BURST);
    const char *args[] = {"--smtp-url",
                          smtp,
                          "--smtp-from",
                          "no-reply@clinic.example",
                          "--smtp-ca-file",
                          g_peer.ca,
                          "--app-link",
                          "https://clinic.example/app",
                          "--dev-invite-codes",
                          "--login-burst",
                          "100000",
                          "--login-burst-per-ip",
                          "1000000",
                          "--password-reset-burst",
                          burst,
                          NULL};
    return fixture_start_bootstrapped(args, &g_h);
}

static int teardown(void **state) {
    (void)state;
    int rc = fixture_stop(g_h);
    mailpeer_stop(&g_peer);
    return rc;
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_by_mail),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
