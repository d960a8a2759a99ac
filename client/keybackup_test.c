/*
 * client/keybackup_test.c: the key backup format (client/keybackup.h): the
 * recovery key and its checksum, the key derivation against values computed
 * independently (Python's hmac and hashlib), segments that round-trip and
 * refuse tampering, another account or another key, and a segment moved to
 * another number (reordered).
 */
#define _GNU_SOURCE /* memmem() */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/hex.h"
#include "base/status.h"
#include "client/keybackup.h"

static const struct id ACCOUNT = {{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa,
                                   0xab, 0xac, 0xad, 0xae, 0xaf}};

static void test_secret(uint8_t s[KEYBACKUP_SECRET_LEN]) {
    for (int i = 0; i < KEYBACKUP_SECRET_LEN; i++)
        s[i] = (uint8_t)i;
}

static void records(struct keybackup_record *r, size_t n, uint8_t salt) {
    for (size_t i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].message_id.b[0] = salt;
        r[i].message_id.b[15] = (uint8_t)i;
        r[i].conversation_id.b[1] = (uint8_t)(i % 3);
        randombytes_buf(r[i].key, sizeof r[i].key);
    }
}

/* Known answers: the recovery key, the backup key and its key id of secret
 * 00 01 .. 13 and account a0 .. af. */
static void test_keybackup_known_answers(void **state) {
    (void)state;
    uint8_t s[KEYBACKUP_SECRET_LEN], back[KEYBACKUP_SECRET_LEN];
    test_secret(s);
    char text[KEYBACKUP_RECOVERY_LEN + 1];
    keybackup_recovery_format(s, text);
    assert_string_equal(text, "000G-40R4-0M30-E209-185G-R38E-1W81-24GK-ZSQM");
    assert_int_equal(keybackup_recovery_parse(text, back), 0);
    assert_memory_equal(back, s, sizeof s);
    uint8_t key[KEYBACKUP_KEY_LEN], want[KEYBACKUP_KEY_LEN];
    keybackup_derive(s, &ACCOUNT, key);
    assert_int_equal(
        hex_decode_exact("eb96d18535fd53a440167831022e46b3c6b144fdc9494b7b6c8fd54ea64852"
                         "00",
                         want, sizeof want),
        0);
    assert_memory_equal(key, want, sizeof key);
    uint8_t id[KEYBACKUP_KEY_ID_LEN], want_id[KEYBACKUP_KEY_ID_LEN];
    keybackup_key_id(key, id);
    assert_int_equal(hex_decode_exact("c19c4f8c7a2ce9cc2775cbf3e3916049", want_id, sizeof want_id),
                     0);
    assert_memory_equal(id, want_id, sizeof id);
    /* Another account, another key. */
    struct id other = ACCOUNT;
    other.b[15] ^= 1;
    uint8_t key2[KEYBACKUP_KEY_LEN];
    keybackup_derive(s, &other, key2);
    assert_memory_not_equal(key, key2, sizeof key);
}

