/*
 * storage/backup.h: consistent backups of a store's database while a server
 * runs on it, and their restore.
 *
 *   store_backup(DATA, OUT):  OUT/db is a RocksDB checkpoint of DATA/db taken
 *                             through a secondary instance (RocksDB's lock
 *                             stays with the running server): every batch
 *                             the server had made durable when the backup
 *                             caught up, none after.
 *   store_restore(FROM, cfg): copies FROM/db into cfg->data_dir/db (which must
 *                             not exist) and opens it with cfg's key store to
 *                             check that the keys are the backup's; a restore
 *                             that does not open is removed again.
 *
 * Keys are never part of a backup: the values are sealed under keys in the
 * key directory, which is backed up apart (README: keys and backups), so
 * that a purge (which destroys a key) also shreds the backups.
 *
 * Main thread of a tool; no other store handle of this process is needed.
 */
#ifndef STORAGE_BACKUP_H
#define STORAGE_BACKUP_H

#include "storage/store.h"

/* Returns 0; STATUS_CONFLICT when OUT exists; STATUS_NOT_FOUND when DATA has
 * no database; STATUS_IO (logged). */
int store_backup(const char *data_dir, const char *out_dir);

/* Returns 0; STATUS_CONFLICT when the database exists; STATUS_NOT_FOUND when
 * FROM holds no backup; store_open()'s status when it does not open with the
 * key store (a missing or other key directory); STATUS_IO (logged). Nothing
 * is left behind on failure. */
int store_restore(const char *from_dir, const struct store_config *cfg);

#endif
