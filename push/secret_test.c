/* push/secret_test.c: credential files are read only with mode 0600 or
 * stricter, never through a symbolic link, and within their size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/status.h"
#include "push/secret.h"

static void write_file(const char *path, const char *text, mode_t mode) {
    unlink(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_secret_read_requires_0600(void **state) {
    const char *dir = getenv("TEST_TMPDIR");
    char path[512], link[512];
    snprintf(path, sizeof path, "%s/secret", dir ? dir : "/tmp");
    snprintf(link, sizeof link, "%s/secret-link", dir ? dir : "/tmp");
    struct buf b;
    buf_init(&b);
    write_file(path, "hunter2", 0644);
    assert_int_equal(push_secret_read(path, 100, &b), STATUS_FORBIDDEN);
    assert_int_equal(b.len, 0);
    write_file(path, "hunter2", 0640);
    assert_int_equal(push_secret_read(path, 100, &b), STATUS_FORBIDDEN);
    write_file(path, "hunter2", 0600);
    assert_int_equal(push_secret_read(path, 100, &b), 0);
    assert_string_equal((char *)b.data, "hunter2");
    buf_wipe(&b);
    write_file(path, "hunter2", 0400);
    assert_int_equal(push_secret_read(path, 100, &b), 0);
    buf_wipe(&b);
    assert_int_equal(push_secret_read(path, 3, &b), STATUS_TOO_LARGE);
    unlink(link);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(push_secret_read(link, 100, &b), STATUS_FORBIDDEN);
    assert_int_equal(push_secret_read("/nonexistent/secret", 100, &b), STATUS_NOT_FOUND);
    assert_int_equal(b.len, 0);
    buf_cleanup(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_read_requires_0600),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
