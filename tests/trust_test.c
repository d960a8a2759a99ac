/*
 * tests/trust_test.c: the end-to-end promise held against the server itself
 * (issue 9), with libcarechat against the real carechatd:
 *   - day 91: encryption keys expire after 90 days; libcarechat rotates them,
 *     the server treats a device whose key expired as no recipient, so sending
 *     still works after the clock moved 91 days, and old messages still open
 *     with the retired key kept in the profile.
 *
 * One server per test that moves the clock (restarted with --clock-offset),
 * fresh accounts and profiles; every wait has a deadline; 127.0.0.1 only.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/status.h"
#include "client/carechat.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define DOC_PASSWORD "doctor-secret-passphrase"
#define DAY_MS (24LL * 3600 * 1000)

struct pair {
    struct harness *server;
    char url[FIXTURE_URL_LEN];
    struct carechat *root, *a, *b;
    char a_addr[FIXTURE_EMAIL_LEN], b_addr[FIXTURE_EMAIL_LEN];
    char a_dir[FIXTURE_DIR_LEN], b_dir[FIXTURE_DIR_LEN];
    struct id conv;
};

/* A server, two providers A and B and their direct conversation. */
static void pair_start(const char *tag, struct pair *p) {
    memset(p, 0, sizeof *p);
    assert_int_equal(fixture_start_bootstrapped(NULL, &p->server), 0);
    fixture_url(p->server, p->url);
    char root_dir[FIXTURE_DIR_LEN], name[32];
    fixture_fresh_profile("root", root_dir);
    p->root = fixture_open(p->url, root_dir);
    FIXTURE_ASSERT_OK(p->root, carechat_login(p->root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    snprintf(name, sizeof name, "%s-a", tag);
    fixture_email(name, p->a_addr);
    snprintf(name, sizeof name, "%s-b", tag);
    fixture_email(name, p->b_addr);
    p->a = fixture_invite_register(p->url, p->root, p->a_addr, CARECHAT_ROLE_PROVIDER,
                                   DOC_PASSWORD, "Dr A", p->a_dir);
    p->b = fixture_invite_register(p->url, p->root, p->b_addr, CARECHAT_ROLE_PROVIDER,
                                   DOC_PASSWORD, "Dr B", p->b_dir);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(p->a, carechat_open_direct(p->a, p->b_addr, &cv));
    p->conv = cv.conversation_id;
    carechat_conversation_cleanup(&cv);
}

static void pair_stop(struct pair *p) {
    carechat_close(p->root);
    carechat_close(p->a);
    carechat_close(p->b);
    assert_int_equal(fixture_stop(p->server), 0);
    clock_reset();
}

/* Sends `text` from `from` in the pair's conversation. */
static void send_text(struct carechat *from, const struct id *conv, const char *text) {
    struct carechat_sent sent;
    FIXTURE_ASSERT_OK(from, carechat_send(from, conv, (const uint8_t *)text, strlen(text), NULL,
                                          &sent));
}

/* Receives the next message on `c` and checks that it opened to `text`. */
static void expect_text(struct carechat *c, const char *text) {
    struct carechat_message m;
    FIXTURE_ASSERT_OK(c, carechat_recv(c, 5000, &m));
    if (m.state != CARECHAT_MESSAGE_OK || m.text_len != strlen(text) ||
        memcmp(m.text, text, m.text_len) != 0)
        fail_msg("expected \"%s\", got state %d \"%s\"", text, (int)m.state,
                 m.text ? m.text : "");
    carechat_message_cleanup(&m);
    FIXTURE_ASSERT_OK(c, carechat_ack(c));
}

/* Restarts the server `days` days in the future and moves this process's
 * clock (libcarechat's) along. */
static void move_clock(struct pair *p, int days) {
    int status = -1;
    assert_int_equal(harness_stop(p->server, &status), 0);
    assert_int_equal(status, 0);
    char offset[32];
    snprintf(offset, sizeof offset, "%lld", (long long)(days * DAY_MS));
    assert_true(p->server->n_args + 2 <= HARNESS_MAX_ARGS);
    p->server->args[p->server->n_args++] = xstrdup("--clock-offset");
    p->server->args[p->server->n_args++] = xstrdup(offset);
    assert_int_equal(harness_restart(p->server), 0);
    fixture_url(p->server, p->url);
    clock_set_offset(days * DAY_MS);
    /* New handles on the same profiles: the port changed. */
    carechat_close(p->a);
    carechat_close(p->b);
    p->a = fixture_open(p->url, p->a_dir);
    p->b = fixture_open(p->url, p->b_dir);
}

/* 91 days on, both keys have expired. A logs in again (rotating its key) and
 * sends while B, whose key expired, is away: the server takes the message
 * without a wrap for B instead of answering CONFLICT for ever. B logs in
 * (rotating too); A's next message reaches B, and B still opens the message
 * of day 0 with its retired key. Fails without the server's "expired is no
 * recipient" (A's first send is refused), without libcarechat's rotation (no
 * device has a valid key: nothing can be sent) or without the old key kept
 * in the profile (day 0 no longer opens). */
static void test_trust_send_after_91_days(void **state) {
    (void)state;
    struct pair p;
    pair_start("day91", &p);
    send_text(p.a, &p.conv, "day 0");
    expect_text(p.b, "day 0");

    move_clock(&p, 91);
    assert_int_equal(carechat_recv(p.a, 0, &(struct carechat_message){0}), STATUS_UNAUTHENTICATED);
    FIXTURE_ASSERT_OK(p.a, carechat_login(p.a, p.a_addr, DOC_PASSWORD));
    struct carechat_devices *devs = NULL;
    FIXTURE_ASSERT_OK(p.a, carechat_devices(p.a, &devs));
    assert_int_equal(devs->n, 1);
    assert_int_equal(devs->devices[0].encryption_key_id, 2);
    assert_true(devs->devices[0].key_valid);
    carechat_devices_free(devs);
    send_text(p.a, &p.conv, "while B is away");

    FIXTURE_ASSERT_OK(p.b, carechat_login(p.b, p.b_addr, DOC_PASSWORD));
    send_text(p.a, &p.conv, "day 91");
    /* What was sent while B's key had expired was not queued for B. */
    expect_text(p.b, "day 91");

    struct carechat_messages *hist = NULL;
    FIXTURE_ASSERT_OK(p.b, carechat_history(p.b, &p.conv, 0, 10, &hist));
    assert_int_equal(hist->n, 3);
    assert_int_equal(hist->items[0].state, CARECHAT_MESSAGE_OK);
    assert_memory_equal(hist->items[0].text, "day 0", 5);
    assert_int_equal(hist->items[1].state, CARECHAT_MESSAGE_NO_KEY);
    assert_int_equal(hist->items[2].state, CARECHAT_MESSAGE_OK);
    assert_memory_equal(hist->items[2].text, "day 91", 6);
    carechat_messages_free(hist);
    pair_stop(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trust_send_after_91_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
