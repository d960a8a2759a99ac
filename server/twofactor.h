/*
 * server/twofactor.h: two-factor sign-in (TOTP, server/totp.h): enrolment
 * (TotpEnroll, TotpConfirm), the check of a second factor that Login and
 * TotpDisable (server/sessions.c) share, and the staff switch.
 *
 *   none --TotpEnroll--> pending --TotpConfirm (valid code)--> active
 *            pending --TotpEnroll--> pending (a new secret)
 *   active --TotpDisable (password + code or recovery code)--> none
 *
 * The secret and the hashes of the recovery codes live in the account record
 * (sealed with the account's data key, so a purge shreds them); the secret
 * and the codes leave the server once, in the answer, and are never logged or
 * audited. Loop thread.
 */
#ifndef SERVER_TWOFACTOR_H
#define SERVER_TWOFACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "server/request.h"
#include "server/totp.h"

/* True when the server requires a second factor of `role` (--require-2fa
 * staff and a staff role): such an account without an active one gets a
 * session that can only enrol. */
bool twofactor_required(const struct handlers *h, uint32_t role);

/* True when a session that must enrol first may send a request with this
 * Frame body case (TotpEnroll, TotpConfirm, Logout). */
bool twofactor_enrolment_allows(uint32_t body_case);

/* Checks `second_factor` (a 6-digit code or a recovery code) against the
 * active two-factor sign-in of `a` at Unix time `unix_s`. Returns 0 with
 * either *step (a TOTP step later than a->totp_last_step) or, when
 * *recovery, the code's hash in recovery_hash; STATUS_UNAUTHENTICATED
 * otherwise (a wrong, replayed or spent code). */
int twofactor_check(const struct rec_account *a, const char *second_factor, int64_t unix_s,
                    uint64_t *step, bool *recovery, uint8_t recovery_hash[TOTP_HASH_LEN]);

/* TotpEnroll: a new pending secret (CONFLICT while one is active), answered
 * with TotpEnrollment. */
int twofactor_enroll(struct req *r);
int twofactor_enroll_done(struct op *op, const struct op_result *res);
/* TotpConfirm: a code of the pending secret (FORBIDDEN when wrong), then the
 * secret is active and RecoveryCodes answered; a session that had to enrol
 * may do anything from then on. */
int twofactor_confirm(struct req *r);
int twofactor_confirm_done(struct op *op, const struct op_result *res);

#endif
