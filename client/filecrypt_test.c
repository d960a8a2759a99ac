/*
 * client/filecrypt_test.c: streamed file encryption (client/filecrypt.h):
 * round trips at the chunk edges and for a 3 MiB file fed in odd pieces,
 * the padding buckets, and every refusal the header promises (truncation,
 * reordered, repeated and foreign chunks, a flipped bit, another version or
 * file id, a wrong digest, bytes after the end, non-zero padding).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/status.h"
#include "client/filecrypt.h"
#include "client/filecrypt_internal.h"

#define MIB (1024u * 1024u)

/* Encrypts `size` bytes at `plain` fed in pieces of `piece` bytes with format
 * `version`; the ciphertext goes to `ct`, the metadata to *file. */
static void encrypt_version(const struct id *file_id, const uint8_t *plain, size_t size,
                            size_t piece, uint32_t version, struct buf *ct,
                            struct filecrypt_file *file) {
    struct filecrypt_enc *enc = NULL;
    assert_int_equal(filecrypt_encrypt_open_version(file_id, size, version, ct, &enc), 0);
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        assert_int_equal(filecrypt_encrypt_update(enc, plain + off, n, ct), 0);
    }
    assert_int_equal(filecrypt_encrypt_finish(enc, ct, file), 0);
    filecrypt_encrypt_free(enc);
    assert_int_equal(ct->len, filecrypt_ciphertext_size(size));
}

static void encrypt_all(const struct id *file_id, const uint8_t *plain, size_t size, size_t piece,
                        struct buf *ct, struct filecrypt_file *file) {
    encrypt_version(file_id, plain, size, piece, FILECRYPT_VERSION, ct, file);
}

/* Decrypts `len` bytes of `ct` fed in pieces of `piece`; returns the first
 * failure of update or finish (0 when the file decrypted), the plaintext in
 * `plain`. */
static int decrypt_all(const struct filecrypt_file *file, const uint8_t *ct, size_t len,
                       size_t piece, struct buf *plain) {
    struct filecrypt_dec *dec = NULL;
    int rc = filecrypt_decrypt_open(file, &dec);
    if (rc != 0)
        return rc;
    for (size_t off = 0; rc == 0 && off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        rc = filecrypt_decrypt_update(dec, ct + off, n, plain);
    }
    if (rc == 0)
        rc = filecrypt_decrypt_finish(dec);
    filecrypt_decrypt_free(dec);
    return rc;
}

static uint8_t *random_bytes(size_t n) {
    uint8_t *p = malloc(n + 1);
    assert_non_null(p);
    randombytes_buf(p, n);
    return p;
}

static void test_filecrypt_round_trip_sizes(void **state) {
    (void)state;
    const size_t sizes[] = {
        0, 1, FILECRYPT_CHUNK_LEN - 1, FILECRYPT_CHUNK_LEN, FILECRYPT_CHUNK_LEN + 1, 3 * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const size_t size = sizes[i];
        uint8_t *plain = random_bytes(size);
        const struct id file_id = id_new();
        struct buf ct, back;
        buf_init(&ct);
        buf_init(&back);
        struct filecrypt_file file;
        /* Odd pieces on the way in and out: chunk boundaries fall inside them. */
        encrypt_all(&file_id, plain, size, 1000 + i * 7919, &ct, &file);
        assert_int_equal(file.size, size);
        assert_int_equal(file.version, FILECRYPT_VERSION);
        assert_memory_equal(file.file_id.b, file_id.b, ID_LEN);
        uint8_t digest[32];
        crypto_hash_sha256(digest, ct.data, ct.len);
        assert_memory_equal(file.sha256, digest, 32);
        assert_int_equal(decrypt_all(&file, ct.data, ct.len, 7777, &back), 0);
        assert_int_equal(back.len, size);
        if (size > 0)
            assert_memory_equal(back.data, plain, size);
        /* Whole chunks at once decrypt the same. */
        buf_reset(&back);
        assert_int_equal(decrypt_all(&file, ct.data, ct.len, FILECRYPT_CIPHER_CHUNK_LEN, &back), 0);
        assert_int_equal(back.len, size);
        buf_cleanup(&ct);
        buf_cleanup(&back);
        free(plain);
    }
}

