/*
 * tests/audit_test.c: the tamper-evident audit log (server/audit.h).
 *
 * Chain group (no server): the canonical byte layout and the hash; a chain
 * built by apply (AuditAppend entries through the real journal and store);
 * 150 random tampering trials through storage's own API (an edited record
 * re-sealed, an edited record with its own hash recomputed, a deleted
 * record, two swapped records) and 10 through raw RocksDB (a byte of the
 * sealed value flipped), each undone afterwards: the verifier must name
 * exactly the first bad index every time, and the intact chain again after
 * the undo.
 *
 * Server group (the real carechatd, libcarechat): a patient who tries to
 * invite a provider leaves exactly one `account.invite` FORBIDDEN record; a
 * provider's History leaves one `message.read` record and GetConversation
 * one `conversation.read` record, naming the conversation and the patient; the query filters
 * (actor, patient, since, until) hold; a non-administrator is refused (and that refusal is
 * recorded); with the server stopped a record is deleted from CF_AUDIT, and
 * `carechatd audit-verify` offline and VerifyAudit after a restart both name
 * its index; the log has the anchor lines (periodic and at shutdown).
 *
 * Every wait has a deadline; everything is on 127.0.0.1.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <rocksdb/c.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/status.h"
#include "client/carechat.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/audit.h"
#include "server/records.h"
#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define DEADLINE_MS 20000
#define N_RECORDS 300
#define API_TRIALS 150
#define RAW_TRIALS 10

/* ---- chain group: a store, a journal whose apply can tamper ------------- */

enum tamper_op { T_NONE = 0, T_EDIT, T_EDIT_REHASH, T_DELETE, T_SWAP, T_RESTORE };

struct saved {
    uint64_t index;
    bool present;
    struct buf value; /* opened (plaintext) */
};

struct tamper {
    enum tamper_op op;
    uint64_t i, j;
    struct saved saved[2];
    size_t n_saved;
};

struct db {
    char dir[PATH_MAX];
    struct store *store;
    struct journal *journal;
    struct tamper t;
};

static void put_key(uint8_t k[8], uint64_t index) {
    key_put_u64(k, index);
}

static int save(struct store_txn *txn, struct tamper *t, uint64_t index) {
    struct saved *s = &t->saved[t->n_saved++];
    s->index = index;
    buf_init(&s->value);
    uint8_t k[8];
    put_key(k, index);
    int rc = txn_get(txn, CF_AUDIT, k, 8, &s->value);
    s->present = rc == 0;
    return rc;
}

/* Re-encodes record `index` after `change`, sealed again by the store. */
static int rewrite(struct store_txn *txn, uint64_t index, const struct buf *plain, bool rehash) {
    struct rec_audit a;
    int rc = rec_audit_decode(plain->data, plain->len, &a);
    if (rc != 0)
        return rc;
    a.outcome ^= 0x40; /* a denial turned into something else, or back */
    if (rehash)
        audit_hash(&a, a.hash);
    struct buf v;
    buf_init(&v);
    rec_audit_encode(&a, &v);
    uint8_t k[8];
    put_key(k, index);
    rc = txn_put(txn, CF_AUDIT, k, 8, NULL, v.data, v.len);
    buf_cleanup(&v);
    return rc;
}

/* The journal's apply: AuditAppend entries go to apply_entry(); while a
 * tampering command is set, it is carried out instead (through the store's
 * transaction API: values are sealed as the server seals them). */
