/*
 * server/totp.h: one-time codes of the second factor: HOTP (RFC 4226) and
 * TOTP (RFC 6238) with HMAC-SHA1, 30-second steps and 6 digits (what
 * authenticator apps compute), and the single-use recovery codes.
 *
 * A TOTP code is accepted for the current step and one step either side
 * (clock drift), and only for a step later than the last one the account
 * accepted, so a code seen once cannot be replayed. Codes are compared in
 * constant time.
 *
 * Recovery codes are 16 characters of RFC 4648 base32 (80 random bits),
 * shown as four groups of four (7K3Q-M2XD-5HPW-4RTE); the server keeps
 * only the SHA-256 of the 16 characters.
 *
 * Pure functions (totp_recovery_new() draws randomness), any thread.
 */
#ifndef SERVER_TOTP_H
#define SERVER_TOTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOTP_SECRET_LEN 20   /* bytes of a secret (160 bits, RFC 4226's advice) */
#define TOTP_SECRET_B32 32   /* base32 characters of a secret, without padding */
#define TOTP_STEP_S 30       /* seconds per step */
#define TOTP_DIGITS 6        /* digits of a code */
#define TOTP_RECOVERY_N 10   /* recovery codes per enrolment */
#define TOTP_RECOVERY_LEN 19 /* characters of a recovery code as shown, with dashes */
#define TOTP_HASH_LEN 32     /* SHA-256 of a recovery code */

/* The HOTP value (RFC 4226 section 5.3) of `counter` under `key`, reduced to
 * `digits` (1..9) decimal digits. */
uint32_t totp_hotp(const uint8_t *key, size_t key_len, uint64_t counter, unsigned digits);

/* The step of Unix time `unix_s` (seconds): floor(unix_s / 30); 0 before 1970. */
uint64_t totp_step(int64_t unix_s);

/* True when `step` may still be accepted after `last_step` (the replay rule:
 * a step is accepted once, and never an earlier one). The handler and apply
 * both check it. */
bool totp_step_unused(uint64_t last_step, uint64_t step);

/* True when `code` has the shape of a TOTP code (exactly 6 ASCII digits). */
bool totp_is_code(const char *code);

/* Checks a 6-digit `code` against the steps around `unix_s` that are unused
 * after `last_step`. Returns 0 and the step it matched in *step; or
 * STATUS_UNAUTHENTICATED (no match, or a code of another shape). */
int totp_verify(const uint8_t secret[TOTP_SECRET_LEN], const char *code, int64_t unix_s,
                uint64_t last_step, uint64_t *step);

/* Writes the RFC 4648 base32 encoding of in[0..len) without padding, NUL
 * terminated, into out (out_size >= (len * 8 + 4) / 5 + 1; CHECKed). */
void totp_base32(const uint8_t *in, size_t len, char *out, size_t out_size);

/* A fresh recovery code as shown (7K3Q-M2XD-5HPW-4RTE, NUL terminated) and
 * its hash. The caller wipes `code` after showing it. */
void totp_recovery_new(char code[TOTP_RECOVERY_LEN + 1], uint8_t hash[TOTP_HASH_LEN]);

/* The hash of a recovery code as a user types it (dashes and spaces ignored,
 * letters of either case). Returns 0, or STATUS_BAD_REQUEST when it is not 16
 * base32 characters. */
int totp_recovery_hash(const char *typed, uint8_t hash[TOTP_HASH_LEN]);

#endif
