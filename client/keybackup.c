/*
 * client/keybackup.c: the key backup's recovery key, key derivation and
 * segment format (keybackup.h has the layouts). Pure, any thread.
 */
#include "client/keybackup.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/hkdf.h"

#define LABEL "carechat.v1 key backup"
#define LABEL_LEN (sizeof LABEL - 1)
#define KEY_INFO "carechat.v1 key backup key"
#define KEY_INFO_LEN (sizeof KEY_INFO - 1)
#define CHECK_LABEL "carechat.v1 recovery key"
#define KEY_ID_LABEL "carechat.v1 key backup id"
#define CHECK_LABEL_LEN (sizeof CHECK_LABEL - 1)
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define AD_LEN (LABEL_LEN + 4 + ID_LEN + 8)
/* Characters of the recovery key without dashes: 160 + 20 bits, 5 a character. */
#define CHARS 36
#define GROUP 4

_Static_assert(KEYBACKUP_OVERHEAD == 1 + NONCE_LEN + 4 + TAG_LEN, "segment overhead");
_Static_assert(CHARS / GROUP * (GROUP + 1) - 1 == KEYBACKUP_RECOVERY_LEN, "recovery key length");

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v) {
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The first 20 bits of SHA-256(CHECK_LABEL | secret), as 3 bytes (the last
 * one's low 4 bits zero). */
static void checksum(const uint8_t secret[KEYBACKUP_SECRET_LEN], uint8_t out[3]) {
    crypto_hash_sha256_state st;
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)CHECK_LABEL, CHECK_LABEL_LEN);
    crypto_hash_sha256_update(&st, secret, KEYBACKUP_SECRET_LEN);
    crypto_hash_sha256_final(&st, h);
    out[0] = h[0];
    out[1] = h[1];
    out[2] = h[2] & 0xf0;
    sodium_memzero(&st, sizeof st);
    sodium_memzero(h, sizeof h);
}

void keybackup_secret_new(uint8_t secret[KEYBACKUP_SECRET_LEN]) {
    rand_bytes(secret, KEYBACKUP_SECRET_LEN);
}

void keybackup_recovery_format(const uint8_t secret[KEYBACKUP_SECRET_LEN],
                               char out[KEYBACKUP_RECOVERY_LEN + 1]) {
    /* secret | checksum: 23 bytes holding the 180 bits, 5 at a time. */
    uint8_t bits[KEYBACKUP_SECRET_LEN + 3];
    memcpy(bits, secret, KEYBACKUP_SECRET_LEN);
    checksum(secret, bits + KEYBACKUP_SECRET_LEN);
    size_t o = 0;
    for (size_t c = 0; c < CHARS; c++) {
        unsigned v = 0;
        for (size_t b = c * 5; b < c * 5 + 5; b++)
            v = v << 1 | ((bits[b / 8] >> (7 - b % 8)) & 1);
        if (c > 0 && c % GROUP == 0)
            out[o++] = '-';
        out[o++] = alphabet[v];
    }
    out[o] = '\0';
    sodium_memzero(bits, sizeof bits);
}

/* The value of Crockford character `ch` (case-insensitive; O is 0, I and L
 * are 1), or -1. */
static int value_of(char ch) {
    if (ch >= 'a' && ch <= 'z')
        ch = (char)(ch - 'a' + 'A');
    if (ch == 'O')
        ch = '0';
    if (ch == 'I' || ch == 'L')
        ch = '1';
    const char *p = ch ? strchr(alphabet, ch) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

int keybackup_recovery_parse(const char *text, uint8_t secret[KEYBACKUP_SECRET_LEN]) {
    uint8_t bits[KEYBACKUP_SECRET_LEN + 3];
    memset(bits, 0, sizeof bits);
    size_t c = 0;
    int rc = STATUS_OK;
    for (const char *p = text; *p && rc == 0; p++) {
        if (*p == '-' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            continue;
        int v = value_of(*p);
        if (v < 0 || c == CHARS) {
            rc = STATUS_BAD_REQUEST;
            break;
        }
        for (int i = 4; i >= 0; i--) {
            size_t b = c * 5 + (size_t)(4 - i);
            if ((v >> i) & 1)
                bits[b / 8] |= (uint8_t)(1u << (7 - b % 8));
        }
        c++;
    }
    if (rc == 0 && c != CHARS)
        rc = STATUS_BAD_REQUEST;
    uint8_t want[3];
    if (rc == 0) {
        checksum(bits, want);
        if (sodium_memcmp(want, bits + KEYBACKUP_SECRET_LEN, sizeof want) != 0)
            rc = STATUS_CORRUPT;
    }
    if (rc == 0)
        memcpy(secret, bits, KEYBACKUP_SECRET_LEN);
    sodium_memzero(bits, sizeof bits);
    sodium_memzero(want, sizeof want);
    return rc;
}

void keybackup_derive(const uint8_t secret[KEYBACKUP_SECRET_LEN], const struct id *account,
                      uint8_t key[KEYBACKUP_KEY_LEN]) {
    uint8_t info[KEY_INFO_LEN + ID_LEN];
    memcpy(info, KEY_INFO, KEY_INFO_LEN);
    memcpy(info + KEY_INFO_LEN, account->b, ID_LEN);
    CHECK(hkdf_sha256((const uint8_t *)LABEL, LABEL_LEN, secret, KEYBACKUP_SECRET_LEN, info,
                      sizeof info, key, KEYBACKUP_KEY_LEN) == 0);
}

void keybackup_key_id(const uint8_t key[KEYBACKUP_KEY_LEN], uint8_t id[KEYBACKUP_KEY_ID_LEN]) {
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, KEYBACKUP_KEY_LEN);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)KEY_ID_LABEL, sizeof KEY_ID_LABEL - 1);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(id, mac, KEYBACKUP_KEY_ID_LEN);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(mac, sizeof mac);
}