static void test_filecrypt_padding_buckets(void **state) {
    (void)state;
    /* Up to one chunk: one bucket. */
    assert_int_equal(filecrypt_padded_size(0), 65536);
    assert_int_equal(filecrypt_padded_size(1), 65536);
    assert_int_equal(filecrypt_padded_size(65536), 65536);
    assert_int_equal(filecrypt_ciphertext_size(0), 24 + 65536 + 17);
    assert_int_equal(filecrypt_ciphertext_size(1), filecrypt_ciphertext_size(65535));
    /* Padmé above: E = 16, S = 5, multiples of 2^11. */
    assert_int_equal(filecrypt_padded_size(65537), 67584);
    assert_int_equal(filecrypt_padded_size(67584), 67584);
    assert_int_equal(filecrypt_padded_size(67585), 69632);
    /* 3 MiB: E = 21, S = 5, multiples of 2^16: already one. */
    assert_int_equal(filecrypt_padded_size(3 * MIB), 3 * MIB);
    assert_int_equal(filecrypt_padded_size(3 * MIB + 1), 3 * MIB + 65536);
    /* 20 MiB + 1: E = 24, S = 5, multiples of 2^19. */
    assert_int_equal(filecrypt_padded_size(20 * MIB + 1), 20 * MIB + 512 * 1024);
    assert_int_equal(filecrypt_chunk_count(20 * MIB + 1), 328);
    assert_int_equal(filecrypt_chunk_offset(2), 24 + 2 * (65536 + 17));
    /* Never smaller, never more than 1/32 above for sizes up to 4 GiB, and
     * monotonic. */
    uint64_t prev = 0;
    for (uint64_t size = 65537; size < (UINT64_C(4) << 30); size = size * 5 / 4 + 12345) {
        uint64_t p = filecrypt_padded_size(size);
        assert_true(p >= size);
        assert_true(p - size <= size / 32);
        assert_true(p >= prev);
        prev = p;
    }
    assert_int_equal(filecrypt_padded_size(FILECRYPT_MAX_SIZE), FILECRYPT_MAX_SIZE);
}

/* A 3-chunk file (for the refusals below) and its metadata. */
struct sample {
    uint8_t *plain;
    size_t size;
    struct buf ct;
    struct filecrypt_file file;
};

static void make_sample(struct sample *s, size_t size) {
    s->size = size;
    s->plain = random_bytes(size);
    buf_init(&s->ct);
    const struct id file_id = id_new();
    encrypt_all(&file_id, s->plain, size, 4096, &s->ct, &s->file);
}

static void free_sample(struct sample *s) {
    buf_cleanup(&s->ct);
    free(s->plain);
}

static int decrypt_buf(const struct filecrypt_file *file, const struct buf *ct) {
    struct buf plain;
    buf_init(&plain);
    int rc = decrypt_all(file, ct->data, ct->len, 5000, &plain);
    buf_cleanup(&plain);
    return rc;
}

/* Chunk i of `ct` (all of them are full-length in the samples here). */
static uint8_t *chunk_at(struct buf *ct, size_t i) {
    return ct->data + filecrypt_chunk_offset(i);
}

static void test_filecrypt_refuses_truncation(void **state) {
    (void)state;
    struct sample a;
    make_sample(&a, 3 * FILECRYPT_CHUNK_LEN - 100); /* padded to 3 chunks */
    assert_int_equal(filecrypt_chunk_count(a.size), 3);
    assert_int_equal(decrypt_buf(&a.file, &a.ct), 0);
    struct buf cut;
    buf_init(&cut);
    /* Without the final chunk; mid-chunk; the header only; nothing. */
    const size_t cuts[] = {filecrypt_chunk_offset(2), filecrypt_chunk_offset(1) + 1000,
                           FILECRYPT_HEADER_LEN, 0};
    for (size_t i = 0; i < 4; i++) {
        buf_reset(&cut);
        buf_append(&cut, a.ct.data, cuts[i]);
        assert_int_equal(decrypt_buf(&a.file, &cut), STATUS_CORRUPT);
    }
    /* Bytes after the final chunk. */
    buf_reset(&cut);
    buf_append(&cut, a.ct.data, a.ct.len);
    buf_append_u8(&cut, 0);
    assert_int_equal(decrypt_buf(&a.file, &cut), STATUS_CORRUPT);
    buf_cleanup(&cut);
    free_sample(&a);
}

