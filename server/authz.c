/*
 * server/authz.c: the authorization decision of carechat.v1 (server/authz.h)
 * over a row of the request table (server/requests.c); tests/authz_test walks
 * the table over the real server.
 *
 * Pure, any thread.
 */
#include "server/authz.h"

#include <stddef.h>

#include "base/status.h"

bool authz_needs_relation(const struct authz_rule *r) {
    return r->scope == AUTHZ_MEMBER || r->scope == AUTHZ_MEMBER_OR_ADMIN ||
           r->scope == AUTHZ_CHANNEL_PATIENT;
}

/* Step 4: a deactivated patient's conversation. */
static int decide_kept(const struct authz_rule *r, const struct authz_caller *c,
                       enum authz_relation rel, enum authz_stage stage) {
    if (stage == AUTHZ_PURGED)
        return STATUS_NOT_FOUND;
    bool may_read =
        c->role == REC_ROLE_SYSADMIN ||
        (stage == AUTHZ_REVIEW &&
         (c->role == REC_ROLE_ADMIN || (c->role == REC_ROLE_PROVIDER && rel >= AUTHZ_CARE_TEAM)));
    if (!may_read)
        return STATUS_NOT_FOUND;
    return r->read ? STATUS_OK : STATUS_FORBIDDEN;
}

int authz_decide(const struct authz_rule *r, const struct authz_caller *c, enum authz_relation rel,
                 enum authz_stage stage) {
    if (r->scope == AUTHZ_OPEN)
        return STATUS_OK;
    if (!c->authenticated)
        return STATUS_UNAUTHENTICATED;
    if (c->role >= 32 || !(r->roles & (1u << c->role)))
        return STATUS_FORBIDDEN;
    if (stage != AUTHZ_LIVE)
        return decide_kept(r, c, rel, stage);
    switch (r->scope) {
    case AUTHZ_MEMBER:
        return rel >= AUTHZ_ACTIVE_MEMBER ? STATUS_OK : STATUS_NOT_FOUND;
    case AUTHZ_MEMBER_OR_ADMIN:
        return rel >= AUTHZ_ACTIVE_MEMBER || c->role == REC_ROLE_ADMIN ? STATUS_OK
                                                                       : STATUS_NOT_FOUND;
    case AUTHZ_CHANNEL_PATIENT:
        return rel == AUTHZ_OWNER ? STATUS_OK : STATUS_NOT_FOUND;
    case AUTHZ_OWN_ACCOUNT:
        return rel == AUTHZ_OWNER ? STATUS_OK : STATUS_FORBIDDEN;
    default:
        return STATUS_OK;
    }
}
