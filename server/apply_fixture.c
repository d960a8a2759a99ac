/*
 * server/apply_fixture.c: the apply tests' shared fixture (see
 * apply_fixture.h). Runs on the test's thread only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "server/apply_fixture.h"

#include "base/clock.h"
#include "server/apply.h"
#include "storage/keys.h"

#define DEADLINE_MS 10000
#define MAX_LOG 128
#define T0 FIXTURE_T0
#define DAY FIXTURE_DAY

/* Every entry proposed, to replay. */
static struct buf log_entries[MAX_LOG];
static size_t n_log;

/* The result of the last entry applied. */
static struct buf last_result;

/* fixture_set_seed()'s function. */
static int (*seed_fn)(struct store_txn *txn);

void fixture_set_seed(int (*seed)(struct store_txn *txn)) {
    seed_fn = seed;
}

static int apply_seed(void *ctx, struct store_txn *txn, uint64_t pos, const uint8_t *entry,
                      size_t entry_len, struct buf *result) {
    return seed_fn(txn);
}

static void open_db(struct fixture_db *db, const char *name, bool read_cache) {
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(db->dir, sizeof db->dir, "%s/%s-XXXXXX", tmp ? tmp : "/tmp", name);
    assert_non_null(mkdtemp(db->dir));
    struct store_config sc = {
        .data_dir = db->dir, .mode = STORE_CREATE, .no_read_cache = !read_cache};
    assert_int_equal(store_open(&sc, &db->store), 0);
    if (seed_fn) {
        struct journal_config sj = {.store = db->store, .apply = apply_seed};
        struct journal *j;
        assert_int_equal(journal_open(&sj, &j), 0);
        assert_int_equal(journal_append_wait(j, (const uint8_t *)"seed", 4, DEADLINE_MS), 0);
        journal_close(j);
    }
    struct journal_config jc = {.store = db->store, .apply = apply_entry};
    assert_int_equal(journal_open(&jc, &db->journal), 0);
}

void fixture_open(struct fixture_db *db, const char *name) {
    open_db(db, name, true);
}

struct run_txn {
    int (*fn)(void *ctx, struct store_txn *txn);
    void *ctx;
};

static int apply_run_txn(void *ctx, struct store_txn *txn, uint64_t pos, const uint8_t *entry,
                         size_t entry_len, struct buf *result) {
    const struct run_txn *run = ctx;
    return run->fn(run->ctx, txn);
}

void fixture_run_txn(struct fixture_db *db, int (*fn)(void *ctx, struct store_txn *txn),
                     void *ctx) {
    struct run_txn run = {fn, ctx};
    journal_close(db->journal);
    struct journal_config rj = {.store = db->store, .apply = apply_run_txn, .apply_ctx = &run};
    struct journal *j;
    assert_int_equal(journal_open(&rj, &j), 0);
    assert_int_equal(journal_append_wait(j, (const uint8_t *)"run", 3, DEADLINE_MS), 0);
    journal_close(j);
    struct journal_config jc = {.store = db->store, .apply = apply_entry};
    assert_int_equal(journal_open(&jc, &db->journal), 0);
}

void fixture_close(struct fixture_db *db) {
    journal_close(db->journal);
    store_close(db->store);
}

void fixture_log_reset(void) {
    n_log = 0;
    buf_init(&last_result);
}

void fixture_log_cleanup(void) {
    for (size_t i = 0; i < n_log; i++)
        buf_cleanup(&log_entries[i]);
    n_log = 0;
    buf_cleanup(&last_result);
}

struct done {
    bool called;
    int status;
    struct buf result;
};

static void on_done(void *ctx, uint64_t pos, int status, const uint8_t *r, size_t len) {
    struct done *d = ctx;
    d->called = true;
    d->status = status;
    buf_reset(&d->result);
    if (len)
        buf_append(&d->result, r, len);
}