static void test_filecrypt_refuses_reordered_and_repeated_chunks(void **state) {
    (void)state;
    struct sample a;
    make_sample(&a, 3 * FILECRYPT_CHUNK_LEN);
    const size_t cl = FILECRYPT_CIPHER_CHUNK_LEN;
    uint8_t *tmp = malloc(cl);
    /* chunks 0 and 1 swapped */
    memcpy(tmp, chunk_at(&a.ct, 0), cl);
    memcpy(chunk_at(&a.ct, 0), chunk_at(&a.ct, 1), cl);
    memcpy(chunk_at(&a.ct, 1), tmp, cl);
    assert_int_equal(decrypt_buf(&a.file, &a.ct), STATUS_CORRUPT);
    memcpy(chunk_at(&a.ct, 1), chunk_at(&a.ct, 0), cl);
    memcpy(chunk_at(&a.ct, 0), tmp, cl);
    assert_int_equal(decrypt_buf(&a.file, &a.ct), 0);
    /* chunk 0 twice instead of chunk 1 */
    memcpy(tmp, chunk_at(&a.ct, 1), cl);
    memcpy(chunk_at(&a.ct, 1), chunk_at(&a.ct, 0), cl);
    assert_int_equal(decrypt_buf(&a.file, &a.ct), STATUS_CORRUPT);
    memcpy(chunk_at(&a.ct, 1), tmp, cl);
    /* chunk 1 dropped (the stream then ends one chunk early) */
    struct buf dropped;
    buf_init(&dropped);
    buf_append(&dropped, a.ct.data, filecrypt_chunk_offset(1));
    buf_append(&dropped, chunk_at(&a.ct, 2), a.ct.len - filecrypt_chunk_offset(2));
    assert_int_equal(decrypt_buf(&a.file, &dropped), STATUS_CORRUPT);
    buf_cleanup(&dropped);
    free(tmp);
    free_sample(&a);
}

static void test_filecrypt_refuses_chunk_of_another_file(void **state) {
    (void)state;
    struct sample a, b;
    make_sample(&a, 3 * FILECRYPT_CHUNK_LEN);
    make_sample(&b, 3 * FILECRYPT_CHUNK_LEN);
    memcpy(chunk_at(&a.ct, 1), chunk_at(&b.ct, 1), FILECRYPT_CIPHER_CHUNK_LEN);
    assert_int_equal(decrypt_buf(&a.file, &a.ct), STATUS_CORRUPT);
    /* b under another file id (its key, so only the additional data differs) */
    struct filecrypt_file other = b.file;
    other.file_id.b[0] ^= 1;
    assert_int_equal(decrypt_buf(&other, &b.ct), STATUS_CORRUPT);
    /* b's header with a's chunks, and a's key with b's stream */
    other = b.file;
    memcpy(other.key, a.file.key, FILECRYPT_KEY_LEN);
    assert_int_equal(decrypt_buf(&other, &b.ct), STATUS_CORRUPT);
    free_sample(&a);
    free_sample(&b);
}

static void test_filecrypt_refuses_flipped_bits(void **state) {
    (void)state;
    struct sample a;
    make_sample(&a, FILECRYPT_CHUNK_LEN + 5);
    const size_t where[] = {0,
                            FILECRYPT_HEADER_LEN - 1,
                            FILECRYPT_HEADER_LEN,
                            FILECRYPT_HEADER_LEN + 1000,
                            filecrypt_chunk_offset(1) - 1,
                            a.ct.len - 1};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        a.ct.data[where[i]] ^= 0x20;
        assert_int_equal(decrypt_buf(&a.file, &a.ct), STATUS_CORRUPT);
        a.ct.data[where[i]] ^= 0x20;
    }
    assert_int_equal(decrypt_buf(&a.file, &a.ct), 0);
    free_sample(&a);
}

