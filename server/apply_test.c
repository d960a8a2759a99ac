/* server/apply_test.c: apply_entry() through the real journal and RocksDB in $TEST_TMPDIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "storage/journal.h"
#include "storage/store.h"

#define DEADLINE_MS 10000

struct db {
    char dir[512];
    struct store *store;
    struct journal *journal;
};

struct done {
    bool called;
    uint64_t pos;
    int status;
};

static void on_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    struct done *d = ctx;
    d->called = true;
    d->pos = pos;
    d->status = status;
}

static void db_open_at(struct db *db, enum store_mode mode) {
    struct store_config sc = {.data_dir = db->dir, .mode = mode};
    assert_int_equal(store_open(&sc, &db->store), 0);
    struct journal_config jc = {.store = db->store, .apply = apply_entry};
    assert_int_equal(journal_open(&jc, &db->journal), 0);
}

static void db_open(struct db *db) {
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(db->dir, sizeof db->dir, "%s/apply-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(db->dir));
    db_open_at(db, STORE_CREATE);
}

static void db_close(struct db *db) {
    journal_close(db->journal);
    store_close(db->store);
    db->journal = NULL;
    db->store = NULL;
}

/* Appends `entry` and waits until it is durable; returns its status. */
static int propose(struct db *db, const struct buf *entry, uint64_t *pos) {
    struct done d = {0};
    assert_int_equal(journal_append(db->journal, entry->data, entry->len, on_done, &d), 0);
    int64_t deadline = clock_monotonic_ms() + DEADLINE_MS;
    while (!d.called && clock_monotonic_ms() < deadline) {
        journal_poll(db->journal);
        if (!d.called) {
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(d.called);
    if (pos)
        *pos = d.pos;
    return d.status;
}

static int propose_server_init(struct db *db, const struct id *id, int64_t at) {
    struct buf e;
    buf_init(&e);
    assert_int_equal(apply_encode_server_init(id, at, &e), 0);
    int rc = propose(db, &e, NULL);
    buf_cleanup(&e);
    return rc;
}

static void test_apply_server_init_stores_identity(void **state) {
    struct db db;
    db_open(&db);
    struct id id, got;
    int64_t at;
    assert_int_equal(apply_read_server_info(db.store, &got, &at), STATUS_NOT_FOUND);
    rand_bytes(id.b, sizeof id.b);
    assert_int_equal(propose_server_init(&db, &id, 1790000000123), 0);
    assert_int_equal(apply_read_server_info(db.store, &got, &at), 0);
    assert_memory_equal(got.b, id.b, ID_LEN);
    assert_true(at == 1790000000123);
    assert_int_equal(journal_applied_pos(db.journal), 1);

    /* It survives a restart. */
    db_close(&db);
    db_open_at(&db, STORE_OPEN);
    memset(&got, 0, sizeof got);
    assert_int_equal(apply_read_server_info(db.store, &got, &at), 0);
    assert_memory_equal(got.b, id.b, ID_LEN);
    db_close(&db);
}

static void test_apply_second_server_init_conflicts(void **state) {
    struct db db;
    db_open(&db);
    struct id first, second, got;
    int64_t at;
    rand_bytes(first.b, sizeof first.b);
    rand_bytes(second.b, sizeof second.b);
    assert_int_equal(propose_server_init(&db, &first, 1000), 0);
    assert_int_equal(propose_server_init(&db, &second, 2000), STATUS_CONFLICT);
    /* The first identity stands; the rejected entry still used a position. */
    assert_int_equal(apply_read_server_info(db.store, &got, &at), 0);
    assert_memory_equal(got.b, first.b, ID_LEN);
    assert_true(at == 1000);
    assert_int_equal(journal_applied_pos(db.journal), 2);
    db_close(&db);
}

static void test_apply_rejects_invalid_entries(void **state) {
    struct db db;
    db_open(&db);
    struct buf e;
    buf_init(&e);
    /* Not an entry at all. */
    buf_append(&e, "\xff\xff\xff", 3);
    assert_int_equal(propose(&db, &e, NULL), STATUS_BAD_REQUEST);
    /* A version apply does not know. */
    Carechat__Entry__V1__ServerInit init;
    Carechat__Entry__V1__Entry entry;
    carechat__entry__v1__server_init__init(&init);
    carechat__entry__v1__entry__init(&entry);
    struct id id;
    rand_bytes(id.b, sizeof id.b);
    init.server_id.data = id.b;
    init.server_id.len = ID_LEN;
    init.created_at = 5;
    entry.version = PROTO_ENTRY_VERSION + 1;
    entry.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SERVER_INIT;
    entry.server_init = &init;
    buf_reset(&e);
    assert_int_equal(proto_entry_encode(&entry, &e), 0);
    assert_int_equal(propose(&db, &e, NULL), STATUS_BAD_REQUEST);
    /* A server id that is not 16 bytes. */
    entry.version = PROTO_ENTRY_VERSION;
    init.server_id.len = 15;
    buf_reset(&e);
    assert_int_equal(proto_entry_encode(&entry, &e), 0);
    assert_int_equal(propose(&db, &e, NULL), STATUS_BAD_REQUEST);
    /* No time. */
    init.server_id.len = ID_LEN;
    init.created_at = 0;
    buf_reset(&e);
    assert_int_equal(proto_entry_encode(&entry, &e), 0);
    assert_int_equal(propose(&db, &e, NULL), STATUS_BAD_REQUEST);
    buf_cleanup(&e);
    /* Nothing was stored by any of them. */
    struct id got;
    int64_t at;
    assert_int_equal(apply_read_server_info(db.store, &got, &at), STATUS_NOT_FOUND);
    db_close(&db);
}

static void test_apply_replay_rebuilds_the_same_state(void **state) {
    /* apply is pure: the same entries on an empty store give the same state. */
    struct id id;
    rand_bytes(id.b, sizeof id.b);
    struct id got[2];
    int64_t at[2];
    for (int i = 0; i < 2; i++) {
        struct db db;
        db_open(&db);
        assert_int_equal(propose_server_init(&db, &id, 424242), 0);
        assert_int_equal(apply_read_server_info(db.store, &got[i], &at[i]), 0);
        db_close(&db);
    }
    assert_memory_equal(got[0].b, got[1].b, ID_LEN);
    assert_true(at[0] == at[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_server_init_stores_identity),
        cmocka_unit_test(test_apply_second_server_init_conflicts),
        cmocka_unit_test(test_apply_rejects_invalid_entries),
        cmocka_unit_test(test_apply_replay_rebuilds_the_same_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
