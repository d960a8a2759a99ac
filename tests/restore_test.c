/*
 * tests/restore_test.c: the files of a deactivated patient through the
 * retention lifecycle on the real carechatd (issue 12), the server's clock
 * moved by restarts with --clock-offset.
 *
 * A provider sends an end-to-end encrypted file to the patient it invited,
 * then deactivates them. On day 20 (REVIEW) the provider still downloads it;
 * on day 100 (RESTRICTED) it cannot, until the sysadmin restores the file
 * (RestoreFile): then it can, byte for byte, until day 130, and on day 131
 * no longer. A restore is refused while the patient is in REVIEW, by an
 * admin, and once the patient is purged (day 396).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/status.h"
#include "client/carechat.h"
#include "protocol/proto.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"

#define PASSWORD "correct-horse-battery-staple"
#define DAY_MS (24LL * 3600 * 1000)
#define FILE_LEN 70000

static struct harness *g_h;
static char g_url[FIXTURE_URL_LEN];
static char g_dr_profile[FIXTURE_DIR_LEN], g_dr_email[FIXTURE_EMAIL_LEN];
static char g_pat_email[FIXTURE_EMAIL_LEN], g_admin_email[FIXTURE_EMAIL_LEN];
static char g_admin_profile[FIXTURE_DIR_LEN];
static struct carechat_attachment g_att;
static uint8_t g_data[FILE_LEN];
static char g_dir[PATH_MAX];

static int g_day; /* the server's clock is this many days ahead */

static void restart_at_day(int day) {
    g_day = day;
    int status = -1;
    assert_int_equal(harness_stop(g_h, &status), 0);
    char offset[32];
    snprintf(offset, sizeof offset, "%lld", (long long)day * DAY_MS);
    for (int i = 0; i + 1 < g_h->n_args; i++)
        if (strcmp(g_h->args[i], "--clock-offset") == 0) {
            free(g_h->args[i + 1]);
            g_h->args[i + 1] = strdup(offset);
            assert_int_equal(harness_restart(g_h), 0);
            fixture_url(g_h, g_url);
            return;
        }
    g_h->args[g_h->n_args++] = strdup("--clock-offset");
    g_h->args[g_h->n_args++] = strdup(offset);
    assert_int_equal(harness_restart(g_h), 0);
    fixture_url(g_h, g_url);
}

/* The provider, signed in again (the clock moved past its session). */
static struct carechat *provider(void) {
    struct carechat *c = fixture_open(g_url, g_dr_profile);
    FIXTURE_ASSERT_OK(c, carechat_login(c, g_dr_email, PASSWORD));
    return c;
}

/* Whether the provider downloads the file, and gets exactly its bytes. */
static bool provider_downloads(void) {
    struct carechat *c = provider();
    char out[PATH_MAX + 16];
    snprintf(out, sizeof out, "%s/got-%d.bin", g_dir, rand());
    int rc = carechat_download_file(c, &g_att, out, NULL);
    carechat_close(c);
    if (rc != 0)
        return false;
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    uint8_t got[FILE_LEN + 1];
    size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    assert_int_equal(n, FILE_LEN);
    assert_memory_equal(got, g_data, FILE_LEN);
    return true;
}

/* RestoreFile as the account `email` on a raw connection: the status, and
 * restored_until in *until. */
static int restore(const char *email, const char *password, int64_t *until) {
    struct raw_device d;
    raw_device_make(&d);
    /* Its key unexpired by the server's clock. */
    d.expires_at = clock_now() + (int64_t)(g_day + 30) * DAY_MS;
    raw_device_sign_key(&d);
    struct rawc *c = rawc_open_login(g_h, email, password, &d, NULL);
    Carechat__V1__Frame f;
    Carechat__V1__RestoreFile m;
    carechat__v1__frame__init(&f);
    carechat__v1__restore_file__init(&m);
    m.file_id = (ProtobufCBinaryData){16, g_att.file.file_id.b};
    f.body_case = CARECHAT__V1__FRAME__BODY_RESTORE_FILE;
    f.restore_file = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    int rc = -(int)r->response->status;
    if (rc == 0 && until)
        *until = r->response->restore->restored_until;
    proto_free(r);
    rawc_free(c);
    return rc;
}

