/*
 * tests/fixture.c: a bootstrapped carechatd and fresh libcarechat profiles for
 * the integration tests (see fixture.h). Single-threaded test code.
 */
#include "tests/fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/status.h"

/* Runs `carechatd bootstrap` on h's data directory (the server stopped). */
static int bootstrap(const struct harness *h) {
    char dir[PATH_MAX], pw[PATH_MAX + 8];
    harness_tmpdir("pw", dir);
    snprintf(pw, sizeof pw, "%s/root", dir);
    FILE *f = fopen(pw, "w");
    if (f == NULL)
        return STATUS_IO;
    fprintf(f, "%s\n", FIXTURE_ROOT_PASSWORD);
    if (fclose(f) != 0)
        return STATUS_IO;
    const char *args[] = {"bootstrap",        "--data",          h->data_dir, "--email",
                          FIXTURE_ROOT_EMAIL, "--password-file", pw,          NULL};
    struct buf out;
    buf_init(&out);
    int status = -1;
    int rc = harness_run(args, NULL, 60000, &status, &out);
    if (rc != 0 || status != 0)
        fprintf(stderr, "bootstrap failed (%d):\n%s\n", status,
                out.data ? (const char *)out.data : "");
    buf_cleanup(&out);
    return rc == 0 && status == 0 ? 0 : STATUS_IO;
}

int fixture_start_bootstrapped(const char *const *args, struct harness **out) {
    struct harness *h = NULL;
    int status = -1;
    if (harness_start(args, &h) != 0)
        return STATUS_IO;
    if (harness_stop(h, &status) != 0 || bootstrap(h) != 0 || harness_restart(h) != 0)
        goto fail;
    *out = h;
    return 0;
fail:
    harness_free(h);
    return STATUS_IO;
}

int fixture_stop(struct harness *h) {
    if (h == NULL)
        return 0;
    int status = -1;
    int rc = harness_stop(h, &status);
    harness_free(h);
    return rc == 0 && status == 0 ? 0 : STATUS_IO;
}

void fixture_url(const struct harness *h, char out[FIXTURE_URL_LEN]) {
    snprintf(out, FIXTURE_URL_LEN, "ws://127.0.0.1:%d", h->port);
}

void fixture_fresh_profile(const char *name, char out[FIXTURE_DIR_LEN]) {
    char dir[PATH_MAX];
    harness_tmpdir(name, dir);
    snprintf(out, FIXTURE_DIR_LEN, "%s/profile", dir);
}

struct carechat *fixture_open(const char *url, const char *profile_dir) {
    struct carechat_config cfg = {.server_url = url, .profile_dir = profile_dir};
    struct carechat *c = NULL;
    assert_int_equal(carechat_open(&cfg, &c), 0);
    return c;
}

struct carechat *fixture_invite_register(const char *url, struct carechat *inviter,
                                         const char *email, enum carechat_role role,
                                         const char *password, const char *name,
                                         char *profile_out) {
    char code[CARECHAT_MAX_CODE + 1];
    int64_t expires_at = 0;
    FIXTURE_ASSERT_OK(inviter, carechat_invite(inviter, email, role, code, &expires_at));
    assert_true(expires_at > 0);
    char profile[FIXTURE_DIR_LEN];
    fixture_fresh_profile(name, profile);
    if (profile_out)
        memcpy(profile_out, profile, sizeof profile);
    struct carechat *c = fixture_open(url, profile);
    FIXTURE_ASSERT_OK(c, carechat_register(c, code, email, password, "1980-05-06", name));
    return c;
}

void fixture_email(const char *who, char out[FIXTURE_EMAIL_LEN]) {
    struct id id = id_new();
    snprintf(out, FIXTURE_EMAIL_LEN, "%s-%02x%02x%02x@clinic.example", who, id.b[0], id.b[1],
             id.b[2]);
}
