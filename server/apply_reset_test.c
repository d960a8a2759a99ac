/*
 * server/apply_reset_test.c: apply for PasswordResetRequest and PasswordReset
 * (entry.proto), through the real journal and RocksDB in $TEST_TMPDIR: the
 * reset record (a hash, never the code) and its email row; a new request
 * replacing the old code and its unsent email; the code working once, dying
 * at the 5th wrong try and at its expiry; sessions ended by a reset; the
 * audit records; and a replay on an empty store giving the same contents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply_fixture.h"
#include "server/audit.h"
#include "server/records.h"
#include "server/records_notify.h"
#include "storage/store.h"

#define T0 FIXTURE_T0
#define TTL (15 * 60 * 1000)

static struct fixture_person g_root, g_pat;
static uint8_t g_token[32]; /* the hash of the session fixture_join() made */

static int request(struct fixture_db *db, const uint8_t index[32], const char *code, int64_t time) {
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)code, strlen(code));
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PasswordResetRequest m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__password_reset_request__init(&m);
    e.time = time;
    m.email_index = fixture_bin(index, 32);
    m.code_hash = fixture_bin(h, 32);
    m.expires_at = time + TTL;
    m.attempts = 5;
    m.mail_code = (char *)code;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PASSWORD_RESET_REQUEST;
    e.password_reset_request = &m;
    return fixture_propose(db, &e);
}

/* Returns the apply status; *done tells whether the password was reset (the
 * result is the account id). */
static int reset(struct fixture_db *db, const uint8_t index[32], const char *code, int64_t time,
                 bool *done) {
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)code, strlen(code));
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PasswordReset m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__password_reset__init(&m);
    e.time = time;
    m.email_index = fixture_bin(index, 32);
    m.code_hash = fixture_bin(h, 32);
    m.password_hash = "$argon2id$reset";
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PASSWORD_RESET;
    e.password_reset = &m;
    int rc = fixture_propose(db, &e);
    const struct buf *r = fixture_last_result();
    *done = r->len == ID_LEN && memcmp(r->data, g_pat.id.b, ID_LEN) == 0;
    if (!*done)
        assert_int_equal(r->len, 0);
    return rc;
}

static struct rec_account account(struct fixture_db *db) {
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(db->store, CF_ACCOUNTS, g_pat.id.b, ID_LEN, &v), 0);
    struct rec_account a;
    assert_int_equal(rec_account_decode(v.data, v.len, &a), 0);
    buf_cleanup(&v);
    return a;
}

struct jobs {
    int n;
    struct rec_outbox_job last;
};

static bool visit_job(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    struct jobs *j = ctx;
    rec_outbox_job_cleanup(&j->last);
    assert_int_equal(rec_outbox_job_decode(v, vl, &j->last), 0);
    j->n++;
    return true;
}

/* The outbox's job rows: how many, and the last one (clean it up). */
static struct jobs jobs(struct fixture_db *db) {
    struct jobs j;
    memset(&j, 0, sizeof j);
    uint8_t tag = REC_OUTBOX_TAG_JOB;
    assert_true(store_scan(db->store, CF_OUTBOX, &tag, 1, NULL, 0, 100, visit_job, &j) >= 0);
    return j;
}

static void expect_audit(struct fixture_db *db, uint32_t action, int status, bool names_account) {
    struct rec_audit a = fixture_last_audit(db);
    assert_int_equal(a.action, action);
    assert_int_equal(a.outcome, status ? (uint32_t)status_wire(status) : 0);
    assert_true(id_is_zero(&a.actor));
    if (names_account) {
        assert_int_equal(a.object_len, ID_LEN);
        assert_memory_equal(a.object, g_pat.id.b, ID_LEN);
    } else {
        assert_int_equal(a.object_len, 0);
    }
}

/* A session touch of the patient's session at `time`. */
static int touch(struct fixture_db *db, int64_t time) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__SessionTouch st;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__session_touch__init(&st);
    e.time = time;
    st.token_hash = fixture_bin(g_token, 32);
    st.idle_expires_at = time + 1000;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_TOUCH;
    e.session_touch = &st;
    return fixture_propose(db, &e);
}

#define CODE1 "0123456789abcdef0001"
#define CODE2 "0123456789abcdef0002"
#define CODE3 "0123456789abcdef0003"
#define CODE4 "0123456789abcdef0004"

