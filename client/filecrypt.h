/*
 * client/filecrypt.h: end-to-end encryption of one file (DESIGN.md "Files"),
 * streamed chunk by chunk so that a large file never has to be in memory at
 * once. The server stores the ciphertext only; the key, the digest and the
 * exact size travel to the recipients inside an end-to-end encrypted message
 * (carechat.proto MessageContent.attachments, struct filecrypt_file here).
 *
 * Format, version FILECRYPT_VERSION (what every carechat client must agree
 * on; PROTOCOL.md section 10 repeats it for client authors):
 *
 *   key         32 random bytes, fresh for every file (never reused)
 *   plaintext   the file's bytes, then zero bytes up to
 *               filecrypt_padded_size(size) (the padding below)
 *   ciphertext  libsodium crypto_secretstream_xchacha20poly1305 under the key:
 *                 header                          24 bytes (from init_push)
 *                 chunk 0 .. chunk n-1            the padded plaintext cut into
 *                                                 FILECRYPT_CHUNK_LEN bytes (the
 *                                                 last one shorter), each pushed
 *                                                 as one message: its bytes + 17
 *               with tag TAG_MESSAGE on every chunk but the last, TAG_FINAL
 *               on the last, and as additional data of every chunk (36 bytes):
 *                 "carechat.v1 file"   16 bytes
 *                 version              4   (uint32, big-endian)
 *                 file id              16
 *   digest      SHA-256 of the whole ciphertext (header and every chunk, as
 *               stored), so a downloader and the server can check what they
 *               hold without a key.
 *
 * So chunk i (from 0) of the ciphertext starts at filecrypt_chunk_offset(i)
 * and is FILECRYPT_CIPHER_CHUNK_LEN bytes long (the last one shorter): an
 * uploader that kept the ciphertext resumes an upload at a chunk boundary.
 *
 * What decryption refuses (STATUS_CORRUPT, nothing more is decrypted): a
 * stream that ends before the chunk with TAG_FINAL (truncation) or goes on
 * after it; a reordered, repeated or dropped chunk (secretstream's state moves
 * on with every chunk); a chunk of another file (another key, another file id
 * in the additional data); another format version in the additional data; a
 * flipped bit anywhere; padding that is not zero; a whole-ciphertext digest
 * other than the one the message names (checked by filecrypt_decrypt_finish()).
 *
 * Padding: the stored size is filecrypt_ciphertext_size(size), a function of
 * the padded size only, so the server and anyone watching the upload learn
 * the bucket, not the exact size. Buckets: every file of at most
 * FILECRYPT_MIN_PADDED (64 KiB, one chunk) bytes is padded to exactly that,
 * so short documents and photos of a few KiB all look alike; above it the
 * size is rounded up with Padmé (Nikitin et al., "Reducing Metadata Leakage
 * from Encrypted Files and Communication with PURBs", PETS 2019): for a size
 * L with E = floor(log2 L) and S = floor(log2 E) + 1, the low E - S bits are
 * rounded up. That costs at most 1/2^S of the size (3.1% up to 4 GiB) while a
 * size reveals only about log2 E bits beyond its order of magnitude, where
 * powers of two would cost up to 100% and fixed steps would leak more for
 * large files. The exact size travels inside the encrypted message.
 *
 * Secrets: the key and the stream states live in sodium_malloc memory, wiped
 * when freed; plaintext passes through buffers inside them only. Plaintext
 * appended to a caller's struct buf is the caller's to wipe (buf_wipe()).
 * Randomness: the key from rand_bytes() (base/rand.h); secretstream's header
 * nonce from libsodium. No global state: one thread per stream object.
 */
#ifndef CLIENT_FILECRYPT_H
#define CLIENT_FILECRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/rand.h"

#define FILECRYPT_VERSION 1u
#define FILECRYPT_KEY_LEN 32
#define FILECRYPT_DIGEST_LEN 32 /* SHA-256 */
#define FILECRYPT_HEADER_LEN 24 /* crypto_secretstream_xchacha20poly1305_HEADERBYTES */
#define FILECRYPT_TAG_LEN 17    /* crypto_secretstream_xchacha20poly1305_ABYTES */
#define FILECRYPT_CHUNK_LEN (64u * 1024u)
#define FILECRYPT_CIPHER_CHUNK_LEN (FILECRYPT_CHUNK_LEN + FILECRYPT_TAG_LEN)
#define FILECRYPT_AD_LEN 36
/* The smallest bucket: every file up to one chunk is padded to it. */
#define FILECRYPT_MIN_PADDED ((uint64_t)FILECRYPT_CHUNK_LEN)
/* Largest plaintext (64 GiB); a larger size (also one a peer names) is
 * refused before anything is allocated. */
