/*
 * server/apply_files_test.c: the file entry kinds (apply_files.c) on a real
 * store: the upload state machine of server/records_files.h, every refusal
 * entry.proto documents (membership, another device, gaps, changed bytes,
 * past the size, chunk size, wrong digest, incomplete, quota and unfinished
 * uploads, the collector before expiry, a complete file's deletion, binding to
 * two messages), the chunks sealed under the conversation's patient, the audit
 * records, and a replay of the same entries giving the same records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply_fixture.h"
#include "server/audit.h"
#include "server/records_files.h"
#include "storage/blob.h"
#include "storage/keys.h"
#include "storage/store.h"

#define T0 FIXTURE_T0
#define CS 4096u

struct world {
    struct fixture_db db;
    struct fixture_person admin, prov, pat, stranger;
    struct fixture_dev p1, p2, a1, s1;
    struct id conv;
};

static void world_open(struct world *w) {
    fixture_log_reset();
    fixture_open(&w->db, "apply-files");
    fixture_person(&w->admin, "admin@x.example", 1);
    fixture_person(&w->prov, "doc@x.example", 2);
    fixture_person(&w->pat, "pat@x.example", 3);
    fixture_person(&w->stranger, "other@x.example", 4);
    fixture_dev_make(&w->p1, 1);
    fixture_dev_make(&w->p2, 2);
    fixture_dev_make(&w->a1, 3);
    fixture_dev_make(&w->s1, 4);
    fixture_bootstrap(&w->db, &w->admin);
    fixture_join(&w->db, &w->admin, &w->prov, 2, &w->p1);
    fixture_add_device(&w->db, &w->prov, &w->p2);
    fixture_join(&w->db, &w->prov, &w->pat, 1, &w->a1);
    fixture_join(&w->db, &w->prov, &w->stranger, 1, &w->s1);
    w->conv = (struct id){{0xcc, 7}};
    assert_int_equal(fixture_direct(&w->db, &w->pat, &w->prov, &w->conv), 0);
}

static void world_close(struct world *w) {
    fixture_close(&w->db);
    fixture_log_cleanup();
}

static void base_entry(Carechat__Entry__V1__Entry *e, const struct fixture_person *who,
                       const struct fixture_dev *dev, int64_t t) {
    carechat__entry__v1__entry__init(e);
    e->time = T0 + t;
    e->actor_account_id = fixture_bin(who->id.b, 16);
    e->actor_device_id = fixture_bin(dev->id.b, 16);
}

static int begin(struct world *w, const struct fixture_person *who, const struct fixture_dev *dev,
                 uint8_t n, uint64_t size, uint32_t max_uploads, uint64_t quota) {
    static struct id file;
    file = (struct id){{0xf1, n}};
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileBegin m;
    base_entry(&e, who, dev, 100);
    carechat__entry__v1__file_begin__init(&m);
    m.file_id = fixture_bin(file.b, 16);
    m.conversation_id = fixture_bin(w->conv.b, 16);
    m.size = size;
    m.chunk_size = CS;
    m.expires_at = T0 + 1000000;
    m.max_uploads = max_uploads;
    m.quota_bytes = quota;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_BEGIN;
    e.file_begin = &m;
    return fixture_propose(&w->db, &e);
}

static int chunk(struct world *w, const struct fixture_dev *dev, uint8_t n, uint64_t index,
                 const uint8_t *data, size_t len, int64_t t) {
    struct id file = {{0xf1, n}};
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileChunk m;
    base_entry(&e, &w->prov, dev, t);
    carechat__entry__v1__file_chunk__init(&m);
    m.file_id = fixture_bin(file.b, 16);
    m.index = index;
    m.data = fixture_bin(data, len);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_CHUNK;
    e.file_chunk = &m;
    return fixture_propose(&w->db, &e);
}

static uint64_t last_received(void) {
    const struct buf *r = fixture_last_result();
    assert_int_equal(r->len, 8);
    return key_get_u64(r->data);
}

static int complete(struct world *w, uint8_t n, const uint8_t sha[32]) {
    struct id file = {{0xf1, n}};
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileComplete m;
    base_entry(&e, &w->prov, &w->p1, 200);
    carechat__entry__v1__file_complete__init(&m);
    m.file_id = fixture_bin(file.b, 16);
    m.sha256 = fixture_bin(sha, 32);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_COMPLETE;
    e.file_complete = &m;
    return fixture_propose(&w->db, &e);
}

static int delete_file(struct world *w, uint8_t n, uint32_t reason, int64_t t) {
    struct id file = {{0xf1, n}};
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileDelete m;
    base_entry(&e, &w->prov, &w->p1, t);
    if (reason == 2) {
        e.actor_account_id = fixture_bin(NULL, 0);
        e.actor_device_id = fixture_bin(NULL, 0);
    }
    carechat__entry__v1__file_delete__init(&m);
    m.file_id = fixture_bin(file.b, 16);
    m.reason = reason;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_DELETE;
    e.file_delete = &m;
    return fixture_propose(&w->db, &e);
}

static struct rec_file read_file(struct world *w, uint8_t n) {
    struct id file = {{0xf1, n}};
    struct key k;
    rec_key_file(&k, &file);
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(w->db.store, CF_FILES, k.b, k.len, &v), 0);
    struct rec_file f;
    assert_int_equal(rec_file_decode(v.data, v.len, &f), 0);
    buf_cleanup(&v);
    return f;
}

/* The whole life of a file: chunks (one short and extended, one sent
 * twice), refusals on the way, completion with the running digest. */
