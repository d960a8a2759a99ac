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
#include "base/rand.h"
#include "base/status.h"
#include "client/carechat.h"
#include "tests/harness.h"

#define ROOT_EMAIL "root@clinic.example"
#define ROOT_PASSWORD "root-secret-passphrase"
#define DOC_PASSWORD "doctor-secret-passphrase"
/* A profile directory: a fresh harness directory plus "/profile". */
#define DIR_LEN (PATH_MAX + 16)

static struct harness *server;
static char url[96];

static int group_setup(void **state) {
    int status = -1;
    if (harness_start(NULL, &server) != 0 || harness_stop(server, &status) != 0)
        return -1;
    char dir[PATH_MAX], pw[PATH_MAX + 8];
    harness_tmpdir("pw", dir);
    snprintf(pw, sizeof pw, "%s/root", dir);
    FILE *f = fopen(pw, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%s\n", ROOT_PASSWORD);
    fclose(f);
    const char *args[] = {"bootstrap", "--data",   server->data_dir,
                          "--email",   ROOT_EMAIL, "--password-file",
                          pw,          NULL};
    struct buf out;
    buf_init(&out);
    int rc = harness_run(args, NULL, 60000, &status, &out);
    if (rc != 0 || status != 0)
        fprintf(stderr, "bootstrap failed (%d):\n%s\n", status,
                out.data ? (const char *)out.data : "");
    buf_cleanup(&out);
    if (rc != 0 || status != 0 || harness_restart(server) != 0)
        return -1;
    snprintf(url, sizeof url, "ws://127.0.0.1:%d", server->port);
    return 0;
}

static int group_teardown(void **state) {
    int status = -1;
    int rc = harness_stop(server, &status);
    harness_free(server);
    return rc == 0 && status == 0 ? 0 : -1;
}

static struct carechat *open_profile(const char *dir) {
    struct carechat_config cfg = {.server_url = url, .profile_dir = dir};
    struct carechat *c = NULL;
    assert_int_equal(carechat_open(&cfg, &c), 0);
    return c;
}

static void fresh_profile(const char *name, char out[DIR_LEN]) {
    char dir[PATH_MAX];
    harness_tmpdir(name, dir);
    snprintf(out, DIR_LEN, "%s/profile", dir);
}

#define ASSERT_OK(c, call)                                                                         \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: %s", #call, carechat_error(c));                                          \
    } while (0)

/* A unique email for this test run. */
static void email(const char *who, char out[64]) {
    struct id id = id_new();
    snprintf(out, 64, "%s-%02x%02x%02x@clinic.example", who, id.b[0], id.b[1], id.b[2]);
}

/* Logs the sysadmin in with a fresh profile, invites `addr` as a provider and
 * registers them with another fresh profile (`doc_dir`). Returns the
 * provider's handle. */
static struct carechat *make_provider(const char *addr, const char *name, char doc_dir[DIR_LEN]) {
    char root_dir[DIR_LEN];
    fresh_profile("root", root_dir);
    struct carechat *root = open_profile(root_dir);
    ASSERT_OK(root, carechat_login(root, ROOT_EMAIL, ROOT_PASSWORD));
    char code[CARECHAT_MAX_CODE + 1];
    int64_t expires_at = 0;
    ASSERT_OK(root, carechat_invite(root, addr, CARECHAT_ROLE_PROVIDER, code, &expires_at));
    assert_true(expires_at > 0);
    carechat_close(root);
    fresh_profile("doc", doc_dir);
    struct carechat *doc = open_profile(doc_dir);
    ASSERT_OK(doc, carechat_register(doc, code, addr, DOC_PASSWORD, "1980-05-06", name));
    return doc;
}

static void test_cli_session_and_lookup(void **state) {
    char addr[64], doc_dir[DIR_LEN];
    email("doc", addr);
    struct carechat *doc = make_provider(addr, "Dr Ada", doc_dir);
    struct carechat_session_info s;
    assert_int_equal(carechat_session(doc, &s), 0);
    assert_int_equal(s.role, CARECHAT_ROLE_PROVIDER);
    assert_string_equal(s.display_name, "Dr Ada");
    assert_true(s.expires_at > 0);
    carechat_close(doc);

    /* A new handle on the same profile resumes the stored session. */
    doc = open_profile(doc_dir);
    assert_int_equal(carechat_session(doc, &s), STATUS_UNAUTHENTICATED);
    struct carechat_account acc;
    ASSERT_OK(doc, carechat_lookup(doc, ROOT_EMAIL, &acc));
    assert_int_equal(acc.role, CARECHAT_ROLE_SYSADMIN);
    assert_true(acc.active);
    assert_string_equal(acc.email, ""); /* only admins see email addresses */
    assert_int_equal(carechat_session(doc, &s), 0);
    assert_int_equal(s.role, CARECHAT_ROLE_PROVIDER);

    assert_int_equal(carechat_lookup(doc, "nobody@clinic.example", &acc), STATUS_NOT_FOUND);
    assert_int_equal(carechat_error_kind(doc), CARECHAT_ERROR_SERVER);
    carechat_close(doc);

    /* The sysadmin sees the provider, with the email. */
    char root_dir[DIR_LEN];
    fresh_profile("root2", root_dir);
    struct carechat *root = open_profile(root_dir);
    ASSERT_OK(root, carechat_login(root, ROOT_EMAIL, ROOT_PASSWORD));
    ASSERT_OK(root, carechat_lookup(root, addr, &acc));
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

/* Two handles of one device: when the second authenticates, the server
 * replaces the first, whose next call fails with a clear message and whose
 * event queue says why. */
static void test_cli_replaced_elsewhere_is_an_event(void **state) {
    char addr[64], doc_dir[DIR_LEN];
    email("twin", addr);
    struct carechat *a = make_provider(addr, "Dr Twin", doc_dir);
    struct carechat_devices *d = NULL;
    ASSERT_OK(a, carechat_devices(a, &d));
    assert_int_equal(d->n, 1);
    carechat_devices_free(d);

    char copy_dir[DIR_LEN], from[DIR_LEN + 16], to[DIR_LEN + 16];
    fresh_profile("twin-copy", copy_dir);
    assert_int_equal(mkdir(copy_dir, 0700), 0);
    snprintf(from, sizeof from, "%s/profile", doc_dir);
    snprintf(to, sizeof to, "%s/profile", copy_dir);
    copy_file(from, to);
    struct carechat *b = open_profile(copy_dir);
    ASSERT_OK(b, carechat_devices(b, &d));
    carechat_devices_free(d);

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