int fixture_append(struct fixture_db *db, const uint8_t *data, size_t len) {
    struct done d = {0};
    buf_init(&d.result);
    assert_int_equal(journal_append(db->journal, data, len, on_done, &d), 0);
    int64_t deadline = clock_monotonic_ms() + DEADLINE_MS;
    while (!d.called && clock_monotonic_ms() < deadline) {
        journal_poll(db->journal);
        if (!d.called)
            nanosleep(&(struct timespec){.tv_nsec = 1000000L}, NULL);
    }
    assert_true(d.called);
    buf_reset(&last_result);
    buf_append(&last_result, d.result.data, d.result.len);
    buf_cleanup(&d.result);
    return d.status;
}

int fixture_propose(struct fixture_db *db, Carechat__Entry__V1__Entry *e) {
    e->version = PROTO_ENTRY_VERSION;
    assert_true(n_log < MAX_LOG);
    struct buf *b = &log_entries[n_log++];
    buf_init(b);
    assert_int_equal(proto_entry_encode(e, b), 0);
    return fixture_append(db, b->data, b->len);
}

void fixture_replay(struct fixture_db *db) {
    for (size_t i = 0; i < n_log; i++)
        fixture_append(db, log_entries[i].data, log_entries[i].len);
}

/* Appends the recorded entries to `db` in groups of REPLAY_GROUP, each group
 * at once and applied before the next, so that the journal applies them in
 * batches of several (savepoints, rollbacks of refused entries, later entries
 * of a batch reading what earlier ones wrote) and later batches read what
 * earlier ones committed; appends each entry's status and result to
 * `answers`. */
#define REPLAY_GROUP 4
static void replay_batched(struct fixture_db *db, struct buf *answers) {
    struct done d[REPLAY_GROUP];
    for (size_t first = 0; first < n_log; first += REPLAY_GROUP) {
        size_t n = n_log - first < REPLAY_GROUP ? n_log - first : REPLAY_GROUP;
        for (size_t i = 0; i < n; i++) {
            d[i] = (struct done){0};
            buf_init(&d[i].result);
            const struct buf *e = &log_entries[first + i];
            assert_int_equal(journal_append(db->journal, e->data, e->len, on_done, &d[i]), 0);
        }
        int64_t deadline = clock_monotonic_ms() + DEADLINE_MS;
        for (size_t i = 0; i < n; i++) {
            while (!d[i].called && clock_monotonic_ms() < deadline) {
                journal_poll(db->journal);
                if (!d[i].called)
                    nanosleep(&(struct timespec){.tv_nsec = 1000000L}, NULL);
            }
            assert_true(d[i].called);
            buf_append_varint(answers, (uint64_t)(int64_t)d[i].status);
            buf_append_varint(answers, d[i].result.len);
            buf_append(answers, d[i].result.data, d[i].result.len);
            buf_cleanup(&d[i].result);
        }
    }
}

/* fixture_check_read_cache(), and with `expect` (a fixture_dump() of the
 * entries applied one at a time) that batches left the same records. */
static void check_batched(const char *name, const struct buf *expect) {
    struct buf answers[2], dumps[2];
    uint64_t hits = 0;
    for (int cached = 0; cached < 2; cached++) {
        struct fixture_db db;
        open_db(&db, name, cached);
        buf_init(&answers[cached]);
        buf_init(&dumps[cached]);
        replay_batched(&db, &answers[cached]);
        if (cached)
            hits = store_read_cache_stats(db.store).hits;
        fixture_dump(&db, CF_META, CF_COUNT - 1, &dumps[cached]);
        fixture_close(&db);
    }
    assert_true(n_log > 0);
    assert_true(hits > 0); /* the cache answered reads */
    assert_int_equal(answers[1].len, answers[0].len);
    assert_memory_equal(answers[1].data, answers[0].data, answers[0].len);
    assert_int_equal(dumps[1].len, dumps[0].len);
    assert_memory_equal(dumps[1].data, dumps[0].data, dumps[0].len);
    if (expect) {
        assert_int_equal(dumps[0].len, expect->len);
        assert_memory_equal(dumps[0].data, expect->data, expect->len);
    }
    for (int i = 0; i < 2; i++) {
        buf_cleanup(&answers[i]);
        buf_cleanup(&dumps[i]);
    }
}