static void test_apply_files_upload_state_machine(void **state) {
    (void)state;
    struct world w;
    world_open(&w);
    uint8_t data[3 * CS];
    randombytes_buf(data, sizeof data);
    const uint64_t size = sizeof data - 100;
    /* Only active members begin uploads. */
    assert_int_equal(begin(&w, &w.stranger, &w.s1, 1, size, 0, 0), STATUS_NOT_FOUND);
    assert_int_equal(begin(&w, &w.prov, &w.p1, 1, size, 0, 0), 0);
    struct rec_audit a = fixture_last_audit(&w.db);
    assert_int_equal(a.action, REC_AUDIT_FILE_UPLOAD);
    assert_true(id_equal(&a.patient, &w.pat.id)); /* the conversation's patient */
    assert_int_equal(begin(&w, &w.prov, &w.p1, 1, size, 0, 0), STATUS_CONFLICT);
    /* Another device of the same account does not own the upload. */
    assert_int_equal(chunk(&w, &w.p2, 1, 0, data, CS, 110), STATUS_NOT_FOUND);
    /* A gap, a chunk over chunk_size, bytes past the size. */
    assert_int_equal(chunk(&w, &w.p1, 1, 1, data + CS, CS, 110), STATUS_BAD_REQUEST);
    assert_int_equal(chunk(&w, &w.p1, 1, 0, data, CS + 1, 110), STATUS_BAD_REQUEST);
    assert_int_equal(chunk(&w, &w.p1, 1, 2, data + 2 * CS, CS - 100, 110), STATUS_BAD_REQUEST);
    /* A short first chunk (a tus PATCH that ended there), then extended. */
    assert_int_equal(chunk(&w, &w.p1, 1, 0, data, 1000, 110), 0);
    assert_int_equal(last_received(), 1000);
    uint8_t other[CS];
    memcpy(other, data, CS);
    other[10] ^= 1;
    assert_int_equal(chunk(&w, &w.p1, 1, 0, other, CS, 111), STATUS_CONFLICT);
    assert_int_equal(chunk(&w, &w.p1, 1, 0, data, CS, 112), 0);
    assert_int_equal(last_received(), CS);
    /* The same chunk again (a lost answer): OK, nothing changes. */
    assert_int_equal(chunk(&w, &w.p1, 1, 0, data, CS, 113), 0);
    assert_int_equal(last_received(), CS);
    assert_int_equal(chunk(&w, &w.p1, 1, 1, data + CS, CS, 114), 0);
    /* Not all bytes yet: completion refused. */
    uint8_t sha[32];
    crypto_hash_sha256(sha, data, size);
    assert_int_equal(complete(&w, 1, sha), STATUS_CONFLICT);
    assert_int_equal(chunk(&w, &w.p1, 1, 2, data + 2 * CS, CS, 115), STATUS_TOO_LARGE);
    assert_int_equal(chunk(&w, &w.p1, 1, 2, data + 2 * CS, CS - 100, 116), 0);
    assert_int_equal(last_received(), size);
    uint8_t wrong[32];
    memcpy(wrong, sha, 32);
    wrong[0] ^= 1;
    assert_int_equal(complete(&w, 1, wrong), STATUS_CONFLICT);
    assert_int_equal(complete(&w, 1, sha), 0);
    assert_int_equal(fixture_last_audit(&w.db).action, REC_AUDIT_FILE_UPLOAD_COMPLETE);
    assert_int_equal(complete(&w, 1, sha), 0); /* repeated: OK */
    struct rec_file f = read_file(&w, 1);
    assert_int_equal(f.state, REC_FILE_COMPLETE);
    assert_memory_equal(f.sha256, sha, 32);
    assert_int_equal(f.completed_at, T0 + 200);
    assert_true(f.has_owner && id_equal(&f.owner, &w.pat.id));
    /* Immutable: no more chunks, no deletion. */
    assert_int_equal(chunk(&w, &w.p1, 1, 0, data, CS, 300), STATUS_CONFLICT);
    assert_int_equal(delete_file(&w, 1, 1, 300), STATUS_CONFLICT);
    /* The stored chunks are the bytes sent. */
    struct id file = {{0xf1, 1}};
    struct buf got;
    buf_init(&got);
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(blob_get_chunk(w.db.store, &file, i, &got), 0);
        assert_memory_equal(got.data, data + i * CS, got.len);
    }
    buf_cleanup(&got);
    world_close(&w);
}

