/*
 * client/admin.c: libcarechat's account administration (carechat.h
 * "Accounts and their retention"): DeactivateAccount, ReactivateAccount,
 * SetLegalHold, GetRetentionState and UnlockLogin, each with the target found
 * by email through LookupAccount, and ListAccounts page by page; the
 * RetentionInfo answers are checked and copied out of the frame.
 *
 * Invariants: *out is written only with an answer about the account that was
 * looked up (a summary of ListAccounts only with a RetentionInfo about that
 * summary's account). The email and a legal hold's reason are personal data:
 * they go to the server inside the request and nowhere else (never into a log
 * or an error text). Thread: the caller's (one handle per thread, like the
 * rest of libcarechat).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "base/utf8.h"
#include "client/carechat.h"
#include "client/core.h"

static const char *const retention_names[] = {"unspecified", "active", "review", "restricted",
                                              "purged"};

const char *carechat_retention_state_name(enum carechat_retention_state state) {
    if (state < CARECHAT_RETENTION_UNSPECIFIED || state > CARECHAT_RETENTION_PURGED)
        return retention_names[0];
    return retention_names[state];
}

/* Copies `ri` into *out when it is a well-formed RetentionInfo about
 * `account`; returns 0, or records STATUS_CORRUPT about `what`. */
static int copy_retention(struct carechat *c, const Carechat__V1__RetentionInfo *ri,
                          const struct id *account, const char *what,
                          struct carechat_retention *out) {
    struct carechat_retention r;
    memset(&r, 0, sizeof r);
    if (ri == NULL || id_from_bytes(ri->account_id.data, ri->account_id.len, &r.account_id) != 0 ||
        !id_equal(&r.account_id, account) ||
        ri->state < CARECHAT__V1__RETENTION_STATE__RETENTION_ACTIVE ||
        ri->state > CARECHAT__V1__RETENTION_STATE__RETENTION_PURGED)
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "%s: malformed answer from the server", what);
    r.state = (enum carechat_retention_state)ri->state;
    r.deactivated_at = ri->deactivated_at;
    r.restricted_at = ri->restricted_at;
    r.purge_at = ri->purge_at;
    r.legal_hold = ri->legal_hold;
    r.legal_hold_since = ri->legal_hold ? ri->legal_hold_since : 0;
    *out = r;
    return 0;
}

/* Sends `req`, a request about `target` answered with a RetentionInfo, and
 * copies the answer into *out. Returns 0 or the recorded failure. */
static int retention_call(struct carechat *c, Carechat__V1__Frame *req, const struct id *target,
                          const char *what, const struct cc_hint *hints,
                          struct carechat_retention *out) {
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, req, CARECHAT__V1__RESPONSE__RESULT_RETENTION, what, hints, &resp);
    if (rc != 0)
        return rc;
    rc = copy_retention(c, resp->response->retention, target, what, out);
    cc_free_response(resp);
    return rc;
}

/* The account id of `email` (carechat_lookup(): its failure is recorded). */
static int target_of(struct carechat *c, const char *email, struct id *out) {
    struct carechat_account target;
    int rc = carechat_lookup(c, email, &target);
    if (rc == 0)
        *out = target.account_id;
    return rc;
}

int carechat_deactivate(struct carechat *c, const char *email, struct carechat_retention *out) {
    cc_clear_error(c);
    if (email == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "deactivate: an email is required");
    struct id target;
    int rc = target_of(c, email, &target);
    if (rc != 0)
        return rc;
    Carechat__V1__DeactivateAccount d;
    carechat__v1__deactivate_account__init(&d);
    d.account_id = (ProtobufCBinaryData){ID_LEN, target.b};
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
    return retention_call(c, &req, &target, "deactivating the account", hints, out);
}

int carechat_get_retention(struct carechat *c, const char *email, struct carechat_retention *out) {
    cc_clear_error(c);
    if (email == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "retention state: an email is required");
    struct id target;
    int rc = target_of(c, email, &target);
    if (rc != 0)
        return rc;
    Carechat__V1__GetRetentionState g;
    carechat__v1__get_retention_state__init(&g);
    g.account_id = (ProtobufCBinaryData){ID_LEN, target.b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_GET_RETENTION_STATE;
    req.get_retention_state = &g;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN,
         "only admins and system administrators see retention states"},
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such account"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    return retention_call(c, &req, &target, "reading the retention state", hints, out);
}

