/*
 * client/filecrypt.c: streamed end-to-end file encryption (client/filecrypt.h)
 * on libsodium's crypto_secretstream_xchacha20poly1305 and SHA-256.
 *
 * A stream object holds the secretstream state, the key, the running digest
 * and one chunk of plaintext, all in one sodium_malloc block that
 * sodium_free() wipes. Chunk i of a file has filecrypt_chunk_plain(padded, i)
 * plaintext bytes; the encryptor holds back the last chunk until
 * filecrypt_encrypt_finish() so that it, and only it, carries TAG_FINAL.
 */
#include "client/filecrypt.h"

#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/status.h"
#include "client/filecrypt_internal.h"

_Static_assert(FILECRYPT_HEADER_LEN == crypto_secretstream_xchacha20poly1305_HEADERBYTES,
               "header length");
_Static_assert(FILECRYPT_TAG_LEN == crypto_secretstream_xchacha20poly1305_ABYTES, "tag length");
_Static_assert(FILECRYPT_KEY_LEN == crypto_secretstream_xchacha20poly1305_KEYBYTES, "key length");

static const char ad_label[16] = "carechat.v1 file";

uint64_t filecrypt_padded_size(uint64_t size) {
    if (size <= FILECRYPT_MIN_PADDED)
        return FILECRYPT_MIN_PADDED;
    unsigned e = 63u - (unsigned)__builtin_clzll(size); /* floor(log2 size) */
    unsigned s = 32u - (unsigned)__builtin_clz(e);      /* floor(log2 e) + 1 */
    uint64_t mask = (UINT64_C(1) << (e - s)) - 1;
    return (size + mask) & ~mask;
}

uint64_t filecrypt_chunk_count(uint64_t size) {
    return (filecrypt_padded_size(size) + FILECRYPT_CHUNK_LEN - 1) / FILECRYPT_CHUNK_LEN;
}

uint64_t filecrypt_ciphertext_size(uint64_t size) {
    return FILECRYPT_HEADER_LEN + filecrypt_padded_size(size) +
           filecrypt_chunk_count(size) * FILECRYPT_TAG_LEN;
}

uint64_t filecrypt_chunk_offset(uint64_t index) {
    return FILECRYPT_HEADER_LEN + index * FILECRYPT_CIPHER_CHUNK_LEN;
}

/* Plaintext bytes of chunk `i` of `n` for a padded size `padded`. */
static size_t chunk_plain(uint64_t padded, uint64_t n, uint64_t i) {
    return i + 1 < n ? FILECRYPT_CHUNK_LEN : (size_t)(padded - (n - 1) * FILECRYPT_CHUNK_LEN);
}

static void make_ad(uint32_t version, const struct id *file_id, uint8_t ad[FILECRYPT_AD_LEN]) {
    memcpy(ad, ad_label, sizeof ad_label);
    ad[16] = (uint8_t)(version >> 24);
    ad[17] = (uint8_t)(version >> 16);
    ad[18] = (uint8_t)(version >> 8);
    ad[19] = (uint8_t)version;
    memcpy(ad + 20, file_id->b, ID_LEN);
}

/* What both directions keep; all of it in sodium_malloc memory. */
struct stream {
    crypto_secretstream_xchacha20poly1305_state st;
    crypto_hash_sha256_state sha;
    struct filecrypt_file file;
    uint8_t ad[FILECRYPT_AD_LEN];
    uint64_t padded, n_chunks;
    uint64_t chunks_done;
    bool finished, failed;
};

/* Sets up what both directions know of `file` before the first byte. */
static void stream_init(struct stream *s, const struct filecrypt_file *file) {
    s->file = *file;
    s->padded = filecrypt_padded_size(file->size);
    s->n_chunks = filecrypt_chunk_count(file->size);
    make_ad(file->version, &file->file_id, s->ad);
    crypto_hash_sha256_init(&s->sha);
}

/* Moves input from *src (*len bytes) into `dst`, which holds *fill bytes, up
 * to `want` bytes in all; advances *src, *len and *fill. */
