/*
 * server/sessions.h: the session requests (server/sessions.c): handlers and
 * completions named by the request table (server/requests.c), with the
 * contract of server/request.h. Loop thread.
 */
#ifndef SERVER_SESSIONS_H
#define SERVER_SESSIONS_H

#include "server/request.h"

/* Login: email and password (verified on the password worker), an existing
 * or a new device; answered with a SessionResult. */
int sessions_login(struct req *r);
/* Register: an invitation code for the email; under 13 only an audit record
 * and FORBIDDEN; answered with a SessionResult. */
int sessions_register(struct req *r);
/* Authenticate: resumes a session by token; answered with a SessionResult
 * without token. */
int sessions_authenticate(struct req *r);
/* The completion of the three: the connection becomes AUTHENTICATED (other
 * connections of the device are replaced) and the SessionResult is sent. */
int sessions_established_done(struct op *op, const struct op_result *res);
/* Logout: ends the session durably, answers OK and closes the device's
 * connections. */
int sessions_logout(struct req *r);
int sessions_logout_done(struct op *op, const struct op_result *res);
/* ChangePassword: the current password verified (a failure counts as a
 * failed sign-in), the new one hashed, a PasswordChange entry; then the
 * account's other live sessions are revoked (PASSWORD_CHANGED). */
int sessions_change_password(struct req *r);
int sessions_change_password_done(struct op *op, const struct op_result *res);
/* RequestPasswordReset: rate limits, then a PasswordResetRequest entry
 * (apply mails a new code when the email has an active account); OK either
 * way. */
int sessions_request_reset(struct req *r);
int sessions_request_reset_done(struct op *op, const struct op_result *res);
/* CompletePasswordReset: the new password hashed, a PasswordReset entry
 * (apply checks the code); then every session of the account is revoked
 * (PASSWORD_CHANGED); a refused code counts as a failed sign-in. */
int sessions_complete_reset(struct req *r);
int sessions_complete_reset_done(struct op *op, const struct op_result *res);
/* TotpDisable: the password verified (as ChangePassword's), then the second
 * factor (a wrong one counts as a failed sign-in), a TotpDisable entry; OK. */
int sessions_totp_disable(struct req *r);
int sessions_totp_disable_done(struct op *op, const struct op_result *res);
/* Invite: an invitation for an email and role the caller's role may invite;
 * answered with the code. */
int sessions_invite(struct req *r);
int sessions_invite_done(struct op *op, const struct op_result *res);

#endif
