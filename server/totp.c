/*
 * server/totp.c: HOTP/TOTP codes and recovery codes (contracts in totp.h).
 * HMAC-SHA1 comes from OpenSSL's libcrypto: libsodium has no SHA-1.
 */
#include "server/totp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "base/check.h"
#include "base/status.h"

#define RECOVERY_RAW 10   /* random bytes of a recovery code (80 bits) */
#define RECOVERY_CHARS 16 /* their base32 characters */

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

uint32_t totp_hotp(const uint8_t *key, size_t key_len, uint64_t counter, unsigned digits) {
    CHECK(digits >= 1 && digits <= 9);
    uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    for (int i = 7; i >= 0; i--, counter >>= 8)
        msg[i] = (uint8_t)counter;
    CHECK(HMAC(EVP_sha1(), key, (int)key_len, msg, sizeof msg, mac, &mac_len) != NULL &&
          mac_len == 20);
    unsigned off = mac[19] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
    sodium_memzero(mac, sizeof mac);
    uint32_t mod = 1;
    for (unsigned i = 0; i < digits; i++)
        mod *= 10;
    return bin % mod;
}

uint64_t totp_step(int64_t unix_s) {
    return unix_s < 0 ? 0 : (uint64_t)unix_s / TOTP_STEP_S;
}

bool totp_step_unused(uint64_t last_step, uint64_t step) {
    return step > last_step;
}

bool totp_is_code(const char *code) {
    for (int i = 0; i < TOTP_DIGITS; i++) {
        if (code[i] < '0' || code[i] > '9')
            return false;
    }
    return code[TOTP_DIGITS] == '\0';
}

int totp_verify(const uint8_t secret[TOTP_SECRET_LEN], const char *code, int64_t unix_s,
                uint64_t last_step, uint64_t *step) {
    if (!totp_is_code(code))
        return STATUS_UNAUTHENTICATED;
    uint64_t now = totp_step(unix_s);
    bool found = false;
    /* Every candidate is computed and compared, matched or not, so the time
     * taken says nothing about which one matched. */
    for (int d = -1; d <= 1; d++) {
        uint64_t s = now + (uint64_t)(int64_t)d;
        if (d < 0 && now == 0)
            continue;
        char want[TOTP_DIGITS + 1];
        snprintf(want, sizeof want, "%06u", totp_hotp(secret, TOTP_SECRET_LEN, s, TOTP_DIGITS));
        bool match = sodium_memcmp(want, code, TOTP_DIGITS) == 0;
        sodium_memzero(want, sizeof want);
        if (match && !found && totp_step_unused(last_step, s)) {
            found = true;
            *step = s;
        }
    }
    return found ? STATUS_OK : STATUS_UNAUTHENTICATED;
}

void totp_base32(const uint8_t *in, size_t len, char *out, size_t out_size) {
    CHECK(out_size >= (len * 8 + 4) / 5 + 1);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[n++] = B32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[n++] = B32[(acc << (5 - bits)) & 31];
    out[n] = '\0';
    sodium_memzero(&acc, sizeof acc);
}

static void recovery_digest(const char chars[RECOVERY_CHARS], uint8_t hash[TOTP_HASH_LEN]) {
    crypto_hash_sha256(hash, (const unsigned char *)chars, RECOVERY_CHARS);
}

void totp_recovery_new(char code[TOTP_RECOVERY_LEN + 1], uint8_t hash[TOTP_HASH_LEN]) {
    uint8_t raw[RECOVERY_RAW];
    char chars[RECOVERY_CHARS + 1];
    randombytes_buf(raw, sizeof raw);
    totp_base32(raw, sizeof raw, chars, sizeof chars);
    recovery_digest(chars, hash);
    for (int g = 0, n = 0; g < 4; g++) {
        if (g > 0)
            code[n++] = '-';
        memcpy(code + n, chars + 4 * g, 4);
        n += 4;
    }
    code[TOTP_RECOVERY_LEN] = '\0';
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(chars, sizeof chars);
}

int totp_recovery_hash(const char *typed, uint8_t hash[TOTP_HASH_LEN]) {
    char chars[RECOVERY_CHARS];
    size_t n = 0;
    int rc = STATUS_OK;
    for (const char *p = typed; *p; p++) {
        char c = *p;
        if (c == '-' || c == ' ')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (n == RECOVERY_CHARS || !memchr(B32, c, sizeof B32 - 1)) {
            rc = STATUS_BAD_REQUEST;
            goto out;
        }
        chars[n++] = c;
    }
    if (n != RECOVERY_CHARS) {
        rc = STATUS_BAD_REQUEST;
        goto out;
    }
    recovery_digest(chars, hash);
out:
    sodium_memzero(chars, sizeof chars);
    return rc;
}
