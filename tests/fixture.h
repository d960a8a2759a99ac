/*
 * tests/fixture.h: the setup shared by the libcarechat integration tests: a
 * carechatd with its first system administrator, and fresh profiles and
 * accounts for each test.
 *
 *   static struct harness *server;
 *   static char url[FIXTURE_URL_LEN];
 *   assert_int_equal(fixture_start_bootstrapped(NULL, &server), 0);
 *   fixture_url(server, url);
 *   char dir[FIXTURE_DIR_LEN];
 *   fixture_fresh_profile("root", dir);
 *   struct carechat *root = fixture_open(url, dir);
 *   FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL,
 *                                          FIXTURE_ROOT_PASSWORD));
 *
 * Everything is on 127.0.0.1 and every wait has a deadline (the harness's).
 * Single-threaded test code, except fixture_email(), which any thread may call.
 */
#ifndef TESTS_FIXTURE_H
#define TESTS_FIXTURE_H

#include <limits.h>

#include "client/carechat.h"
#include "tests/harness.h"

/* The system administrator that fixture_start_bootstrapped() creates. */
#define FIXTURE_ROOT_EMAIL "root@clinic.example"
#define FIXTURE_ROOT_PASSWORD "root-secret-passphrase"
/* A profile directory: a fresh harness directory plus "/profile". */
#define FIXTURE_DIR_LEN (PATH_MAX + 16)
/* "ws://127.0.0.1:PORT" and its terminator fit. */
#define FIXTURE_URL_LEN 96
/* An email from fixture_email() and its terminator fit. */
#define FIXTURE_EMAIL_LEN 64

/* Fails the running cmocka test, naming the call and the handle's last error,
 * when `call` (a libcarechat call on handle `c`) does not return 0. */
#define FIXTURE_ASSERT_OK(c, call)                                                                 \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: %s", #call, carechat_error(c));                                          \
    } while (0)

/* Starts carechatd with `args` (as harness_start(), which runs `carechatd
 * init` first), stops it, runs `carechatd bootstrap` on that directory with
 * FIXTURE_ROOT_EMAIL and FIXTURE_ROOT_PASSWORD (the password in a file under
 * $TEST_TMPDIR), and starts it again with the same flags. Returns 0 and *out
 * (the caller frees it with harness_free()) once the server listens;
 * STATUS_IO when a step failed (bootstrap's output is printed to stderr; the
 * server is freed and *out left alone). */
int fixture_start_bootstrapped(const char *const *args, struct harness **out);

/* Stops `h` with SIGTERM when it is running (harness_stop()) and frees it.
 * Returns 0 when it was not running or exited with status 0; STATUS_IO when it
 * exited otherwise or had to be killed. Accepts NULL (returns 0). */
int fixture_stop(struct harness *h);

/* Writes "ws://127.0.0.1:PORT" for the running server `h` to out. */
void fixture_url(const struct harness *h, char out[FIXTURE_URL_LEN]);

/* Writes the path of a profile directory that does not exist yet (inside a
 * fresh directory under $TEST_TMPDIR whose name starts with `name`) to out. */
void fixture_fresh_profile(const char *name, char out[FIXTURE_DIR_LEN]);

/* Opens a libcarechat handle on `profile_dir` for the server at `url`, and
 * returns it (the caller closes it with carechat_close()); fails the running
 * cmocka test when carechat_open() fails. */
struct carechat *fixture_open(const char *url, const char *profile_dir);

/* `inviter` invites `email` with `role`; a handle on a fresh profile (named
 * after `name`; its path into profile_out when not NULL) registers it with
 * `password`, birth date 1980-05-06 and display name `name`. Returns the new
 * handle (the caller closes it); fails the running cmocka test on any error. */
struct carechat *fixture_invite_register(const char *url, struct carechat *inviter,
                                         const char *email, enum carechat_role role,
                                         const char *password, const char *name, char *profile_out);

/* Writes "WHO-XXXXXX@clinic.example", unique for this test run, to out. */
void fixture_email(const char *who, char out[FIXTURE_EMAIL_LEN]);

#endif
