/*
 * storage/keystore_test.c: the key store on real files in $TEST_TMPDIR: master
 * key generation and permissions, data key versions and the cache, master key
 * rotation (records untouched), and crypto-shredding through the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/status.h"
#include "storage/keystore.h"
#include "storage/store.h"
#include "storage/store_internal.h"
#include "storage/testutil.h"

static struct id make_id(uint8_t fill) {
    struct id id;
    memset(id.b, fill, ID_LEN);
    return id;
}

/* Creates the key store when `key_dir` holds none yet, else opens it. */
static struct keystore *open_ks(const char *key_dir, const char *master, size_t cache) {
    struct keystore_config cfg = {.key_dir = key_dir,
                                  .create = !keystore_dir_has_keys(key_dir),
                                  .master_key_path = master,
                                  .cache_entries = cache};
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(&cfg, &ks), 0);
    return ks;
}

static char *write_master(const char *dir, const char *name, uint8_t fill, unsigned mode) {
    char *path = testutil_path(dir, name);
    uint8_t key[32];
    memset(key, fill, sizeof key);
    assert_int_equal(testutil_write_file(path, key, sizeof key, mode), 0);
    return path;
}

static void test_keystore_generates_master_key_0600(void **state) {
    char *dir = testutil_fresh_dir("ks-generate");
    char *keys = testutil_path(dir, "keys");
    testutil_capture_begin();
    struct keystore *ks = open_ks(keys, NULL, 0);
    char *log = testutil_capture_end();
    assert_non_null(strstr(log, "WARN"));
    assert_non_null(strstr(log, "another volume"));
    free(log);
    char *master = testutil_path(keys, "master.key");
    struct stat st;
    assert_int_equal(stat(master, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    assert_int_equal(stat(keys, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char *blind = testutil_path(keys, "blind.key");
    assert_int_equal(stat(blind, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t id1[KEYSTORE_MASTER_ID_LEN], id2[KEYSTORE_MASTER_ID_LEN];
    keystore_master_key_id(ks, id1);
    keystore_close(ks);
    /* the second open uses it, without a new warning */
    testutil_capture_begin();
    ks = open_ks(keys, NULL, 0);
    log = testutil_capture_end();
    assert_null(strstr(log, "generated"));
    free(log);
    keystore_master_key_id(ks, id2);
    assert_memory_equal(id1, id2, sizeof id1);
    keystore_close(ks);
    free(blind);
    free(master);
    free(keys);
    free(dir);
}

static void test_keystore_refuses_group_readable_master_key(void **state) {
    char *dir = testutil_fresh_dir("ks-perms");
    char *keys = testutil_path(dir, "keys");
    char *loose = write_master(dir, "loose.key", 1, 0644);
    struct keystore_config cfg = {.key_dir = keys, .create = true, .master_key_path = loose};
    struct keystore *ks = NULL;
    testutil_capture_begin();
    int rc = keystore_open(&cfg, &ks);
    char *log = testutil_capture_end();
    assert_int_equal(rc, STATUS_BAD_REQUEST);
    assert_null(ks);
    assert_non_null(strstr(log, "group or others"));
    assert_non_null(strstr(log, "chmod 600"));
    free(log);
    /* 0640 too; 0600 is accepted */
    assert_int_equal(chmod(loose, 0640), 0);
    assert_int_equal(keystore_open(&cfg, &ks), STATUS_BAD_REQUEST);
    assert_int_equal(chmod(loose, 0600), 0);
    assert_int_equal(keystore_open(&cfg, &ks), 0);
    keystore_close(ks);
    ks = NULL;
    cfg.create = false;
    /* a generated default key later made readable is refused as well */
    char *keys2 = testutil_path(dir, "keys2");
    keystore_close(open_ks(keys2, NULL, 0));
    char *generated = testutil_path(keys2, "master.key");
    assert_int_equal(chmod(generated, 0644), 0);
    struct keystore_config cfg2 = {.key_dir = keys2};
    assert_int_equal(keystore_open(&cfg2, &ks), STATUS_BAD_REQUEST);
    /* wrong length, and a configured path that does not exist (never generated) */
    char *short_key = testutil_path(dir, "short.key");
    assert_int_equal(testutil_write_file(short_key, "0123456789", 10, 0600), 0);
    cfg.master_key_path = short_key;
    assert_int_equal(keystore_open(&cfg, &ks), STATUS_BAD_REQUEST);
    char *missing = testutil_path(dir, "missing.key");
    cfg.master_key_path = missing;
    assert_int_equal(keystore_open(&cfg, &ks), STATUS_BAD_REQUEST);
    struct stat st;
    assert_int_not_equal(stat(missing, &st), 0);
    assert_null(ks);
    /* nor the default one of an existing store: a new key would open nothing */
    assert_int_equal(unlink(generated), 0);
    testutil_capture_begin();
    assert_int_equal(keystore_open(&cfg2, &ks), STATUS_BAD_REQUEST);
    log = testutil_capture_end();
    assert_non_null(strstr(log, "master key"));
    assert_non_null(strstr(log, "is missing"));
    free(log);
    assert_int_not_equal(stat(generated, &st), 0);
    assert_null(ks);
    free(missing);
    free(short_key);
    free(generated);
    free(keys2);
    free(loose);
    free(keys);
    free(dir);
}

static void test_keystore_create_and_open_never_mix(void **state) {
    char *dir = testutil_fresh_dir("ks-modes");
    char *keys = testutil_path(dir, "keys");
    struct keystore_config open_cfg = {.key_dir = keys};
    struct keystore_config create_cfg = {.key_dir = keys, .create = true};
    struct keystore *ks = NULL;
    struct stat st;
    /* nothing there, or an empty directory: no key store to open, nothing made */
    testutil_capture_begin();
    assert_int_equal(keystore_open(&open_cfg, &ks), STATUS_NOT_FOUND);
    char *log = testutil_capture_end();
    assert_non_null(strstr(log, "does not exist"));
    free(log);
    assert_int_not_equal(stat(keys, &st), 0);
    assert_int_equal(mkdir(keys, 0700), 0);
    testutil_capture_begin();
    assert_int_equal(keystore_open(&open_cfg, &ks), STATUS_NOT_FOUND);
    log = testutil_capture_end();
    assert_non_null(strstr(log, "holds no key store"));
    free(log);
    char *master = testutil_path(keys, "master.key");
    assert_int_not_equal(stat(master, &st), 0);
    /* created once; a second creation over its keys is refused */
    assert_int_equal(keystore_open(&create_cfg, &ks), 0);
    struct id p = make_id(7);
    struct seal_key_id kid;
    struct seal_key key;
    assert_int_equal(keystore_current_key(ks, &p, &kid, &key), 0);
    keystore_close(ks);
    ks = NULL;
    testutil_capture_begin();
    assert_int_equal(keystore_open(&create_cfg, &ks), STATUS_CONFLICT);
    log = testutil_capture_end();
    assert_non_null(strstr(log, "holds the keys of another database"));
    free(log);
    assert_int_equal(keystore_open(&open_cfg, &ks), 0);
    keystore_close(ks);
    ks = NULL;
    free(master);
    free(keys);
    free(dir);
}

static void test_keystore_refuses_a_key_directory_others_may_enter(void **state) {
    char *dir = testutil_fresh_dir("ks-dir-perms");
    char *keys = testutil_path(dir, "keys");
    keystore_close(open_ks(keys, NULL, 0));
    struct keystore_config cfg = {.key_dir = keys};
    struct keystore *ks = NULL;
    static const unsigned modes[] = {0750, 0705, 0701, 0770};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        assert_int_equal(chmod(keys, modes[i]), 0);
        testutil_capture_begin();
        assert_int_equal(keystore_open(&cfg, &ks), STATUS_BAD_REQUEST);
        char *log = testutil_capture_end();
        assert_non_null(strstr(log, "chmod 700"));
        free(log);
        assert_null(ks);
    }
    assert_int_equal(chmod(keys, 0700), 0);
    /* its data/ directory too */
    char *data = testutil_path(keys, "data");
    assert_int_equal(chmod(data, 0755), 0);
    testutil_capture_begin();
    assert_int_equal(keystore_open(&cfg, &ks), STATUS_BAD_REQUEST);
    free(testutil_capture_end());
    assert_int_equal(chmod(data, 0700), 0);
    assert_int_equal(keystore_open(&cfg, &ks), 0);
    keystore_close(ks);
    /* and a new store in a pre-made directory that is too open */
    char *loose = testutil_path(dir, "loose");
    assert_int_equal(mkdir(loose, 0755), 0);
    assert_int_equal(chmod(loose, 0755), 0);
    struct keystore_config create_cfg = {.key_dir = loose, .create = true};
    ks = NULL;
    testutil_capture_begin();
    assert_int_equal(keystore_open(&create_cfg, &ks), STATUS_BAD_REQUEST);
    free(testutil_capture_end());
    assert_null(ks);
    free(loose);
    free(data);
    free(keys);
    free(dir);
}

static void test_keystore_data_keys_persist_and_rotate(void **state) {
    char *dir = testutil_fresh_dir("ks-data");
    struct keystore *ks = open_ks(dir, NULL, 0);
    struct id patient = make_id(0xab);
    struct seal_key_id kid;
    struct seal_key k1, k1b, k2, found;
    assert_int_equal(keystore_current_key(ks, &patient, &kid, &k1), 0);
    assert_int_equal(kid.version, 1);
    assert_memory_equal(kid.owner.b, patient.b, ID_LEN);
    /* the server's own key is another one */
    struct seal_key_id server_kid;
    assert_int_equal(keystore_current_key(ks, NULL, &server_kid, &k2), 0);
    assert_true(sodium_is_zero(server_kid.owner.b, ID_LEN));
    assert_memory_not_equal(k1.bytes, k2.bytes, 32);
    keystore_close(ks);

    ks = open_ks(dir, NULL, 0);
    assert_int_equal(keystore_current_key(ks, &patient, &kid, &k1b), 0);
    assert_int_equal(kid.version, 1);
    assert_memory_equal(&k1, &k1b, sizeof k1); /* bytes and prepared state */
    assert_int_equal(keystore_rotate_owner(ks, &patient), 0);
    assert_int_equal(keystore_current_key(ks, &patient, &kid, &k2), 0);
    assert_int_equal(kid.version, 2);
    assert_memory_not_equal(k1.bytes, k2.bytes, 32);
    struct seal_key_id v1 = {.owner = patient, .version = 1};
    assert_int_equal(keystore_find_key(ks, &v1, &found), 0);
    assert_memory_equal(&found, &k1, sizeof k1);
    keystore_close(ks);

    ks = open_ks(dir, NULL, 0);
    assert_int_equal(keystore_current_key(ks, &patient, &kid, &found), 0);
    assert_int_equal(kid.version, 2);
    assert_memory_equal(&found, &k2, sizeof k2);
    assert_int_equal(keystore_find_key(ks, &v1, &found), 0);
    assert_memory_equal(&found, &k1, sizeof k1);
    /* a key nobody created is corruption, not absence */
    struct seal_key_id ghost = {.owner = make_id(0xcd), .version = 1};
    struct seal_key_id v9 = {.owner = patient, .version = 9};
    testutil_capture_begin();
    int ghost_rc = keystore_find_key(ks, &ghost, &found);
    int v9_rc = keystore_find_key(ks, &v9, &found);
    free(testutil_capture_end());
    assert_int_equal(ghost_rc, STATUS_CORRUPT);
    assert_int_equal(v9_rc, STATUS_CORRUPT);
    keystore_close(ks);
    free(dir);
}

static void test_keystore_small_cache_evicts_and_reloads(void **state) {
    enum { OWNERS = 40 };
    char *dir = testutil_fresh_dir("ks-cache");
    struct keystore *ks = open_ks(dir, NULL, 3);
    struct seal_key keys[OWNERS];
    for (int i = 0; i < OWNERS; i++) {
        struct id owner = make_id((uint8_t)(i + 1));
        owner.b[0] = (uint8_t)(i * 7); /* spread over buckets, some collide */
        struct seal_key_id kid;
        assert_int_equal(keystore_current_key(ks, &owner, &kid, &keys[i]), 0);
        if (i % 5 == 0)
            assert_int_equal(keystore_rotate_owner(ks, &owner), 0);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < OWNERS; i++) {
            struct id owner = make_id((uint8_t)(i + 1));
            owner.b[0] = (uint8_t)(i * 7);
            struct seal_key_id v1 = {.owner = owner, .version = 1};
            struct seal_key got;
            assert_int_equal(keystore_find_key(ks, &v1, &got), 0);
            assert_memory_equal(&got, &keys[i], sizeof got);
            struct seal_key_id kid;
            assert_int_equal(keystore_current_key(ks, &owner, &kid, &got), 0);
            assert_int_equal(kid.version, i % 5 == 0 ? 2 : 1);
            if (kid.version == 1)
                assert_memory_equal(&got, &keys[i], sizeof got);
        }
    }
    keystore_close(ks);
    free(dir);
}

static void test_keystore_blind_index_is_keyed(void **state) {
    char *dir = testutil_fresh_dir("ks-blind");
    struct keystore *ks = open_ks(dir, NULL, 0);
    uint8_t a[32], b[32], plain[32];
    keystore_blind_index(ks, "a@example.org", 13, a);
    keystore_blind_index(ks, "a@example.org", 13, b);
    assert_memory_equal(a, b, 32);
    keystore_blind_index(ks, "b@example.org", 13, b);
    assert_memory_not_equal(a, b, 32);
    /* it is not an unkeyed hash */
    crypto_hash_sha256(plain, (const uint8_t *)"a@example.org", 13);
    assert_memory_not_equal(a, plain, 32);
    keystore_close(ks);
    free(dir);
}

/* ---- through the store ---- */

static void put_record(struct store *s, const char *key, const struct id *owner,
                       const char *value) {
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_MESSAGES, key, strlen(key), owner, value, strlen(value)), 0);
    assert_int_equal(store_txn_commit(t), 0);
    store_txn_free(t);
}

static int read_record(struct store *s, const char *key, const char *want) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(s, CF_MESSAGES, key, strlen(key), &v);
    if (rc == 0) {
        assert_non_null(want);
        assert_int_equal(v.len, strlen(want));
        assert_memory_equal(v.data, want, v.len);
    }
    buf_cleanup(&v);
    return rc;
}

/* Concatenates name and bytes of every SST and blob file under dir, sorted by
 * name: equal fingerprints mean the records were not rewritten. */
static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct buf record_files(const char *db) {
    struct buf all;
    buf_init(&all);
    char *names[256];
    int n = 0;
    DIR *d = opendir(db);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 256) {
        size_t len = strlen(de->d_name);
        if ((len > 4 && !strcmp(de->d_name + len - 4, ".sst")) ||
            (len > 5 && !strcmp(de->d_name + len - 5, ".blob")))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    for (int i = 0; i < n; i++) {
        char *path = testutil_path(db, names[i]);
        size_t len = 0;
        uint8_t *data = testutil_read_file(path, &len);
        assert_non_null(data);
        buf_printf(&all, "%s:", names[i]);
        buf_append(&all, data, len);
        free(data);
        free(path);
        free(names[i]);
    }
    assert_true(n > 0);
    return all;
}

static void test_keystore_master_rotation_rewraps_without_rewriting_records(void **state) {
    char *dir = testutil_fresh_dir("ks-rotate");
    char *keys = testutil_path(dir, "keys");
    char *db = testutil_path(dir, "db");
    struct store_config cfg = {.data_dir = dir, .mode = STORE_CREATE};
    struct store *s = NULL;
    assert_int_equal(store_open(&cfg, &s), 0);
    cfg.mode = STORE_OPEN;
    struct id p1 = make_id(1), p2 = make_id(2);
    put_record(s, "m1", &p1, "first patient");
    put_record(s, "m2", &p2, "second patient");
    put_record(s, "m3", NULL, "server record");
    assert_int_equal(store_flush(s), 0);
    struct buf before = record_files(db);
    char *p1_file;
    {
        char hex[ID_HEX_LEN + 1], name[64];
        id_to_hex(&p1, hex);
        snprintf(name, sizeof name, "data/%s.key", hex);
        p1_file = testutil_path(keys, name);
    }
    size_t wrapped_len = 0;
    uint8_t *wrapped_before = testutil_read_file(p1_file, &wrapped_len);
    assert_non_null(wrapped_before);
    uint8_t old_id[KEYSTORE_MASTER_ID_LEN], new_id[KEYSTORE_MASTER_ID_LEN];
    keystore_master_key_id(store_keystore(s), old_id);

    char *new_master = write_master(dir, "new-master.key", 0x5c, 0600);
    char *loose = write_master(dir, "loose-master.key", 0x5d, 0644);
    assert_int_equal(keystore_rotate_master(store_keystore(s), loose), STATUS_BAD_REQUEST);
    assert_int_equal(keystore_rotate_master(store_keystore(s), new_master), 0);
    keystore_master_key_id(store_keystore(s), new_id);
    assert_memory_not_equal(old_id, new_id, sizeof old_id);
    /* the key file is re-wrapped: new master id in its header, new bytes */
    size_t len_after = 0;
    uint8_t *wrapped_after = testutil_read_file(p1_file, &len_after);
    assert_int_equal(len_after, wrapped_len);
    assert_memory_equal(wrapped_after + 22, new_id, KEYSTORE_MASTER_ID_LEN);
    assert_memory_not_equal(wrapped_after + 34, wrapped_before + 34, wrapped_len - 34);
    free(wrapped_after);
    /* records open as before */
    assert_int_equal(read_record(s, "m1", "first patient"), 0);
    assert_int_equal(read_record(s, "m2", "second patient"), 0);
    assert_int_equal(read_record(s, "m3", "server record"), 0);
    store_close(s);

    /* with the new master configured everything opens, and no record changed */
    struct store_config cfg_new = {.data_dir = dir, .master_key_path = new_master};
    assert_int_equal(store_open(&cfg_new, &s), 0);
    assert_int_equal(read_record(s, "m1", "first patient"), 0);
    assert_int_equal(read_record(s, "m3", "server record"), 0);
    struct buf after = record_files(db);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
    store_close(s);
    /* the old master no longer opens the key store */
    s = NULL;
    testutil_capture_begin();
    int rc = store_open(&cfg, &s);
    free(testutil_capture_end());
    assert_int_equal(rc, STATUS_CORRUPT);
    assert_null(s);

    buf_cleanup(&before);
    buf_cleanup(&after);
    free(wrapped_before);
    free(p1_file);
    free(loose);
    free(new_master);
    free(db);
    free(keys);
    free(dir);
}

static void test_keystore_interrupted_rotation_finishes_with_old_key(void **state) {
    char *dir = testutil_fresh_dir("ks-interrupted");
    char *keys = testutil_path(dir, "keys");
    char *snapshot = testutil_path(dir, "keys-before");
    char *mixed = testutil_path(dir, "keys-mixed");
    char *master_a = write_master(dir, "a.key", 0xaa, 0600);
    char *master_b = write_master(dir, "b.key", 0xbb, 0600);
    struct keystore *ks = open_ks(keys, master_a, 0);
    struct id p1 = make_id(1), p2 = make_id(2);
    struct seal_key_id kid;
    struct seal_key k1, k2, got;
    assert_int_equal(keystore_current_key(ks, &p1, &kid, &k1), 0);
    assert_int_equal(keystore_current_key(ks, &p2, &kid, &k2), 0);
    keystore_close(ks);
    assert_int_equal(testutil_copy_tree(keys, snapshot), 0);
    ks = open_ks(keys, master_a, 0);
    assert_int_equal(keystore_rotate_master(ks, master_b), 0);
    keystore_close(ks);

    /* as if the rotation stopped after p1: p1 under B, p2 and blind.key under A */
    assert_int_equal(testutil_copy_tree(snapshot, mixed), 0);
    char hex[ID_HEX_LEN + 1], name[64];
    id_to_hex(&p1, hex);
    snprintf(name, sizeof name, "data/%s.key", hex);
    char *from = testutil_path(keys, name), *to = testutil_path(mixed, name);
    size_t len = 0;
    uint8_t *data = testutil_read_file(from, &len);
    assert_int_equal(testutil_write_file(to, data, len, 0600), 0);
    free(data);

    struct keystore_config only_b = {.key_dir = mixed, .master_key_path = master_b};
    ks = NULL;
    testutil_capture_begin();
    int rc = keystore_open(&only_b, &ks);
    free(testutil_capture_end());
    assert_int_equal(rc, STATUS_CORRUPT);
    struct keystore_config both = {
        .key_dir = mixed, .master_key_path = master_b, .old_master_key_path = master_a};
    assert_int_equal(keystore_open(&both, &ks), 0);
    keystore_close(ks);
    /* finished: B alone opens every key, and they are the same keys */
    ks = open_ks(mixed, master_b, 0);
    struct seal_key_id v1 = {.owner = p1, .version = 1};
    assert_int_equal(keystore_find_key(ks, &v1, &got), 0);
    assert_memory_equal(&got, &k1, sizeof got);
    v1.owner = p2;
    assert_int_equal(keystore_find_key(ks, &v1, &got), 0);
    assert_memory_equal(&got, &k2, sizeof got);
    keystore_close(ks);
    free(from);
    free(to);
    free(master_a);
    free(master_b);
    free(mixed);
    free(snapshot);
    free(keys);
    free(dir);
}

static bool count_visit(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len) {
    (*(int *)ctx)++;
    return true;
}

static void test_keystore_destroy_shreds_owner_records(void **state) {
    char *dir = testutil_fresh_dir("ks-destroy");
    char *backup = testutil_fresh_dir("ks-destroy-backup");
    char *keys = testutil_path(dir, "keys");
    struct store_config cfg = {.data_dir = dir, .mode = STORE_CREATE};
    struct store *s = NULL;
    assert_int_equal(store_open(&cfg, &s), 0);
    cfg.mode = STORE_OPEN;
    struct id purged = make_id(0x0d), kept = make_id(0x0e);
    put_record(s, "p-1", &purged, "purged one");
    put_record(s, "p-2", &purged, "purged two");
    put_record(s, "q-1", &kept, "kept one");
    assert_int_equal(store_flush(s), 0);
    store_close(s);
    /* a backup of the data directory taken before the purge (keys elsewhere) */
    char *db = testutil_path(dir, "db"), *backup_db = testutil_path(backup, "db");
    assert_int_equal(testutil_copy_tree(db, backup_db), 0);

    assert_int_equal(store_open(&cfg, &s), 0);
    assert_int_equal(read_record(s, "p-1", "purged one"), 0);
    assert_int_equal(keystore_destroy(store_keystore(s), NULL), STATUS_BAD_REQUEST);
    struct id zero = make_id(0);
    assert_int_equal(keystore_destroy(store_keystore(s), &zero), STATUS_BAD_REQUEST);
    assert_int_equal(keystore_destroy(store_keystore(s), &purged), 0);
    assert_int_equal(keystore_destroy(store_keystore(s), &purged), 0); /* idempotent */
    assert_int_equal(read_record(s, "p-1", NULL), STATUS_NOT_FOUND);
    assert_int_equal(read_record(s, "p-2", NULL), STATUS_NOT_FOUND);
    assert_int_equal(read_record(s, "q-1", "kept one"), 0);
    int visited = 0;
    assert_int_equal(store_scan(s, CF_MESSAGES, NULL, 0, NULL, 0, 10, count_visit, &visited), 1);
    assert_int_equal(visited, 1);
    /* compaction drops the purged owner's values from the files, no other */
    assert_int_equal(store_count_sealed_by(s, CF_MESSAGES, &purged), 2);
    assert_int_equal(store_compact(s), 0);
    assert_int_equal(store_count_sealed_by(s, CF_MESSAGES, &purged), 0);
    assert_int_equal(store_count_sealed_by(s, CF_MESSAGES, &kept), 1);
    assert_true(keystore_destroyed(store_keystore(s), &purged));
    assert_false(keystore_destroyed(store_keystore(s), &kept));
    /* nothing new can be sealed for a purged owner */
    struct store_txn *t = NULL;
    assert_int_equal(store_txn_begin(s, &t), 0);
    assert_int_equal(txn_put(t, CF_MESSAGES, "p-3", 3, &purged, "x", 1), STATUS_NOT_FOUND);
    store_txn_free(t);
    store_close(s);

    /* after a restart, and in the old backup, the purged records stay unreadable */
    assert_int_equal(store_open(&cfg, &s), 0);
    assert_int_equal(read_record(s, "p-1", NULL), STATUS_NOT_FOUND);
    store_close(s);
    struct store_config restored = {.data_dir = backup, .key_dir = keys};
    assert_int_equal(store_open(&restored, &s), 0);
    assert_int_equal(read_record(s, "p-2", NULL), STATUS_NOT_FOUND);
    assert_int_equal(read_record(s, "q-1", "kept one"), 0);
    store_close(s);
    free(backup_db);
    free(db);
    free(keys);
    free(backup);
    free(dir);
}

/* Every version of a destroyed owner's key, cached and prepared or not, is gone
 * from the key store at once: nothing it sealed can be opened through it, and a
 * failed lookup hands out nothing. */
static void test_keystore_destroy_forgets_every_cached_version(void **state) {
    char *dir = testutil_fresh_dir("ks-destroy-versions");
    struct keystore *ks = open_ks(dir, NULL, 0);
    struct id purged = make_id(0x1d), kept = make_id(0x1e);
    struct seal_key key, kept_key;
    struct seal_key_id kid, kept_kid;
    struct buf sealed[2], opened;
    buf_init(&opened);
    assert_int_equal(keystore_current_key(ks, &kept, &kept_kid, &kept_key), 0);
    for (uint32_t v = 1; v <= 2; v++) {
        if (v == 2)
            assert_int_equal(keystore_rotate_owner(ks, &purged), 0);
        assert_int_equal(keystore_current_key(ks, &purged, &kid, &key), 0);
        assert_int_equal(kid.version, v);
        buf_init(&sealed[v - 1]);
        assert_int_equal(
            seal_value(SEAL_AUTO, &key, &kid, "messages", "k", 1, "purged", 6, &sealed[v - 1]), 0);
        sodium_memzero(&key, sizeof key);
    }
    /* both versions are in the cache now */
    for (uint32_t v = 1; v <= 2; v++) {
        struct seal_key_id want = {.owner = purged, .version = v};
        assert_int_equal(keystore_find_key(ks, &want, &key), 0);
        assert_int_equal(seal_open(SEAL_AUTO, &key, "messages", "k", 1, sealed[v - 1].data,
                                   sealed[v - 1].len, &opened),
                         0);
        sodium_memzero(&key, sizeof key);
    }

    assert_int_equal(keystore_destroy(ks, &purged), 0);
    for (int reopened = 0; reopened < 2; reopened++) {
        for (uint32_t v = 1; v <= 2; v++) {
            struct seal_key_id named;
            assert_int_equal(seal_key_id_of(sealed[v - 1].data, sealed[v - 1].len, &named), 0);
            memset(&key, 0xee, sizeof key);
            assert_int_equal(keystore_find_key(ks, &named, &key), STATUS_NOT_FOUND);
            struct seal_key untouched;
            memset(&untouched, 0xee, sizeof untouched);
            assert_memory_equal(&key, &untouched, sizeof key);
        }
        assert_int_equal(keystore_current_key(ks, &purged, &kid, &key), STATUS_NOT_FOUND);
        assert_int_equal(keystore_rotate_owner(ks, &purged), STATUS_NOT_FOUND);
        /* the other owner's key is untouched */
        struct seal_key again;
        assert_int_equal(keystore_find_key(ks, &kept_kid, &again), 0);
        assert_memory_equal(&again, &kept_key, sizeof again);
        sodium_memzero(&again, sizeof again);
        keystore_close(ks);
        ks = open_ks(dir, NULL, 0);
    }
    keystore_close(ks);
    sodium_memzero(&kept_key, sizeof kept_key);
    buf_cleanup(&sealed[0]);
    buf_cleanup(&sealed[1]);
    buf_cleanup(&opened);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keystore_generates_master_key_0600),
        cmocka_unit_test(test_keystore_refuses_group_readable_master_key),
        cmocka_unit_test(test_keystore_create_and_open_never_mix),
        cmocka_unit_test(test_keystore_refuses_a_key_directory_others_may_enter),
        cmocka_unit_test(test_keystore_data_keys_persist_and_rotate),
        cmocka_unit_test(test_keystore_small_cache_evicts_and_reloads),
        cmocka_unit_test(test_keystore_blind_index_is_keyed),
        cmocka_unit_test(test_keystore_master_rotation_rewraps_without_rewriting_records),
        cmocka_unit_test(test_keystore_interrupted_rotation_finishes_with_old_key),
        cmocka_unit_test(test_keystore_destroy_shreds_owner_records),
        cmocka_unit_test(test_keystore_destroy_forgets_every_cached_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