static int test_apply(void *ctx, struct store_txn *txn, uint64_t pos, const uint8_t *entry,
                      size_t len, struct buf *result) {
    struct db *db = ctx;
    struct tamper *t = &db->t;
    uint8_t ki[8], kj[8];
    put_key(ki, t->i);
    put_key(kj, t->j);
    int rc = 0;
    switch (t->op) {
    case T_NONE:
        return apply_entry(NULL, txn, pos, entry, len, result);
    case T_EDIT:
    case T_EDIT_REHASH:
        if ((rc = save(txn, t, t->i)) == 0)
            rc = rewrite(txn, t->i, &t->saved[0].value, t->op == T_EDIT_REHASH);
        return rc;
    case T_DELETE:
        if ((rc = save(txn, t, t->i)) == 0)
            rc = txn_delete(txn, CF_AUDIT, ki, 8);
        return rc;
    case T_SWAP:
        if ((rc = save(txn, t, t->i)) == 0 && (rc = save(txn, t, t->j)) == 0 &&
            (rc = txn_put(txn, CF_AUDIT, ki, 8, NULL, t->saved[1].value.data,
                          t->saved[1].value.len)) == 0)
            rc = txn_put(txn, CF_AUDIT, kj, 8, NULL, t->saved[0].value.data, t->saved[0].value.len);
        return rc;
    case T_RESTORE:
        for (size_t n = 0; n < t->n_saved && rc == 0; n++) {
            uint8_t k[8];
            put_key(k, t->saved[n].index);
            rc = txn_put(txn, CF_AUDIT, k, 8, NULL, t->saved[n].value.data, t->saved[n].value.len);
        }
        return rc;
    }
    return STATUS_INTERNAL;
}

struct waiter {
    size_t done;
    int first_error;
};

static void on_done(void *ctx, uint64_t pos, int status, const uint8_t *r, size_t len) {
    struct waiter *w = ctx;
    if (status != 0 && w->first_error == 0)
        w->first_error = status;
    w->done++;
}

static void wait_for(struct db *db, struct waiter *w, size_t n) {
    int64_t deadline = clock_monotonic_ms() + DEADLINE_MS;
    while (w->done < n && clock_monotonic_ms() < deadline) {
        journal_poll(db->journal);
        if (w->done < n)
            nanosleep(&(struct timespec){.tv_nsec = 500000L}, NULL);
    }
    assert_int_equal(w->done, n);
    assert_int_equal(w->first_error, 0);
}

static void db_open_journal(struct db *db, enum store_mode mode) {
    struct store_config sc = {.data_dir = db->dir, .mode = mode};
    assert_int_equal(store_open(&sc, &db->store), 0);
    struct journal_config jc = {.store = db->store, .apply = test_apply, .apply_ctx = db};
    assert_int_equal(journal_open(&jc, &db->journal), 0);
}

static void db_close(struct db *db) {
    journal_close(db->journal);
    store_close(db->store);
    db->journal = NULL;
    db->store = NULL;
}

/* Runs the current tampering command as one entry. */
static void run_command(struct db *db) {
    struct waiter w = {0};
    static const uint8_t dummy[1] = {0};
    assert_int_equal(journal_append(db->journal, dummy, 1, on_done, &w), 0);
    wait_for(db, &w, 1);
}

static void audit_entry(uint32_t action, int i, struct buf *out) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__AuditAppend a;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__audit_append__init(&a);
    struct id actor = id_new(), device = id_new(), object = id_new(), patient = id_new();
    e.version = PROTO_ENTRY_VERSION;
    e.time = 1790000000000LL + i;
    e.actor_account_id = (ProtobufCBinaryData){ID_LEN, actor.b};
    e.actor_device_id = (ProtobufCBinaryData){ID_LEN, device.b};
    e.source_address = i % 2 ? "127.0.0.1" : "::1";
    a.action = action;
    a.outcome = i % 3 ? 0 : 3;
    a.object_id = (ProtobufCBinaryData){ID_LEN, object.b};
    if (i % 4 == 0)
        a.patient_account_id = (ProtobufCBinaryData){ID_LEN, patient.b};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_AUDIT_APPEND;
    e.audit_append = &a;
    assert_int_equal(proto_entry_encode(&e, out), 0);
}

/* Appends N_RECORDS records through apply, a batch at a time. */
static void build_chain(struct db *db) {
    struct waiter w = {0};
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < N_RECORDS; i++) {
        buf_reset(&b);
        audit_entry((uint32_t)(1 + i % REC_AUDIT_ACTION_MAX), i, &b);
        assert_int_equal(journal_append(db->journal, b.data, b.len, on_done, &w), 0);
    }
    buf_cleanup(&b);
    wait_for(db, &w, N_RECORDS);
}

