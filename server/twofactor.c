/*
 * server/twofactor.c: TotpEnroll and TotpConfirm, and the second-factor
 * check of Login and TotpDisable (contracts in twofactor.h).
 *
 *   TotpEnroll:  account not active -> draw a secret -> TotpEnroll entry
 *                -> TotpEnrollment (base32 and otpauth URI)
 *   TotpConfirm: account pending -> code of the pending secret -> draw the
 *                recovery codes -> TotpConfirm entry (their hashes)
 *                -> RecoveryCodes
 *
 * The op states hold the secret or the codes; ops are wiped on release.
 * Loop thread.
 */
#include "server/twofactor.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/status.h"
#include "server/rules.h"

#define DETAIL_ACTIVE "two-factor sign-in is active: disable it first"

bool twofactor_required(const struct handlers *h, uint32_t role) {
    const char *req = h->cfg.config->require_2fa;
    return req && strcmp(req, "staff") == 0 && role != REC_ROLE_PATIENT;
}

bool twofactor_enrolment_allows(uint32_t body_case) {
    return body_case == CARECHAT__V1__FRAME__BODY_TOTP_ENROLL ||
           body_case == CARECHAT__V1__FRAME__BODY_TOTP_CONFIRM ||
           body_case == CARECHAT__V1__FRAME__BODY_LOGOUT;
}

int twofactor_check(const struct rec_account *a, const char *second_factor, int64_t unix_s,
                    uint64_t *step, bool *recovery, uint8_t recovery_hash[TOTP_HASH_LEN]) {
    *recovery = false;
    if (a->totp_state != REC_TOTP_ACTIVE)
        return STATUS_UNAUTHENTICATED;
    if (totp_is_code(second_factor))
        return totp_verify(a->totp_secret, second_factor, unix_s, a->totp_last_step, step);
    if (totp_recovery_hash(second_factor, recovery_hash) != 0)
        return STATUS_UNAUTHENTICATED;
    /* Compared with every stored hash, so the time says nothing of which. */
    bool found = false;
    for (uint32_t i = 0; i < a->n_recovery; i++)
        found |= sodium_memcmp(a->recovery[i], recovery_hash, TOTP_HASH_LEN) == 0;
    *recovery = found;
    return found ? STATUS_OK : STATUS_UNAUTHENTICATED;
}

/* ---- TotpEnroll ------------------------------------------------------------------ */

struct enroll_op {
    uint8_t secret[TOTP_SECRET_LEN];
    struct id account;
};

int twofactor_enroll(struct req *r) {
    struct rec_account a;
    int rc = req_read_account(r->h, &r->hc->account, &a);
    if (rc != 0)
        return rc;
    bool active = a.totp_state == REC_TOTP_ACTIVE;
    rec_account_cleanup(&a);
    if (active)
        return req_fail(r, STATUS_CONFLICT, DETAIL_ACTIVE);
    struct op *op = op_new(r, sizeof(struct enroll_op));
    struct enroll_op *eo = OP_STATE(op, struct enroll_op);
    randombytes_buf(eo->secret, sizeof eo->secret);
    eo->account = r->hc->account;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__TotpEnroll te;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__totp_enroll__init(&te);
    te.secret = (ProtobufCBinaryData){TOTP_SECRET_LEN, eo->secret};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_TOTP_ENROLL;
    e.totp_enroll = &te;
    return op_propose(op, &e);
}

int twofactor_enroll_done(struct op *op, const struct op_result *res) {
    struct enroll_op *eo = OP_STATE(op, struct enroll_op);
    if (!op_live(op))
        return STATUS_OK;
    if (res->status == STATUS_CONFLICT)
        return op_fail(op, STATUS_CONFLICT, DETAIL_ACTIVE);
    if (res->status != 0)
        return op_fail(op, res->status == STATUS_IO ? STATUS_UNAVAILABLE : res->status,
                       "cannot write now");
    char b32[TOTP_SECRET_B32 + 1], label[9], uri[160];
    char hex[2 * ID_LEN + 1];
    totp_base32(eo->secret, TOTP_SECRET_LEN, b32, sizeof b32);
    sodium_bin2hex(hex, sizeof hex, eo->account.b, ID_LEN);
    snprintf(label, sizeof label, "%.8s", hex);
    snprintf(uri, sizeof uri,
             "otpauth://totp/CareChat:%s?secret=%s&issuer=CareChat&algorithm=SHA1&digits=%d"
             "&period=%d",
             label, b32, TOTP_DIGITS, TOTP_STEP_S);
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__TotpEnrollment te;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__totp_enrollment__init(&te);
    te.secret = b32;
    te.otpauth_uri = uri;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_TOTP_ENROLLMENT;
    resp.totp_enrollment = &te;
    conn_send(op->hc->conn, &frame);
    sodium_memzero(b32, sizeof b32);
    sodium_memzero(uri, sizeof uri);
    return STATUS_OK;
}

