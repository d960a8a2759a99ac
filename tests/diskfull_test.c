/*
 * tests/diskfull_test.c: a full disk and a small key volume (issue 15), on the
 * real carechatd:
 *   - a write that fails inside RocksDB is refused, not fatal: carechatd runs
 *     with an RLIMIT_FSIZE (set by the harness, SIGXFSZ ignored) so that once
 *     the WAL reaches it an append fails with EFBIG, as on a full disk. Sends
 *     are answered OK until then and UNAVAILABLE from then on, the server
 *     keeps serving reads and stops cleanly, and after a restart without the
 *     limit the patient receives exactly the messages that were answered OK.
 *     The limit is below the size RocksDB's info LOG reaches at INFO level,
 *     which it cannot then write either: Debian's RocksDB aborts at the line
 *     after a failed append to its LOG (carechatd keeps that LOG at FATAL).
 *   - the key directory's volume has its own reserve (--min-free-key-bytes):
 *     with it above what that volume has free, a login (a write) is refused
 *     UNAVAILABLE although the data volume is above its reserve, and the log
 *     names the key volume; with the default it works.
 *
 * Every wait has a deadline; everything is on 127.0.0.1.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/status.h"
#include "client/carechat.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define PASSWORD "a-long-enough-passphrase"
#define BODY_LEN 4096
/* Sends tried before the WAL must have reached the limit. */
#define MAX_SENDS 400
/* The file size limit: above the 74 KiB OPTIONS file RocksDB writes at every
 * open, below the size its info LOG reaches at open when it logs at INFO
 * (about 150 KiB here), so that, as on a full disk, such a LOG cannot take
 * more lines. */
#define FILE_SIZE_LIMIT (96 * 1024)

static struct {
    struct harness *server;
    struct carechat *root, *doc, *pat;
} t;

static int teardown(void **state) {
    carechat_close(t.root);
    carechat_close(t.doc);
    carechat_close(t.pat);
    t.root = t.doc = t.pat = NULL;
    harness_free(t.server);
    t.server = NULL;
    return 0;
}

static void body_of(int i, uint8_t out[BODY_LEN]) {
    char label[16];
    int n = snprintf(label, sizeof(label), "message %05d", i);
    memset(out, 'a' + i % 26, BODY_LEN);
    memcpy(out, label, (size_t)n); /* text without the terminating NUL */
}

