/*
 * server/invite_tool.h: `carechatd invite`, the audited way to invite
 * someone on a server without a mail relay (a first deployment), run by the
 * system administrator on the server host while carechatd is stopped.
 *
 *   carechatd invite --data DIR --email EMAIL --role ROLE [options]
 *
 * It opens the store of an existing data directory (never creating one) and
 * the journal itself (no listener), and writes an InviteCreate entry
 * (protocol/entry.proto) whose actor is the first system administrator (the
 * one `carechatd bootstrap` created): apply checks it as for Invite and
 * records account.invite with that actor. The code is printed on stdout, once,
 * for the administrator to hand over; it is not mailed and not stored (only
 * its hash). ROLE is patient, provider, admin or sysadmin; the invitation
 * expires after --invite-ttl. Every other carechatd option is accepted.
 *
 * Main thread.
 */
#ifndef SERVER_INVITE_TOOL_H
#define SERVER_INVITE_TOOL_H

/* Runs the subcommand with the arguments after "invite" (argv[0] is "invite"
 * and is skipped). Returns the process exit status: 0 when the invitation was
 * written (the code on stdout), 1 when refused (no system administrator yet,
 * an account with the email exists) or a step failed (message on stderr), 2
 * for bad arguments, 4 when the data directory holds no complete database. */
int invite_tool_main(int argc, char **argv);

#endif
