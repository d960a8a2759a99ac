/*
 * server/invites.h: ListInvites and RevokeInvite (server/invites.c), with the
 * contract of server/request.h; Invite itself is server/sessions.c's. Loop
 * thread.
 */
#ifndef SERVER_INVITES_H
#define SERVER_INVITES_H

#include "server/request.h"

/* ListInvites: a page of the pending invitations the caller may see (its
 * own; everyone's for ADMIN and SYSADMIN). */
int invites_list(struct req *r);
/* RevokeInvite: an InviteRevoke entry (apply decides whose it is). */
int invites_revoke(struct req *r);
int invites_revoke_done(struct op *op, const struct op_result *res);

#endif