void fixture_check_read_cache(const char *name) {
    check_batched(name, NULL);
}

void fixture_check_replay(const char *name, void (*scenario)(struct fixture_db *db)) {
    fixture_log_reset();
    struct buf dumps[2];
    for (int r = 0; r < 2; r++) {
        struct fixture_db db;
        fixture_open(&db, name);
        if (r == 0)
            scenario(&db);
        else
            fixture_replay(&db);
        buf_init(&dumps[r]);
        fixture_dump(&db, CF_META, CF_COUNT - 1, &dumps[r]);
        fixture_close(&db);
    }
    assert_int_equal(dumps[1].len, dumps[0].len);
    assert_memory_equal(dumps[1].data, dumps[0].data, dumps[0].len);
    check_batched(name, &dumps[0]);
    buf_cleanup(&dumps[0]);
    buf_cleanup(&dumps[1]);
    fixture_log_cleanup();
}

const struct buf *fixture_last_result(void) {
    return &last_result;
}

ProtobufCBinaryData fixture_bin(const void *p, size_t n) {
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

bool fixture_dump_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    struct buf *b = ctx;
    buf_append_varint(b, kl);
    buf_append(b, k, kl);
    buf_append_varint(b, vl);
    buf_append(b, v, vl);
    return true;
}

void fixture_dump(struct fixture_db *db, enum store_cf from, enum store_cf to, struct buf *out) {
    for (int cf = from; cf <= (int)to; cf++)
        assert_true(store_scan(db->store, (enum store_cf)cf, NULL, 0, NULL, 0, 100000,
                               fixture_dump_one, out) >= 0);
}

void fixture_dev_make(struct fixture_dev *d, int n) {
    /* Deterministic ids, so that the replay test can compare two runs' logs
     * only through the entries. */
    memset(d, 0, sizeof *d);
    d->id.b[0] = 0xd0;
    d->id.b[15] = (uint8_t)n;
    crypto_sign_keypair(d->pk, d->sk);
    randombytes_buf(d->ek, 32);
    uint8_t msg[70];
    memcpy(msg, "carechat.v1 encryption key", 26);
    memcpy(msg + 26, d->ek, 32);
    key_put_u32(msg + 58, 1);
    key_put_u64(msg + 62, (uint64_t)(T0 + 30 * DAY));
    crypto_sign_detached(d->sig, NULL, msg, sizeof msg, d->sk);
}

void fixture_dev_entry(struct fixture_dev *d, Carechat__Entry__V1__DeviceNew *out) {
    carechat__entry__v1__device_new__init(out);
    out->device_id = fixture_bin(d->id.b, 16);
    out->identity_key = fixture_bin(d->pk, 32);
    out->encryption_key = fixture_bin(d->ek, 32);
    out->encryption_key_id = 1;
    out->encryption_key_expires_at = T0 + 30 * DAY;
    out->signature = fixture_bin(d->sig, 64);
    out->label = "phone";
}

void fixture_person(struct fixture_person *p, const char *email, uint8_t n) {
    memset(p, 0, sizeof *p);
    p->id.b[0] = 0xa0;
    p->id.b[15] = n;
    snprintf(p->email, sizeof p->email, "%s", email);
    crypto_hash_sha256(p->index, (const uint8_t *)email, strlen(email));
}

