/*
 * server/init_tool.h: `carechatd init`, the one way a database comes into
 * being.
 *
 *   carechatd init --data DIR [--key-dir DIR] [--master-key FILE] [options]
 *
 * It creates DIR when missing, the database in DIR/db and the key store
 * (KEY-DIR, with a master key when none is configured; storage/store.h
 * STORE_CREATE), then writes the server's identity (a ServerInit entry: a
 * random server id and the time) through the journal. It refuses, changing
 * nothing, when DIR/db exists or the key directory holds keys already: a
 * database that was lost or is not mounted is never silently replaced by an
 * empty one. carechatd itself, bootstrap and audit-verify only open what init
 * created. Every carechatd option is accepted, so one command line (or
 * --config file) serves both.
 *
 * Main thread; the journal's writer thread applies the entry.
 */
#ifndef SERVER_INIT_TOOL_H
#define SERVER_INIT_TOOL_H

/* Runs the subcommand with the arguments after "init" (argv[0] is skipped).
 * Prints "initialised DIR (server ID)" and returns 0; otherwise returns
 * config_exit_status() of the failure (message on stderr, details logged):
 * 2 for a refused configuration, 4 when DIR/db or keys exist already, 1 when a
 * step failed. */
int init_tool_main(int argc, char **argv);

#endif
