/*
 * tests/trust_test.c: the end-to-end promise held against the server itself
 * (issue 9), with libcarechat against the real carechatd:
 *   - day 91: encryption keys expire after 90 days; libcarechat rotates them,
 *     the server treats a device whose key expired as no recipient, so sending
 *     still works after the clock moved 91 days, and old messages still open
 *     with the retired key kept in the profile;
 *   - a ghost device (logged in with the password, listed after an
 *     administrator's reset: what a malicious operator can do) raises
 *     "identity changed" at the peer, blocks sending (across a restart of the
 *     peer's client) until the user confirms, and its messages are not shown
 *     as the account's; without the reset the server itself refuses to list
 *     it and it cannot send;
 *   - a device list rolled back by the server (its data restored from a
 *     snapshot) is refused by a restarted client;
 *   - a signed message stored again under a new message id (the server's
 *     data restored, the same client_msg_id and counter sent again) is shown
 *     as replayed, not as a new message;
 *   - a recall is shown as the sender's only when the device that sent the
 *     message signed it, as an administrator's removal only when a listed
 *     device of the admin signed it, and otherwise as nobody's known doing;
 *   - safety numbers: both sides print the same digits; a change of devices
 *     clears the verified flag.
 * The "malicious server" is simulated with what an operator has: the
 * administrator's reset, and restoring the data directory from a snapshot.
 *
 * One server per test, fresh accounts and profiles; every wait has a
 * deadline; 127.0.0.1 only.
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

#include <sys/stat.h>

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
    p->a = fixture_invite_register(p->url, p->root, p->a_addr, CARECHAT_ROLE_PROVIDER, DOC_PASSWORD,
                                   "Dr A", p->a_dir);
    p->b = fixture_invite_register(p->url, p->root, p->b_addr, CARECHAT_ROLE_PROVIDER, DOC_PASSWORD,
                                   "Dr B", p->b_dir);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(p->a, carechat_open_direct(p->a, p->b_addr, &cv));
    p->conv = cv.conversation_id;
    carechat_conversation_cleanup(&cv);
}

static void pair_stop(struct pair *p) {
    if (p->root != NULL)
        carechat_close(p->root);
    carechat_close(p->a);
    carechat_close(p->b);
    assert_int_equal(fixture_stop(p->server), 0);
    clock_reset();
}

/* Sends `text` from `from` in the pair's conversation. */
static void send_text(struct carechat *from, const struct id *conv, const char *text) {
    struct carechat_sent sent;
    FIXTURE_ASSERT_OK(from,
                      carechat_send(from, conv, (const uint8_t *)text, strlen(text), NULL, &sent));
}

