/*
 * client/profile_test.c: the profile directory round-trips every field, is
 * created private, refuses to be read when others could, and refuses damaged
 * files, in a real directory under $TEST_TMPDIR.
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

#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/profile.h"

static void fresh_dir(const char *name, char *out, size_t n) {
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(out, n, "%s/%s-%d", tmp != NULL ? tmp : "/tmp", name, (int)getpid());
}

static void write_file(const char *dir, const char *text, mode_t mode) {
    char path[512];
    snprintf(path, sizeof path, "%s/" PROFILE_FILE, dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static struct profile *full_profile(void) {
    struct profile *p = NULL;
    assert_int_equal(profile_new(&p), 0);
    p->has_keys = true;
    rand_bytes(p->identity_seed, sizeof p->identity_seed);
    rand_bytes(p->encryption_secret, sizeof p->encryption_secret);
    p->encryption_key_id = 4000000000u;
    p->encryption_key_expires_at = 1893456000123LL;
    p->has_device = true;
    p->account_id = id_new();
    p->device_id = id_new();
    p->device_list_version = 7;
    p->ack_cursor_len = 3;
    memcpy(p->ack_cursor, "\x81\x02\x03", 3);
    p->has_session = true;
    rand_bytes(p->session_token, sizeof p->session_token);
    p->session_expires_at = 1800000000000LL;
    p->n_old_keys = 2;
    for (size_t i = 0; i < 2; i++) {
        p->old_keys[i].key_id = (uint32_t)(10 + i);
        p->old_keys[i].expires_at = 1800000000000LL + (int64_t)i;
        p->old_keys[i].retired_at = 1700000000000LL + (int64_t)i;
        rand_bytes(p->old_keys[i].secret, PROFILE_SECRET_LEN);
    }
    p->last_ack_at = 1750000000000LL;
    return p;
}

static void test_profile_round_trip_private_modes(void **state) {
    (void)state;
    char dir[400];
    fresh_dir("roundtrip", dir, sizeof dir);
    struct profile *p = full_profile();
    assert_int_equal(profile_save(dir, p), 0);

    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char path[512];
    snprintf(path, sizeof path, "%s/" PROFILE_FILE, dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    struct profile *q = NULL;
    assert_int_equal(profile_load(dir, &q), 0);
    assert_true(q->has_keys && q->has_device && q->has_session);
    assert_memory_equal(q->identity_seed, p->identity_seed, PROFILE_SECRET_LEN);
    assert_memory_equal(q->encryption_secret, p->encryption_secret, PROFILE_SECRET_LEN);
    assert_int_equal(q->encryption_key_id, p->encryption_key_id);
    assert_int_equal(q->encryption_key_expires_at, p->encryption_key_expires_at);
    assert_memory_equal(q->account_id.b, p->account_id.b, ID_LEN);
    assert_memory_equal(q->device_id.b, p->device_id.b, ID_LEN);
    assert_int_equal(q->device_list_version, 7);
    assert_int_equal(q->ack_cursor_len, 3);
    assert_memory_equal(q->ack_cursor, "\x81\x02\x03", 3);
    assert_memory_equal(q->session_token, p->session_token, PROFILE_TOKEN_LEN);
    assert_int_equal(q->session_expires_at, p->session_expires_at);
    /* Rotated-away keys, kept to open what was wrapped to them. */
    assert_int_equal(q->n_old_keys, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(q->old_keys[i].key_id, p->old_keys[i].key_id);
        assert_true(q->old_keys[i].expires_at == p->old_keys[i].expires_at);
        assert_true(q->old_keys[i].retired_at == p->old_keys[i].retired_at);
        assert_memory_equal(q->old_keys[i].secret, p->old_keys[i].secret, PROFILE_SECRET_LEN);
    }
    assert_true(q->last_ack_at == p->last_ack_at);
    assert_false(q->has_backup_key);

    /* The key backup's key and progress. */
    q->has_backup_key = true;
    memset(q->backup_key, 0x5a, PROFILE_SECRET_LEN);
    q->backup_done = 42;
    assert_int_equal(profile_save(dir, q), 0);
    struct profile *b = NULL;
    assert_int_equal(profile_load(dir, &b), 0);
    assert_true(b->has_backup_key);
    assert_memory_equal(b->backup_key, q->backup_key, PROFILE_SECRET_LEN);
    assert_true(b->backup_done == 42);
    profile_free(b);
    q->has_backup_key = false;

    /* Dropping the session (logout) keeps the device. */
    q->has_session = false;
    assert_int_equal(profile_save(dir, q), 0);
    struct profile *r = NULL;
    assert_int_equal(profile_load(dir, &r), 0);
    assert_false(r->has_session);
    assert_true(r->has_device);
    assert_memory_equal(r->device_id.b, p->device_id.b, ID_LEN);
    profile_free(p);
    profile_free(q);
    profile_free(r);
}

