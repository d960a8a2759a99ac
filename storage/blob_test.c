/*
 * storage/blob_test.c: file chunks in CF_CHUNKS: round trips, limits, deletion,
 * large chunks landing in RocksDB blob files, and shredding with the owner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "base/buf.h"
#include "base/status.h"
#include "storage/blob.h"
#include "storage/keystore.h"
#include "storage/store.h"
#include "storage/store_internal.h"
#include "storage/testutil.h"

static struct id make_id(uint8_t fill) {
    struct id id;
    memset(id.b, fill, ID_LEN);
    return id;
}

static void fill_chunk(struct buf *b, size_t len, uint8_t seed) {
    buf_reset(b);
    for (size_t i = 0; i < len; i++)
        buf_append_u8(b, (uint8_t)(i * 131 + seed));
}

static int count_blob_files(const char *db) {
    DIR *d = opendir(db);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        n += len > 5 && strcmp(de->d_name + len - 5, ".blob") == 0;
    }
    closedir(d);
    return n;
}

static void test_blob_chunks_round_trip_into_blob_files(void **state) {
    static const size_t sizes[] = {1, 1000, 16 * 1024, 200 * 1024, BLOB_MAX_CHUNK};
    enum { N = sizeof sizes / sizeof sizes[0] };
    char *dir = testutil_fresh_dir("blob-round-trip");
    char *db = testutil_path(dir, "db");
    struct store_config cfg = {.data_dir = dir, .mode = STORE_CREATE};
    struct store *s = NULL;
    assert_int_equal(store_open(&cfg, &s), 0);
    struct id file = make_id(0xf1), patient = make_id(0x91);
    struct buf chunk, got;
    buf_init(&chunk);
    buf_init(&got);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    for (size_t i = 0; i < N; i++) {
        fill_chunk(&chunk, sizes[i], (uint8_t)i);
        assert_int_equal(blob_put_chunk(t, &file, i, &patient, chunk.data, chunk.len), 0);
    }
    fill_chunk(&chunk, BLOB_MAX_CHUNK + 1, 0);
    assert_int_equal(blob_put_chunk(t, &file, 99, &patient, chunk.data, chunk.len),
                     STATUS_TOO_LARGE);
    assert_int_equal(blob_put_chunk(t, &file, 98, &patient, chunk.data, 0), STATUS_BAD_REQUEST);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    assert_int_equal(store_flush(s), 0);
    /* chunks of 16 KiB and more went to blob files */
    assert_true(count_blob_files(db) > 0);
    for (size_t i = 0; i < N; i++) {
        fill_chunk(&chunk, sizes[i], (uint8_t)i);
        assert_int_equal(blob_get_chunk(s, &file, i, &got), 0);
        assert_int_equal(got.len, chunk.len);
        assert_memory_equal(got.data, chunk.data, chunk.len);
    }
    assert_int_equal(blob_get_chunk(s, &file, 99, &got), STATUS_NOT_FOUND);
    assert_int_equal(blob_get_chunk(s, &file, N, &got), STATUS_NOT_FOUND);
    /* another file's chunk index is another record */
    struct id other = make_id(0xf2);
    assert_int_equal(blob_get_chunk(s, &other, 0, &got), STATUS_NOT_FOUND);
    store_close(s);

    /* after a restart: still there; then deleted */
    cfg.mode = STORE_OPEN;
    assert_int_equal(store_open(&cfg, &s), 0);
    fill_chunk(&chunk, sizes[3], 3);
    assert_int_equal(blob_get_chunk(s, &file, 3, &got), 0);
    assert_memory_equal(got.data, chunk.data, chunk.len);
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(blob_delete_chunks(t, &file, N), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(blob_get_chunk(s, &file, i, &got), STATUS_NOT_FOUND);
    store_close(s);
    buf_cleanup(&chunk);
    buf_cleanup(&got);
    free(db);
    free(dir);
}

static void test_blob_chunks_are_shredded_with_their_owner(void **state) {
    char *dir = testutil_fresh_dir("blob-shred");
    struct store_config cfg = {.data_dir = dir, .mode = STORE_CREATE};
    struct store *s = NULL;
    assert_int_equal(store_open(&cfg, &s), 0);
    struct id file = make_id(0xf3), patient = make_id(0x93);
    struct buf chunk, got;
    buf_init(&chunk);
    buf_init(&got);
    fill_chunk(&chunk, 64 * 1024, 7);
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(blob_put_chunk(t, &file, 0, &patient, chunk.data, chunk.len), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
    assert_int_equal(store_flush(s), 0);
    assert_int_equal(blob_get_chunk(s, &file, 0, &got), 0);
    assert_int_equal(keystore_destroy(store_keystore(s), &patient), 0);
    assert_int_equal(blob_get_chunk(s, &file, 0, &got), STATUS_NOT_FOUND);
    assert_int_equal(got.len, 0);
    store_close(s);
    buf_cleanup(&chunk);
    buf_cleanup(&got);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_chunks_round_trip_into_blob_files),
        cmocka_unit_test(test_blob_chunks_are_shredded_with_their_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
