/*
 * server/bootstrap.h: `carechatd bootstrap`, which creates the first system
 * administrator.
 *
 *   carechatd bootstrap --data DIR --email EMAIL --password-file FILE [options]
 *
 * It opens the store of a data directory `carechatd init` created (never
 * creating one) and the journal itself (no listener), refuses when a
 * system administrator exists already, hashes the password (first line of
 * FILE, at least --password-min-length bytes) with Argon2id and writes a
 * Bootstrap entry (protocol/entry.proto) through the journal. Every other
 * carechatd option is accepted (--key-dir, --master-key, --pwhash-ops, ...).
 *
 * Main thread.
 */
#ifndef SERVER_BOOTSTRAP_H
#define SERVER_BOOTSTRAP_H

/* Runs the subcommand with the arguments after "bootstrap" (argv[0] is
 * "bootstrap" and is skipped). Returns the process exit status: 0 when the
 * administrator was created, 1 when refused (one exists, or the email is
 * taken) or a step failed (message on stderr), 2 for bad arguments or a refused
 * key file, 4 when the data directory holds no complete database
 * (config_exit_status()). */
int bootstrap_main(int argc, char **argv);

#endif
