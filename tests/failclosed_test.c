/*
 * tests/failclosed_test.c: the audit log fails closed (issue 4). When the
 * audit record of a History or GetConversation cannot be written, the read is
 * refused with UNAVAILABLE and answered with no data; a Send that cannot be
 * written is refused and stores nothing; the connection survives; once writes
 * work again everything does, and the audit log holds a record for every read
 * that was answered and none for the refused ones, its chain intact.
 *
 * Fault injection without a hook in the product: carechatd's free-space guard
 * (storage/store.h) refuses every commit while the data volume has less than
 * --min-free-bytes free, and asks statvfs on every commit. The server starts
 * with a reserve 1 GiB below the volume's free space; the test then
 * fallocate()s an unnamed file in $TEST_TMPDIR (the volume of the data
 * directory) until the free space is 1 GiB below the reserve, and closes it to
 * give the space back. The file is unnamed (O_TMPFILE), so the space returns
 * even when the test dies. Skipped when the volume has less than 4 GiB free.
 *
 * Invariant checked throughout: no audit record carries a time inside the
 * window in which the volume was below the reserve.
 *
 * Single-threaded test code; every wait has a deadline; everything is on
 * 127.0.0.1.
 */
#define _GNU_SOURCE /* O_TMPFILE, fallocate() */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/id.h"
#include "base/status.h"
#include "client/carechat.h"
#include "storage/store.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define GIB (1024ULL * 1024 * 1024)
/* Below this much free space the test does not run (it eats 2 GiB). */
#define MIN_VOLUME_FREE (4 * GIB)
/* How far below the volume's free space the server's reserve is, and how far
 * below the reserve the ballast file pushes the free space. */
#define MARGIN GIB
#define PASSWORD "a-long-enough-passphrase"
#define REFUSED_DETAIL "cannot write the audit record"
/* How long the freed space may take to show in statvfs. */
#define RELEASE_DEADLINE_MS 5000

/* Everything the teardown must release when an assertion fails midway. */
static struct {
    struct harness *server;
    struct carechat *root, *doc, *pat;
    int ballast; /* fd of the unnamed file eating the space; -1 when none */
} t = {.ballast = -1};

static char url[FIXTURE_URL_LEN];

static int teardown(void **state) {
    if (t.ballast >= 0)
        close(t.ballast);
    t.ballast = -1;
    carechat_close(t.root);
    carechat_close(t.doc);
    carechat_close(t.pat);
    t.root = t.doc = t.pat = NULL;
    harness_free(t.server);
    t.server = NULL;
    return 0;
}

static const char *tmpdir(void) {
    const char *d = getenv("TEST_TMPDIR");
    return d != NULL ? d : "/tmp";
}

/* Bytes an unprivileged writer may still use on the volume of $TEST_TMPDIR,
 * counted as the server's guard counts them. */