void fixture_bootstrap(struct fixture_db *db, struct fixture_person *p) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Bootstrap b;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__bootstrap__init(&b);
    b.account_id = fixture_bin(p->id.b, 16);
    b.email = p->email;
    b.email_index = fixture_bin(p->index, 32);
    b.password_hash = "$argon2id$fake";
    b.display_name = "Admin";
    e.time = T0;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_BOOTSTRAP;
    e.bootstrap = &b;
    assert_int_equal(fixture_propose(db, &e), 0);
}

void fixture_join(struct fixture_db *db, const struct fixture_person *by, struct fixture_person *p,
                  uint32_t role, struct fixture_dev *d) {
    uint8_t code_hash[32], token_hash[32];
    crypto_hash_sha256(code_hash, (const uint8_t *)p->email, strlen(p->email) - 1);
    crypto_hash_sha256(token_hash, (const uint8_t *)p->email, strlen(p->email) - 2);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InviteCreate in;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__invite_create__init(&in);
    e.time = T0 + 1;
    e.actor_account_id = fixture_bin(by->id.b, 16);
    in.code_hash = fixture_bin(code_hash, 32);
    in.email = p->email;
    in.email_index = fixture_bin(p->index, 32);
    in.role = role;
    in.expires_at = T0 + 7 * DAY;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INVITE_CREATE;
    e.invite_create = &in;
    assert_int_equal(fixture_propose(db, &e), 0);

    Carechat__Entry__V1__Register r;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__register__init(&r);
    carechat__entry__v1__session_new__init(&sn);
    e.time = T0 + 2;
    r.account_id = fixture_bin(p->id.b, 16);
    r.code_hash = fixture_bin(code_hash, 32);
    r.email = p->email;
    r.email_index = fixture_bin(p->index, 32);
    r.password_hash = "$argon2id$fake2";
    r.birth_date = "1980-01-01";
    r.display_name = "Someone";
    fixture_dev_entry(d, &dn);
    r.device = &dn;
    sn.token_hash = fixture_bin(token_hash, 32);
    sn.expires_at = T0 + DAY;
    sn.idle_expires_at = T0 + 900000;
    r.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_REGISTER;
    e.register_ = &r;
    assert_int_equal(fixture_propose(db, &e), 0);
}

void fixture_add_device(struct fixture_db *db, const struct fixture_person *p,
                        struct fixture_dev *d) {
    uint8_t token_hash[32];
    memset(token_hash, 0, sizeof token_hash);
    memcpy(token_hash, d->id.b, 16);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Login l;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__login__init(&l);
    carechat__entry__v1__session_new__init(&sn);
    e.time = T0 + 3;
    e.actor_account_id = fixture_bin(p->id.b, 16);
    fixture_dev_entry(d, &dn);
    l.device_case = CARECHAT__ENTRY__V1__LOGIN__DEVICE_NEW_DEVICE;
    l.new_device = &dn;
    sn.token_hash = fixture_bin(token_hash, 32);
    sn.expires_at = T0 + DAY;
    sn.idle_expires_at = T0 + 900000;
    l.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_LOGIN;
    e.login = &l;
    assert_int_equal(fixture_propose(db, &e), 0);
}

int fixture_direct(struct fixture_db *db, const struct fixture_person *from,
                   const struct fixture_person *to, const struct id *conv) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__DirectCreate d;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__direct_create__init(&d);
    e.time = T0 + 10;
    e.actor_account_id = fixture_bin(from->id.b, 16);
    d.conversation_id = fixture_bin(conv->b, 16);
    d.peer_account_id = fixture_bin(to->id.b, 16);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DIRECT_CREATE;
    e.direct_create = &d;
    return fixture_propose(db, &e);
}

static bool keep_last(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len) {
    assert_int_equal(rec_audit_decode(value, value_len, ctx), 0);
    return true;
}

struct rec_audit fixture_last_audit(struct fixture_db *db) {
    struct rec_audit a;
    memset(&a, 0, sizeof a);
    assert_true(store_scan(db->store, CF_AUDIT, NULL, 0, NULL, 0, 100000, keep_last, &a) > 0);
    return a;
}
