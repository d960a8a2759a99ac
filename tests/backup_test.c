/*
 * tests/backup_test.c: `carechatd backup` while the server runs, and
 * `carechatd restore` into a fresh data directory (issue 13).
 *
 * A provider and a patient exchange two messages; a backup is taken while the
 * server runs; a third message follows. Restored into a new directory (with
 * the key directory restored apart, as the README says), a server on it has
 * the first two messages and not the third, and its audit chain verifies. A
 * backup over an existing directory and a restore over an existing database
 * are refused; a restore without the keys is refused and leaves nothing.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"

#define PASSWORD "correct-horse-battery-staple"
#define RUN_DEADLINE_MS 60000

/* Runs carechatd with `args`; returns its exit status, its output in *out
 * (NUL-terminated). */
static int run(const char *const *args, struct buf *out) {
    int status = -1;
    buf_reset(out);
    assert_int_equal(harness_run(args, NULL, RUN_DEADLINE_MS, &status, out), 0);
    buf_append_u8(out, 0);
    return status;
}

static void send_text(struct rawc *c, const struct rawc_user *from, const struct rawc_user *to,
                      const uint8_t conv[16], const char *text) {
    struct rawc_wrap_to wrap[1] = {{to->dev[0].id, 1}};
    uint8_t cmid[16];
    randombytes_buf(cmid, sizeof cmid);
    Carechat__V1__Frame *r = rawc_send_msg(c, conv, cmid, from->dev[0].id, wrap, 1, text, false);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
}

/* Whether the history of `conv` holds a message whose body contains `text`. */
static bool history_has(struct rawc *c, const uint8_t conv[16], const char *text) {
    bool found;
    assert_int_equal(rawc_history_contains(c, conv, text, &found), 0);
    return found;
}

static void test_backup_while_serving_then_restore(void **state) {
    (void)state;
    struct harness *h = NULL;
    assert_int_equal(fixture_start_bootstrapped(NULL, &h), 0);
    struct raw_device root_dev;
    raw_device_make(&root_dev);
    struct rawc *root =
        rawc_open_login(h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
    struct rawc_user admin, doc, pat;
    rawc_make_user(h, root, CARECHAT__V1__ROLE__ADMIN, PASSWORD, &admin);
    struct rawc *a = rawc_open_login(h, admin.email, PASSWORD, &admin.dev[0], NULL);
    rawc_make_user(h, a, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &doc);
    struct rawc *d = rawc_open_login(h, doc.email, PASSWORD, &doc.dev[0], NULL);
    rawc_make_user(h, d, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &pat);
    Carechat__V1__Frame f;
    Carechat__V1__CreateDirect cd;
    carechat__v1__frame__init(&f);
    carechat__v1__create_direct__init(&cd);
    cd.peer_account_id = (ProtobufCBinaryData){16, pat.account};
    f.body_case = CARECHAT__V1__FRAME__BODY_CREATE_DIRECT;
    f.create_direct = &cd;
    Carechat__V1__Frame *r = rawc_rpc(d, &f);
    raw_expect_status(r, STATUS_OK);
    uint8_t conv[16];
    memcpy(conv, r->response->conversation->conversation_id.data, 16);
    proto_free(r);
    send_text(d, &doc, &pat, conv, "before the backup, one");
    send_text(d, &doc, &pat, conv, "before the backup, two");

    /* The backup, while the server runs. */
    char out_dir[PATH_MAX], fresh[PATH_MAX], cmd[4 * PATH_MAX];
    assert_true(strlen(h->data_dir) + 16 < PATH_MAX);
    snprintf(out_dir, sizeof out_dir, "%.4000s.backup", h->data_dir);
    snprintf(fresh, sizeof fresh, "%.4000s.restored", h->data_dir);
    struct buf out;
    buf_init(&out);
    const char *backup[] = {"backup", "--data", h->data_dir, "--out", out_dir, NULL};
    assert_int_equal(run(backup, &out), 0);
    assert_non_null(strstr((const char *)out.data, "keys are not in it"));
    send_text(d, &doc, &pat, conv, "after the backup");
    /* Never over an existing directory. */
    assert_int_equal(run(backup, &out), 2);
    rawc_free(d);
    rawc_free(a);
    rawc_free(root);
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    assert_int_equal(status, 0);

    /* Without the keys the restore is refused and leaves no database. */
    const char *restore[] = {"restore", "--from", out_dir, "--data", fresh, NULL};
    int refused = run(restore, &out);
    if (refused == 0)
        fail_msg("restored without keys:\n%s", (const char *)out.data);
    char db[PATH_MAX + 8];
    snprintf(db, sizeof db, "%s/db", fresh);
    struct stat st;
    assert_int_not_equal(stat(db, &st), 0);
    /* The key directory restored apart, then the data. */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -a '%s/keys' '%s/keys'", fresh, h->data_dir,
             fresh);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run(restore, &out), 0);
    assert_int_equal(run(restore, &out), 4); /* a database is there now */

    /* A server on the restored directory has what was acknowledged before
     * the backup, not what came after, and an intact audit chain. */
    snprintf(h->data_dir, sizeof h->data_dir, "%s", fresh);
    assert_int_equal(harness_restart(h), 0);
    d = rawc_open_login(h, doc.email, PASSWORD, &doc.dev[0], NULL);
    assert_true(history_has(d, conv, "before the backup, one"));
    assert_true(history_has(d, conv, "before the backup, two"));
    assert_false(history_has(d, conv, "after the backup"));
    rawc_free(d);
    assert_int_equal(harness_stop(h, &status), 0);
    const char *verify[] = {"audit-verify", "--data", fresh, NULL};
    assert_int_equal(run(verify, &out), 0);
    assert_non_null(strstr((const char *)out.data, "intact"));
    buf_cleanup(&out);
    harness_free(h);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_while_serving_then_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
