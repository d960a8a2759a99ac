/*
 * server/apply_keybackup_test.c: apply for KeyBackupPut and KeyBackupDelete
 * (entry.proto), through the real journal and RocksDB in $TEST_TMPDIR: the
 * next segment only, a retry stored once, the caps the entry carries, the
 * index kept in step with the segments, compaction by deleting the older
 * segments, the audit records, a deactivated account refused, the purge
 * deleting every record of the backup, and a replay on an empty store giving
 * the same contents.
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
#include "server/records_keybackup.h"
#include "storage/keys.h"
#include "storage/store.h"

#define T0 FIXTURE_T0
#define DAY FIXTURE_DAY

static struct fixture_person g_root, g_pat;
static struct fixture_dev g_dev;

struct caps {
    uint32_t segment_max, max_segments;
    uint64_t max_bytes;
};
static const struct caps CAPS = {1000, 3, 10000};

/* The key id segments are put under (the first byte varies it). */
static uint8_t g_kid[REC_KEY_BACKUP_KEY_ID_LEN] = {1, 2, 3};

static int put(struct fixture_db *db, uint64_t seq, const char *data, int64_t time,
               const struct caps *c) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__KeyBackupPut m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__key_backup_put__init(&m);
    e.time = time;
    e.actor_account_id = fixture_bin(g_pat.id.b, ID_LEN);
    e.actor_device_id = fixture_bin(g_dev.id.b, ID_LEN);
    m.seq = seq;
    m.data = fixture_bin(data, strlen(data));
    m.segment_max = c->segment_max;
    m.max_segments = c->max_segments;
    m.max_total_bytes = c->max_bytes;
    m.key_id = fixture_bin(g_kid, sizeof g_kid);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_KEY_BACKUP_PUT;
    e.key_backup_put = &m;
    return fixture_propose(db, &e);
}

static int delete_before(struct fixture_db *db, uint64_t before, int64_t time) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__KeyBackupDelete m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__key_backup_delete__init(&m);
    e.time = time;
    e.actor_account_id = fixture_bin(g_pat.id.b, ID_LEN);
    e.actor_device_id = fixture_bin(g_dev.id.b, ID_LEN);
    m.before_seq = before;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_KEY_BACKUP_DELETE;
    e.key_backup_delete = &m;
    return fixture_propose(db, &e);
}

/* The created_at a KeyBackupPut answered. */
static int64_t put_result(void) {
    const struct buf *r = fixture_last_result();
    assert_int_equal(r->len, 8);
    return (int64_t)key_get_u64(r->data);
}

static struct rec_key_backup index_of(struct fixture_db *db) {
    struct key k;
    rec_key_backup_key(&g_pat.id, &k);
    struct buf v;
    buf_init(&v);
    struct rec_key_backup b = REC_KEY_BACKUP_EMPTY;
    int rc = store_get(db->store, CF_KEY_BACKUP, k.b, k.len, &v);
    if (rc == 0)
        assert_int_equal(rec_key_backup_decode(v.data, v.len, &b), 0);
    else
        assert_int_equal(rc, STATUS_NOT_FOUND);
    buf_cleanup(&v);
    return b;
}

/* The segment `seq` as stored, or "" when absent. */
static void segment(struct fixture_db *db, uint64_t seq, char *out, size_t cap) {
    struct key k;
    rec_key_backup_segment_key(&g_pat.id, seq, &k);
    struct buf v;
    buf_init(&v);
    out[0] = '\0';
    int rc = store_get(db->store, CF_KEY_BACKUP, k.b, k.len, &v);
    if (rc == 0) {
        assert_true(v.len < cap);
        memcpy(out, v.data, v.len);
        out[v.len] = '\0';
    } else {
        assert_int_equal(rc, STATUS_NOT_FOUND);
    }
    buf_cleanup(&v);
}

static bool count_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    (*(size_t *)ctx)++;
    return true;
}

/* The records of CF_KEY_BACKUP under pat's id. */
static size_t records(struct fixture_db *db) {
    size_t n = 0;
    assert_true(store_scan(db->store, CF_KEY_BACKUP, g_pat.id.b, ID_LEN, NULL, 0, SIZE_MAX,
                           count_one, &n) >= 0);
    return n;
}

static void expect_audit(struct fixture_db *db, uint32_t action) {
    struct rec_audit a = fixture_last_audit(db);
    assert_int_equal(a.action, action);
    assert_int_equal(a.outcome, 0);
    assert_memory_equal(a.actor.b, g_pat.id.b, ID_LEN);
    assert_int_equal(a.object_len, ID_LEN);
    assert_memory_equal(a.object, g_pat.id.b, ID_LEN);
    assert_memory_equal(a.patient.b, g_pat.id.b, ID_LEN);
}

static int lifecycle(struct fixture_db *db, int64_t time, bool deactivate) {
    Carechat__Entry__V1__Entry e;
    carechat__entry__v1__entry__init(&e);
    e.time = time;
    Carechat__Entry__V1__AccountDeactivate d;
    Carechat__Entry__V1__RetentionAdvance ra;
    uint8_t index[32];
    if (deactivate) {
        carechat__entry__v1__account_deactivate__init(&d);
        d.account_id = fixture_bin(g_pat.id.b, ID_LEN);
        e.actor_account_id = fixture_bin(g_root.id.b, ID_LEN);
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_ACCOUNT_DEACTIVATE;
        e.account_deactivate = &d;
    } else {
        carechat__entry__v1__retention_advance__init(&ra);
        ra.account_id = fixture_bin(g_pat.id.b, ID_LEN);
        store_blind_index(db->store, g_pat.email, strlen(g_pat.email), index);
        ra.email_index = fixture_bin(index, sizeof index);
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_RETENTION_ADVANCE;
        e.retention_advance = &ra;
    }
    return fixture_propose(db, &e);
}