/* Walks the whole chain in steps of 37 records. */
static void verify(struct store *s, bool *ok, uint64_t *first_bad, uint64_t *checked) {
    struct audit_verify v;
    assert_int_equal(audit_verify_begin(s, &v), 0);
    for (int steps = 0; !v.done && steps < N_RECORDS; steps++)
        assert_int_equal(audit_verify_step(s, &v, 37), 0);
    assert_true(v.done);
    *ok = v.ok;
    *first_bad = v.first_bad;
    *checked = v.checked;
}

static void expect_intact(struct db *db) {
    bool ok;
    uint64_t bad, checked;
    verify(db->store, &ok, &bad, &checked);
    assert_true(ok);
    assert_int_equal(checked, N_RECORDS);
}

static void clear_saved(struct tamper *t) {
    for (size_t n = 0; n < t->n_saved; n++)
        buf_cleanup(&t->saved[n].value);
    memset(t, 0, sizeof *t);
}

static void fresh_db(struct db *db, const char *name) {
    harness_tmpdir(name, db->dir);
    db_open_journal(db, STORE_CREATE);
}

/* The canonical layout of server/audit.h, byte for byte, and the stored value
 * = canonical + hash, hash = SHA-256(canonical). */
static void test_audit_canonical_layout(void **state) {
    struct rec_audit a;
    memset(&a, 0, sizeof a);
    a.index = 0x0102030405060708ULL;
    a.time = 1790000000123LL;
    a.action = REC_AUDIT_HISTORY;
    a.outcome = 3;
    memset(a.actor.b, 0xa1, ID_LEN);
    memset(a.device.b, 0xd1, ID_LEN);
    a.object_len = 16;
    memset(a.object, 0x0b, 16);
    memset(a.patient.b, 0x9a, ID_LEN);
    snprintf(a.source, sizeof a.source, "127.0.0.1");
    memset(a.prev_hash, 0x77, REC_HASH_LEN);
    struct buf c;
    buf_init(&c);
    rec_audit_canonical(&a, &c);
    size_t expect_len = 1 + 8 + 8 + 4 + 4 + 16 + 16 + 4 + 16 + 16 + 4 + 9 + 4 + 32;
    assert_int_equal(c.len, expect_len);
    const uint8_t *p = c.data;
    assert_int_equal(p[0], 1);
    static const uint8_t idx[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(p + 1, idx, 8);
    assert_true((int64_t)key_get_u64(p + 9) == a.time);
    assert_int_equal(key_get_u32(p + 17), REC_AUDIT_HISTORY);
    assert_int_equal(key_get_u32(p + 21), 3);
    assert_memory_equal(p + 25, a.actor.b, 16);
    assert_memory_equal(p + 41, a.device.b, 16);
    assert_int_equal(key_get_u32(p + 57), 16);
    assert_memory_equal(p + 61, a.object, 16);
    assert_memory_equal(p + 77, a.patient.b, 16);
    assert_int_equal(key_get_u32(p + 93), 9);
    assert_memory_equal(p + 97, "127.0.0.1", 9);
    assert_int_equal(key_get_u32(p + 106), 32);
    assert_memory_equal(p + 110, a.prev_hash, 32);

    uint8_t h[32], h2[32];
    crypto_hash_sha256(h, c.data, c.len);
    audit_hash(&a, h2);
    assert_memory_equal(h, h2, 32);
    memcpy(a.hash, h, 32);
    struct buf v;
    buf_init(&v);
    rec_audit_encode(&a, &v);
    assert_int_equal(v.len, c.len + 4 + 32);
    assert_memory_equal(v.data, c.data, c.len);
    assert_memory_equal(v.data + c.len + 4, h, 32);
    struct rec_audit d;
    assert_int_equal(rec_audit_decode(v.data, v.len, &d), 0);
    assert_memory_equal(&d, &a, sizeof a);
    /* A change of any field changes the hash. */
    d.time++;
    audit_hash(&d, h2);
    assert_memory_not_equal(h, h2, 32);
    buf_cleanup(&c);
    buf_cleanup(&v);
}

/* A chain built by apply: indexes 1..N, record 1 links to zeros, each next
 * one to the hash before it; the head names the last; query pages. */
static void test_audit_chain_built_by_apply(void **state) {
    struct db db = {0};
    fresh_db(&db, "chain");
    build_chain(&db);
    uint64_t head;
    uint8_t head_hash[32], prev[32] = {0};
    assert_int_equal(audit_head(db.store, &head, head_hash), 0);
    assert_int_equal(head, N_RECORDS);
    for (uint64_t i = 1; i <= N_RECORDS; i++) {
        struct rec_audit a;
        assert_int_equal(audit_read(db.store, i, &a), 0);
        assert_int_equal(a.index, i);
        assert_memory_equal(a.prev_hash, prev, 32);
        uint8_t h[32];
        audit_hash(&a, h);
        assert_memory_equal(a.hash, h, 32);
        memcpy(prev, a.hash, 32);
    }
    assert_memory_equal(prev, head_hash, 32);
    expect_intact(&db);

    /* Pages of 7 of the records with time >= T0+100 and < T0+200. */
    struct audit_filter f = {.since = 1790000000000LL + 100, .until = 1790000000000LL + 200};
    struct rec_audit page[7];
    uint64_t after = 0, seen = 0;
    bool more = true;
    for (int pages = 0; more && pages < 1000; pages++) {
        size_t n;
        assert_int_equal(audit_query(db.store, &f, after, 7, 50, page, &n, &after, &more), 0);
        for (size_t i = 0; i < n; i++) {
            assert_true(page[i].time >= f.since && page[i].time < f.until);
            assert_int_equal(page[i].index, 101 + seen);
            seen++;
        }
    }
    assert_false(more);
    assert_int_equal(seen, 100);
    db_close(&db);
}

/* The index the verifier must name: the edited or deleted record; the first
 * of two swapped ones; for an edit whose own hash was recomputed, the next
 * record (its prev_hash no longer matches), or the last one itself (the head
 * in CF_META no longer matches). */
static uint64_t expected_bad(enum tamper_op op, uint64_t i, uint64_t j) {
    if (op == T_SWAP)
        return i < j ? i : j;
    if (op == T_EDIT_REHASH && i < N_RECORDS)
        return i + 1;
    return i;
}

/* 150 random tamperings through the store's API, each checked then undone. */
static void test_audit_tamper_trials_store_api(void **state) {
    struct db db = {0};
    fresh_db(&db, "tamper");
    build_chain(&db);
    expect_intact(&db);
    /* AUDIT_TAMPER_SEED replays a printed seed. */
    const char *seed_env = getenv("AUDIT_TAMPER_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    print_message("tamper seed %u\n", seed);
    srand(seed);
    int counts[5] = {0};
    for (int trial = 0; trial < API_TRIALS; trial++) {
        enum tamper_op op = (enum tamper_op)(1 + trial % 4);
        uint64_t i = 1 + (uint64_t)rand() % N_RECORDS, j = i;
        while (op == T_SWAP && j == i)
            j = 1 + (uint64_t)rand() % N_RECORDS;
        db.t.op = op;
        db.t.i = i;
        db.t.j = j;
        run_command(&db);
        bool ok;
        uint64_t bad, checked;
        verify(db.store, &ok, &bad, &checked);
        assert_false(ok);
        uint64_t want = expected_bad(op, i, j);
        if (bad != want)
            fail_msg("trial %d: op %d at %llu/%llu: verify named %llu, expected %llu", trial, op,
                     (unsigned long long)i, (unsigned long long)j, (unsigned long long)bad,
                     (unsigned long long)want);
        assert_int_equal(checked, want - 1);
        counts[op]++;
        db.t.op = T_RESTORE;
        run_command(&db);
        clear_saved(&db.t);
        expect_intact(&db);
    }
    for (int op = T_EDIT; op <= T_SWAP; op++)
        assert_true(counts[op] >= API_TRIALS / 4);
    db_close(&db);
}

/* Opens DIR/db with the RocksDB C API and flips one byte of the sealed value
 * of record `index`. */
static void raw_flip(const char *dir, uint64_t index, size_t at) {
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/db", dir);
    rocksdb_options_t *opts = rocksdb_options_create();
    char *err = NULL;
    size_t n_cf = 0;
    char **names = rocksdb_list_column_families(opts, path, &n_cf, &err);
    assert_null(err);
    assert_true(n_cf > 0 && n_cf < 64);
    const rocksdb_options_t *cf_opts[64];
    rocksdb_column_family_handle_t *cfs[64];
    size_t audit_cf = n_cf;
    for (size_t i = 0; i < n_cf; i++) {
        cf_opts[i] = opts;
        if (strcmp(names[i], store_cf_name(CF_AUDIT)) == 0)
            audit_cf = i;
    }
    assert_true(audit_cf < n_cf);
    rocksdb_t *db = rocksdb_open_column_families(opts, path, (int)n_cf, (const char *const *)names,
                                                 cf_opts, cfs, &err);
    assert_null(err);
    uint8_t k[8];
    put_key(k, index);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    size_t len = 0;
    char *v = rocksdb_get_cf(db, ro, cfs[audit_cf], (const char *)k, 8, &len, &err);
    assert_null(err);
    assert_non_null(v);
    assert_true(len > 0);
    v[at % len] ^= 0x01;
    rocksdb_put_cf(db, wo, cfs[audit_cf], (const char *)k, 8, v, len, &err);
    assert_null(err);
    rocksdb_free(v);
    for (size_t i = 0; i < n_cf; i++)
        rocksdb_column_family_handle_destroy(cfs[i]);
    rocksdb_list_column_families_destroy(names, n_cf);
    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(opts);
}

/* 10 raw edits of sealed bytes (the store closed meanwhile): the seal no
 * longer opens, so that index is the first bad one. Undone through the API. */
static void test_audit_tamper_trials_raw_bytes(void **state) {
    struct db db = {0};
    fresh_db(&db, "raw");
    build_chain(&db);
    srand((unsigned)time(NULL) + 1);
    for (int trial = 0; trial < RAW_TRIALS; trial++) {
        uint64_t i = 1 + (uint64_t)rand() % N_RECORDS;
        /* keep the plaintext to put back */
        struct buf orig;
        buf_init(&orig);
        uint8_t k[8];
        put_key(k, i);
        assert_int_equal(store_get(db.store, CF_AUDIT, k, 8, &orig), 0);
        db_close(&db);
        raw_flip(db.dir, i, (size_t)rand());
        db_open_journal(&db, STORE_OPEN);
        bool ok;
        uint64_t bad, checked;
        verify(db.store, &ok, &bad, &checked);
        assert_false(ok);
        assert_int_equal(bad, i);
        db.t.op = T_RESTORE;
        db.t.n_saved = 1;
        db.t.saved[0].index = i;
        db.t.saved[0].value = orig;
        run_command(&db);
        clear_saved(&db.t);
        expect_intact(&db);
    }
    db_close(&db);
}

/* ---- server group: the real carechatd ------------------------------------ */

#define PASSWORD "a-long-enough-passphrase"
#define WIRE_FORBIDDEN 3

static struct harness *server;
static struct carechat *root;
static char url[FIXTURE_URL_LEN];

static int server_setup(void **state) {
    /* Every read its own record: the tests below count them. */
    const char *args[] = {
        "--audit-anchor-every", "5", "--audit-coalesce", "0", "--read-burst", "1000000", NULL};
    if (fixture_start_bootstrapped(args, &server) != 0)
        return -1;
    fixture_url(server, url);
    return 0;
}

static int server_teardown(void **state) {
    carechat_close(root);
    return fixture_stop(server);
}

static struct carechat *open_fresh(const char *name) {
    char prof[FIXTURE_DIR_LEN];
    fixture_fresh_profile(name, prof);
    return fixture_open(url, prof);
}

static struct carechat *the_root(void) {
    if (root == NULL) {
        root = open_fresh("root");
        FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    }
    return root;
}

/* `inviter` invites `addr` with `role`; the new account registers. */
static struct carechat *invited(struct carechat *inviter, const char *addr, enum carechat_role role,
                                const char *name) {
    return fixture_invite_register(url, inviter, addr, role, PASSWORD, name, NULL);
}

static struct id account_of(const char *addr) {
    struct carechat_account acc;
    FIXTURE_ASSERT_OK(the_root(), carechat_lookup(the_root(), addr, &acc));
    return acc.account_id;
}

static struct carechat_audit_records *query(const struct carechat_audit_filter *f) {
    struct carechat_audit_records *r = NULL;
    FIXTURE_ASSERT_OK(the_root(), carechat_audit_query(the_root(), f, &r));
    return r;
}

static size_t count_action(const struct carechat_audit_records *r, const char *action) {
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += strcmp(r->items[i].action, action) == 0;
    return n;
}

/* A provider and a patient the provider invited (so they may talk). */
static void provider_and_patient(const char *tag, struct carechat **doc, char doc_addr[64],
                                 struct carechat **pat, char pat_addr[64]) {
    char name[32];
    snprintf(name, sizeof name, "%s-doc", tag);
    fixture_email(name, doc_addr);
    *doc = invited(the_root(), doc_addr, CARECHAT_ROLE_PROVIDER, name);
    snprintf(name, sizeof name, "%s-pat", tag);
    fixture_email(name, pat_addr);
    *pat = invited(*doc, pat_addr, CARECHAT_ROLE_PATIENT, name);
}

/* A patient's Invite of a provider is refused, and the refusal is exactly
 * one account.invite record with outcome FORBIDDEN, the patient as actor and
 * the loopback address as source. */
static void test_audit_denial_is_one_record(void **state) {
    struct carechat *doc, *pat;
    char doc_addr[64], pat_addr[64], victim[64];
    provider_and_patient("deny", &doc, doc_addr, &pat, pat_addr);
    struct id pat_id = account_of(pat_addr);
    fixture_email("victim", victim);
    char code[CARECHAT_MAX_CODE + 1];
    int64_t expires_at = 0;
    assert_int_equal(carechat_invite(pat, victim, CARECHAT_ROLE_PROVIDER, code, &expires_at),
                     STATUS_FORBIDDEN);
    struct carechat_audit_filter f = {.actor = &pat_id};
    struct carechat_audit_records *r = query(&f);
    assert_int_equal(count_action(r, "account.invite"), 1);
    for (size_t i = 0; i < r->n; i++) {
        const struct carechat_audit_record *a = &r->items[i];
        assert_true(a->has_actor);
        assert_memory_equal(a->actor.b, pat_id.b, ID_LEN);
        if (strcmp(a->action, "account.invite") == 0) {
            assert_int_equal(a->outcome, WIRE_FORBIDDEN);
            assert_true(a->has_device);
            assert_string_equal(a->source, "127.0.0.1");
        }
    }
    /* and the registration of the patient is there too, as its own record */
    assert_int_equal(count_action(r, "account.register"), 1);
    carechat_audit_records_free(r);
    carechat_close(doc);
    carechat_close(pat);
}

/* A provider's History of the conversation with a patient is one
 * message.read record naming the conversation and the patient; the patient
 * filter finds it, the actor filter of someone else does not. */
static void test_audit_history_is_an_access_record(void **state) {
    struct carechat *doc, *pat;
    char doc_addr[64], pat_addr[64];
    provider_and_patient("hist", &doc, doc_addr, &pat, pat_addr);
    struct id doc_id = account_of(doc_addr), pat_id = account_of(pat_addr);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(doc, carechat_open_direct(doc, pat_addr, &cv));
    struct id conv = cv.conversation_id;
    carechat_conversation_cleanup(&cv);
    struct carechat_sent sent;
    FIXTURE_ASSERT_OK(doc, carechat_send(doc, &conv, (const uint8_t *)"hello", 5, NULL, &sent));
    struct carechat_messages *list = NULL;
    FIXTURE_ASSERT_OK(doc, carechat_history(doc, &conv, 0, 10, &list));
    assert_int_equal(list->n, 1);
    carechat_messages_free(list);
    /* the member list is an access too */
    FIXTURE_ASSERT_OK(doc, carechat_get_conversation(doc, &conv, &cv));
    carechat_conversation_cleanup(&cv);

    struct carechat_audit_filter f = {.actor = &doc_id, .patient = &pat_id};
    struct carechat_audit_records *r = query(&f);
    assert_int_equal(count_action(r, "message.read"), 1);
    assert_int_equal(count_action(r, "conversation.read"), 1);
    for (size_t i = 0; i < r->n; i++) {
        const struct carechat_audit_record *a = &r->items[i];
        assert_memory_equal(a->actor.b, doc_id.b, ID_LEN);
        assert_true(a->has_patient);
        assert_memory_equal(a->patient.b, pat_id.b, ID_LEN);
        if (strcmp(a->action, "message.read") == 0 || strcmp(a->action, "conversation.read") == 0) {
            assert_int_equal(a->outcome, 0);
            assert_int_equal(a->object_len, ID_LEN);
            assert_memory_equal(a->object, conv.b, ID_LEN);
        }
    }
    carechat_audit_records_free(r);
    /* The patient's records under the patient filter hold no other actor's reads. */
    struct carechat_audit_filter fp = {.actor = &pat_id, .patient = &pat_id};
    r = query(&fp);
    assert_int_equal(count_action(r, "message.read"), 0);
    assert_int_equal(count_action(r, "account.register"), 1);
    carechat_audit_records_free(r);
    carechat_close(doc);
    carechat_close(pat);
}

/* A LookupAccount's access record names the account found by the email
 * (audit gaps, issue 13). */
static void test_audit_lookup_names_its_object(void **state) {
    (void)state;
    char addr[64];
    fixture_email("looked-up", addr);
    struct carechat *p = invited(the_root(), addr, CARECHAT_ROLE_PROVIDER, "Looked Up");
    carechat_close(p);
    struct id target = account_of(addr);
    struct id me = account_of(FIXTURE_ROOT_EMAIL);
    struct carechat_audit_filter f = {.actor = &me};
    struct carechat_audit_records *r = query(&f);
    size_t naming = 0;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->items[i].action, "account.lookup") == 0 && r->items[i].object_len == ID_LEN &&
            memcmp(r->items[i].object, target.b, ID_LEN) == 0)
            naming++;
    carechat_audit_records_free(r);
    assert_true(naming >= 1);
}