int carechat_reactivate(struct carechat *c, const char *email, struct carechat_retention *out) {
    cc_clear_error(c);
    if (email == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "reactivate: an email is required");
    struct id target;
    int rc = target_of(c, email, &target);
    if (rc != 0)
        return rc;
    Carechat__V1__ReactivateAccount ra;
    carechat__v1__reactivate_account__init(&ra);
    ra.account_id = (ProtobufCBinaryData){ID_LEN, target.b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_REACTIVATE_ACCOUNT;
    req.reactivate_account = &ra;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN,
         "not yours to reactivate (admins: accounts in review; system administrators: in "
         "review or restricted; providers and patients: none)"},
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such account"},
        {CARECHAT__V1__STATUS__CONFLICT, "the account is active, or already purged"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    return retention_call(c, &req, &target, "reactivating the account", hints, out);
}

int carechat_legal_hold(struct carechat *c, const char *email, bool hold, const char *reason,
                        struct carechat_retention *out) {
    cc_clear_error(c);
    const char *what = hold ? "setting a legal hold" : "releasing the legal hold";
    if (email == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "%s: an email is required",
                       what);
    size_t reason_len = hold && reason != NULL ? strlen(reason) : 0;
    /* The reason itself never goes into the error text. */
    if (hold && (reason_len == 0 || reason_len > CARECHAT_MAX_REASON ||
                 !utf8_valid((const uint8_t *)reason, reason_len)))
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: a reason of 1..%d bytes of UTF-8 text is required", what,
                       CARECHAT_MAX_REASON);
    struct id target;
    int rc = target_of(c, email, &target);
    if (rc != 0)
        return rc;
    Carechat__V1__SetLegalHold lh;
    carechat__v1__set_legal_hold__init(&lh);
    lh.account_id = (ProtobufCBinaryData){ID_LEN, target.b};
    lh.hold = hold;
    if (hold)
        lh.reason = (char *)reason;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_SET_LEGAL_HOLD;
    req.set_legal_hold = &lh;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "only system administrators set and release legal holds"},
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such account"},
        {CARECHAT__V1__STATUS__CONFLICT, hold ? "the account is already on legal hold, or purged"
                                              : "the account is not on legal hold, or purged"},
        {CARECHAT__V1__STATUS__BAD_REQUEST, "a hold needs a reason of 1..256 bytes"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    return retention_call(c, &req, &target, what, hints, out);
}

int carechat_unlock_login(struct carechat *c, const char *email, struct id *account) {
    cc_clear_error(c);
    const char *what = "unlocking sign-in";
    if (email == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "unlock: an email is required");
    struct id target;
    int rc = target_of(c, email, &target);
    if (rc != 0)
        return rc;
    Carechat__V1__UnlockLogin ul;
    carechat__v1__unlock_login__init(&ul);
    ul.account_id = (ProtobufCBinaryData){ID_LEN, target.b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_UNLOCK_LOGIN;
    req.unlock_login = &ul;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "only admins and system administrators unlock sign-in"},
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such account"},
        {CARECHAT__V1__STATUS__UNAVAILABLE,
         "the server cannot write the audit record: nothing was changed, retry later"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT__NOT_SET, what, hints, &resp);
    if (rc != 0)
        return rc;
    cc_free_response(resp);
    if (account != NULL)
        *account = target;
    return 0;
}

/* ---- ListAccounts ---------------------------------------------------------------- */

/* Copies summary `s` into *out; returns 0 or records STATUS_CORRUPT. */
static int copy_summary(struct carechat *c, const Carechat__V1__AccountSummary *s, const char *what,
                        struct carechat_account_summary *out) {
    memset(out, 0, sizeof *out);
    struct carechat_account *a = &out->account;
    if (s == NULL || id_from_bytes(s->account_id.data, s->account_id.len, &a->account_id) != 0 ||
        s->role < CARECHAT__V1__ROLE__PATIENT || s->role > CARECHAT__V1__ROLE__SYSADMIN)
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "%s: malformed account from the server", what);
    a->role = (enum carechat_role)s->role;
    cc_copy_text(a->display_name, sizeof a->display_name, s->display_name);
    cc_copy_text(a->email, sizeof a->email, s->email);
    a->active = s->active;
    out->created_at = s->created_at;
    return copy_retention(c, s->retention, &a->account_id, what, &out->retention);
}