/* Receives the next message on `c` and checks that it opened to `text`. */
static void expect_text(struct carechat *c, const char *text) {
    struct carechat_message m;
    FIXTURE_ASSERT_OK(c, carechat_recv(c, 5000, &m));
    if (m.state != CARECHAT_MESSAGE_OK || m.text_len != strlen(text) ||
        memcmp(m.text, text, m.text_len) != 0)
        fail_msg("expected \"%s\", got state %d \"%s\"", text, (int)m.state, m.text ? m.text : "");
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

/* Stops the server, runs `cmd` (with %s the data directory, twice), starts it
 * again and reopens A's and B's handles (the port changed). */
static void with_server_stopped(struct pair *p, const char *fmt) {
    int status = -1;
    assert_int_equal(harness_stop(p->server, &status), 0);
    assert_int_equal(status, 0);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, fmt, p->server->data_dir, p->server->data_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(harness_restart(p->server), 0);
    fixture_url(p->server, p->url);
    carechat_close(p->a);
    carechat_close(p->b);
    carechat_close(p->root);
    p->a = fixture_open(p->url, p->a_dir);
    p->b = fixture_open(p->url, p->b_dir);
    p->root = NULL;
}

#define SNAPSHOT "rm -rf %s.snap && cp -a %s %s.snap"
#define RESTORE "rm -rf %s && cp -a %s.snap %s"

static void snapshot(struct pair *p) {
    int status = -1;
    assert_int_equal(harness_stop(p->server, &status), 0);
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, SNAPSHOT, p->server->data_dir, p->server->data_dir,
             p->server->data_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(harness_restart(p->server), 0);
    with_server_stopped(p, "true %s %s");
}

static void restore(struct pair *p) {
    int status = -1;
    assert_int_equal(harness_stop(p->server, &status), 0);
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, RESTORE, p->server->data_dir, p->server->data_dir,
             p->server->data_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(harness_restart(p->server), 0);
    with_server_stopped(p, "true %s %s");
}

/* Takes events from `c` until one of `kind` (for `account` when not NULL);
 * true when found. */
static bool has_event(struct carechat *c, enum carechat_event_kind kind, const struct id *account,
                      struct carechat_event *out) {
    struct carechat_event e;
    while (carechat_next_event(c, &e) == 0) {
        if (e.kind == kind && (account == NULL || id_equal(&e.account_id, account))) {
            if (out != NULL)
                *out = e;
            return true;
        }
    }
    return false;
}

/* A handle on a fresh profile logged in to `email`: a new device, which
 * awaits approval. */
static struct carechat *new_device(struct pair *p, const char *email, char dir[FIXTURE_DIR_LEN]) {
    fixture_fresh_profile("ghost", dir);
    struct carechat *g = fixture_open(p->url, dir);
    FIXTURE_ASSERT_OK(g, carechat_login(g, email, DOC_PASSWORD));
    assert_true(carechat_awaiting_approval(g));
    return g;
}

static struct carechat *root_of(struct pair *p) {
    if (p->root == NULL) {
        char dir[FIXTURE_DIR_LEN];
        fixture_fresh_profile("root2", dir);
        p->root = fixture_open(p->url, dir);
        FIXTURE_ASSERT_OK(p->root,
                          carechat_login(p->root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    }
    return p->root;
}

static struct id account_of(struct carechat *c) {
    struct carechat_session_info s;
    assert_int_equal(carechat_session(c, &s), 0);
    return s.account_id;
}

/* Someone with B's password logs in as a new device: it is not listed, so
 * it cannot send, A's messages do not go to it, and nothing changes for A.
 * Then an administrator resets B's list (as a malicious operator can) and
 * the ghost lists itself: A's client sees a list that no pinned device
 * signed, says "identity changed" and stops sending to B, also after its
 * own restart, until the user confirms; the ghost's message to A is not
 * shown as B's. Fails without the client's pinning (A would wrap to the
 * ghost at once) or without the server's chain rule (the ghost would list
 * itself without the reset). */
static void test_trust_ghost_device_raises_identity_changed(void **state) {
    (void)state;
    struct pair p;
    pair_start("ghost", &p);
    send_text(p.a, &p.conv, "before");
    expect_text(p.b, "before");
    const struct id b_account = account_of(p.b);

    char ghost_dir[FIXTURE_DIR_LEN];
    struct carechat *ghost = new_device(&p, p.b_addr, ghost_dir);
    struct carechat_sent sent;
    assert_int_equal(carechat_send(ghost, &p.conv, (const uint8_t *)"x", 1, NULL, &sent),
                     STATUS_FORBIDDEN);
    struct carechat_sent s1;
    FIXTURE_ASSERT_OK(p.a,
                      carechat_send(p.a, &p.conv, (const uint8_t *)"unapproved", 10, NULL, &s1));
    assert_int_equal(s1.device_conflicts, 0);
    expect_text(p.b, "unapproved");
    assert_false(has_event(p.a, CARECHAT_EVENT_IDENTITY_CHANGED, NULL, NULL));

    /* The operator resets B's list; the ghost lists itself. */
    FIXTURE_ASSERT_OK(root_of(&p), carechat_reset_device_list(root_of(&p), p.b_addr));
    carechat_close(ghost);
    ghost = fixture_open(p.url, ghost_dir);
    struct carechat_devices *devs = NULL;
    FIXTURE_ASSERT_OK(ghost, carechat_devices(ghost, &devs));
    assert_false(carechat_awaiting_approval(ghost));
    carechat_devices_free(devs);

    /* A: the list changed without a pinned device's signature. */
    int rc = carechat_send(p.a, &p.conv, (const uint8_t *)"to the ghost?", 13, NULL, &sent);
    assert_int_equal(rc, STATUS_CONFLICT);
    assert_int_equal(carechat_error_kind(p.a), CARECHAT_ERROR_TRUST);
    assert_true(has_event(p.a, CARECHAT_EVENT_IDENTITY_CHANGED, &b_account, NULL));
    /* ... and still after a restart of A's client */
    carechat_close(p.a);
    p.a = fixture_open(p.url, p.a_dir);
    rc = carechat_send(p.a, &p.conv, (const uint8_t *)"to the ghost?", 13, NULL, &sent);
    assert_int_equal(rc, STATUS_CONFLICT);
    assert_int_equal(carechat_error_kind(p.a), CARECHAT_ERROR_TRUST);

    /* The ghost writes to A (its own client confirms the list it made): not
     * shown as B's message. */
    FIXTURE_ASSERT_OK(ghost, carechat_trust(ghost, &b_account));
    struct carechat_sent gs;
    FIXTURE_ASSERT_OK(ghost,
                      carechat_send(ghost, &p.conv, (const uint8_t *)"call me", 7, NULL, &gs));
    struct carechat_message m;
    FIXTURE_ASSERT_OK(p.a, carechat_recv(p.a, 5000, &m));
    assert_int_equal(m.state, CARECHAT_MESSAGE_INVALID);
    carechat_message_cleanup(&m);
    FIXTURE_ASSERT_OK(p.a, carechat_ack(p.a));

    /* The user compares safety numbers and confirms: sending resumes. */
    FIXTURE_ASSERT_OK(p.a, carechat_trust(p.a, &b_account));
    FIXTURE_ASSERT_OK(p.a,
                      carechat_send(p.a, &p.conv, (const uint8_t *)"confirmed", 9, NULL, &sent));
    expect_text(ghost, "confirmed");
    carechat_close(ghost);
    pair_stop(&p);
}

/* B approves a second device (list version 2); A pins it. The server's data
 * is then restored from a snapshot taken at version 1: A's restarted client
 * refuses the older list instead of trusting it. Fails when pins are kept
 * only in memory. */
static void test_trust_rollback_refused_after_restart(void **state) {
    (void)state;
    struct pair p;
    pair_start("rollback", &p);
    send_text(p.a, &p.conv, "v1");
    expect_text(p.b, "v1");
    snapshot(&p);

    char b2_dir[FIXTURE_DIR_LEN];
    struct carechat *b2 = new_device(&p, p.b_addr, b2_dir);
    char code[CARECHAT_DEVICE_CODE_LEN + 1];
    FIXTURE_ASSERT_OK(b2, carechat_device_code(b2, code));
    FIXTURE_ASSERT_OK(p.b, carechat_approve(p.b, code));
    struct carechat_sent sent;
    FIXTURE_ASSERT_OK(p.a, carechat_send(p.a, &p.conv, (const uint8_t *)"v2", 2, NULL, &sent));
    /* (A's handle is new since the snapshot: it fetched version 2 and pinned
     * it as the successor of the version 1 its profile pinned.) */
    carechat_close(b2);

    restore(&p);
    int rc = carechat_send(p.a, &p.conv, (const uint8_t *)"rolled back?", 12, NULL, &sent);
    assert_int_equal(rc, STATUS_CORRUPT);
    assert_non_null(strstr(carechat_error(p.a), "older device list"));
    pair_stop(&p);
}

/* A sends with a chosen client_msg_id; B reads it. The server's data is
 * restored from before, and the same message (same client_msg_id, and so
 * the same counter) is stored again under a new message id: B's client
 * shows it as replayed, not as a second message. Fails without the
 * profile's replay ledger. */
static void test_trust_replayed_message_is_shown_once(void **state) {
    (void)state;
    struct pair p;
    pair_start("replay", &p);
    send_text(p.a, &p.conv, "first");
    expect_text(p.b, "first");
    snapshot(&p);
    const struct id cmid = id_new();
    struct carechat_sent s1, s2;
    FIXTURE_ASSERT_OK(
        p.a, carechat_send(p.a, &p.conv, (const uint8_t *)"take 2 tablets", 14, &cmid, &s1));
    expect_text(p.b, "take 2 tablets");

    restore(&p);
    FIXTURE_ASSERT_OK(
        p.a, carechat_send(p.a, &p.conv, (const uint8_t *)"take 2 tablets", 14, &cmid, &s2));
    assert_false(id_equal(&s1.message_id, &s2.message_id));
    struct carechat_messages *hist = NULL;
    FIXTURE_ASSERT_OK(p.b, carechat_history(p.b, &p.conv, 0, 10, &hist));
    assert_int_equal(hist->n, 2);
    assert_int_equal(hist->items[0].state, CARECHAT_MESSAGE_OK);
    assert_int_equal(hist->items[1].state, CARECHAT_MESSAGE_REPLAYED);
    assert_true(id_equal(&hist->items[1].message_id, &s2.message_id));
    carechat_messages_free(hist);
    /* The signed context is there for what was shown. */
    FIXTURE_ASSERT_OK(p.b, carechat_history(p.b, &p.conv, 0, 1, &hist));
    carechat_messages_free(hist);
    pair_stop(&p);
}

/* A recalls its first message (signed by the device that sent it); an
 * administrator recalls the second (a removal signed by the admin's listed
 * device); a device the admin's list does not name (what a server can mint)
 * removes the third. B shows the first as recalled by the sender, the second
 * as removed by the admin, the third as removed by nobody known, and the
 * events say the same. Fails when a recall is believed without a signature by
 * a listed device of the account it names. */
static void test_trust_recall_shown_as_its_signer_only(void **state) {
    (void)state;
    struct pair p;
    pair_start("recall", &p);
    struct carechat_sent s1, s2, s3;
    FIXTURE_ASSERT_OK(p.a, carechat_send(p.a, &p.conv, (const uint8_t *)"one", 3, NULL, &s1));
    FIXTURE_ASSERT_OK(p.a, carechat_send(p.a, &p.conv, (const uint8_t *)"two", 3, NULL, &s2));
    FIXTURE_ASSERT_OK(p.a, carechat_send(p.a, &p.conv, (const uint8_t *)"three", 5, NULL, &s3));
    expect_text(p.b, "one");
    expect_text(p.b, "two");
    expect_text(p.b, "three");
    FIXTURE_ASSERT_OK(p.a, carechat_recall(p.a, &p.conv, &s1.message_id));
    char admin_addr[FIXTURE_EMAIL_LEN], ghost_dir[FIXTURE_DIR_LEN];
    fixture_email("recall-admin", admin_addr);
    struct carechat *admin = fixture_invite_register(
        p.url, root_of(&p), admin_addr, CARECHAT_ROLE_ADMIN, DOC_PASSWORD, "Admin", NULL);
    const struct id admin_id = account_of(admin);
    FIXTURE_ASSERT_OK(admin, carechat_recall(admin, &p.conv, &s2.message_id));
    carechat_close(admin);
    struct carechat *ghost = new_device(&p, admin_addr, ghost_dir);
    FIXTURE_ASSERT_OK(ghost, carechat_recall(ghost, &p.conv, &s3.message_id));
    carechat_close(ghost);

    struct carechat_message m;
    assert_int_equal(carechat_recv(p.b, 2000, &m), STATUS_NOT_FOUND);
    struct carechat_event e;
    assert_true(has_event(p.b, CARECHAT_EVENT_RECALL, NULL, &e));
    assert_true(id_equal(&e.message_id, &s1.message_id));
    assert_true(e.signed_by_sender);
    assert_true(has_event(p.b, CARECHAT_EVENT_RECALL, NULL, &e));
    assert_true(id_equal(&e.message_id, &s2.message_id));
    assert_false(e.signed_by_sender);
    assert_true(e.by_verified);
    assert_true(id_equal(&e.by_account_id, &admin_id));
    assert_true(has_event(p.b, CARECHAT_EVENT_RECALL, NULL, &e));
    assert_true(id_equal(&e.message_id, &s3.message_id));
    assert_false(e.signed_by_sender);
    assert_false(e.by_verified);

    struct carechat_messages *hist = NULL;
    FIXTURE_ASSERT_OK(p.b, carechat_history(p.b, &p.conv, 0, 10, &hist));
    assert_int_equal(hist->n, 3);
    assert_int_equal(hist->items[0].state, CARECHAT_MESSAGE_RECALLED);
    assert_int_equal(hist->items[1].state, CARECHAT_MESSAGE_REMOVED);
    assert_true(hist->items[1].removed_by_verified);
    assert_true(id_equal(&hist->items[1].removed_by, &admin_id));
    assert_int_equal(hist->items[2].state, CARECHAT_MESSAGE_REMOVED);
    assert_false(hist->items[2].removed_by_verified);
    carechat_messages_free(hist);
    pair_stop(&p);
}

/* Both sides print the same safety number; marking it verified sticks until
 * B's devices change (B approves a second device). */
static void test_trust_safety_numbers_match(void **state) {
    (void)state;
    struct pair p;
    pair_start("safety", &p);
    const struct id a_acc = account_of(p.a), b_acc = account_of(p.b);
    char na[CARECHAT_SAFETY_NUMBER_LEN + 1], nb[CARECHAT_SAFETY_NUMBER_LEN + 1];
    bool verified = true;
    FIXTURE_ASSERT_OK(p.a, carechat_safety_number(p.a, &b_acc, na, &verified));
    assert_false(verified);
    FIXTURE_ASSERT_OK(p.b, carechat_safety_number(p.b, &a_acc, nb, NULL));
    assert_string_equal(na, nb);
    assert_int_equal(strlen(na), CARECHAT_SAFETY_NUMBER_LEN);
    FIXTURE_ASSERT_OK(p.a, carechat_set_verified(p.a, &b_acc, true));
    FIXTURE_ASSERT_OK(p.a, carechat_safety_number(p.a, &b_acc, na, &verified));
    assert_true(verified);

    char b2_dir[FIXTURE_DIR_LEN], code[CARECHAT_DEVICE_CODE_LEN + 1];
    struct carechat *b2 = new_device(&p, p.b_addr, b2_dir);
    FIXTURE_ASSERT_OK(b2, carechat_device_code(b2, code));
    FIXTURE_ASSERT_OK(p.b, carechat_approve(p.b, code));
    send_text(p.a, &p.conv, "refresh"); /* fetches B's new list */
    char na2[CARECHAT_SAFETY_NUMBER_LEN + 1];
    FIXTURE_ASSERT_OK(p.a, carechat_safety_number(p.a, &b_acc, na2, &verified));
    assert_false(verified);
    assert_string_not_equal(na, na2);
    carechat_close(b2);
    pair_stop(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trust_send_after_91_days),
        cmocka_unit_test(test_trust_ghost_device_raises_identity_changed),
        cmocka_unit_test(test_trust_rollback_refused_after_restart),
        cmocka_unit_test(test_trust_replayed_message_is_shown_once),
        cmocka_unit_test(test_trust_recall_shown_as_its_signer_only),
        cmocka_unit_test(test_trust_safety_numbers_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
