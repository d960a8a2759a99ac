/*
 * server/authz.h: who may do what. The request table (server/requests.c)
 * gives every request a rule: the roles that may send it, what the caller
 * must be to the conversation the request names, the audit action that
 * records it, and whether it reads patient or account data; one decision
 * applies it. handlers.c runs the decision for every request before the
 * request's handler, and answers and audits every refusal the same way.
 * PROTOCOL.md prints the table.
 *
 * The decision, in this order:
 *   1. Requests of scope AUTHZ_OPEN (Login, Register, Authenticate) need no
 *      session. Any other request needs an authenticated session:
 *      UNAUTHENTICATED otherwise. Sessions carry the account state: Login and
 *      Authenticate refuse a deactivated account, deactivating an account
 *      revokes its live sessions at once, and apply refuses every entry of an
 *      actor deactivated after it was proposed (server/apply.h).
 *   2. The caller's role must be in the row's roles: FORBIDDEN otherwise. This
 *      is decided before the object is looked at, so it reveals nothing about
 *      the object.
 *   3. The caller's relation to the conversation named by the request's
 *      `conversation_id` must satisfy the row's scope: NOT_FOUND otherwise,
 *      exactly like an unknown conversation, so ids cannot be probed.
 *   4. Once the conversation's patient is deactivated (the retention lifecycle,
 *      server/retention.h), the conversation is kept for review, read-only:
 *      in REVIEW the ADMIN and SYSADMIN roles, and providers that are ACTIVE
 *      members or of the patient's care team, may read it (whatever the row's
 *      scope), in RESTRICTED only the SYSADMIN role;
 *      NOT_FOUND for anyone else, as in 3. A change is FORBIDDEN to those who
 *      may read. A purged patient's conversations are unknown to everyone.
 *      A file a SYSADMIN restored (RestoreFile) is in REVIEW again until its
 *      visible_until, whatever its patient's stage.
 *      A request naming a patient in `reviewed_account_id` (a review) is
 *      decided the same way by that patient's stage; an active patient is
 *      not under review: NOT_FOUND.
 *   5. A row of scope AUTHZ_OWN_ACCOUNT (the key backup) serves only the
 *      caller's own account: a request naming another one in `account_id` is
 *      FORBIDDEN whatever the role, and whether or not that account exists,
 *      so the answer tells nothing about it (`rel` is AUTHZ_OWNER for the
 *      caller's own account).
 *
 * Rows marked `read` are the accesses to patient or account data: each
 * allowed one is audited before it is answered (struct authz_rule).
 *
 * What depends on the request's target rather than on the caller (whom a role
 * may invite, contact, see or deactivate; whether the caller sent the message
 * it recalls) is decided by the handlers and re-checked by apply with
 * server/rules.h; those refusals are answered and audited the same way.
 *
 * Pure: no state, any thread.
 */
#ifndef SERVER_AUTHZ_H
#define SERVER_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include "server/records.h"

/* Role bits of a row (REC_ROLE_* as bit numbers). */
#define AUTHZ_PATIENT (1u << REC_ROLE_PATIENT)
#define AUTHZ_PROVIDER (1u << REC_ROLE_PROVIDER)
#define AUTHZ_ADMIN (1u << REC_ROLE_ADMIN)
#define AUTHZ_SYSADMIN (1u << REC_ROLE_SYSADMIN)
#define AUTHZ_STAFF (AUTHZ_PROVIDER | AUTHZ_ADMIN | AUTHZ_SYSADMIN)
#define AUTHZ_ANYONE (AUTHZ_PATIENT | AUTHZ_STAFF)

/* What the caller must be. */
enum authz_scope {
    AUTHZ_OPEN = 1,        /* nothing: allowed before authentication */
    AUTHZ_SESSION,         /* an authenticated session */
    AUTHZ_MEMBER,          /* ... that is an ACTIVE member of the conversation */
    AUTHZ_MEMBER_OR_ADMIN, /* ... an ACTIVE member, or of the ADMIN role */
    AUTHZ_CHANNEL_PATIENT, /* ... the care-team channel's patient, ACTIVE in it */
    AUTHZ_OWN_ACCOUNT,     /* ... whose own account the request names in `account_id`
                              (or that names none): FORBIDDEN otherwise */
};

/* The caller's relation to the conversation a request names. */
enum authz_relation {
    AUTHZ_STRANGER = 0,  /* unknown conversation, or not an ACTIVE member of it */
    AUTHZ_CARE_TEAM,     /* no member, but of its patient's care team (known in
                            REVIEW only: the provider invited the patient or
                            shares an active care-team channel with them) */
    AUTHZ_ACTIVE_MEMBER, /* an ACTIVE member */
    AUTHZ_OWNER,         /* an ACTIVE member and the channel's patient; for an
                            AUTHZ_OWN_ACCOUNT row: the account the request names */
};

/* The retention stage of the conversation's patient. */
enum authz_stage {
    AUTHZ_LIVE = 0,   /* no patient, or an active one */
    AUTHZ_REVIEW,     /* deactivated: review by the care team and admins */
    AUTHZ_RESTRICTED, /* then system administrators only */
    AUTHZ_PURGED,     /* gone: unknown to everyone */
};

struct authz_rule {
    uint32_t roles; /* AUTHZ_* role bits; unused for AUTHZ_OPEN */
    enum authz_scope scope;
    uint32_t action; /* the REC_AUDIT_* action that records the request */
    /* A read of a patient's or an account's data: every allowed request
     * appends an access record (action, the conversation or patient it names,
     * the conversation's patient) and is answered only once that record is
     * durable (UNAVAILABLE when it cannot be written: fail closed). */
    bool read;
};

/* The caller as the connection knows it. */
struct authz_caller {
    bool authenticated; /* the connection has a live session */
    uint32_t role;      /* REC_ROLE_* */
};

/* Whether the row needs the caller's relation to the request's conversation
 * (its scope is AUTHZ_MEMBER, AUTHZ_MEMBER_OR_ADMIN or AUTHZ_CHANNEL_PATIENT). */
bool authz_needs_relation(const struct authz_rule *r);

/* The decision at the top of this file. `rel` and `stage` are only read when
 * authz_needs_relation(r) or the row is a read naming a conversation (the
 * conversation was looked at). Returns 0 (allowed), STATUS_UNAUTHENTICATED,
 * STATUS_FORBIDDEN or STATUS_NOT_FOUND. */
int authz_decide(const struct authz_rule *r, const struct authz_caller *c, enum authz_relation rel,
                 enum authz_stage stage);

#endif