int carechat_list_accounts(struct carechat *c, enum carechat_role role, unsigned limit,
                           const struct carechat_page_token *after,
                           struct carechat_account_page **out) {
    cc_clear_error(c);
    const char *what = "listing accounts";
    if (out == NULL || role < CARECHAT_ROLE_UNSPECIFIED || role > CARECHAT_ROLE_SYSADMIN ||
        limit > CARECHAT_MAX_ACCOUNT_PAGE ||
        (after != NULL && after->len > CARECHAT_MAX_PAGE_TOKEN))
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: a role, a limit of 0..%d and a page token from the server are "
                       "required",
                       what, CARECHAT_MAX_ACCOUNT_PAGE);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__ListAccounts la;
    carechat__v1__list_accounts__init(&la);
    la.limit = limit;
    la.role = (Carechat__V1__Role)role;
    if (after != NULL && after->len > 0)
        la.page_token = (ProtobufCBinaryData){after->len, (uint8_t *)after->b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_LIST_ACCOUNTS;
    req.list_accounts = &la;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "only admins and system administrators list accounts"},
        {CARECHAT__V1__STATUS__BAD_REQUEST, "bad page token, limit or role"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_ACCOUNT_PAGE, what, hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__AccountPage *p = resp->response->account_page;
    /* The server's default page (limit 0) is within the protocol's maximum. */
    const size_t asked = limit != 0 ? limit : CARECHAT_MAX_ACCOUNT_PAGE;
    struct carechat_account_page *page = NULL;
    /* A token that does not move on would have a caller fetch the same page
     * for ever. */
    const bool stuck = after != NULL && after->len > 0 && p != NULL &&
                       p->next_page_token.len == after->len &&
                       memcmp(p->next_page_token.data, after->b, after->len) == 0;
    if (p == NULL || p->n_accounts > asked || p->next_page_token.len > CARECHAT_MAX_PAGE_TOKEN ||
        stuck) {
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: malformed page from the server", what);
        goto out;
    }
    page = xcalloc(1, sizeof *page);
    page->items = xcalloc(p->n_accounts + 1, sizeof *page->items);
    for (size_t i = 0; i < p->n_accounts && rc == 0; i++)
        if ((rc = copy_summary(c, p->accounts[i], what, &page->items[i])) == 0)
            page->n++;
    if (rc != 0)
        goto out;
    page->next.len = p->next_page_token.len;
    if (page->next.len > 0)
        memcpy(page->next.b, p->next_page_token.data, page->next.len);
    *out = page;
    page = NULL;
out:
    carechat_account_page_free(page);
    cc_free_response(resp);
    return rc;
}

void carechat_account_page_free(struct carechat_account_page *p) {
    if (p == NULL)
        return;
    free(p->items);
    free(p);
}

/* ---- Pending invitations ------------------------------------------------------------ */

/* Appends the invitations of page `p` to `l`; 0 or records STATUS_CORRUPT. */
static int take_invites(struct carechat *c, const Carechat__V1__InvitePage *p,
                        struct carechat_invites *l) {
    for (size_t i = 0; i < p->n_invites; i++) {
        const Carechat__V1__PendingInvite *in = p->invites[i];
        if (l->n == CARECHAT_MAX_INVITES || in->invite_id.len != CARECHAT_INVITE_ID_LEN ||
            in->inviter_account_id.len != ID_LEN || strlen(in->email) > CARECHAT_MAX_EMAIL)
            return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                           "listing invitations: malformed page from the server");
        struct carechat_invite *out = &l->items[l->n++];
        memcpy(out->id, in->invite_id.data, CARECHAT_INVITE_ID_LEN);
        snprintf(out->email, sizeof out->email, "%s", in->email);
        out->role = (enum carechat_role)in->role;
        memcpy(out->inviter.b, in->inviter_account_id.data, ID_LEN);
        out->created_at = in->created_at;
        out->expires_at = in->expires_at;
    }
    return 0;
}

