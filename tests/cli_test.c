/*
 * tests/cli_test.c: libcarechat (client/carechat.h) against the real
 * carechatd: the session a login or registration returns, LookupAccount, a
 * stored session resumed by a new handle, and a server request (the same
 * device connecting elsewhere) surfacing as an event and a clear failure.
 * The command-line scenarios are in cli_scenario_test.sh.
 *
 * One server for the group: started once to create its data directory,
 * stopped, given its first system administrator with `carechatd bootstrap`,
 * and started again. Each test uses profile directories of its own. Every
 * wait has a deadline; everything is on 127.0.0.1.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/status.h"
#include "client/carechat.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define DOC_PASSWORD "doctor-secret-passphrase"

static struct harness *server;
static char url[FIXTURE_URL_LEN];

static int group_setup(void **state) {
    if (fixture_start_bootstrapped(NULL, &server) != 0)
        return -1;
    fixture_url(server, url);
    return 0;
}

static int group_teardown(void **state) {
    return fixture_stop(server);
}

/* Logs the sysadmin in with a fresh profile, invites `addr` as a provider and
 * registers them with another fresh profile (`doc_dir`). Returns the
 * provider's handle. */
static struct carechat *make_provider(const char *addr, const char *name,
                                      char doc_dir[FIXTURE_DIR_LEN]) {
    char root_dir[FIXTURE_DIR_LEN];
    fixture_fresh_profile("root", root_dir);
    struct carechat *root = fixture_open(url, root_dir);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    struct carechat *doc = fixture_invite_register(url, root, addr, CARECHAT_ROLE_PROVIDER,
                                                   DOC_PASSWORD, name, doc_dir);
    carechat_close(root);
    return doc;
}

static void test_cli_session_and_lookup(void **state) {
    char addr[64], doc_dir[FIXTURE_DIR_LEN];
    fixture_email("doc", addr);
    struct carechat *doc = make_provider(addr, "Dr Ada", doc_dir);
    struct carechat_session_info s;
    assert_int_equal(carechat_session(doc, &s), 0);
    assert_int_equal(s.role, CARECHAT_ROLE_PROVIDER);
    assert_string_equal(s.display_name, "Dr Ada");
    assert_true(s.expires_at > 0);
    carechat_close(doc);

    /* A new handle on the same profile resumes the stored session. */
    doc = fixture_open(url, doc_dir);
    assert_int_equal(carechat_session(doc, &s), STATUS_UNAUTHENTICATED);
    struct carechat_account acc;
    FIXTURE_ASSERT_OK(doc, carechat_lookup(doc, FIXTURE_ROOT_EMAIL, &acc));
    assert_int_equal(acc.role, CARECHAT_ROLE_SYSADMIN);
    assert_true(acc.active);
    assert_string_equal(acc.email, ""); /* only admins see email addresses */
    assert_int_equal(carechat_session(doc, &s), 0);
    assert_int_equal(s.role, CARECHAT_ROLE_PROVIDER);

    assert_int_equal(carechat_lookup(doc, "nobody@clinic.example", &acc), STATUS_NOT_FOUND);
    assert_int_equal(carechat_error_kind(doc), CARECHAT_ERROR_SERVER);
    carechat_close(doc);

    /* The sysadmin sees the provider, with the email. */
    char root_dir[FIXTURE_DIR_LEN];
    fixture_fresh_profile("root2", root_dir);
    struct carechat *root = fixture_open(url, root_dir);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    FIXTURE_ASSERT_OK(root, carechat_lookup(root, addr, &acc));
    assert_int_equal(acc.role, CARECHAT_ROLE_PROVIDER);
    assert_string_equal(acc.display_name, "Dr Ada");
    assert_string_equal(acc.email, addr);
    carechat_close(root);
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "r");
    assert_non_null(in);
    char data[8192];
    size_t n = fread(data, 1, sizeof data, in);
    fclose(in);
    FILE *out = fopen(to, "w");
    assert_non_null(out);
    assert_int_equal(fwrite(data, 1, n, out), n);
    fclose(out);
    assert_int_equal(chmod(to, 0600), 0);
}

/* Two handles of one device: both work side by side (a send beside a
 * running recv) until the second starts receiving, when the server replaces
 * the first, which was receiving: its next call fails with a clear message
 * and its event queue says why. */
static void test_cli_replaced_elsewhere_is_an_event(void **state) {
    char addr[64], doc_dir[FIXTURE_DIR_LEN];
    fixture_email("twin", addr);
    struct carechat *a = make_provider(addr, "Dr Twin", doc_dir);
    struct carechat_devices *d = NULL;
    FIXTURE_ASSERT_OK(a, carechat_devices(a, &d));
    assert_int_equal(d->n, 1);
    carechat_devices_free(d);

    char copy_dir[FIXTURE_DIR_LEN], from[FIXTURE_DIR_LEN + 16], to[FIXTURE_DIR_LEN + 16];
    fixture_fresh_profile("twin-copy", copy_dir);
    assert_int_equal(mkdir(copy_dir, 0700), 0);
    snprintf(from, sizeof from, "%s/profile", doc_dir);
    snprintf(to, sizeof to, "%s/profile", copy_dir);
    copy_file(from, to);
    struct carechat_message m;
    assert_int_equal(carechat_recv(a, 0, &m), STATUS_NOT_FOUND); /* a receives */
    struct carechat *b = fixture_open(url, copy_dir);
    FIXTURE_ASSERT_OK(b, carechat_devices(b, &d));
    carechat_devices_free(d);
    FIXTURE_ASSERT_OK(a, carechat_devices(a, &d)); /* both connections stay */
    carechat_devices_free(d);
    assert_int_equal(carechat_recv(b, 0, &m), STATUS_NOT_FOUND); /* now b receives */

    struct carechat_event e;
    assert_int_equal(carechat_next_event(a, &e), STATUS_NOT_FOUND);
    d = NULL;
    assert_int_equal(carechat_devices(a, &d), STATUS_IO);
    assert_null(d);
    assert_int_equal(carechat_error_kind(a), CARECHAT_ERROR_CONNECTION);
    assert_non_null(strstr(carechat_error(a), "elsewhere"));
    assert_int_equal(carechat_next_event(a, &e), 0);
    assert_int_equal(e.kind, CARECHAT_EVENT_REPLACED_ELSEWHERE);
    assert_int_equal(carechat_next_event(a, &e), STATUS_NOT_FOUND);
    carechat_close(a);
    carechat_close(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_session_and_lookup),
        cmocka_unit_test(test_cli_replaced_elsewhere_is_an_event),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