/* since/until bound the times; the chain fields link; a provider may not
 * query (FORBIDDEN), and that refusal is itself recorded. */
static void test_audit_query_filters_and_refusal(void **state) {
    struct carechat_audit_records *all = query(NULL);
    assert_true(all->n >= 4);
    for (size_t i = 1; i < all->n; i++) {
        assert_int_equal(all->items[i].index, all->items[i - 1].index + 1);
        assert_memory_equal(all->items[i].prev_hash, all->items[i - 1].hash, 32);
    }
    int64_t mid = all->items[all->n / 2].time;
    struct carechat_audit_filter f = {.since = mid};
    struct carechat_audit_records *r = query(&f);
    assert_true(r->n > 0);
    for (size_t i = 0; i < r->n; i++)
        assert_true(r->items[i].time >= mid);
    carechat_audit_records_free(r);
    f = (struct carechat_audit_filter){.until = mid};
    r = query(&f);
    assert_true(r->n > 0);
    for (size_t i = 0; i < r->n; i++)
        assert_true(r->items[i].time < mid);
    carechat_audit_records_free(r);
    carechat_audit_records_free(all);

    char doc_addr[64];
    fixture_email("nosy", doc_addr);
    struct carechat *doc = invited(the_root(), doc_addr, CARECHAT_ROLE_PROVIDER, "nosy");
    struct id doc_id = account_of(doc_addr);
    struct carechat_audit_records *none = NULL;
    assert_int_equal(carechat_audit_query(doc, NULL, &none), STATUS_FORBIDDEN);
    bool ok;
    uint64_t bad, checked;
    assert_int_equal(carechat_audit_verify(doc, &ok, &bad, &checked), STATUS_FORBIDDEN);
    struct carechat_audit_filter fd = {.actor = &doc_id};
    r = query(&fd);
    assert_int_equal(count_action(r, "audit.query"), 1);
    assert_int_equal(count_action(r, "audit.verify"), 1);
    for (size_t i = 0; i < r->n; i++)
        if (strncmp(r->items[i].action, "audit.", 6) == 0)
            assert_int_equal(r->items[i].outcome, WIRE_FORBIDDEN);
    carechat_audit_records_free(r);
    carechat_close(doc);
}