int carechat_list_invites(struct carechat *c, struct carechat_invites **out) {
    cc_clear_error(c);
    const char *what = "listing invitations";
    if (out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "%s: no result", what);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    struct carechat_invites *l = xcalloc(1, sizeof *l);
    l->items = xcalloc(CARECHAT_MAX_INVITES, sizeof *l->items);
    uint8_t token[CARECHAT_INVITE_ID_LEN];
    size_t token_len = 0;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "patients have no invitations"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    for (bool more = true; rc == 0 && more;) {
        Carechat__V1__ListInvites li;
        carechat__v1__list_invites__init(&li);
        li.page_token = (ProtobufCBinaryData){token_len, token};
        Carechat__V1__Frame req;
        carechat__v1__frame__init(&req);
        req.body_case = CARECHAT__V1__FRAME__BODY_LIST_INVITES;
        req.list_invites = &li;
        Carechat__V1__Frame *resp = NULL;
        rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_INVITE_PAGE, what, hints, &resp);
        if (rc != 0)
            break;
        const Carechat__V1__InvitePage *p = resp->response->invite_page;
        rc = take_invites(c, p, l);
        more = p->next_page_token.len != 0;
        /* A token that does not move on would loop for ever. */
        if (rc == 0 && more &&
            (p->next_page_token.len != sizeof token ||
             (token_len && memcmp(token, p->next_page_token.data, sizeof token) == 0)))
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL, "%s: a bad page token", what);
        if (rc == 0 && more) {
            memcpy(token, p->next_page_token.data, sizeof token);
            token_len = sizeof token;
        }
        cc_free_response(resp);
    }
    if (rc != 0) {
        carechat_invites_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void carechat_invites_free(struct carechat_invites *l) {
    if (!l)
        return;
    free(l->items);
    free(l);
}

int carechat_revoke_invite(struct carechat *c, const uint8_t id[CARECHAT_INVITE_ID_LEN]) {
    cc_clear_error(c);
    if (id == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "revoking an invitation: its id is required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__RevokeInvite ri;
    carechat__v1__revoke_invite__init(&ri);
    ri.invite_id = (ProtobufCBinaryData){CARECHAT_INVITE_ID_LEN, (uint8_t *)id};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_REVOKE_INVITE;
    req.revoke_invite = &ri;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such pending invitation of yours"},
        {CARECHAT__V1__STATUS__FORBIDDEN, "patients have no invitations"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT__NOT_SET, "revoking an invitation",
                    hints, &resp);
    if (rc == 0)
        cc_free_response(resp);
    return rc;
}

/* ---- Breach notification --------------------------------------------------------------- */

int carechat_breach_declare(struct carechat *c, const struct carechat_breach_declaration *d,
                            struct carechat_breach *out) {
    cc_clear_error(c);
    const char *what = "declaring a breach";
    const char *desc = d && d->description ? d->description : "";
    if (d == NULL || out == NULL || d->n_emails > CARECHAT_MAX_BREACH_ACCOUNTS ||
        (d->n_emails == 0 && d->from <= 0) || strlen(desc) > CARECHAT_MAX_DESCRIPTION ||
        !utf8_valid((const uint8_t *)desc, strlen(desc)))
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: the accounts (at most %d) or a window, and a description of at most "
                       "%d bytes of UTF-8, are required",
                       what, CARECHAT_MAX_BREACH_ACCOUNTS, CARECHAT_MAX_DESCRIPTION);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    struct id *ids = xcalloc(d->n_emails + 1, sizeof *ids);
    ProtobufCBinaryData *bins = xcalloc(d->n_emails + 1, sizeof *bins);
    struct id accessor;
    for (size_t i = 0; rc == 0 && i < d->n_emails; i++) {
        rc = target_of(c, d->emails[i], &ids[i]);
        bins[i] = (ProtobufCBinaryData){ID_LEN, ids[i].b};
    }
    if (rc == 0 && d->accessor_email)
        rc = target_of(c, d->accessor_email, &accessor);
    struct id incident = d->incident ? *d->incident : id_new();
    Carechat__V1__StartBreachNotification m;
    carechat__v1__start_breach_notification__init(&m);
    m.incident_id = (ProtobufCBinaryData){ID_LEN, incident.b};
    m.n_affected_account_ids = d->n_emails;
    m.affected_account_ids = bins;
    m.discovered_at = d->discovered_at;
    m.accessed_from = d->n_emails ? 0 : d->from;
    m.accessed_until = d->n_emails ? 0 : d->until;
    if (d->accessor_email)
        m.accessor_account_id = (ProtobufCBinaryData){ID_LEN, accessor.b};
    m.description = (char *)desc;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_START_BREACH_NOTIFICATION;
    req.start_breach_notification = &m;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "only system administrators declare a breach"},
        {CARECHAT__V1__STATUS__NOT_FOUND, "an account is unknown (or purged)"},
        {CARECHAT__V1__STATUS__TOO_LARGE, "too many accounts or audit records: narrow or split it"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    if (rc == 0)
        rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_BREACH, what, hints, &resp);
    if (rc == 0) {
        const Carechat__V1__BreachResult *b = resp->response->breach;
        memset(out, 0, sizeof *out);
        out->incident = incident;
        out->queued = b->notices_queued;
        out->discovered_at = b->discovered_at;
        out->deadline = b->deadline;
        cc_free_response(resp);
    }
    free(bins);
    free(ids);
    return rc;
}

