/*
 * client/admin.c: libcarechat's account administration (carechat.h
 * "Deactivation"): DeactivateAccount, with the target found by email through
 * LookupAccount, and the RetentionInfo it answers copied out of the frame.
 *
 * Invariant: *out is written only with an answer about the account that was
 * looked up. The email is personal data: it goes to the server inside the
 * lookup and nowhere else (never into a log or an error text). Thread: the
 * caller's (one handle per thread, like the rest of libcarechat).
 */
#include <string.h>

#include "base/status.h"
#include "client/carechat.h"
#include "client/core.h"

static const char *const retention_names[] = {"unspecified", "active", "review", "restricted",
                                              "purged"};

const char *carechat_retention_state_name(enum carechat_retention_state state) {
    if (state < CARECHAT_RETENTION_UNSPECIFIED || state > CARECHAT_RETENTION_PURGED)
        return retention_names[0];
    return retention_names[state];
}

int carechat_deactivate(struct carechat *c, const char *email, struct carechat_retention *out) {
    cc_clear_error(c);
    const char *what = "deactivating the account";
    if (email == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "deactivate: an email is required");
    struct carechat_account target;
    int rc = carechat_lookup(c, email, &target);
    if (rc != 0)
        return rc;
    Carechat__V1__DeactivateAccount d;
    carechat__v1__deactivate_account__init(&d);
    d.account_id = (ProtobufCBinaryData){ID_LEN, target.account_id.b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_DEACTIVATE_ACCOUNT;
    req.deactivate_account = &d;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN,
         "not yours to deactivate (providers: their own patients; admins: patients and "
         "providers; patients: nobody)"},
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such account"},
        {CARECHAT__V1__STATUS__CONFLICT, "the account is already deactivated"},
        {CARECHAT__V1__STATUS__BAD_REQUEST, "you cannot deactivate your own account"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_RETENTION, what, hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__RetentionInfo *ri = resp->response->retention;
    struct carechat_retention r;
    memset(&r, 0, sizeof r);
    if (ri == NULL || id_from_bytes(ri->account_id.data, ri->account_id.len, &r.account_id) != 0 ||
        memcmp(r.account_id.b, target.account_id.b, ID_LEN) != 0 ||
        ri->state < CARECHAT__V1__RETENTION_STATE__RETENTION_ACTIVE ||
        ri->state > CARECHAT__V1__RETENTION_STATE__RETENTION_PURGED) {
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: malformed answer from the server", what);
    } else {
        r.state = (enum carechat_retention_state)ri->state;
        r.deactivated_at = ri->deactivated_at;
        r.restricted_at = ri->restricted_at;
        r.purge_at = ri->purge_at;
        *out = r;
    }
    cc_free_response(resp);
    return rc;
}