/* Quota and unfinished uploads per account; termination and the collector
 * give the space back; the collector waits for the expiry. */
static void test_apply_files_limits_and_deletion(void **state) {
    (void)state;
    struct world w;
    world_open(&w);
    uint8_t data[CS];
    randombytes_buf(data, sizeof data);
    assert_int_equal(begin(&w, &w.prov, &w.p1, 1, 10000, 2, 25000), 0);
    assert_int_equal(begin(&w, &w.prov, &w.p1, 2, 10000, 2, 25000), 0);
    assert_int_equal(begin(&w, &w.prov, &w.p1, 3, 100, 2, 25000), STATUS_RATE_LIMITED);
    assert_int_equal(begin(&w, &w.prov, &w.p1, 3, 10000, 3, 25000), STATUS_TOO_LARGE);
    assert_int_equal(chunk(&w, &w.p1, 1, 0, data, CS, 110), 0);
    /* Terminated by its uploader. */
    assert_int_equal(delete_file(&w, 1, 1, 120), 0);
    assert_int_equal(fixture_last_audit(&w.db).action, REC_AUDIT_FILE_UPLOAD_DELETE);
    struct id f1 = {{0xf1, 1}};
    struct buf v;
    buf_init(&v);
    assert_int_equal(blob_get_chunk(w.db.store, &f1, 0, &v), STATUS_NOT_FOUND);
    /* Space and an upload slot are back. */
    assert_int_equal(begin(&w, &w.prov, &w.p1, 3, 10000, 2, 25000), 0);
    /* The collector: not before the expiry, then the upload is gone. */
    assert_int_equal(chunk(&w, &w.p1, 2, 0, data, CS, 130), 0);
    assert_int_equal(delete_file(&w, 2, 2, 999999), STATUS_CONFLICT);
    assert_int_equal(chunk(&w, &w.p1, 2, 1, data, CS, 1000000), STATUS_NOT_FOUND); /* expired */
    assert_int_equal(delete_file(&w, 2, 2, 1000000), 0);
    assert_int_equal(fixture_last_audit(&w.db).action, REC_AUDIT_FILE_UPLOAD_EXPIRE);
    struct id f2 = {{0xf1, 2}};
    assert_int_equal(blob_get_chunk(w.db.store, &f2, 0, &v), STATUS_NOT_FOUND);
    struct key k;
    rec_key_file(&k, &f2);
    assert_int_equal(store_get(w.db.store, CF_FILES, k.b, k.len, &v), STATUS_NOT_FOUND);
    /* The collector meeting an index entry whose record is gone (a purged
     * owner's) succeeds, deleting the entry, rather than failing forever. */
    struct id ghost = {{0xf1, 9}};
    struct key ek;
    rec_key_file_expiry(&ek, T0 + 5, &ghost);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileDelete m;
    carechat__entry__v1__entry__init(&e);
    e.time = T0 + 10;
    carechat__entry__v1__file_delete__init(&m);
    m.file_id = fixture_bin(ghost.b, 16);
    m.reason = 2;
    m.expires_at = T0 + 5;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_DELETE;
    e.file_delete = &m;
    assert_int_equal(fixture_propose(&w.db, &e), 0);
    buf_cleanup(&v);
    world_close(&w);
}