static void test_restore_file_through_the_lifecycle(void **state) {
    (void)state;
    const char *args[] = {"--maintenance-interval", "1", NULL};
    assert_int_equal(fixture_start_bootstrapped(args, &g_h), 0);
    fixture_url(g_h, g_url);
    harness_tmpdir("restore", g_dir);
    char root_profile[FIXTURE_DIR_LEN];
    fixture_fresh_profile("root", root_profile);
    struct carechat *root = fixture_open(g_url, root_profile);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    fixture_email("dr", g_dr_email);
    fixture_email("admin", g_admin_email);
    fixture_email("pat", g_pat_email);
    struct carechat *admin = fixture_invite_register(
        g_url, root, g_admin_email, CARECHAT_ROLE_ADMIN, PASSWORD, "Admin", g_admin_profile);
    carechat_close(admin);
    struct carechat *dr = fixture_invite_register(g_url, root, g_dr_email, CARECHAT_ROLE_PROVIDER,
                                                  PASSWORD, "Dr", g_dr_profile);
    struct carechat *pat = fixture_invite_register(g_url, dr, g_pat_email, CARECHAT_ROLE_PATIENT,
                                                   PASSWORD, "Pat", NULL);
    carechat_close(pat);
    carechat_close(root);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(dr, carechat_open_direct(dr, g_pat_email, &cv));
    struct id conv = cv.conversation_id;
    carechat_conversation_cleanup(&cv);
    randombytes_buf(g_data, sizeof g_data);
    char src[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/scan.bin", g_dir);
    FILE *f = fopen(src, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(g_data, 1, sizeof g_data, f), sizeof g_data);
    fclose(f);
    FIXTURE_ASSERT_OK(dr, carechat_upload_file(dr, &conv, src, "scan.bin",
                                               "application/octet-stream", NULL, &g_att));
    struct carechat_content content = {.attachments = &g_att, .n_attachments = 1};
    FIXTURE_ASSERT_OK(dr, carechat_send_content(dr, &conv, &content, NULL, false, NULL));
    struct carechat_retention ret;
    FIXTURE_ASSERT_OK(dr, carechat_deactivate(dr, g_pat_email, &ret));
    carechat_close(dr);

    /* Day 20, REVIEW: the provider reads; a restore is refused (not
     * restricted), and an admin may not restore. */
    restart_at_day(20);
    assert_true(provider_downloads());
    assert_int_equal(restore(FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, NULL), STATUS_CONFLICT);
    /* Day 100, RESTRICTED: not until the sysadmin restores it. */
    restart_at_day(100);
    assert_false(provider_downloads());
    assert_int_equal(restore(g_admin_email, PASSWORD, NULL), STATUS_FORBIDDEN);
    int64_t until = 0;
    assert_int_equal(restore(FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &until), 0);
    int64_t now = clock_now() + 100 * DAY_MS;
    assert_true(until > now + 29 * DAY_MS && until <= now + 30 * DAY_MS + 60000);
    assert_true(provider_downloads());
    /* Day 131: restricted again. */
    restart_at_day(131);
    assert_false(provider_downloads());
    /* Day 396: purged; nothing to restore. */
    restart_at_day(396);
    int rc = 0;
    for (int i = 0; i < 100 && (rc = restore(FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, NULL)) == 0;
         i++)
        usleep(100 * 1000);
    assert_int_not_equal(rc, 0);
    assert_false(provider_downloads());
    sodium_memzero(&g_att, sizeof g_att);
    assert_int_equal(fixture_stop(g_h), 0);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restore_file_through_the_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