/* A person's way of typing it is read; a typo is caught by the checksum. */
static void test_keybackup_recovery_key_typed(void **state) {
    (void)state;
    uint8_t s[KEYBACKUP_SECRET_LEN], got[KEYBACKUP_SECRET_LEN];
    keybackup_secret_new(s);
    char text[KEYBACKUP_RECOVERY_LEN + 1];
    keybackup_recovery_format(s, text);
    assert_int_equal(strlen(text), KEYBACKUP_RECOVERY_LEN);
    /* Lower case, spaces for dashes, a newline at the end. */
    char loose[64];
    size_t o = 0;
    for (size_t i = 0; text[i]; i++)
        loose[o++] = text[i] == '-'
                         ? ' '
                         : (char)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] + 32 : text[i]);
    loose[o++] = '\n';
    loose[o] = '\0';
    assert_int_equal(keybackup_recovery_parse(loose, got), 0);
    assert_memory_equal(got, s, sizeof s);
    /* O for 0, I and L for 1. */
    char known[] = "000G-40R4-0M30-E209-185G-R38E-1W81-24GK-ZSQM";
    char confusable[] = "OOOG-4OR4-OM3O-E2O9-L85G-R38E-IW8l-24GK-ZSQM";
    uint8_t a[KEYBACKUP_SECRET_LEN], b[KEYBACKUP_SECRET_LEN];
    assert_int_equal(keybackup_recovery_parse(known, a), 0);
    assert_int_equal(keybackup_recovery_parse(confusable, b), 0);
    assert_memory_equal(a, b, sizeof a);
    /* Every single-character typo is refused (checksum), and never taken. */
    for (size_t i = 0; i < KEYBACKUP_RECOVERY_LEN; i++) {
        if (text[i] == '-')
            continue;
        for (const char *c = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; *c; c++) {
            if (*c == text[i])
                continue;
            char typo[KEYBACKUP_RECOVERY_LEN + 1];
            memcpy(typo, text, sizeof typo);
            typo[i] = *c;
            memset(got, 0x55, sizeof got);
            assert_int_equal(keybackup_recovery_parse(typo, got), STATUS_CORRUPT);
            assert_int_equal(got[0], 0x55);
        }
    }
    /* Not the shape: too short, too long, a letter outside the alphabet. */
    assert_int_equal(keybackup_recovery_parse("000G-40R4", got), STATUS_BAD_REQUEST);
    assert_int_equal(
        keybackup_recovery_parse("000G-40R4-0M30-E209-185G-R38E-1W81-24GK-ZSQM-0", got),
        STATUS_BAD_REQUEST);
    assert_int_equal(keybackup_recovery_parse("U00G-40R4-0M30-E209-185G-R38E-1W81-24GK-ZSQM", got),
                     STATUS_BAD_REQUEST);
    assert_int_equal(keybackup_recovery_parse("", got), STATUS_BAD_REQUEST);
}

static void test_keybackup_segment_round_trip(void **state) {
    (void)state;
    uint8_t key[KEYBACKUP_KEY_LEN];
    randombytes_buf(key, sizeof key);
    struct keybackup_record in[5];
    records(in, 5, 1);
    struct buf seg;
    buf_init(&seg);
    assert_int_equal(keybackup_seal(key, &ACCOUNT, 7, in, 5, &seg), 0);
    assert_int_equal(seg.len, keybackup_segment_len(5));
    assert_int_equal(seg.data[0], KEYBACKUP_VERSION);
    /* No content key in the clear. */
    for (size_t i = 0; i < 5; i++)
        assert_null(memmem(seg.data, seg.len, in[i].key, KEYBACKUP_KEY_LEN));
    struct keybackup_record *out = NULL;
    size_t n = 0;
    assert_int_equal(keybackup_open(key, &ACCOUNT, 7, seg.data, seg.len, &out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, in, sizeof in);
    keybackup_records_free(out, n);
    /* The same records again: another nonce, another ciphertext. */
    struct buf again;
    buf_init(&again);
    assert_int_equal(keybackup_seal(key, &ACCOUNT, 7, in, 5, &again), 0);
    assert_memory_not_equal(again.data, seg.data, seg.len);
    /* An empty segment opens to no records. */
    assert_int_equal(keybackup_seal(key, &ACCOUNT, 8, in, 0, &again), 0);
    assert_int_equal(keybackup_open(key, &ACCOUNT, 8, again.data, again.len, &out, &n), 0);
    assert_int_equal(n, 0);
    keybackup_records_free(out, n);
    assert_int_equal(keybackup_seal(key, &ACCOUNT, 0, in, 1, &again), STATUS_BAD_REQUEST);
    /* The most records a 128 KiB segment holds fit it. */
    size_t most = keybackup_records_per_segment(128 * 1024);
    assert_true(keybackup_segment_len(most) <= 128 * 1024);
    assert_true(keybackup_segment_len(most + 1) > 128 * 1024);
    assert_int_equal(keybackup_records_per_segment(KEYBACKUP_OVERHEAD), 0);
    buf_cleanup(&again);
    buf_cleanup(&seg);
}

/* Any byte flipped, or the segment cut, and it does not open. */
static void test_keybackup_tampered_segment(void **state) {
    (void)state;
    uint8_t key[KEYBACKUP_KEY_LEN];
    randombytes_buf(key, sizeof key);
    struct keybackup_record in[2];
    records(in, 2, 2);
    struct buf seg;
    buf_init(&seg);
    assert_int_equal(keybackup_seal(key, &ACCOUNT, 1, in, 2, &seg), 0);
    struct keybackup_record *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < seg.len; i++) {
        seg.data[i] ^= 0x01;
        assert_int_equal(keybackup_open(key, &ACCOUNT, 1, seg.data, seg.len, &out, &n),
                         STATUS_CORRUPT);
        assert_null(out);
        assert_int_equal(n, 0);
        seg.data[i] ^= 0x01;
    }
    for (size_t len = 0; len < seg.len; len += 7)
        assert_int_equal(keybackup_open(key, &ACCOUNT, 1, seg.data, len, &out, &n), STATUS_CORRUPT);
    /* Another key does not open it either. */
    uint8_t other[KEYBACKUP_KEY_LEN];
    memcpy(other, key, sizeof other);
    other[0] ^= 0x80;
    assert_int_equal(keybackup_open(other, &ACCOUNT, 1, seg.data, seg.len, &out, &n),
                     STATUS_CORRUPT);
    assert_int_equal(keybackup_open(key, &ACCOUNT, 1, seg.data, seg.len, &out, &n), 0);
    keybackup_records_free(out, n);
    buf_cleanup(&seg);
}

