/*
 * server/backup_tool.h: `carechatd backup` and `carechatd restore`.
 *
 *   carechatd backup --data DIR --out OUT [carechatd options]
 *       a consistent copy of DIR's database in OUT/db, taken while carechatd
 *       runs on DIR (or not): every acknowledged message up to the moment
 *       the backup caught up with the server (storage/backup.h)
 *   carechatd restore --from OUT --data DIR [--key-dir K] [--master-key F]
 *       OUT/db becomes DIR/db (DIR must hold no database), checked to open
 *       with the key store
 *
 * Neither copies keys: they are backed up apart from the data (README: keys
 * and backups), so that a purge, which destroys a patient's key, shreds the
 * patient's data in the backups too. Both say so on stdout.
 *
 * Main thread.
 */
#ifndef SERVER_BACKUP_TOOL_H
#define SERVER_BACKUP_TOOL_H

/* Run the subcommands with the arguments after their name (argv[0] is
 * skipped). Exit status: 0 done; 1 failed (logged); 2 bad arguments; 4 no
 * database to back up or restore, or (restore) a database already there. */
int backup_tool_main(int argc, char **argv);
int restore_tool_main(int argc, char **argv);

#endif
