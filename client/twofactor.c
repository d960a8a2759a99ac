/*
 * client/twofactor.c: two-factor sign-in of the caller's account: enrol,
 * confirm, disable (contracts in carechat.h). The secret and the recovery
 * codes pass through here once; the frames that carried them are wiped with
 * the response (cc_free_response()) and nothing is kept in the profile.
 */
#include <sodium.h>
#include <string.h>

#include "base/status.h"
#include "client/carechat.h"
#include "client/core.h"

int carechat_totp_enroll(struct carechat *c, struct carechat_totp_enrollment *out) {
    cc_clear_error(c);
    if (!out)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "2fa enable: no output");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__TotpEnroll te;
    carechat__v1__totp_enroll__init(&te);
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_TOTP_ENROLL;
    req.totp_enroll = &te;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__CONFLICT,
         "two-factor sign-in is already active (carechat 2fa disable first)"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_TOTP_ENROLLMENT, "2fa enable", hints,
                    &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__TotpEnrollment *e = resp->response->totp_enrollment;
    if (strlen(e->secret) != CARECHAT_TOTP_SECRET_B32 ||
        strlen(e->otpauth_uri) > CARECHAT_TOTP_URI_MAX)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "2fa enable: malformed answer from the server");
    else {
        memcpy(out->secret, e->secret, CARECHAT_TOTP_SECRET_B32 + 1);
        memcpy(out->otpauth_uri, e->otpauth_uri, strlen(e->otpauth_uri) + 1);
    }
    sodium_memzero(e->secret, strlen(e->secret));
    sodium_memzero(e->otpauth_uri, strlen(e->otpauth_uri));
    cc_free_response(resp);
    return rc;
}

int carechat_totp_confirm(struct carechat *c, const char *code,
                          char codes[CARECHAT_RECOVERY_CODES][CARECHAT_RECOVERY_CODE_LEN + 1]) {
    cc_clear_error(c);
    if (!code || !codes)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "2fa confirm: a code is required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__TotpConfirm tc;
    carechat__v1__totp_confirm__init(&tc);
    tc.code = (char *)code;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_TOTP_CONFIRM;
    req.totp_confirm = &tc;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "wrong code (check the clock of the authenticator)"},
        {CARECHAT__V1__STATUS__CONFLICT, "nothing to confirm (carechat 2fa enable first)"},
        {CARECHAT__V1__STATUS__BAD_REQUEST, "the code is the 6 digits the authenticator shows"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_RECOVERY_CODES, "2fa confirm", hints,
                    &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__RecoveryCodes *r = resp->response->recovery_codes;
    if (r->n_codes != CARECHAT_RECOVERY_CODES)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "2fa confirm: malformed answer from the server");
    for (size_t i = 0; i < r->n_codes; i++) {
        size_t n = strlen(r->codes[i]);
        if (rc == 0 && n != CARECHAT_RECOVERY_CODE_LEN)
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                         "2fa confirm: malformed answer from the server");
        if (rc == 0)
            memcpy(codes[i], r->codes[i], n + 1);
        sodium_memzero(r->codes[i], n);
    }
    cc_free_response(resp);
    if (rc != 0 || !c->info.must_enrol_second_factor)
        return rc;
    /* The session may do everything now: finish what the login left. */
    c->info.must_enrol_second_factor = false;
    if (c->profile->device_list_version == 0)
        rc = cc_ensure_published(c);
    if (rc == 0)
        rc = cc_maintain_keys(c);
    return rc;
}

int carechat_totp_disable(struct carechat *c, const char *password, const char *second_factor) {
    cc_clear_error(c);
    if (!password || !second_factor || !*password || !*second_factor)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "2fa disable: the password and a code are required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__TotpDisable td;
    carechat__v1__totp_disable__init(&td);
    td.password = (char *)password;
    td.second_factor = (char *)second_factor;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_TOTP_DISABLE;
    req.totp_disable = &td;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_call(c, &req, "2fa disable", &resp);
    if (rc != 0)
        return rc;
    Carechat__V1__Status st = resp->response->status;
    if (st != CARECHAT__V1__STATUS__OK)
        rc = cc_refused(c, resp->response, "2fa disable",
                        st == CARECHAT__V1__STATUS__UNAUTHENTICATED ? "wrong password or code"
                        : st == CARECHAT__V1__STATUS__CONFLICT ? "two-factor sign-in is not active"
                        : st == CARECHAT__V1__STATUS__FORBIDDEN
                            ? "this server requires two-factor sign-in of staff"
                            : NULL);
    cc_free_response(resp);
    return rc;
}