static void run_scenario(struct fixture_db *db) {
    fixture_person(&g_root, "root@clinic.example", 1);
    fixture_person(&g_pat, "pat@home.example", 2);
    fixture_bootstrap(db, &g_root);
    struct fixture_dev d;
    fixture_dev_make(&d, 1);
    fixture_join(db, &g_root, &g_pat, REC_ROLE_PATIENT, &d);
    crypto_hash_sha256(g_token, (const uint8_t *)g_pat.email, strlen(g_pat.email) - 2);
    int64_t t = T0 + 1000;
    bool done;

    /* An unknown email: only the audit record, no email. */
    struct fixture_person nobody;
    fixture_person(&nobody, "nobody@home.example", 3);
    assert_int_equal(request(db, nobody.index, CODE1, t), 0);
    expect_audit(db, REC_AUDIT_PASSWORD_RESET_REQUEST, STATUS_NOT_FOUND, false);
    struct jobs j = jobs(db);
    assert_int_equal(j.n, 0);

    /* Malformed: a code that is not the hashed one, a past expiry. */
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PasswordResetRequest m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__password_reset_request__init(&m);
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)CODE1, strlen(CODE1));
    e.time = t;
    m.email_index = fixture_bin(g_pat.index, 32);
    m.code_hash = fixture_bin(h, 32);
    m.expires_at = t + TTL;
    m.attempts = 5;
    m.mail_code = CODE2;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PASSWORD_RESET_REQUEST;
    e.password_reset_request = &m;
    assert_int_equal(fixture_propose(db, &e), STATUS_BAD_REQUEST);
    m.mail_code = CODE1;
    m.expires_at = t;
    assert_int_equal(fixture_propose(db, &e), STATUS_BAD_REQUEST);

    /* The account's reset record holds the hash; the email row the code. */
    assert_int_equal(request(db, g_pat.index, CODE1, t), 0);
    expect_audit(db, REC_AUDIT_PASSWORD_RESET_REQUEST, 0, true);
    struct rec_account a = account(db);
    assert_memory_equal(a.reset_code_hash, h, 32);
    assert_true(a.reset_expires_at == t + TTL && a.reset_attempts == 5);
    rec_account_cleanup(&a);
    j = jobs(db);
    assert_int_equal(j.n, 1);
    assert_int_equal(j.last.kind, REC_NOTICE_PASSWORD_RESET);
    assert_int_equal(j.last.channel, REC_CHANNEL_EMAIL);
    assert_string_equal(j.last.code, CODE1);
    assert_string_equal(j.last.email, g_pat.email);
    assert_memory_equal(j.last.account.b, g_pat.id.b, ID_LEN);
    rec_outbox_job_cleanup(&j.last);

    /* A new request replaces the code and its unsent email. */
    assert_int_equal(request(db, g_pat.index, CODE2, t + 1), 0);
    j = jobs(db);
    assert_int_equal(j.n, 1);
    assert_string_equal(j.last.code, CODE2);
    rec_outbox_job_cleanup(&j.last);
    assert_int_equal(reset(db, g_pat.index, CODE1, t + 2, &done), 0);
    assert_false(done);
    expect_audit(db, REC_AUDIT_PASSWORD_RESET, STATUS_FORBIDDEN, true);
    a = account(db);
    assert_int_equal(a.reset_attempts, 4);
    assert_string_equal(a.password_hash, "$argon2id$fake2");
    rec_account_cleanup(&a);

    /* The right code: the new password, the sessions before it ended, the
     * code consumed with its email; a second use fails. */
    assert_int_equal(touch(db, t + 3), 0);
    assert_int_equal(reset(db, g_pat.index, CODE2, t + 4, &done), 0);
    assert_true(done);
    expect_audit(db, REC_AUDIT_PASSWORD_RESET, 0, true);
    a = account(db);
    assert_string_equal(a.password_hash, "$argon2id$reset");
    assert_true(a.sessions_after == t + 4);
    static const uint8_t zero[32];
    assert_memory_equal(a.reset_code_hash, zero, 32);
    rec_account_cleanup(&a);
    assert_int_equal(jobs(db).n, 0);
    assert_int_equal(touch(db, t + 5), STATUS_UNAUTHENTICATED);
    assert_int_equal(reset(db, g_pat.index, CODE2, t + 6, &done), 0);
    assert_false(done);
    expect_audit(db, REC_AUDIT_PASSWORD_RESET, STATUS_FORBIDDEN, true);

    /* Five wrong tries kill the code: the right one then fails. */
    assert_int_equal(request(db, g_pat.index, CODE3, t + 10), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(reset(db, g_pat.index, CODE4, t + 11 + i, &done), 0);
        assert_false(done);
    }
    a = account(db);
    assert_memory_equal(a.reset_code_hash, zero, 32);
    assert_int_equal(a.reset_attempts, 0);
    rec_account_cleanup(&a);
    assert_int_equal(reset(db, g_pat.index, CODE3, t + 20, &done), 0);
    assert_false(done);

    /* Four wrong tries leave the fifth chance. */
    assert_int_equal(request(db, g_pat.index, CODE4, t + 30), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(reset(db, g_pat.index, CODE1, t + 31 + i, &done), 0);
    assert_int_equal(reset(db, g_pat.index, CODE4, t + 40, &done), 0);
    assert_true(done);

    /* Expired: the right code at the expiry fails, and is gone after. */
    assert_int_equal(request(db, g_pat.index, CODE1, t + 50), 0);
    assert_int_equal(reset(db, g_pat.index, CODE1, t + 50 + TTL, &done), 0);
    assert_false(done);
    a = account(db);
    assert_memory_equal(a.reset_code_hash, zero, 32);
    rec_account_cleanup(&a);
    assert_int_equal(jobs(db).n, 0);

    /* An unknown email's reset: refused, audited without an object. */
    assert_int_equal(reset(db, nobody.index, CODE1, t + 60, &done), 0);
    assert_false(done);
    expect_audit(db, REC_AUDIT_PASSWORD_RESET, STATUS_FORBIDDEN, false);
}

static void test_apply_reset_scenario(void **state) {
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "apply-reset");
    run_scenario(&db);
    fixture_close(&db);
    fixture_log_cleanup();
}

static void test_apply_reset_replay_is_deterministic(void **state) {
    fixture_check_replay("apply-reset", run_scenario);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_reset_scenario),
        cmocka_unit_test(test_apply_reset_replay_is_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