/* ---- TotpConfirm ----------------------------------------------------------------- */

struct confirm_op {
    char codes[TOTP_RECOVERY_N][TOTP_RECOVERY_LEN + 1];
    uint8_t hashes[TOTP_RECOVERY_N][TOTP_HASH_LEN];
};

int twofactor_confirm(struct req *r) {
    const Carechat__V1__TotpConfirm *m = r->frame->totp_confirm;
    if (!totp_is_code(m->code))
        return req_fail(r, STATUS_BAD_REQUEST, "the code is 6 digits");
    struct rec_account a;
    int rc = req_read_account(r->h, &r->hc->account, &a);
    if (rc != 0)
        return rc;
    int64_t now = clock_now();
    uint64_t step = 0;
    uint8_t secret_hash[REC_HASH_LEN];
    rules_sha256(a.totp_secret, REC_TOTP_SECRET_LEN, secret_hash);
    if (a.totp_state != REC_TOTP_PENDING)
        rc = req_fail(r, STATUS_CONFLICT,
                      a.totp_state == REC_TOTP_ACTIVE ? DETAIL_ACTIVE
                                                      : "nothing to confirm: TotpEnroll first");
    else if (totp_verify(a.totp_secret, m->code, now / 1000, a.totp_last_step, &step) != 0)
        rc = req_deny(r, STATUS_FORBIDDEN, "wrong code", NULL, 0);
    rec_account_cleanup(&a);
    if (rc != 0)
        return rc;
    struct op *op = op_new(r, sizeof(struct confirm_op));
    struct confirm_op *co = OP_STATE(op, struct confirm_op);
    ProtobufCBinaryData hashes[TOTP_RECOVERY_N];
    for (int i = 0; i < TOTP_RECOVERY_N; i++) {
        totp_recovery_new(co->codes[i], co->hashes[i]);
        hashes[i] = (ProtobufCBinaryData){TOTP_HASH_LEN, co->hashes[i]};
    }
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__TotpConfirm tc;
    entry_init(&e, now, &r->hc->account, &r->hc->device);
    carechat__entry__v1__totp_confirm__init(&tc);
    tc.totp_step = step;
    tc.n_recovery_hashes = TOTP_RECOVERY_N;
    tc.recovery_hashes = hashes;
    tc.secret_hash = (ProtobufCBinaryData){REC_HASH_LEN, secret_hash};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_TOTP_CONFIRM;
    e.totp_confirm = &tc;
    return op_propose(op, &e);
}

int twofactor_confirm_done(struct op *op, const struct op_result *res) {
    struct confirm_op *co = OP_STATE(op, struct confirm_op);
    if (!op_live(op))
        return STATUS_OK;
    if (res->status == STATUS_CONFLICT)
        return op_fail(op, STATUS_CONFLICT, "the enrolment changed meanwhile");
    if (res->status != 0)
        return op_fail(op, res->status == STATUS_IO ? STATUS_UNAVAILABLE : res->status,
                       "cannot write now");
    op->hc->enrol_only = false;
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__RecoveryCodes rc;
    char *codes[TOTP_RECOVERY_N];
    for (int i = 0; i < TOTP_RECOVERY_N; i++)
        codes[i] = co->codes[i];
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__recovery_codes__init(&rc);
    rc.n_codes = TOTP_RECOVERY_N;
    rc.codes = codes;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_RECOVERY_CODES;
    resp.recovery_codes = &rc;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}
