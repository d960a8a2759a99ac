/*
 * tests/retention_test.c: the retention lifecycle on the real carechatd, with
 * its clock moved by restarts with --clock-offset (issue 12).
 *
 * One world: root (sysadmin), an admin, providers doc, nurse and other, and
 * the patients pat (invited by doc; deactivated on day 0), held (under a
 * legal hold from day 0) and back (deactivated and reactivated in REVIEW).
 * doc and pat talk in a direct conversation whose messages carry a canary;
 * nurse shares a care-team channel with pat (so is of pat's care team
 * without being a member of the direct conversation); other is nobody to pat.
 *
 *   day 0    deactivation: the conversation is read-only at once
 *   day 29   REVIEW: nurse (care team, not a member) and the admin read, doc
 *            reads, other does not; nobody writes; reactivation of `back`
 *            lets it log in and write again
 *   day 31   RESTRICTED: only root reads
 *   day 396  PURGED: nothing reads, reactivation is refused; the data
 *            directory holds no canary bytes, its records of pat do not open
 *            with the key store as it is, nor does a copy of the data taken
 *            before the purge; `held` is still RESTRICTED until its hold is
 *            released, then purged too
 *   kill -9  at several moments of the purge: after a restart the patient is
 *            purged and unreadable, never half
 */
#define _GNU_SOURCE /* memmem() */
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "storage/store.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"

#define PASSWORD "correct-horse-battery-staple"
#define DAY_MS (24LL * 3600 * 1000)
#define CANARY "CANARY-4f1d7a-PATIENT-MESSAGE"
/* How long the maintenance may take to move an account on. */
#define MAINTENANCE_WAIT_MS 20000

struct world {
    struct harness *h;
    uint8_t root[16];
    struct raw_device root_dev;
    struct rawc_user admin, doc, nurse, other, pat, held, back;
    uint8_t direct[16];  /* doc <-> pat, with the canary */
    uint8_t channel[16]; /* pat's care team: doc, nurse */
    uint8_t back_direct[16];
};

static struct world W;

/* ---- frames ------------------------------------------------------------------------ */

static Carechat__V1__Frame *rpc(struct rawc *c, Carechat__V1__Frame *f) {
    return rawc_rpc(c, f);
}

