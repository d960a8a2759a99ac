/*
 * server/audit_tool.h: `carechatd audit-verify`, which checks the audit hash
 * chain of a stopped server's data directory offline.
 *
 *   carechatd audit-verify --data DIR [--key-dir DIR] [--master-key FILE]
 *
 * It opens the store (no journal, no listener; RocksDB's lock refuses a data
 * directory a running carechatd holds), walks the chain in bounded steps
 * (server/audit.h) and prints one line: "audit chain intact (N records)" or
 * "audit chain broken at index N (M records verified before it)". Every other
 * carechatd option is accepted and ignored.
 *
 * Main thread.
 */
#ifndef SERVER_AUDIT_TOOL_H
#define SERVER_AUDIT_TOOL_H

/* Runs the subcommand with the arguments after "audit-verify" (argv[0] is
 * skipped). Returns the process exit status: 0 when the chain is intact, 3
 * when it is broken, 1 when the store cannot be read, 2 for bad arguments or a
 * refused key file, 4 when there is no complete database (config_exit_status()). */
int audit_tool_main(int argc, char **argv);

#endif