/* The additional data binds the account: a segment of one account's backup
 * handed to another (the same recovery key used for both, or the server
 * swapping backups) does not open. */
static void test_keybackup_wrong_account(void **state) {
    (void)state;
    uint8_t key[KEYBACKUP_KEY_LEN];
    randombytes_buf(key, sizeof key);
    struct keybackup_record in[1];
    records(in, 1, 3);
    struct buf seg;
    buf_init(&seg);
    assert_int_equal(keybackup_seal(key, &ACCOUNT, 1, in, 1, &seg), 0);
    struct id other = ACCOUNT;
    other.b[0] ^= 0xff;
    struct keybackup_record *out = NULL;
    size_t n = 0;
    assert_int_equal(keybackup_open(key, &other, 1, seg.data, seg.len, &out, &n), STATUS_CORRUPT);
    buf_cleanup(&seg);
}

/* The additional data binds the segment's number: the server cannot reorder
 * segments, or pass one off under another number. */
static void test_keybackup_reordered_segments(void **state) {
    (void)state;
    uint8_t key[KEYBACKUP_KEY_LEN];
    randombytes_buf(key, sizeof key);
    struct keybackup_record a[2], b[3];
    records(a, 2, 4);
    records(b, 3, 5);
    struct buf s1, s2;
    buf_init(&s1);
    buf_init(&s2);
    assert_int_equal(keybackup_seal(key, &ACCOUNT, 1, a, 2, &s1), 0);
    assert_int_equal(keybackup_seal(key, &ACCOUNT, 2, b, 3, &s2), 0);
    struct keybackup_record *out = NULL;
    size_t n = 0;
    assert_int_equal(keybackup_open(key, &ACCOUNT, 2, s1.data, s1.len, &out, &n), STATUS_CORRUPT);
    assert_int_equal(keybackup_open(key, &ACCOUNT, 1, s2.data, s2.len, &out, &n), STATUS_CORRUPT);
    assert_int_equal(keybackup_open(key, &ACCOUNT, 3, s2.data, s2.len, &out, &n), STATUS_CORRUPT);
    assert_int_equal(keybackup_open(key, &ACCOUNT, 2, s2.data, s2.len, &out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, b, sizeof b);
    keybackup_records_free(out, n);
    buf_cleanup(&s1);
    buf_cleanup(&s2);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keybackup_known_answers),
        cmocka_unit_test(test_keybackup_recovery_key_typed),
        cmocka_unit_test(test_keybackup_segment_round_trip),
        cmocka_unit_test(test_keybackup_tampered_segment),
        cmocka_unit_test(test_keybackup_wrong_account),
        cmocka_unit_test(test_keybackup_reordered_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
