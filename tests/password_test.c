/*
 * tests/password_test.c: ChangePassword on the real carechatd (issue 13).
 *
 * A provider signed in on two devices changes the password on the first: a
 * wrong current password and a short new one are refused; then the second
 * device's connection gets SessionRevoked { PASSWORD_CHANGED } and closes
 * (1008), its token no longer authenticates (also after a restart), the first
 * device's session goes on, and only the new password signs in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"

#define PASSWORD "correct-horse-battery-staple"
#define NEW_PASSWORD "a-new-and-longer-passphrase"

static int change(struct rawc *c, const char *current, const char *next) {
    Carechat__V1__Frame f;
    Carechat__V1__ChangePassword m;
    carechat__v1__frame__init(&f);
    carechat__v1__change_password__init(&m);
    m.current_password = (char *)current;
    m.new_password = (char *)next;
    f.body_case = CARECHAT__V1__FRAME__BODY_CHANGE_PASSWORD;
    f.change_password = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int rc = -(int)r->response->status;
    proto_free(r);
    return rc;
}

static int authenticate(struct harness *h, const uint8_t token[32], const uint8_t device[16]) {
    struct rawc *c = rawc_open(h);
    Carechat__V1__Frame *r = rawc_authenticate(c, token, device);
    int rc = -(int)r->response->status;
    proto_free(r);
    rawc_free(c);
    return rc;
}

static int login(struct harness *h, const struct rawc_user *u, const char *password) {
    struct rawc *c = rawc_open(h);
    struct raw_device d = u->dev[0];
    Carechat__V1__Frame *r = rawc_login(c, u->email, password, &d);
    int rc = -(int)r->response->status;
    proto_free(r);
    rawc_free(c);
    return rc;
}

static void test_password_change_ends_the_other_sessions(void **state) {
    (void)state;
    struct harness *h = NULL;
    assert_int_equal(fixture_start_bootstrapped(NULL, &h), 0);
    struct raw_device root_dev;
    raw_device_make(&root_dev);
    struct rawc *root =
        rawc_open_login(h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
    struct rawc_user doc;
    rawc_make_user(h, root, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &doc);
    rawc_add_device(h, &doc, PASSWORD);
    rawc_free(root);

    uint8_t token_a[32], token_b[32];
    struct rawc *a = rawc_open(h), *b = rawc_open(h);
    rawc_login_ok(a, doc.email, PASSWORD, &doc.dev[0], NULL, token_a);
    rawc_login_ok(b, doc.email, PASSWORD, &doc.dev[1], NULL, token_b);

    assert_int_equal(change(a, "not-the-password", NEW_PASSWORD), STATUS_UNAUTHENTICATED);
    assert_int_equal(change(a, PASSWORD, "short"), STATUS_BAD_REQUEST);
    assert_int_equal(change(a, PASSWORD, PASSWORD), STATUS_BAD_REQUEST);
    assert_int_equal(change(a, PASSWORD, NEW_PASSWORD), 0);

    /* The other device is told and closed. */
    Carechat__V1__Frame *q = rawc_recv(b, 5000);
    assert_non_null(q);
    assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_SESSION_REVOKED);
    assert_int_equal(q->session_revoked->reason, CARECHAT__V1__REVOKE_REASON__PASSWORD_CHANGED);
    proto_free(q);
    int code = 0;
    assert_int_equal(wsc_wait_close(b->ws, 5000, &code), 0);
    assert_int_equal(code, 1008);
    rawc_free(b);
    /* This one goes on. */
    Carechat__V1__Frame f;
    Carechat__V1__ListConversations lc;
    carechat__v1__frame__init(&f);
    carechat__v1__list_conversations__init(&lc);
    f.body_case = CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS;
    f.list_conversations = &lc;
    Carechat__V1__Frame *r = rawc_rpc(a, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    rawc_free(a);

    /* Tokens and passwords, before and after a restart. */
    for (int round = 0; round < 2; round++) {
        assert_int_equal(authenticate(h, token_b, doc.dev[1].id), STATUS_UNAUTHENTICATED);
        assert_int_equal(authenticate(h, token_a, doc.dev[0].id), 0);
        assert_int_equal(login(h, &doc, PASSWORD), STATUS_UNAUTHENTICATED);
        assert_int_equal(login(h, &doc, NEW_PASSWORD), 0);
        harness_kill9(h);
        assert_int_equal(harness_restart(h), 0);
    }
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    harness_free(h);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_change_ends_the_other_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