static void test_filecrypt_refuses_wrong_digest_version_and_padding(void **state) {
    (void)state;
    struct sample a;
    make_sample(&a, 1000);
    struct filecrypt_file f = a.file;
    f.sha256[31] ^= 1;
    assert_int_equal(decrypt_buf(&f, &a.ct), STATUS_CORRUPT);
    f = a.file;
    f.version = 2;
    struct filecrypt_dec *dec = NULL;
    assert_int_equal(filecrypt_decrypt_open(&f, &dec), STATUS_BAD_REQUEST);
    f = a.file;
    f.size = FILECRYPT_MAX_SIZE + 1;
    assert_int_equal(filecrypt_decrypt_open(&f, &dec), STATUS_TOO_LARGE);
    /* A size below the real one makes file bytes "padding": not zero, refused. */
    f = a.file;
    f.size = 999;
    assert_int_equal(decrypt_buf(&f, &a.ct), STATUS_CORRUPT);
    /* A stream whose additional data names version 2, opened as version 1. */
    struct buf v2;
    buf_init(&v2);
    const struct id file_id = id_new();
    encrypt_version(&file_id, a.plain, a.size, 333, 2, &v2, &f);
    assert_int_equal(f.version, 2);
    f.version = FILECRYPT_VERSION;
    assert_int_equal(decrypt_buf(&f, &v2), STATUS_CORRUPT);
    buf_cleanup(&v2);
    free_sample(&a);
}

static void test_filecrypt_encrypt_checks_the_size(void **state) {
    (void)state;
    const struct id file_id = id_new();
    struct buf ct;
    buf_init(&ct);
    struct filecrypt_enc *enc = NULL;
    assert_int_equal(filecrypt_encrypt_open(&file_id, FILECRYPT_MAX_SIZE + 1, &ct, &enc),
                     STATUS_TOO_LARGE);
    assert_int_equal(ct.len, 0);
    assert_int_equal(filecrypt_encrypt_open(&file_id, 10, &ct, &enc), 0);
    assert_int_equal(ct.len, FILECRYPT_HEADER_LEN);
    assert_int_equal(filecrypt_encrypt_update(enc, (const uint8_t *)"0123456789x", 11, &ct),
                     STATUS_TOO_LARGE);
    assert_int_equal(filecrypt_encrypt_update(enc, (const uint8_t *)"01234", 5, &ct), 0);
    struct filecrypt_file file;
    assert_int_equal(filecrypt_encrypt_finish(enc, &ct, &file), STATUS_BAD_REQUEST);
    assert_int_equal(filecrypt_encrypt_update(enc, (const uint8_t *)"56789", 5, &ct), 0);
    assert_int_equal(filecrypt_encrypt_finish(enc, &ct, &file), 0);
    assert_int_equal(filecrypt_encrypt_update(enc, (const uint8_t *)"", 0, &ct),
                     STATUS_BAD_REQUEST);
    filecrypt_encrypt_free(enc);
    filecrypt_encrypt_free(NULL);
    filecrypt_decrypt_free(NULL);
    /* Two files never share a key. */
    struct filecrypt_file again;
    struct buf ct2;
    buf_init(&ct2);
    encrypt_all(&file_id, (const uint8_t *)"0123456789", 10, 10, &ct2, &again);
    assert_memory_not_equal(file.key, again.key, FILECRYPT_KEY_LEN);
    buf_cleanup(&ct);
    buf_cleanup(&ct2);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filecrypt_round_trip_sizes),
        cmocka_unit_test(test_filecrypt_padding_buckets),
        cmocka_unit_test(test_filecrypt_refuses_truncation),
        cmocka_unit_test(test_filecrypt_refuses_reordered_and_repeated_chunks),
        cmocka_unit_test(test_filecrypt_refuses_chunk_of_another_file),
        cmocka_unit_test(test_filecrypt_refuses_flipped_bits),
        cmocka_unit_test(test_filecrypt_refuses_wrong_digest_version_and_padding),
        cmocka_unit_test(test_filecrypt_encrypt_checks_the_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