int carechat_breach_status(struct carechat *c, const struct id *incident,
                           struct carechat_breach_status **out) {
    cc_clear_error(c);
    const char *what = "breach status";
    if (incident == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: the incident is required", what);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    struct carechat_breach_status *st = xcalloc(1, sizeof *st);
    st->incident = *incident;
    size_t cap = 0;
    uint8_t token[ID_LEN];
    size_t token_len = 0;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such incident"},
        {CARECHAT__V1__STATUS__FORBIDDEN, "only system administrators see breach notices"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    for (bool more = true; rc == 0 && more;) {
        Carechat__V1__GetBreachStatus m;
        carechat__v1__get_breach_status__init(&m);
        m.incident_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)incident->b};
        m.page_token = (ProtobufCBinaryData){token_len, token};
        Carechat__V1__Frame req;
        carechat__v1__frame__init(&req);
        req.body_case = CARECHAT__V1__FRAME__BODY_GET_BREACH_STATUS;
        req.get_breach_status = &m;
        Carechat__V1__Frame *resp = NULL;
        rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_BREACH, what, hints, &resp);
        if (rc != 0)
            break;
        const Carechat__V1__BreachResult *b = resp->response->breach;
        st->discovered_at = b->discovered_at;
        st->deadline = b->deadline;
        st->total = b->notices_total;
        st->overdue = b->notices_overdue;
        if (st->n + b->n_notices > b->notices_total ||
            (b->next_page_token.len != 0 && b->next_page_token.len != ID_LEN) ||
            (token_len && b->next_page_token.len &&
             memcmp(b->next_page_token.data, token, ID_LEN) == 0))
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                         "%s: malformed page from the server", what);
        for (size_t i = 0; rc == 0 && i < b->n_notices; i++) {
            const Carechat__V1__BreachNotice *n = b->notices[i];
            if (n->account_id.len != ID_LEN) {
                rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                             "%s: malformed notice from the server", what);
                break;
            }
            if (st->n == cap) {
                cap = cap ? 2 * cap : 64;
                st->notices = xrealloc(st->notices, cap * sizeof *st->notices);
            }
            struct carechat_breach_notice *o = &st->notices[st->n++];
            memcpy(o->account.b, n->account_id.data, ID_LEN);
            o->state = (enum carechat_notice_state)n->state;
            o->queued_at = n->queued_at;
            o->settled_at = n->settled_at;
        }
        more = rc == 0 && b->next_page_token.len == ID_LEN;
        if (more) {
            memcpy(token, b->next_page_token.data, ID_LEN);
            token_len = ID_LEN;
        }
        cc_free_response(resp);
    }
    if (rc != 0) {
        carechat_breach_status_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void carechat_breach_status_free(struct carechat_breach_status *s) {
    if (!s)
        return;
    free(s->notices);
    free(s);
}
