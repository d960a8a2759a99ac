/* server/bootstrap_test.c: `carechatd bootstrap` as a function: refuses a
 * data directory `carechatd init` did not create, creates the first sysadmin
 * once, refuses the second time and refuses weak input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/status.h"
#include "server/bootstrap.h"
#include "server/init_tool.h"
#include "server/records.h"
#include "storage/store.h"

static char dir[512], data[600], pw[600], weak[600];

static int setup(void **state) {
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(dir, sizeof dir, "%s/bootstrap-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(pw, sizeof pw, "%s/pw", dir);
    snprintf(weak, sizeof weak, "%s/weak", dir);
    FILE *f = fopen(pw, "w");
    fputs("a good long password\n", f);
    fclose(f);
    f = fopen(weak, "w");
    fputs("short\n", f);
    fclose(f);
    return 0;
}

static int run(const char *email, const char *password_file) {
    char *argv[] = {
        "bootstrap",           "--data",      data,    "--email", (char *)email, "--password-file",
        (char *)password_file, "--log-level", "error", NULL};
    return bootstrap_main(9, argv);
}

static int init(void) {
    char *argv[] = {"init", "--data", data, "--log-level", "error", NULL};
    return init_tool_main(5, argv);
}

static void test_bootstrap_once_then_refused(void **state) {
    /* no database yet: bootstrap does not make one */
    assert_int_equal(run("root@x.example", pw), 4);
    assert_int_equal(init(), 0);
    assert_int_equal(init(), 4);
    assert_int_equal(run("root@x.example", weak), 2);
    assert_int_equal(run("not an email", pw), 2);
    assert_int_equal(run("root@x.example", "/nonexistent/pw"), 1);
    assert_int_equal(run("Root@X.example", pw), 0);
    assert_int_equal(run("other@x.example", pw), 1);

    struct store *s;
    struct store_config sc = {.data_dir = data};
    assert_int_equal(store_open(&sc, &s), 0);
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(s, CF_META, REC_META_SYSADMIN, strlen(REC_META_SYSADMIN), &v), 0);
    assert_int_equal(v.len, 16);
    uint8_t id[16];
    memcpy(id, v.data, 16);
    assert_int_equal(store_get(s, CF_ACCOUNTS, id, 16, &v), 0);
    struct rec_account a;
    assert_int_equal(rec_account_decode(v.data, v.len, &a), 0);
    assert_int_equal(a.role, REC_ROLE_SYSADMIN);
    assert_string_equal(a.email, "root@x.example");
    assert_non_null(strstr(a.password_hash, "$argon2id$"));
    rec_account_cleanup(&a);
    buf_cleanup(&v);
    store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_once_then_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