size_t keybackup_segment_len(size_t n) {
    return KEYBACKUP_OVERHEAD + n * KEYBACKUP_RECORD_LEN;
}

size_t keybackup_records_per_segment(size_t segment_max) {
    return segment_max > KEYBACKUP_OVERHEAD
               ? (segment_max - KEYBACKUP_OVERHEAD) / KEYBACKUP_RECORD_LEN
               : 0;
}

static void additional_data(const struct id *account, uint64_t seq, uint8_t ad[AD_LEN]) {
    memcpy(ad, LABEL, LABEL_LEN);
    put_u32(ad + LABEL_LEN, KEYBACKUP_VERSION);
    memcpy(ad + LABEL_LEN + 4, account->b, ID_LEN);
    put_u64(ad + LABEL_LEN + 4 + ID_LEN, seq);
}

int keybackup_seal(const uint8_t key[KEYBACKUP_KEY_LEN], const struct id *account, uint64_t seq,
                   const struct keybackup_record *records, size_t n, struct buf *out) {
    if (seq == 0 || n > UINT32_MAX / KEYBACKUP_RECORD_LEN)
        return STATUS_BAD_REQUEST;
    const size_t pt_len = 4 + n * KEYBACKUP_RECORD_LEN;
    uint8_t *pt = xmalloc(pt_len);
    put_u32(pt, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        uint8_t *r = pt + 4 + i * KEYBACKUP_RECORD_LEN;
        memcpy(r, records[i].message_id.b, ID_LEN);
        memcpy(r + ID_LEN, records[i].conversation_id.b, ID_LEN);
        memcpy(r + 2 * ID_LEN, records[i].key, KEYBACKUP_KEY_LEN);
    }
    uint8_t ad[AD_LEN];
    additional_data(account, seq, ad);
    buf_reset(out);
    buf_reserve(out, keybackup_segment_len(n));
    out->data[0] = KEYBACKUP_VERSION;
    rand_bytes(out->data + 1, NONCE_LEN);
    unsigned long long ct_len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out->data + 1 + NONCE_LEN, &ct_len, pt, pt_len, ad,
                                               sizeof ad, NULL, out->data + 1, key);
    out->len = 1 + NONCE_LEN + (size_t)ct_len;
    CHECK(out->len == keybackup_segment_len(n));
    sodium_memzero(pt, pt_len);
    free(pt);
    return STATUS_OK;
}

int keybackup_open(const uint8_t key[KEYBACKUP_KEY_LEN], const struct id *account, uint64_t seq,
                   const uint8_t *data, size_t len, struct keybackup_record **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (len < KEYBACKUP_OVERHEAD || data[0] != KEYBACKUP_VERSION || seq == 0)
        return STATUS_CORRUPT;
    uint8_t ad[AD_LEN];
    additional_data(account, seq, ad);
    const size_t pt_len = len - 1 - NONCE_LEN - TAG_LEN;
    uint8_t *pt = xmalloc(pt_len);
    int rc = STATUS_OK;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, data + 1 + NONCE_LEN,
                                                   len - 1 - NONCE_LEN, ad, sizeof ad, data + 1,
                                                   key) != 0)
        rc = STATUS_CORRUPT;
    size_t count = rc == 0 ? get_u32(pt) : 0;
    if (rc == 0 && (pt_len - 4) / KEYBACKUP_RECORD_LEN != count)
        rc = STATUS_CORRUPT;
    if (rc == 0 && (pt_len - 4) % KEYBACKUP_RECORD_LEN != 0)
        rc = STATUS_CORRUPT;
    struct keybackup_record *r = NULL;
    if (rc == 0) {
        r = xcalloc(count + 1, sizeof *r);
        for (size_t i = 0; i < count; i++) {
            const uint8_t *p = pt + 4 + i * KEYBACKUP_RECORD_LEN;
            memcpy(r[i].message_id.b, p, ID_LEN);
            memcpy(r[i].conversation_id.b, p + ID_LEN, ID_LEN);
            memcpy(r[i].key, p + 2 * ID_LEN, KEYBACKUP_KEY_LEN);
        }
        *out = r;
        *n = count;
    }
    sodium_memzero(pt, pt_len);
    free(pt);
    return rc;
}

void keybackup_records_free(struct keybackup_record *records, size_t n) {
    if (records == NULL)
        return;
    sodium_memzero(records, n * sizeof *records);
    free(records);
}