static void run_scenario(struct fixture_db *db) {
    fixture_person(&g_root, "root@clinic.example", 1);
    fixture_person(&g_pat, "pat@home.example", 2);
    fixture_bootstrap(db, &g_root);
    fixture_dev_make(&g_dev, 1);
    fixture_join(db, &g_root, &g_pat, REC_ROLE_PATIENT, &g_dev);
    int64_t t = T0 + 1000;
    char seg[64];
    g_kid[0] = 1;

    /* The first segment is number 1; a retry stores nothing twice and
     * answers the first time. */
    assert_int_equal(put(db, 2, "two", t, &CAPS), STATUS_CONFLICT);
    assert_int_equal(put(db, 1, "one", t + 1, &CAPS), 0);
    assert_true(put_result() == t + 1);
    expect_audit(db, REC_AUDIT_KEY_BACKUP_WRITE);
    assert_int_equal(put(db, 1, "one", t + 2, &CAPS), 0);
    assert_true(put_result() == t + 1);
    assert_int_equal(put(db, 1, "uno", t + 3, &CAPS), STATUS_CONFLICT);
    segment(db, 1, seg, sizeof seg);
    assert_string_equal(seg, "one");

    /* The caps come from the entry: size, then count and bytes. */
    struct caps small = {2, 3, 10000};
    assert_int_equal(put(db, 2, "two", t + 4, &small), STATUS_TOO_LARGE);
    struct caps few = {1000, 1, 10000};
    assert_int_equal(put(db, 2, "two", t + 5, &few), STATUS_TOO_LARGE);
    struct caps tight = {1000, 3, 5};
    assert_int_equal(put(db, 2, "two", t + 6, &tight), STATUS_TOO_LARGE);
    assert_int_equal(put(db, 2, "two", t + 7, &CAPS), 0);
    assert_int_equal(put(db, 3, "three", t + 8, &CAPS), 0);
    assert_int_equal(put(db, 4, "four", t + 9, &CAPS), STATUS_TOO_LARGE);
    struct rec_key_backup b = index_of(db);
    assert_int_equal(b.n, 3);
    assert_true(b.next_seq == 4 && b.total_bytes == 11);
    assert_true(b.segments[2].seq == 3 && b.segments[2].size == 5);
    assert_true(b.segments[2].created_at == t + 8);
    assert_memory_equal(b.segments[2].device.b, g_dev.id.b, ID_LEN);
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)"three", 5);
    assert_memory_equal(b.segments[2].sha256, h, 32);
    rec_key_backup_cleanup(&b);
    assert_int_equal(records(db), 4);

    /* A compaction: the full set as segment 4, then the older ones go; the
     * numbers go on from there. */
    struct caps room = {1000, 4, 10000};
    assert_int_equal(put(db, 4, "all", t + 10, &room), 0);
    assert_int_equal(delete_before(db, 4, t + 11), 0);
    expect_audit(db, REC_AUDIT_KEY_BACKUP_DELETE);
    b = index_of(db);
    assert_true(b.n == 1 && b.segments[0].seq == 4 && b.next_seq == 5 && b.total_bytes == 3);
    rec_key_backup_cleanup(&b);
    segment(db, 2, seg, sizeof seg);
    assert_string_equal(seg, "");
    assert_int_equal(records(db), 2);
    assert_int_equal(put(db, 1, "one", t + 12, &CAPS), STATUS_CONFLICT);
    assert_int_equal(put(db, 5, "five", t + 13, &CAPS), 0);

    /* Another key cannot add to it. */
    g_kid[0] = 2;
    assert_int_equal(put(db, 6, "six", t + 13, &CAPS), STATUS_FORBIDDEN);
    g_kid[0] = 1;

    /* Off: every segment goes, the index keeps its next number, and the key
     * is retired for good; a new backup takes a new key. */
    assert_int_equal(delete_before(db, 0, t + 14), 0);
    b = index_of(db);
    assert_true(b.n == 0 && b.next_seq == 6 && b.total_bytes == 0 && b.n_retired == 1);
    assert_int_equal(b.retired[0][0], 1);
    rec_key_backup_cleanup(&b);
    assert_int_equal(records(db), 1);
    assert_int_equal(put(db, 6, "six", t + 15, &CAPS), STATUS_FORBIDDEN);
    g_kid[0] = 2;
    assert_int_equal(put(db, 6, "six", t + 15, &CAPS), 0);
    b = index_of(db);
    assert_int_equal(b.key_id[0], 2);
    rec_key_backup_cleanup(&b);

    /* Deactivated: no more segments. Purged: nothing of the backup left. */
    assert_int_equal(lifecycle(db, t + 16, true), 0);
    assert_int_equal(put(db, 7, "seven", t + 17, &CAPS), STATUS_UNAUTHENTICATED);
    assert_int_equal(records(db), 2);
    assert_int_equal(lifecycle(db, t + 31 * DAY, false), 0);
    assert_int_equal(records(db), 2);
    assert_int_equal(lifecycle(db, t + 400 * DAY, false), 0);
    assert_int_equal(records(db), 0);
}

static void test_apply_keybackup_scenario(void **state) {
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "apply-keybackup");
    run_scenario(&db);
    fixture_close(&db);
    fixture_log_cleanup();
}

static void test_apply_keybackup_replay_is_deterministic(void **state) {
    fixture_check_replay("apply-keybackup", run_scenario);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_keybackup_scenario),
        cmocka_unit_test(test_apply_keybackup_replay_is_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
