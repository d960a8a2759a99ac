/*
 * tests/lockout_test.c: failed sign-ins over the real carechatd (hardening
 * finding 4): a stranger's wrong passwords from another network never stop
 * the right one; only failures count; each network and each account from one
 * network backs off after its free failures and says how long to wait;
 * guesses from many networks hold new devices of the account, never a device
 * it already has; an administrator clears it (UnlockLogin, audited); and the
 * refused attempts are audit records.
 *
 * Clients on other networks are played from 127.0.0.2.. (the loopback /8),
 * connecting to the server on 127.0.0.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/status.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"

#define PASSWORD "the right password"

static struct harness *g_h;

/* A login to `email` with a new device from `source`; its answer. */
static Carechat__V1__Frame *login_from(const char *source, const char *email, const char *password,
                                       struct raw_device *d) {
    struct rawc *c = rawc_open_from(g_h, source);
    Carechat__V1__Frame *r = rawc_login(c, email, password, d);
    rawc_free(c);
    return r;
}

static int status_of(Carechat__V1__Frame *r, uint32_t *retry_after_s) {
    int s = (int)r->response->status;
    if (retry_after_s)
        *retry_after_s = r->response->retry_after_s;
    proto_free(r);
    return s;
}

/* A guess (wrong password, new device) at `email` from `source`. */
static int guess(const char *source, const char *email, uint32_t *retry_after_s) {
    struct raw_device d;
    raw_device_make(&d);
    return status_of(login_from(source, email, "a wrong guess", &d), retry_after_s);
}

/* The records of `account` in the audit log with `action` and wire
 * `outcome`. */
static size_t audit_count(struct rawc *admin, const uint8_t account[16], const char *action,
                          int outcome) {
    Carechat__V1__Frame f;
    Carechat__V1__QueryAudit q;
    carechat__v1__frame__init(&f);
    carechat__v1__query_audit__init(&q);
    q.actor_account_id = (ProtobufCBinaryData){16, (uint8_t *)account};
    q.limit = 500;
    f.body_case = CARECHAT__V1__FRAME__BODY_QUERY_AUDIT;
    f.query_audit = &q;
    Carechat__V1__Frame *r = rawc_rpc(admin, &f);
    raw_expect_status(r, STATUS_OK);
    size_t n = 0;
    for (size_t i = 0; i < r->response->audit_page->n_records; i++) {
        const Carechat__V1__AuditRecord *a = r->response->audit_page->records[i];
        n += strcmp(a->action, action) == 0 && (int)a->outcome == outcome;
    }
    proto_free(r);
    return n;
}

static void test_lockout_strangers_never_stop_the_owner(void **state) {
    (void)state;
    struct raw_device root_dev;
    raw_device_make(&root_dev);
    struct rawc *root =
        rawc_open_login(g_h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
    struct rawc_user pat;
    rawc_make_user(g_h, root, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &pat);

    /* A stranger on another network: 5 free failures, then waits that
     * double and are said. */
    uint32_t after = 0;
    for (int i = 0; i < 5; i++)
        assert_int_equal(guess("127.0.0.2", pat.email, NULL),
                         CARECHAT__V1__STATUS__UNAUTHENTICATED);
    assert_int_equal(guess("127.0.0.2", pat.email, &after), CARECHAT__V1__STATUS__RATE_LIMITED);
    assert_true(after >= 1);
    /* The right password, from the owner's network: on the device the account
     * has, and on a new one. */
    struct rawc *c = rawc_open_from(g_h, "127.0.0.1");
    assert_int_equal(status_of(rawc_login(c, pat.email, PASSWORD, &pat.dev[0]), NULL),
                     CARECHAT__V1__STATUS__OK);
    rawc_free(c);
    struct raw_device fresh;
    raw_device_make(&fresh);
    assert_int_equal(status_of(login_from("127.0.0.1", pat.email, PASSWORD, &fresh), NULL),
                     CARECHAT__V1__STATUS__OK);

    /* Guesses from many networks (4 each, under the per-network limit) pass
     * the account's 20: new devices wait (the later guesses too), the
     * account's own devices do not. */
    char net[32];
    int held = 0;
    for (int n = 3; n < 8; n++)
        for (int i = 0; i < 4; i++) {
            snprintf(net, sizeof net, "127.0.0.%d", n);
            int st = guess(net, pat.email, NULL);
            assert_true(st == CARECHAT__V1__STATUS__UNAUTHENTICATED ||
                        st == CARECHAT__V1__STATUS__RATE_LIMITED);
            held += st == CARECHAT__V1__STATUS__RATE_LIMITED;
        }
    assert_true(held >= 1);
    struct raw_device another;
    raw_device_make(&another);
    assert_int_equal(status_of(login_from("127.0.0.1", pat.email, PASSWORD, &another), &after),
                     CARECHAT__V1__STATUS__RATE_LIMITED);
    assert_true(after >= 1);
    c = rawc_open_from(g_h, "127.0.0.1");
    assert_int_equal(status_of(rawc_login(c, pat.email, PASSWORD, &pat.dev[0]), NULL),
                     CARECHAT__V1__STATUS__OK);
    rawc_free(c);

    /* The refused attempts are in the audit log, under the account tried. */
    assert_true(audit_count(root, pat.account, "session.login", status_wire(STATUS_RATE_LIMITED)) >=
                2);

    /* An administrator clears it: the new device signs in at once. */
    Carechat__V1__Frame f;
    Carechat__V1__UnlockLogin u;
    carechat__v1__frame__init(&f);
    carechat__v1__unlock_login__init(&u);
    u.account_id = (ProtobufCBinaryData){16, pat.account};
    f.body_case = CARECHAT__V1__FRAME__BODY_UNLOCK_LOGIN;
    f.unlock_login = &u;
    Carechat__V1__Frame *r = rawc_rpc(root, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    assert_int_equal(status_of(login_from("127.0.0.1", pat.email, PASSWORD, &another), NULL),
                     CARECHAT__V1__STATUS__OK);
    rawc_free(root);
}

/* Only failures count: many correct sign-ins from one network are never
 * held (the old limiter counted every attempt). */
static void test_lockout_successes_do_not_count(void **state) {
    (void)state;
    struct raw_device root_dev;
    raw_device_make(&root_dev);
    struct rawc *root =
        rawc_open_login(g_h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
    struct rawc_user u;
    rawc_make_user(g_h, root, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &u);
    rawc_free(root);
    for (int i = 0; i < 12; i++) {
        struct rawc *c = rawc_open_from(g_h, "127.0.0.9");
        assert_int_equal(status_of(rawc_login(c, u.email, PASSWORD, &u.dev[0]), NULL),
                         CARECHAT__V1__STATUS__OK);
        rawc_free(c);
    }
}

static int group_setup(void **state) {
    (void)state;
    return fixture_start_bootstrapped(NULL, &g_h);
}

static int group_teardown(void **state) {
    (void)state;
    return fixture_stop(g_h) == 0 ? 0 : -1;
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lockout_strangers_never_stop_the_owner),
        cmocka_unit_test(test_lockout_successes_do_not_count),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
