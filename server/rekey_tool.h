/*
 * server/rekey_tool.h: `carechatd rotate-master-key`, the operator's master
 * key rotation on a stopped server (DESIGN.md "data keys are wrapped by the
 * server master key and carry a key id, so the master key can rotate").
 *
 *   carechatd rotate-master-key --data DIR --new-master-key FILE
 *                               [--key-dir DIR] [--master-key FILE]
 *
 * It opens the store with the current master key (RocksDB's lock refuses a
 * data directory a running carechatd holds), re-wraps every data key and the
 * blind-index secret under FILE (32 bytes, mode 0600, like any configured
 * master key; storage/keystore.h keystore_rotate_master()), and prints the old
 * and new master key ids. Records are not rewritten: their data keys stay.
 * The operator then starts carechatd with --master-key FILE. If it stops
 * midway, starting with --master-key FILE and --old-master-key OLD finishes
 * it. Every other carechatd option is accepted and ignored.
 *
 * Main thread.
 */
#ifndef SERVER_REKEY_TOOL_H
#define SERVER_REKEY_TOOL_H

/* Runs the subcommand with the arguments after "rotate-master-key". Returns the
 * process exit status: 0 when rotated, 2 for bad arguments or a refused key
 * file, 1 when the key store cannot be rewritten, 4 when there is no complete
 * database (config_exit_status()). */
int rekey_tool_main(int argc, char **argv);

#endif