static int status_of(Carechat__V1__Frame *r) {
    assert_non_null(r);
    assert_int_equal(r->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
    return -(int)r->response->status;
}

/* Sends `f` and returns only the status of its answer. */
static int call(struct rawc *c, Carechat__V1__Frame *f) {
    Carechat__V1__Frame *r = rpc(c, f);
    int rc = status_of(r);
    proto_free(r);
    return rc;
}

/* History of `conv` as `c`: the status, and whether a message carries the
 * canary (in *canary). */
static int history(struct rawc *c, const uint8_t conv[16], bool *canary) {
    return rawc_history_contains(c, conv, CANARY, canary);
}

/* The retention state of `account` as `c` sees it, or the status negated. */
static int retention_state(struct rawc *c, const uint8_t account[16], bool *hold) {
    Carechat__V1__Frame f;
    Carechat__V1__GetRetentionState m;
    carechat__v1__frame__init(&f);
    carechat__v1__get_retention_state__init(&m);
    m.account_id = (ProtobufCBinaryData){16, (uint8_t *)account};
    f.body_case = CARECHAT__V1__FRAME__BODY_GET_RETENTION_STATE;
    f.get_retention_state = &m;
    Carechat__V1__Frame *r = rpc(c, &f);
    int rc = status_of(r);
    if (rc == 0) {
        rc = (int)r->response->retention->state;
        if (hold)
            *hold = r->response->retention->legal_hold;
    }
    proto_free(r);
    return rc;
}

/* How many audit records by `actor` about `patient` with outcome `status`
 * root (`c`) finds; of them, in *named (if not NULL), how many carry the
 * patient's display name ("Someone", rawc_make_user()'s). */
static size_t audit_count_named(struct rawc *c, const uint8_t actor[16], const uint8_t patient[16],
                                int status, size_t *named) {
    Carechat__V1__Frame f;
    Carechat__V1__QueryAudit m;
    carechat__v1__frame__init(&f);
    carechat__v1__query_audit__init(&m);
    m.actor_account_id = (ProtobufCBinaryData){16, (uint8_t *)actor};
    m.patient_account_id = (ProtobufCBinaryData){16, (uint8_t *)patient};
    m.limit = 500;
    f.body_case = CARECHAT__V1__FRAME__BODY_QUERY_AUDIT;
    f.query_audit = &m;
    Carechat__V1__Frame *r = rpc(c, &f);
    assert_int_equal(status_of(r), 0);
    size_t n = 0;
    if (named)
        *named = 0;
    for (size_t i = 0; i < r->response->audit_page->n_records; i++) {
        const Carechat__V1__AuditRecord *a = r->response->audit_page->records[i];
        if (-(int)a->outcome != status)
            continue;
        n++;
        if (named && strcmp(a->patient_name, "Someone") == 0)
            (*named)++;
    }
    proto_free(r);
    return n;
}

static size_t audit_count(struct rawc *c, const uint8_t actor[16], const uint8_t patient[16],
                          int status) {
    return audit_count_named(c, actor, patient, status, NULL);
}

/* ListConversations for review of `patient` as `c`: the status, and whether
 * `conv` is listed (in *listed). */
static int review_list(struct rawc *c, const uint8_t patient[16], const uint8_t conv[16],
                       bool *listed) {
    Carechat__V1__Frame f;
    Carechat__V1__ListConversations m;
    carechat__v1__frame__init(&f);
    carechat__v1__list_conversations__init(&m);
    m.reviewed_account_id = (ProtobufCBinaryData){16, (uint8_t *)patient};
    f.body_case = CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS;
    f.list_conversations = &m;
    Carechat__V1__Frame *r = rpc(c, &f);
    int rc = status_of(r);
    *listed = false;
    if (rc == 0)
        for (size_t i = 0; i < r->response->conversation_page->n_conversations; i++)
            if (memcmp(r->response->conversation_page->conversations[i]->conversation_id.data, conv,
                       16) == 0)
                *listed = true;
    proto_free(r);
    return rc;
}

static int deactivate(struct rawc *c, const uint8_t account[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__DeactivateAccount m;
    carechat__v1__frame__init(&f);
    carechat__v1__deactivate_account__init(&m);
    m.account_id = (ProtobufCBinaryData){16, (uint8_t *)account};
    f.body_case = CARECHAT__V1__FRAME__BODY_DEACTIVATE_ACCOUNT;
    f.deactivate_account = &m;
    return call(c, &f);
}

static int reactivate(struct rawc *c, const uint8_t account[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__ReactivateAccount m;
    carechat__v1__frame__init(&f);
    carechat__v1__reactivate_account__init(&m);
    m.account_id = (ProtobufCBinaryData){16, (uint8_t *)account};
    f.body_case = CARECHAT__V1__FRAME__BODY_REACTIVATE_ACCOUNT;
    f.reactivate_account = &m;
    return call(c, &f);
}

static int legal_hold(struct rawc *c, const uint8_t account[16], bool hold, const char *reason) {
    Carechat__V1__Frame f;
    Carechat__V1__SetLegalHold m;
    carechat__v1__frame__init(&f);
    carechat__v1__set_legal_hold__init(&m);
    m.account_id = (ProtobufCBinaryData){16, (uint8_t *)account};
    m.hold = hold;
    m.reason = (char *)reason;
    f.body_case = CARECHAT__V1__FRAME__BODY_SET_LEGAL_HOLD;
    f.set_legal_hold = &m;
    return call(c, &f);
}

static void create_direct(struct rawc *c, const uint8_t peer[16], uint8_t conv[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__CreateDirect m;
    carechat__v1__frame__init(&f);
    carechat__v1__create_direct__init(&m);
    m.peer_account_id = (ProtobufCBinaryData){16, (uint8_t *)peer};
    f.body_case = CARECHAT__V1__FRAME__BODY_CREATE_DIRECT;
    f.create_direct = &m;
    Carechat__V1__Frame *r = rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    memcpy(conv, r->response->conversation->conversation_id.data, 16);
    proto_free(r);
}

static void create_channel(struct rawc *c, const uint8_t patient[16], const uint8_t member[16],
                           uint8_t conv[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__CreateChannel m;
    ProtobufCBinaryData members[1] = {{16, (uint8_t *)member}};
    carechat__v1__frame__init(&f);
    carechat__v1__create_channel__init(&m);
    m.patient_account_id = (ProtobufCBinaryData){16, (uint8_t *)patient};
    m.name = "Care team";
    m.n_member_account_ids = 1;
    m.member_account_ids = members;
    f.body_case = CARECHAT__V1__FRAME__BODY_CREATE_CHANNEL;
    f.create_channel = &m;
    Carechat__V1__Frame *r = rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    memcpy(conv, r->response->conversation->conversation_id.data, 16);
    proto_free(r);
}

/* `from` (its first device) writes `text` in the direct conversation `conv`
 * with `to` (one device); returns the status. */
static int send_text(struct rawc *c, const struct rawc_user *from, const struct rawc_user *to,
                     const uint8_t conv[16], const char *text) {
    struct rawc_wrap_to wrap[1] = {{to->dev[0].id, 1}};
    uint8_t cmid[16];
    randombytes_buf(cmid, sizeof cmid);
    Carechat__V1__Frame *r = rawc_send_msg(c, conv, cmid, from->dev[0].id, wrap, 1, text, false);
    int rc = status_of(r);
    proto_free(r);
    return rc;
}

/* ---- the server and its clock ------------------------------------------------------ */

static struct rawc *as(struct rawc_user *u) {
    return rawc_open_login(W.h, u->email, PASSWORD, &u->dev[0], NULL);
}

static struct rawc *as_root(void) {
    return rawc_open_login(W.h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &W.root_dev, NULL);
}

/* Restarts the server with its clock `days` ahead of the real one. */
static void restart_at_day(int days) {
    int status = -1;
    assert_int_equal(harness_stop(W.h, &status), 0);
    assert_int_equal(status, 0);
    char offset[32];
    snprintf(offset, sizeof offset, "%lld", (long long)days * DAY_MS);
    for (int i = 0; i + 1 < W.h->n_args; i++)
        if (strcmp(W.h->args[i], "--clock-offset") == 0) {
            free(W.h->args[i + 1]);
            W.h->args[i + 1] = xstrdup(offset);
            assert_int_equal(harness_restart(W.h), 0);
            return;
        }
    assert_true(W.h->n_args + 2 <= HARNESS_MAX_ARGS);
    W.h->args[W.h->n_args++] = xstrdup("--clock-offset");
    W.h->args[W.h->n_args++] = xstrdup(offset);
    assert_int_equal(harness_restart(W.h), 0);
}

/* Waits until root sees `account` in `state` (bounded). */
static void wait_state(const uint8_t account[16], int state) {
    struct rawc *r = as_root();
    int64_t deadline = clock_monotonic_ms() + MAINTENANCE_WAIT_MS;
    int got;
    while ((got = retention_state(r, account, NULL)) != state && clock_monotonic_ms() < deadline)
        usleep(100 * 1000);
    rawc_free(r);
    if (got != state)
        fail_msg("the account is in state %d, not %d, after %d ms", got, state,
                 MAINTENANCE_WAIT_MS);
}

/* ---- the data directory, read without the server -------------------------------------- */

/* Whether `needle` occurs in any file under `dir` (recursively). */
static bool dir_contains(const char *dir, const char *needle) {
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "grep -rqaF -- '%s' '%s'", needle, dir);
    return system(cmd) == 0;
}

struct canary_scan {
    bool found;
    size_t records;
};

static bool look_for_canary(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                            size_t value_len) {
    (void)key;
    (void)key_len;
    struct canary_scan *s = ctx;
    s->records++;
    if (memmem(value, value_len, CANARY, strlen(CANARY)))
        s->found = true;
    return !s->found;
}

/* Whether the messages of `data_dir`'s database, opened with the key store in
 * `key_dir`, still yield the canary. */
static bool store_yields_canary(const char *data_dir, const char *key_dir) {
    struct store_config sc = {.data_dir = data_dir, .mode = STORE_OPEN, .key_dir = key_dir};
    struct store *s = NULL;
    assert_int_equal(store_open(&sc, &s), 0);
    struct canary_scan scan = {0};
    for (int cf = 0; cf < CF_COUNT && !scan.found; cf++)
        assert_true(store_scan(s, (enum store_cf)cf, NULL, 0, NULL, 0, SIZE_MAX, look_for_canary,
                               &scan) >= 0);
    store_close(s);
    return scan.found;
}

/* The records of `cf` in `data_dir`'s database that open with its keys. */
static size_t store_count(const char *data_dir, enum store_cf cf) {
    struct store_config sc = {.data_dir = data_dir, .mode = STORE_OPEN};
    struct store *s = NULL;
    assert_int_equal(store_open(&sc, &s), 0);
    struct canary_scan scan = {0};
    assert_true(store_scan(s, cf, NULL, 0, NULL, 0, SIZE_MAX, look_for_canary, &scan) >= 0);
    store_close(s);
    return scan.records;
}

static void copy_dir(const char *from, const char *to) {
    char cmd[2 * PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

/* ---- the world ---------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    /* Invitations live 45 days: still there in the copy of day 31. */
    const char *args[] = {"--maintenance-interval", "1", "--invite-ttl", "3888000", NULL};
    if (fixture_start_bootstrapped(args, &W.h) != 0)
        return -1;
    raw_device_make(&W.root_dev);
    struct rawc *root =
        rawc_open_login(W.h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &W.root_dev, W.root);
    rawc_make_user(W.h, root, CARECHAT__V1__ROLE__ADMIN, PASSWORD, &W.admin);
    struct rawc *admin = as(&W.admin);
    rawc_make_user(W.h, admin, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &W.doc);
    rawc_make_user(W.h, admin, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &W.nurse);
    rawc_make_user(W.h, admin, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &W.other);
    struct rawc *doc = as(&W.doc);
    rawc_make_user(W.h, doc, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &W.pat);
    rawc_make_user(W.h, doc, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &W.held);
    rawc_make_user(W.h, doc, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &W.back);
    create_direct(doc, W.pat.account, W.direct);
    assert_int_equal(send_text(doc, &W.doc, &W.pat, W.direct, "before: " CANARY), 0);
    create_channel(doc, W.pat.account, W.nurse.account, W.channel);
    create_direct(doc, W.back.account, W.back_direct);
    /* An invitation nobody uses: it holds an email under the server's key
     * until the maintenance sweeps it once it expired. */
    char code[RAWC_CODE_LEN];
    assert_int_equal(
        rawc_invite(doc, "never-registers@clinic.example", CARECHAT__V1__ROLE__PATIENT, code, NULL),
        0);
    /* Day 0: pat and back are deactivated, held is put under a hold first. */
    assert_int_equal(legal_hold(root, W.held.account, true, "litigation hold 17"), 0);
    assert_int_equal(deactivate(doc, W.pat.account), 0);
    assert_int_equal(deactivate(doc, W.held.account), 0);
    assert_int_equal(deactivate(doc, W.back.account), 0);
    assert_int_equal(send_text(doc, &W.doc, &W.pat, W.direct, "after"), STATUS_FORBIDDEN);
    rawc_free(doc);
    rawc_free(admin);
    rawc_free(root);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return fixture_stop(W.h) == 0 ? 0 : -1;
}

/* ---- the days ----------------------------------------------------------------------- */

static void test_retention_review_on_day_29(void **state) {
    (void)state;
    restart_at_day(29);
    bool canary;
    struct rawc *nurse = as(&W.nurse), *admin = as(&W.admin), *doc = as(&W.doc);
    struct rawc *other = as(&W.other), *root = as_root();
    assert_int_equal(retention_state(root, W.pat.account, NULL),
                     CARECHAT__V1__RETENTION_STATE__RETENTION_REVIEW);
    /* The care team (not a member here), the admin and the member read. */
    assert_int_equal(history(nurse, W.direct, &canary), 0);
    assert_true(canary);
    assert_int_equal(history(admin, W.direct, &canary), 0);
    assert_true(canary);
    assert_int_equal(history(doc, W.direct, &canary), 0);
    assert_true(canary);
    /* Another provider does not even learn that it exists; the refusal is
     * audited with the patient it concerned. */
    assert_int_equal(audit_count(root, W.other.account, W.pat.account, STATUS_NOT_FOUND), 0);
    assert_int_equal(history(other, W.direct, &canary), STATUS_NOT_FOUND);
    /* (the refusal's record is written beside the answer: wait for it) */
    size_t refusals = 0;
    for (int i = 0; i < 50 && refusals == 0; i++, usleep(100 * 1000))
        refusals = audit_count(root, W.other.account, W.pat.account, STATUS_NOT_FOUND);
    assert_int_equal(refusals, 1);
    /* The record carries the patient's name for whoever reads the log. */
    size_t named = 0;
    assert_int_equal(
        audit_count_named(root, W.other.account, W.pat.account, STATUS_NOT_FOUND, &named), 1);
    assert_int_equal(named, 1);
    /* Reviewers find the patient's conversations. */
    bool listed;
    assert_int_equal(review_list(admin, W.pat.account, W.direct, &listed), 0);
    assert_true(listed);
    assert_int_equal(review_list(nurse, W.pat.account, W.direct, &listed), 0);
    assert_true(listed);
    assert_int_equal(review_list(other, W.pat.account, W.direct, &listed), STATUS_NOT_FOUND);
    /* An active patient is under nobody's review. */
    assert_int_equal(review_list(admin, W.doc.account, W.direct, &listed), STATUS_NOT_FOUND);
    /* Read-only for everyone. */
    assert_int_equal(send_text(doc, &W.doc, &W.pat, W.direct, "day 29"), STATUS_FORBIDDEN);
    /* Reactivation in REVIEW: the patient is back to normal use. */
    assert_int_equal(reactivate(doc, W.back.account), STATUS_FORBIDDEN);
    assert_int_equal(reactivate(admin, W.back.account), 0);
    assert_int_equal(retention_state(root, W.back.account, NULL),
                     CARECHAT__V1__RETENTION_STATE__RETENTION_ACTIVE);
    struct rawc *back = as(&W.back);
    assert_int_equal(send_text(back, &W.back, &W.doc, W.back_direct, "I am back"), 0);
    assert_int_equal(send_text(doc, &W.doc, &W.back, W.back_direct, "welcome back"), 0);
    rawc_free(back);
    rawc_free(root);
    rawc_free(other);
    rawc_free(doc);
    rawc_free(admin);
    rawc_free(nurse);
}

static void test_retention_restricted_on_day_31(void **state) {
    (void)state;
    restart_at_day(31);
    wait_state(W.pat.account, CARECHAT__V1__RETENTION_STATE__RETENTION_RESTRICTED);
    bool canary;
    struct rawc *nurse = as(&W.nurse), *admin = as(&W.admin), *doc = as(&W.doc);
    struct rawc *root = as_root();
    assert_int_equal(history(nurse, W.direct, &canary), STATUS_NOT_FOUND);
    assert_int_equal(history(admin, W.direct, &canary), STATUS_NOT_FOUND);
    assert_int_equal(history(doc, W.direct, &canary), STATUS_NOT_FOUND);
    assert_int_equal(history(root, W.direct, &canary), 0);
    assert_true(canary);
    bool listed;
    assert_int_equal(review_list(admin, W.pat.account, W.direct, &listed), STATUS_NOT_FOUND);
    assert_int_equal(review_list(root, W.pat.account, W.direct, &listed), 0);
    assert_true(listed);
    /* Only a sysadmin may reactivate now. */
    assert_int_equal(reactivate(admin, W.pat.account), STATUS_FORBIDDEN);
    /* `held`, under a hold since before its deactivation, never left
     * REVIEW: the hold stops the clock. */
    bool hold = false;
    assert_int_equal(retention_state(root, W.held.account, &hold),
                     CARECHAT__V1__RETENTION_STATE__RETENTION_REVIEW);
    assert_true(hold);
    rawc_free(root);
    rawc_free(doc);
    rawc_free(admin);
    rawc_free(nurse);
}

static void test_retention_purged_on_day_396(void **state) {
    (void)state;
    /* A copy of everything before the purge, keys included. */
    char before[PATH_MAX + 16];
    snprintf(before, sizeof before, "%s.before", W.h->data_dir);
    int status = -1;
    assert_int_equal(harness_stop(W.h, &status), 0);
    copy_dir(W.h->data_dir, before);
    assert_int_equal(harness_restart(W.h), 0);

    restart_at_day(396);
    wait_state(W.pat.account, CARECHAT__V1__RETENTION_STATE__RETENTION_PURGED);
    bool canary;
    struct rawc *root = as_root(), *doc = as(&W.doc);
    assert_int_equal(history(root, W.direct, &canary), STATUS_NOT_FOUND);
    assert_int_equal(history(doc, W.direct, &canary), STATUS_NOT_FOUND);
    assert_int_equal(reactivate(root, W.pat.account), STATUS_CONFLICT);
    assert_int_equal(legal_hold(root, W.pat.account, true, "too late"), STATUS_CONFLICT);
    /* The audit records stay, but the purged patient's name is gone with its key. */
    size_t named = 1;
    assert_true(audit_count_named(root, W.other.account, W.pat.account, STATUS_NOT_FOUND, &named) >=
                1);
    assert_int_equal(named, 0);
    /* The hold kept `held` from every step; released, it is purged too
     * (its windows moved on by the time held, so another restart far ahead). */
    bool hold = false;
    assert_int_equal(retention_state(root, W.held.account, &hold),
                     CARECHAT__V1__RETENTION_STATE__RETENTION_REVIEW);
    assert_true(hold);
    assert_int_equal(legal_hold(root, W.held.account, false, ""), 0);
    rawc_free(doc);
    rawc_free(root);
    restart_at_day(396 + 400);
    wait_state(W.held.account, CARECHAT__V1__RETENTION_STATE__RETENTION_PURGED);

    /* Wait for the compaction of the purge, then look at the files. */
    int64_t deadline = clock_monotonic_ms() + MAINTENANCE_WAIT_MS;
    while (!harness_log_contains(W.h, "compacted after a purge") && clock_monotonic_ms() < deadline)
        usleep(100 * 1000);
    assert_true(harness_log_contains(W.h, "compacted after a purge"));
    assert_int_equal(harness_stop(W.h, &status), 0);
    assert_int_equal(status, 0);
    /* Finishes anything the stop interrupted (see the kill -9 test). */
    assert_int_equal(harness_restart(W.h), 0);
    assert_int_equal(harness_stop(W.h, &status), 0);
    char keys[PATH_MAX + 16], before_keys[PATH_MAX + 32];
    snprintf(keys, sizeof keys, "%s/keys", W.h->data_dir);
    snprintf(before_keys, sizeof before_keys, "%s/keys", before);
    /* No byte of the canary, the email or the name anywhere (SST, WAL, LOG,
     * MANIFEST, blob files, the key store). */
    assert_false(dir_contains(W.h->data_dir, CANARY));
    assert_false(dir_contains(W.h->data_dir, W.pat.email));
    /* Nothing of pat opens any more, neither now nor in the old copy with the
     * key store as it is now; the old copy with its own old keys still did
     * (so the check can see the canary when it is there). */
    assert_false(store_yields_canary(W.h->data_dir, keys));
    assert_false(store_yields_canary(before, keys));
    assert_true(store_yields_canary(before, before_keys));
    /* The sweeps: the expired invitation is gone, and of the sessions only
     * the last day's login (root's) is left. */
    assert_int_equal(store_count(before, CF_INVITES), 1);
    assert_true(store_count(before, CF_SESSIONS) >= 4); /* day 31 logins */
    assert_int_equal(store_count(W.h->data_dir, CF_INVITES), 0);
    assert_int_equal(store_count(W.h->data_dir, CF_SESSIONS), 1);
    assert_int_equal(harness_restart(W.h), 0);
}

/* kill -9 at several moments of a purge: after a restart the patient is
 * purged and nothing of it opens, never half. */
static void test_retention_kill9_during_purge(void **state) {
    (void)state;
    /* A second world on its own server: a patient with a message, deactivated. */
    struct harness *saved = W.h;
    const char *args[] = {"--maintenance-interval", "1", NULL};
    assert_int_equal(fixture_start_bootstrapped(args, &W.h), 0);
    struct raw_device root_dev;
    raw_device_make(&root_dev);
    struct rawc *root =
        rawc_open_login(W.h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
    struct rawc_user admin, doc, pat;
    rawc_make_user(W.h, root, CARECHAT__V1__ROLE__ADMIN, PASSWORD, &admin);
    struct rawc *a = rawc_open_login(W.h, admin.email, PASSWORD, &admin.dev[0], NULL);
    rawc_make_user(W.h, a, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &doc);
    struct rawc *d = rawc_open_login(W.h, doc.email, PASSWORD, &doc.dev[0], NULL);
    rawc_make_user(W.h, d, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &pat);
    uint8_t conv[16];
    create_direct(d, pat.account, conv);
    assert_int_equal(send_text(d, &doc, &pat, conv, CANARY), 0);
    assert_int_equal(deactivate(d, pat.account), 0);
    rawc_free(d);
    rawc_free(a);
    rawc_free(root);
    int status = -1;
    assert_int_equal(harness_stop(W.h, &status), 0);
    char base[PATH_MAX + 16];
    snprintf(base, sizeof base, "%s.base", W.h->data_dir);
    copy_dir(W.h->data_dir, base);

    char offset[32];
    snprintf(offset, sizeof offset, "%lld", 400 * DAY_MS);
    W.h->args[W.h->n_args++] = xstrdup("--clock-offset");
    W.h->args[W.h->n_args++] = xstrdup(offset);
    const int delays_ms[] = {0, 30, 80, 150, 300};
    for (size_t i = 0; i < sizeof delays_ms / sizeof delays_ms[0]; i++) {
        char cmd[4 * PATH_MAX + 64];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", W.h->data_dir, base,
                 W.h->data_dir);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(harness_restart(W.h), 0);
        usleep((useconds_t)delays_ms[i] * 1000);
        harness_kill9(W.h);
        assert_int_equal(harness_restart(W.h), 0);
        struct rawc *r =
            rawc_open_login(W.h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
        int64_t deadline = clock_monotonic_ms() + MAINTENANCE_WAIT_MS;
        int got;
        while ((got = retention_state(r, pat.account, NULL)) !=
                   CARECHAT__V1__RETENTION_STATE__RETENTION_PURGED &&
               clock_monotonic_ms() < deadline)
            usleep(50 * 1000);
        assert_int_equal(got, CARECHAT__V1__RETENTION_STATE__RETENTION_PURGED);
        bool canary;
        assert_int_equal(history(r, conv, &canary), STATUS_NOT_FOUND);
        rawc_free(r);
        /* A stop may come before the maintenance destroyed the key: the next
         * start finishes the purge before it serves. */
        assert_int_equal(harness_stop(W.h, &status), 0);
        assert_int_equal(harness_restart(W.h), 0);
        assert_int_equal(harness_stop(W.h, &status), 0);
        char keys[PATH_MAX + 16];
        snprintf(keys, sizeof keys, "%s/keys", W.h->data_dir);
        assert_false(store_yields_canary(W.h->data_dir, keys));
        printf("kill -9 after %d ms: purged, nothing opens\n", delays_ms[i]);
    }
    harness_free(W.h);
    W.h = saved;
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retention_review_on_day_29),
        cmocka_unit_test(test_retention_restricted_on_day_31),
        cmocka_unit_test(test_retention_purged_on_day_396),
        cmocka_unit_test(test_retention_kill9_during_purge),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