static void test_profile_missing_is_not_found(void **state) {
    (void)state;
    char dir[400];
    fresh_dir("missing", dir, sizeof dir);
    struct profile *p = NULL;
    assert_int_equal(profile_load(dir, &p), STATUS_NOT_FOUND);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(profile_load(dir, &p), STATUS_NOT_FOUND);
    assert_null(p);
}

static void test_profile_refuses_open_permissions(void **state) {
    (void)state;
    char dir[400];
    fresh_dir("perms", dir, sizeof dir);
    struct profile *p = full_profile();
    assert_int_equal(profile_save(dir, p), 0);
    struct profile *q = NULL;

    char path[512];
    snprintf(path, sizeof path, "%s/" PROFILE_FILE, dir);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(profile_load(dir, &q), STATUS_FORBIDDEN);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(chmod(dir, 0750), 0);
    assert_int_equal(profile_load(dir, &q), STATUS_FORBIDDEN);
    /* Nor is a secret written into a directory others can read. */
    assert_int_equal(profile_save(dir, p), STATUS_FORBIDDEN);
    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(profile_load(dir, &q), 0);
    profile_free(q);
    profile_free(p);
}

static void test_profile_refuses_damaged_files(void **state) {
    (void)state;
    char dir[400];
    fresh_dir("damaged", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    const char *keys =
        "identity_seed 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
        "encryption_secret 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
        "encryption_key_id 1\nencryption_key_expires_at 5\n";
    const char *bad[] = {
        "",
        "carechat-profile 2\n",
        "carechat-profile 1\nsurprise 1\n",
        "carechat-profile 1\nidentity_seed 00\n",
        /* keys without the rest of their group */
        "carechat-profile 1\nencryption_key_id 1\n",
        /* a session without a device */
        NULL,
    };
    struct profile *p = NULL;
    for (size_t i = 0; bad[i] != NULL; i++) {
        write_file(dir, bad[i], 0600);
        assert_int_equal(profile_load(dir, &p), STATUS_CORRUPT);
    }
    char text[1024];
    snprintf(text, sizeof text, "carechat-profile 1\n%ssession_token %064d\nsession_expires_at 1\n",
             keys, 0);
    write_file(dir, text, 0600);
    assert_int_equal(profile_load(dir, &p), STATUS_CORRUPT);
    snprintf(text, sizeof text, "carechat-profile 1\n%sencryption_key_id 2\n", keys);
    write_file(dir, text, 0600);
    assert_int_equal(profile_load(dir, &p), STATUS_CORRUPT);
    /* a cursor without a device, an empty one, and one too long */
    snprintf(text, sizeof text, "carechat-profile 1\n%sack_cursor 01\n", keys);
    write_file(dir, text, 0600);
    assert_int_equal(profile_load(dir, &p), STATUS_CORRUPT);
    const char *device = "account_id 000102030405060708090a0b0c0d0e0f\n"
                         "device_id 000102030405060708090a0b0c0d0e0f\ndevice_list_version 1\n";
    snprintf(text, sizeof text, "carechat-profile 1\n%s%sack_cursor \n", keys, device);
    write_file(dir, text, 0600);
    assert_int_equal(profile_load(dir, &p), STATUS_CORRUPT);
    snprintf(text, sizeof text, "carechat-profile 1\n%s%sack_cursor %066d\n", keys, device, 0);
    write_file(dir, text, 0600);
    assert_int_equal(profile_load(dir, &p), STATUS_CORRUPT);
    /* a key backup key without a device; progress without a key */
    snprintf(text, sizeof text, "carechat-profile 1\n%skey_backup_key %064d\n", keys, 0);
    write_file(dir, text, 0600);
    assert_int_equal(profile_load(dir, &p), STATUS_CORRUPT);
    snprintf(text, sizeof text, "carechat-profile 1\n%s%skey_backup_done 3\n", keys, device);
    write_file(dir, text, 0600);
    assert_int_equal(profile_load(dir, &p), STATUS_CORRUPT);
    snprintf(text, sizeof text, "carechat-profile 1\n%s", keys);
    write_file(dir, text, 0600);
    assert_int_equal(profile_load(dir, &p), 0);
    assert_true(p->has_keys);
    assert_false(p->has_device);
    assert_int_equal(p->encryption_key_id, 1);
    assert_int_equal(p->identity_seed[31], 0x1f);
    profile_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_round_trip_private_modes),
        cmocka_unit_test(test_profile_missing_is_not_found),
        cmocka_unit_test(test_profile_refuses_open_permissions),
        cmocka_unit_test(test_profile_refuses_damaged_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