static void take_input(uint8_t *dst, size_t *fill, size_t want, const uint8_t **src, size_t *len) {
    size_t take = want - *fill;
    if (take > *len)
        take = *len;
    memcpy(dst + *fill, *src, take);
    *fill += take;
    *src += take;
    *len -= take;
}

static void *secure_alloc(size_t n) {
    void *p = sodium_malloc(n);
    CHECK(p != NULL);
    memset(p, 0, n);
    return p;
}

/* ---- encryption ---- */

struct filecrypt_enc {
    struct stream s;
    uint64_t given;                     /* plaintext bytes taken so far */
    size_t fill;                        /* bytes of `chunk` held */
    uint8_t chunk[FILECRYPT_CHUNK_LEN]; /* plaintext of the chunk being filled */
};

/* Encrypts the held chunk (its full length for its index) and appends it. */
static void push_chunk(struct filecrypt_enc *e, struct buf *out) {
    struct stream *s = &e->s;
    const bool last = s->chunks_done + 1 == s->n_chunks;
    const size_t len = chunk_plain(s->padded, s->n_chunks, s->chunks_done);
    CHECK(e->fill == len);
    buf_reserve(out, len + FILECRYPT_TAG_LEN);
    uint8_t *c = out->data + out->len;
    unsigned long long clen = 0;
    CHECK(crypto_secretstream_xchacha20poly1305_push(
              &s->st, c, &clen, e->chunk, len, s->ad, sizeof s->ad,
              last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                   : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) == 0);
    CHECK(clen == len + FILECRYPT_TAG_LEN);
    crypto_hash_sha256_update(&s->sha, c, clen);
    out->len += clen;
    out->data[out->len] = '\0';
    sodium_memzero(e->chunk, len);
    e->fill = 0;
    s->chunks_done++;
}

int filecrypt_encrypt_open_version(const struct id *file_id, uint64_t size, uint32_t version,
                                   struct buf *out, struct filecrypt_enc **enc) {
    if (size > FILECRYPT_MAX_SIZE)
        return STATUS_TOO_LARGE;
    struct filecrypt_enc *e = secure_alloc(sizeof *e);
    struct stream *s = &e->s;
    const struct filecrypt_file file = {.file_id = *file_id, .version = version, .size = size};
    stream_init(s, &file);
    rand_bytes(s->file.key, sizeof s->file.key);
    uint8_t header[FILECRYPT_HEADER_LEN];
    CHECK(crypto_secretstream_xchacha20poly1305_init_push(&s->st, header, s->file.key) == 0);
    crypto_hash_sha256_update(&s->sha, header, sizeof header);
    buf_append(out, header, sizeof header);
    *enc = e;
    return 0;
}

int filecrypt_encrypt_open(const struct id *file_id, uint64_t size, struct buf *out,
                           struct filecrypt_enc **enc) {
    return filecrypt_encrypt_open_version(file_id, size, FILECRYPT_VERSION, out, enc);
}

int filecrypt_encrypt_update(struct filecrypt_enc *e, const uint8_t *plain, size_t len,
                             struct buf *out) {
    struct stream *s = &e->s;
    if (s->finished)
        return STATUS_BAD_REQUEST;
    if (len > s->file.size - e->given)
        return STATUS_TOO_LARGE;
    e->given += len;
    while (len > 0) {
        /* A full chunk goes out once more input shows it is not the last. */
        if (e->fill == FILECRYPT_CHUNK_LEN)
            push_chunk(e, out);
        take_input(e->chunk, &e->fill, FILECRYPT_CHUNK_LEN, &plain, &len);
    }
    return 0;
}

int filecrypt_encrypt_finish(struct filecrypt_enc *e, struct buf *out,
                             struct filecrypt_file *file) {
    struct stream *s = &e->s;
    if (s->finished || e->given != s->file.size)
        return STATUS_BAD_REQUEST;
    /* The rest is padding: zero bytes up to the padded size. */
    while (s->chunks_done < s->n_chunks) {
        const size_t len = chunk_plain(s->padded, s->n_chunks, s->chunks_done);
        memset(e->chunk + e->fill, 0, len - e->fill);
        e->fill = len;
        push_chunk(e, out);
    }
    crypto_hash_sha256_final(&s->sha, s->file.sha256);
    s->finished = true;
    *file = s->file;
    return 0;
}