/* Records that make the chain longer than two of the server's verification
 * steps (1000 records each), so VerifyAudit resumes across loop wakes. */
#define LONG_CHAIN 2600

/* With the server stopped, one record past the first verification step is
 * deleted through the storage API; after a restart VerifyAudit names exactly
 * its index. The log has anchors. */
static void test_audit_verify_after_tamper_on_disk(void **state) {
    bool ok;
    uint64_t bad, checked;
    /* Each listing is a read with its own access record. */
    for (int i = 0; i < LONG_CHAIN; i++) {
        struct carechat_conversations *list = NULL;
        FIXTURE_ASSERT_OK(the_root(), carechat_conversations(the_root(), &list));
        carechat_conversations_free(list);
    }
    FIXTURE_ASSERT_OK(the_root(), carechat_audit_verify(the_root(), &ok, &bad, &checked));
    assert_true(ok);
    assert_true(checked >= LONG_CHAIN);
    /* --audit-anchor-every 5: the once-a-second tick logs the head. */
    int64_t deadline = clock_monotonic_ms() + 5000;
    while (!harness_log_contains(server, "audit anchor index=") && clock_monotonic_ms() < deadline)
        nanosleep(&(struct timespec){.tv_nsec = 50000000L}, NULL);
    assert_true(harness_log_contains(server, "audit anchor index="));
    int status = -1;
    assert_int_equal(harness_stop(server, &status), 0);
    assert_int_equal(status, 0);
    assert_true(harness_log_contains(server, "audit anchor index="));

    struct db db = {0};
    snprintf(db.dir, sizeof db.dir, "%s", server->data_dir);
    db_open_journal(&db, STORE_OPEN);
    uint64_t head;
    uint8_t hash[32];
    assert_int_equal(audit_head(db.store, &head, hash), 0);
    assert_true(head >= checked);
    uint64_t victim = 1500 + (uint64_t)rand() % (head - 1500);
    db.t.op = T_DELETE;
    db.t.i = victim;
    run_command(&db);
    clear_saved(&db.t);
    db_close(&db);

    /* Offline, the subcommand names it too (exit 3). */
    const char *args[] = {"audit-verify", "--data", server->data_dir, NULL};
    struct buf out;
    buf_init(&out);
    assert_int_equal(harness_run(args, NULL, DEADLINE_MS, &status, &out), 0);
    buf_append_u8(&out, 0);
    char want[64];
    snprintf(want, sizeof want, "audit chain broken at index %llu ", (unsigned long long)victim);
    if (status != 3 || strstr((const char *)out.data, want) == NULL)
        fail_msg("audit-verify exited %d: %s", status, (const char *)out.data);
    buf_cleanup(&out);

    assert_int_equal(harness_restart(server), 0);
    fixture_url(server, url);
    carechat_close(root);
    root = NULL;
    FIXTURE_ASSERT_OK(the_root(), carechat_audit_verify(the_root(), &ok, &bad, &checked));
    assert_false(ok);
    assert_int_equal(bad, victim);
    assert_int_equal(checked, victim - 1);
}

int main(void) {
    const struct CMUnitTest chain[] = {
        cmocka_unit_test(test_audit_canonical_layout),
        cmocka_unit_test(test_audit_chain_built_by_apply),
        cmocka_unit_test(test_audit_tamper_trials_store_api),
        cmocka_unit_test(test_audit_tamper_trials_raw_bytes),
    };
    const struct CMUnitTest served[] = {
        cmocka_unit_test(test_audit_denial_is_one_record),
        cmocka_unit_test(test_audit_history_is_an_access_record),
        cmocka_unit_test(test_audit_query_filters_and_refusal),
        cmocka_unit_test(test_audit_lookup_names_its_object),
        cmocka_unit_test(test_audit_verify_after_tamper_on_disk),
    };
    int failed = cmocka_run_group_tests_name("audit_chain", chain, NULL, NULL);
    failed += cmocka_run_group_tests_name("audit_server", served, server_setup, server_teardown);
    return failed;
}