#define FILECRYPT_MAX_SIZE (UINT64_C(1) << 36)

/* One encrypted file as a message names it (carechat.proto Attachment). */
struct filecrypt_file {
    struct id file_id;
    uint32_t version;                     /* FILECRYPT_VERSION */
    uint8_t key[FILECRYPT_KEY_LEN];       /* secret: wipe copies with sodium_memzero() */
    uint8_t sha256[FILECRYPT_DIGEST_LEN]; /* of the whole ciphertext */
    uint64_t size;                        /* exact plaintext bytes */
};

/* The padded plaintext size of a file of `size` bytes (the buckets above);
 * at least FILECRYPT_MIN_PADDED. `size` at most FILECRYPT_MAX_SIZE. */
uint64_t filecrypt_padded_size(uint64_t size);

/* How many chunks the ciphertext of a file of `size` bytes has (>= 1). */
uint64_t filecrypt_chunk_count(uint64_t size);

/* The stored (ciphertext) size of a file of `size` bytes: the header, the
 * padded plaintext and a tag per chunk. */
uint64_t filecrypt_ciphertext_size(uint64_t size);

/* Where chunk `index` starts in the ciphertext. */
uint64_t filecrypt_chunk_offset(uint64_t index);

/* ---- encryption ---- */

struct filecrypt_enc;

/* Starts encrypting a file of exactly `size` bytes with id `file_id` under a
 * fresh random key: appends the ciphertext's header to `out` and stores the
 * stream in *enc (free with filecrypt_encrypt_free()). Returns 0, or
 * STATUS_TOO_LARGE (size over FILECRYPT_MAX_SIZE; nothing written). */
int filecrypt_encrypt_open(const struct id *file_id, uint64_t size, struct buf *out,
                           struct filecrypt_enc **enc);

/* Takes the next `len` bytes of the plaintext (any split: the stream keeps at
 * most one chunk back) and appends every ciphertext chunk they complete to
 * `out`. Returns 0, or STATUS_TOO_LARGE when the file would exceed the size
 * given to filecrypt_encrypt_open() (nothing taken), or STATUS_BAD_REQUEST
 * after filecrypt_encrypt_finish(). */
int filecrypt_encrypt_update(struct filecrypt_enc *enc, const uint8_t *plain, size_t len,
                             struct buf *out);

/* Ends the file: pads it, appends the remaining chunks (the last with
 * TAG_FINAL) to `out` and fills *file (key, digest, size, id, version; the
 * key is a secret for the message only). Returns 0, or STATUS_BAD_REQUEST
 * when fewer bytes than the size were given (or it was finished before). */
int filecrypt_encrypt_finish(struct filecrypt_enc *enc, struct buf *out,
                             struct filecrypt_file *file);

/* Wipes and frees. Accepts NULL. */
void filecrypt_encrypt_free(struct filecrypt_enc *enc);

/* ---- decryption ---- */

struct filecrypt_dec;

/* Starts decrypting the file `file` (borrowed; copied) names. Stores the
 * stream in *dec (free with filecrypt_decrypt_free()) and returns 0, or
 * STATUS_BAD_REQUEST (a version this library does not know) or
 * STATUS_TOO_LARGE (a size over FILECRYPT_MAX_SIZE). */
int filecrypt_decrypt_open(const struct filecrypt_file *file, struct filecrypt_dec **dec);

/* Takes the next `len` bytes of the ciphertext (any split, e.g. as they come
 * from the network) and appends the plaintext of every chunk they complete to
 * `plain` (padding withheld). Returns 0, or STATUS_CORRUPT (see the top of
 * this file: a chunk that does not authenticate, a final tag too early, bytes
 * after the last chunk, padding that is not zero); after STATUS_CORRUPT every
 * later call fails the same way. Plaintext handed out before
 * filecrypt_decrypt_finish() returns 0 is authentic chunk by chunk but the
 * file may still prove truncated or another one: keep it apart until then. */
int filecrypt_decrypt_update(struct filecrypt_dec *dec, const uint8_t *cipher, size_t len,
                             struct buf *plain);

/* Ends the file. Returns 0 when every chunk up to the one with TAG_FINAL
 * arrived and the SHA-256 of the whole ciphertext is the file's; else
 * STATUS_CORRUPT (truncated, or another ciphertext). */
int filecrypt_decrypt_finish(struct filecrypt_dec *dec);

/* Wipes and frees. Accepts NULL. */
void filecrypt_decrypt_free(struct filecrypt_dec *dec);

#endif