static uint64_t volume_free(void) {
    struct statvfs st;
    if (statvfs(tmpdir(), &st) != 0)
        fail_msg("statvfs %s: %s", tmpdir(), strerror(errno));
    return (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
}

static struct carechat *open_fresh(const char *name) {
    char prof[FIXTURE_DIR_LEN];
    fixture_fresh_profile(name, prof);
    return fixture_open(url, prof);
}

/* `inviter` invites `addr` with `role`; the new account registers. */
static struct carechat *invited(struct carechat *inviter, const char *addr, enum carechat_role role,
                                const char *name) {
    return fixture_invite_register(url, inviter, addr, role, PASSWORD, name, NULL);
}

static struct id account_of(const char *addr) {
    struct carechat_account acc;
    FIXTURE_ASSERT_OK(t.root, carechat_lookup(t.root, addr, &acc));
    return acc.account_id;
}

/* Fails unless the last call on `c` returned `rc` = UNAVAILABLE as the
 * server's answer (not a lost connection or a client deadline), with the
 * detail `detail` when not NULL. */
static void expect_refused(struct carechat *c, int rc, const char *what, const char *detail) {
    if (rc != STATUS_UNAVAILABLE || carechat_error_kind(c) != CARECHAT_ERROR_SERVER)
        fail_msg("%s while the volume is below the reserve: returned %d (kind %d): %s", what, rc,
                 (int)carechat_error_kind(c), carechat_error(c));
    if (detail != NULL && strstr(carechat_error(c), detail) == NULL)
        fail_msg("%s refused without \"%s\": %s", what, detail, carechat_error(c));
}

/* History of `conv` as `c`: exactly the `n` bodies in `want`, oldest first. */
static void expect_history(struct carechat *c, const struct id *conv, const char *const *want,
                           size_t n) {
    struct carechat_messages *list = NULL;
    FIXTURE_ASSERT_OK(c, carechat_history(c, conv, 0, 10, &list));
    if (list->n != n)
        fail_msg("history holds %zu messages, expected %zu", list->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list->items[i].state, CARECHAT_MESSAGE_OK);
        assert_int_equal(list->items[i].text_len, strlen(want[i]));
        assert_memory_equal(list->items[i].text, want[i], strlen(want[i]));
    }
    carechat_messages_free(list);
}

/* The next message the patient's device receives is `want`; it is
 * acknowledged. */
static void expect_delivered(const char *want) {
    struct carechat_message m;
    FIXTURE_ASSERT_OK(t.pat, carechat_recv(t.pat, 2000, &m));
    assert_int_equal(m.state, CARECHAT_MESSAGE_OK);
    assert_int_equal(m.text_len, strlen(want));
    assert_memory_equal(m.text, want, strlen(want));
    carechat_message_cleanup(&m);
    FIXTURE_ASSERT_OK(t.pat, carechat_ack(t.pat));
}

/* Nothing more reaches the patient's device within 300 ms. */
static void expect_nothing_delivered(void) {
    struct carechat_message m;
    int rc = carechat_recv(t.pat, 300, &m);
    if (rc == 0) {
        carechat_message_cleanup(&m);
        fail_msg("the patient received a message that was refused");
    }
    if (rc != STATUS_NOT_FOUND)
        fail_msg("recv: %s", carechat_error(t.pat));
}

static size_t count(const struct carechat_audit_records *r, size_t from, const char *action,
                    const struct id *actor) {
    size_t n = 0;
    for (size_t i = from; i < r->n; i++)
        n += strcmp(r->items[i].action, action) == 0 && r->items[i].has_actor &&
             memcmp(r->items[i].actor.b, actor->b, ID_LEN) == 0;
    return n;
}

/* Reads the provider makes, and the refusals, against the server's audit
 * log: see the file comment. */