static void test_diskfull_failed_write_is_refused_not_fatal(void **state) {
    const char *args[] = {"--send-burst", "100000", NULL};
    assert_int_equal(fixture_start_bootstrapped(args, &t.server), 0);
    int status = -1;
    assert_int_equal(harness_stop(t.server, &status), 0);
    t.server->file_size_limit = FILE_SIZE_LIMIT;
    assert_int_equal(harness_restart(t.server), 0);
    char url[FIXTURE_URL_LEN];
    fixture_url(t.server, url);

    char prof[FIXTURE_DIR_LEN], pat_prof[FIXTURE_DIR_LEN];
    fixture_fresh_profile("root", prof);
    t.root = fixture_open(url, prof);
    FIXTURE_ASSERT_OK(t.root, carechat_login(t.root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    char doc_addr[FIXTURE_EMAIL_LEN], pat_addr[FIXTURE_EMAIL_LEN];
    fixture_email("df-doc", doc_addr);
    fixture_email("df-pat", pat_addr);
    t.doc = fixture_invite_register(url, t.root, doc_addr, CARECHAT_ROLE_PROVIDER, PASSWORD,
                                    "df-doc", NULL);
    t.pat = fixture_invite_register(url, t.doc, pat_addr, CARECHAT_ROLE_PATIENT, PASSWORD, "df-pat",
                                    pat_prof);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(t.doc, carechat_open_direct(t.doc, pat_addr, &cv));
    struct id conv = cv.conversation_id;
    carechat_conversation_cleanup(&cv);

    /* Sends are answered OK until a write fails, UNAVAILABLE from then on. */
    static uint8_t body[BODY_LEN];
    int ok = 0, rc = 0;
    while (ok < MAX_SENDS) {
        body_of(ok, body);
        rc = carechat_send(t.doc, &conv, body, BODY_LEN, NULL, NULL);
        if (rc != 0)
            break;
        ok++;
    }
    if (rc != STATUS_UNAVAILABLE || carechat_error_kind(t.doc) != CARECHAT_ERROR_SERVER)
        fail_msg("send %d: returned %d (kind %d): %s", ok, rc, (int)carechat_error_kind(t.doc),
                 carechat_error(t.doc));
    assert_true(ok > 0);
    for (int i = 0; i < 3; i++) {
        body_of(ok + i, body);
        rc = carechat_send(t.doc, &conv, body, BODY_LEN, NULL, NULL);
        if (rc != STATUS_UNAVAILABLE || carechat_error_kind(t.doc) != CARECHAT_ERROR_SERVER)
            fail_msg("send after the failed write: returned %d: %s", rc, carechat_error(t.doc));
    }
    /* The server is alive and serves what needs no write. */
    struct carechat_devices *devs = NULL;
    FIXTURE_ASSERT_OK(t.doc, carechat_devices(t.doc, &devs));
    assert_int_equal(devs->n, 1);
    carechat_devices_free(devs);
    assert_true(harness_log_contains(t.server, "refusing every write"));
    carechat_close(t.root);
    carechat_close(t.doc);
    carechat_close(t.pat);
    t.root = t.doc = t.pat = NULL;
    assert_int_equal(harness_stop(t.server, &status), 0);
    assert_int_equal(status, 0);

    /* Without the limit: the patient gets exactly the messages answered OK. */
    t.server->file_size_limit = 0;
    assert_int_equal(harness_restart(t.server), 0);
    fixture_url(t.server, url);
    t.pat = fixture_open(url, pat_prof);
    FIXTURE_ASSERT_OK(t.pat, carechat_login(t.pat, pat_addr, PASSWORD));
    for (int i = 0; i < ok; i++) {
        struct carechat_message m;
        FIXTURE_ASSERT_OK(t.pat, carechat_recv(t.pat, 5000, &m));
        body_of(i, body);
        assert_int_equal(m.state, CARECHAT_MESSAGE_OK);
        assert_int_equal(m.text_len, BODY_LEN);
        assert_memory_equal(m.text, body, BODY_LEN);
        carechat_message_cleanup(&m);
        FIXTURE_ASSERT_OK(t.pat, carechat_ack(t.pat));
    }
    struct carechat_message m;
    rc = carechat_recv(t.pat, 300, &m);
    if (rc == 0) {
        carechat_message_cleanup(&m);
        fail_msg("the patient received a message that was refused");
    }
    assert_int_equal(rc, STATUS_NOT_FOUND);
    carechat_close(t.pat);
    t.pat = NULL;
    assert_int_equal(harness_stop(t.server, &status), 0);
    assert_int_equal(status, 0);
}

static void test_diskfull_key_volume_has_its_own_reserve(void **state) {
    assert_int_equal(fixture_start_bootstrapped(NULL, &t.server), 0);
    int status = -1;
    assert_int_equal(harness_stop(t.server, &status), 0);
    struct statvfs st;
    assert_int_equal(statvfs(t.server->data_dir, &st), 0);
    char reserve[32];
    snprintf(reserve, sizeof reserve, "%llu",
             (unsigned long long)st.f_bavail * st.f_frsize + (1ull << 30));
    t.server->args[t.server->n_args++] = xstrdup("--min-free-key-bytes");
    t.server->args[t.server->n_args++] = xstrdup(reserve);
    assert_int_equal(harness_restart(t.server), 0);
    char url[FIXTURE_URL_LEN], prof[FIXTURE_DIR_LEN];
    fixture_url(t.server, url);
    fixture_fresh_profile("root", prof);
    t.root = fixture_open(url, prof);
    int rc = carechat_login(t.root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD);
    if (rc != STATUS_UNAVAILABLE || carechat_error_kind(t.root) != CARECHAT_ERROR_SERVER)
        fail_msg("login with the key volume below its reserve: %d: %s", rc, carechat_error(t.root));
    assert_true(harness_log_contains(t.server, "free on the key volume"));
    carechat_close(t.root);
    t.root = NULL;
    assert_int_equal(harness_stop(t.server, &status), 0);
    assert_int_equal(status, 0);
    /* with the default reserve the same login works */
    free(t.server->args[--t.server->n_args]);
    free(t.server->args[--t.server->n_args]);
    assert_int_equal(harness_restart(t.server), 0);
    fixture_url(t.server, url);
    t.root = fixture_open(url, prof);
    FIXTURE_ASSERT_OK(t.root, carechat_login(t.root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_diskfull_failed_write_is_refused_not_fatal, teardown),
        cmocka_unit_test_teardown(test_diskfull_key_volume_has_its_own_reserve, teardown),
    };
    return cmocka_run_group_tests_name("diskfull", tests, NULL, NULL);
}