/* FileBind records the carrying message once; another one is refused. */
static void test_apply_files_bind_once(void **state) {
    (void)state;
    struct world w;
    world_open(&w);
    assert_int_equal(begin(&w, &w.prov, &w.p1, 1, 100, 0, 0), 0);
    uint8_t cm1[16] = {0xc1}, cm2[16] = {0xc2};
    for (int i = 0; i < 4; i++) {
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__FileBind m;
        base_entry(&e, &w.prov, i == 3 ? &w.p2 : &w.p1, 150);
        carechat__entry__v1__file_bind__init(&m);
        struct id file = {{0xf1, 1}};
        m.file_id = fixture_bin(file.b, 16);
        m.client_msg_id = fixture_bin(i == 2 ? cm2 : cm1, 16);
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_BIND;
        e.file_bind = &m;
        int want = i < 2 ? 0 : i == 2 ? STATUS_CONFLICT : STATUS_NOT_FOUND;
        assert_int_equal(fixture_propose(&w.db, &e), want);
    }
    struct rec_file f = read_file(&w, 1);
    assert_true(f.has_message);
    assert_memory_equal(f.client_msg_id.b, cm1, 16);
    world_close(&w);
}

/* The same entries applied to an empty store give the same records. */
static void test_apply_files_replay_is_deterministic(void **state) {
    (void)state;
    struct world w;
    world_open(&w);
    uint8_t data[2 * CS];
    memset(data, 0x5a, sizeof data);
    assert_int_equal(begin(&w, &w.prov, &w.p1, 1, sizeof data, 0, 0), 0);
    assert_int_equal(chunk(&w, &w.p1, 1, 0, data, 100, 110), 0);
    assert_int_equal(chunk(&w, &w.p1, 1, 0, data, CS, 111), 0);
    assert_int_equal(chunk(&w, &w.p1, 1, 1, data + CS, CS, 112), 0);
    uint8_t sha[32];
    crypto_hash_sha256(sha, data, sizeof data);
    assert_int_equal(complete(&w, 1, sha), 0);
    struct buf a, b;
    buf_init(&a);
    buf_init(&b);
    fixture_dump(&w.db, CF_FILES, CF_CHUNKS, &a);
    fixture_close(&w.db);
    struct fixture_db again;
    fixture_open(&again, "apply-files-replay");
    fixture_replay(&again);
    fixture_dump(&again, CF_FILES, CF_CHUNKS, &b);
    fixture_close(&again);
    assert_true(a.len > 2 * CS);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    buf_cleanup(&a);
    buf_cleanup(&b);
    fixture_log_cleanup();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_files_upload_state_machine),
        cmocka_unit_test(test_apply_files_limits_and_deletion),
        cmocka_unit_test(test_apply_files_bind_once),
        cmocka_unit_test(test_apply_files_replay_is_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