void filecrypt_encrypt_free(struct filecrypt_enc *e) {
    if (e != NULL)
        sodium_free(e);
}

/* ---- decryption ---- */

struct filecrypt_dec {
    struct stream s;
    bool have_header;
    size_t fill;                                /* bytes of `cipher` held */
    uint8_t cipher[FILECRYPT_CIPHER_CHUNK_LEN]; /* the header, then each chunk */
    uint8_t plain[FILECRYPT_CHUNK_LEN];
};

int filecrypt_decrypt_open(const struct filecrypt_file *file, struct filecrypt_dec **dec) {
    if (file->version != FILECRYPT_VERSION)
        return STATUS_BAD_REQUEST;
    if (file->size > FILECRYPT_MAX_SIZE)
        return STATUS_TOO_LARGE;
    struct filecrypt_dec *d = secure_alloc(sizeof *d);
    stream_init(&d->s, file);
    *dec = d;
    return 0;
}

/* Decrypts the chunk held in d->cipher and appends its file bytes. */
static int pull_chunk(struct filecrypt_dec *d, struct buf *plain) {
    struct stream *s = &d->s;
    const bool last = s->chunks_done + 1 == s->n_chunks;
    const size_t len = chunk_plain(s->padded, s->n_chunks, s->chunks_done);
    unsigned long long mlen = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&s->st, d->plain, &mlen, &tag, d->cipher,
                                                   d->fill, s->ad, sizeof s->ad) != 0 ||
        mlen != len ||
        tag != (last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                     : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE))
        return STATUS_CORRUPT;
    const uint64_t start = s->chunks_done * FILECRYPT_CHUNK_LEN;
    const size_t real = start >= s->file.size        ? 0
                        : s->file.size - start < len ? (size_t)(s->file.size - start)
                                                     : len;
    int rc = sodium_is_zero(d->plain + real, len - real) ? 0 : STATUS_CORRUPT;
    if (rc == 0)
        buf_append(plain, d->plain, real);
    sodium_memzero(d->plain, len);
    d->fill = 0;
    s->chunks_done++;
    return rc;
}

int filecrypt_decrypt_update(struct filecrypt_dec *d, const uint8_t *cipher, size_t len,
                             struct buf *plain) {
    struct stream *s = &d->s;
    if (s->failed || s->finished)
        return STATUS_CORRUPT;
    crypto_hash_sha256_update(&s->sha, cipher, len);
    while (len > 0) {
        if (s->chunks_done == s->n_chunks) {
            s->failed = true; /* bytes after the final chunk */
            return STATUS_CORRUPT;
        }
        const size_t want =
            d->have_header ? chunk_plain(s->padded, s->n_chunks, s->chunks_done) + FILECRYPT_TAG_LEN
                           : FILECRYPT_HEADER_LEN;
        take_input(d->cipher, &d->fill, want, &cipher, &len);
        if (d->fill < want)
            break;
        if (!d->have_header) {
            if (crypto_secretstream_xchacha20poly1305_init_pull(&s->st, d->cipher, s->file.key) !=
                0) {
                s->failed = true;
                return STATUS_CORRUPT;
            }
            d->have_header = true;
            d->fill = 0;
            continue;
        }
        if (pull_chunk(d, plain) != 0) {
            s->failed = true;
            return STATUS_CORRUPT;
        }
    }
    return 0;
}

int filecrypt_decrypt_finish(struct filecrypt_dec *d) {
    struct stream *s = &d->s;
    if (s->failed || s->finished || s->chunks_done != s->n_chunks)
        return STATUS_CORRUPT;
    s->finished = true;
    uint8_t digest[FILECRYPT_DIGEST_LEN];
    crypto_hash_sha256_final(&s->sha, digest);
    return sodium_memcmp(digest, s->file.sha256, sizeof digest) == 0 ? 0 : STATUS_CORRUPT;
}

void filecrypt_decrypt_free(struct filecrypt_dec *d) {
    if (d != NULL)
        sodium_free(d);
}