static void test_failclosed_refuses_unaudited_reads(void **state) {
    uint64_t free0 = volume_free();
    if (free0 < MIN_VOLUME_FREE) {
        print_message("skipped: the volume of %s has %llu bytes free, this test needs %llu\n",
                      tmpdir(), (unsigned long long)free0, (unsigned long long)MIN_VOLUME_FREE);
        skip();
    }
    uint64_t reserve = free0 - MARGIN;
    char reserve_arg[32];
    snprintf(reserve_arg, sizeof reserve_arg, "%llu", (unsigned long long)reserve);
    /* One record per read, so that each answered read can be matched to its
     * own (reads_test covers repeated reads sharing one). */
    const char *args[] = {"--min-free-bytes", reserve_arg, "--audit-coalesce", "0", NULL};
    assert_int_equal(fixture_start_bootstrapped(args, &t.server), 0);
    fixture_url(t.server, url);

    /* A provider, a patient the provider invited, their direct conversation
     * and one message, read once by each kind of read. */
    t.root = open_fresh("root");
    FIXTURE_ASSERT_OK(t.root, carechat_login(t.root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    char doc_addr[FIXTURE_EMAIL_LEN], pat_addr[FIXTURE_EMAIL_LEN];
    fixture_email("fc-doc", doc_addr);
    fixture_email("fc-pat", pat_addr);
    t.doc = invited(t.root, doc_addr, CARECHAT_ROLE_PROVIDER, "fc-doc");
    t.pat = invited(t.doc, pat_addr, CARECHAT_ROLE_PATIENT, "fc-pat");
    struct id doc_id = account_of(doc_addr);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(t.doc, carechat_open_direct(t.doc, pat_addr, &cv));
    struct id conv = cv.conversation_id;
    carechat_conversation_cleanup(&cv);
    static const char *const first[] = {"first"}, *const both[] = {"first", "third"};
    FIXTURE_ASSERT_OK(t.doc, carechat_send(t.doc, &conv, (const uint8_t *)"first", 5, NULL, NULL));
    expect_history(t.doc, &conv, first, 1);
    FIXTURE_ASSERT_OK(t.doc, carechat_get_conversation(t.doc, &conv, &cv));
    carechat_conversation_cleanup(&cv);
    expect_delivered("first");

    struct carechat_audit_records *before = NULL;
    FIXTURE_ASSERT_OK(t.root, carechat_audit_query(t.root, NULL, &before));
    assert_true(before->n > 0);
    uint64_t head_before = before->items[before->n - 1].index;
    assert_int_equal(count(before, 0, "message.read", &doc_id), 1);
    assert_int_equal(count(before, 0, "conversation.read", &doc_id), 1);
    carechat_audit_records_free(before);

    /* Eat the space: free goes MARGIN below the reserve. */
    uint64_t free1 = volume_free();
    if (free1 <= reserve)
        fail_msg("the volume lost %llu bytes to other processes since the start; rerun",
                 (unsigned long long)(free0 - free1));
    t.ballast = open(tmpdir(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (t.ballast < 0)
        fail_msg("open(O_TMPFILE) in %s: %s", tmpdir(), strerror(errno));
    if (fallocate(t.ballast, 0, 0, (off_t)(free1 - reserve + MARGIN)) != 0)
        fail_msg("fallocate %llu bytes: %s", (unsigned long long)(free1 - reserve + MARGIN),
                 strerror(errno));
    assert_true(volume_free() < reserve);
    int64_t low_from = clock_now();
    /* The guard may trust its last verdict of enough room a moment longer. */
    nanosleep(&(struct timespec){.tv_nsec = 2 * STORE_SPACE_REASK_MS * 1000000L}, NULL);

    /* Reads whose audit record cannot be written are refused, with no data. */
    struct carechat_messages *list = NULL;
    for (int i = 0; i < 2; i++) {
        int rc = carechat_history(t.doc, &conv, 0, 10, &list);
        expect_refused(t.doc, rc, "History", REFUSED_DETAIL);
        assert_null(list);
    }
    memset(&cv, 0, sizeof cv);
    expect_refused(t.doc, carechat_get_conversation(t.doc, &conv, &cv), "GetConversation",
                   REFUSED_DETAIL);
    assert_int_equal(cv.n_members, 0);
    assert_null(cv.members);
    struct carechat_audit_records *none = NULL;
    expect_refused(t.root, carechat_audit_query(t.root, NULL, &none), "QueryAudit", REFUSED_DETAIL);
    assert_null(none);
    /* A message that cannot be written is refused and reaches no one. */
    struct carechat_sent sent;
    memset(&sent, 0, sizeof sent);
    expect_refused(t.doc, carechat_send(t.doc, &conv, (const uint8_t *)"second", 6, NULL, &sent),
                   "Send", NULL);
    expect_nothing_delivered();
    /* Listing conversations (their names are personal data) is a read too. */
    struct carechat_conversations *convs = NULL;
    expect_refused(t.doc, carechat_conversations(t.doc, &convs), "ListConversations",
                   REFUSED_DETAIL);
    assert_null(convs);
    /* The connection survives: a request that needs no record is answered on
     * it (a new connection would need Authenticate, which is a write). */
    struct carechat_devices *devs = NULL;
    FIXTURE_ASSERT_OK(t.doc, carechat_devices(t.doc, &devs));
    assert_int_equal(devs->n, 1);
    carechat_devices_free(devs);

    /* Give the space back. */
    int64_t low_until = clock_now();
    close(t.ballast);
    t.ballast = -1;
    int64_t deadline = clock_monotonic_ms() + RELEASE_DEADLINE_MS;
    while (volume_free() <= reserve && clock_monotonic_ms() < deadline)
        nanosleep(&(struct timespec){.tv_nsec = 20000000L}, NULL);
    if (volume_free() <= reserve)
        fail_msg("the volume has %llu bytes free after the ballast was closed, reserve %llu",
                 (unsigned long long)volume_free(), (unsigned long long)reserve);

    /* Everything works again; the refused message was never stored. */
    expect_history(t.doc, &conv, first, 1);
    FIXTURE_ASSERT_OK(t.doc, carechat_get_conversation(t.doc, &conv, &cv));
    assert_int_equal(cv.n_members, 2);
    carechat_conversation_cleanup(&cv);
    FIXTURE_ASSERT_OK(t.doc, carechat_send(t.doc, &conv, (const uint8_t *)"third", 5, NULL, NULL));
    expect_history(t.doc, &conv, both, 2);
    expect_delivered("third");
    expect_nothing_delivered();

    /* The audit log: one record per answered read, none for the refused ones,
     * nothing at all from the low-space window, the chain linked and intact. */
    struct carechat_audit_records *after = NULL;
    FIXTURE_ASSERT_OK(t.root, carechat_audit_query(t.root, NULL, &after));
    size_t from = 0;
    while (from < after->n && after->items[from].index <= head_before)
        from++;
    assert_int_equal(from, head_before);
    assert_true(from < after->n);
    assert_int_equal(count(after, 0, "message.read", &doc_id), 1 + 2);
    assert_int_equal(count(after, from, "message.read", &doc_id), 2);
    assert_int_equal(count(after, 0, "conversation.read", &doc_id), 1 + 1);
    assert_int_equal(count(after, from, "conversation.read", &doc_id), 1);
    for (size_t i = 0; i < after->n; i++) {
        const struct carechat_audit_record *a = &after->items[i];
        if (a->time >= low_from && a->time <= low_until)
            fail_msg("audit record %llu (%s) was written while the volume was below the reserve",
                     (unsigned long long)a->index, a->action);
        if (i > 0) {
            assert_int_equal(a->index, after->items[i - 1].index + 1);
            assert_memory_equal(a->prev_hash, after->items[i - 1].hash, 32);
        }
        if (i >= from && strcmp(a->action, "message.read") == 0)
            assert_true(a->time > low_until);
    }
    uint64_t head_after = after->items[after->n - 1].index;
    carechat_audit_records_free(after);
    bool ok = false;
    uint64_t bad = 0, checked = 0;
    FIXTURE_ASSERT_OK(t.root, carechat_audit_verify(t.root, &ok, &bad, &checked));
    if (!ok)
        fail_msg("audit chain broken at index %llu", (unsigned long long)bad);
    assert_true(checked >= head_after);

    /* The server logged the guard both ways and the refused audit record. */
    assert_true(harness_log_contains(t.server, "refusing writes: "));
    assert_true(harness_log_contains(t.server, "accepting writes again"));
    assert_true(harness_log_contains(t.server, "cannot append the audit record of message.read"));

    /* and stops cleanly (SIGTERM, exit status 0) */
    carechat_close(t.root);
    carechat_close(t.doc);
    carechat_close(t.pat);
    t.root = t.doc = t.pat = NULL;
    struct harness *server = t.server;
    t.server = NULL;
    assert_int_equal(fixture_stop(server), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_failclosed_refuses_unaudited_reads, teardown),
    };
    return cmocka_run_group_tests_name("failclosed", tests, NULL, NULL);
}
