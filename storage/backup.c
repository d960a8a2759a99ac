/*
 * storage/backup.c: backups through a RocksDB secondary instance and a
 * checkpoint, and restores by copying (storage/backup.h).
 */
#include "storage/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/store_internal.h"

#define MOD "backup"

static char *join(const char *a, const char *b) {
    struct buf p;
    buf_init(&p);
    buf_printf(&p, "%s/%s", a, b);
    return (char *)buf_steal(&p, NULL);
}

static int rdb_failed(const char *what, char *err) {
    log_error(MOD, "%s: %s", what, err);
    rocksdb_free(err);
    return STATUS_IO;
}

/* Removes the files of `dir` (flat, as a checkpoint or a secondary's
 * directory is) and the directory. */
static void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = join(dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int store_backup(const char *data_dir, const char *out_dir) {
    struct stat st;
    if (stat(out_dir, &st) == 0) {
        log_error(MOD, "%s exists: a backup goes into a new directory", out_dir);
        return STATUS_CONFLICT;
    }
    char *db = join(data_dir, "db"), *current = join(db, "CURRENT");
    int rc = stat(current, &st) == 0 ? STATUS_OK : STATUS_NOT_FOUND;
    free(current);
    if (rc != 0) {
        log_error(MOD, "%s holds no database", data_dir);
        free(db);
        return rc;
    }
    char *secondary = NULL, *checkpoint = NULL;
    rocksdb_options_t *opts = rocksdb_options_create();
    rocksdb_t *sdb = NULL;
    rocksdb_column_family_handle_t *cf[CF_COUNT + 1] = {0};
    rocksdb_checkpoint_t *cp = NULL;
    char *err = NULL;
    if (mkdir(out_dir, 0700) != 0) {
        log_error(MOD, "cannot create %s: %s", out_dir, strerror(errno));
        rc = STATUS_IO;
        goto out;
    }
    /* The secondary's own files (its info LOG) live beside the checkpoint and
     * go at the end. */
    secondary = join(out_dir, "secondary");
    checkpoint = join(out_dir, "db");
    rocksdb_options_set_max_open_files(opts, -1); /* required of a secondary */
    rocksdb_options_set_info_log_level(opts, STORE_RDB_FATAL_LEVEL);
    const char *names[CF_COUNT + 1];
    const rocksdb_options_t *cf_opts[CF_COUNT + 1];
    names[0] = "default";
    cf_opts[0] = opts;
    for (int i = 0; i < CF_COUNT; i++) {
        names[i + 1] = store_cf_name((enum store_cf)i);
        cf_opts[i + 1] = opts;
    }
    sdb = rocksdb_open_as_secondary_column_families(opts, db, secondary, CF_COUNT + 1, names,
                                                    cf_opts, cf, &err);
    if (err) {
        sdb = NULL;
        rc = rdb_failed("cannot open the database as a secondary", err);
        goto out;
    }
    rocksdb_try_catch_up_with_primary(sdb, &err);
    if (!err)
        cp = rocksdb_checkpoint_object_create(sdb, &err);
    if (!err)
        rocksdb_checkpoint_create(cp, checkpoint, 0, &err);
    if (err)
        rc = rdb_failed("cannot make the checkpoint", err);
out:
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    for (int i = 0; i <= CF_COUNT; i++)
        if (cf[i])
            rocksdb_column_family_handle_destroy(cf[i]);
    if (sdb)
        rocksdb_close(sdb);
    rocksdb_options_destroy(opts);
    if (secondary)
        remove_flat_dir(secondary);
    if (rc != 0 && rc != STATUS_CONFLICT && checkpoint) {
        remove_flat_dir(checkpoint);
        rmdir(out_dir);
    }
    free(checkpoint);
    free(secondary);
    free(db);
    return rc;
}

/* Copies the regular file `from` to `to` (created, mode 0600) and syncs it. */
static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = in < 0 || out < 0 ? STATUS_IO : STATUS_OK;
    char block[65536];
    for (ssize_t n; rc == 0 && (n = read(in, block, sizeof block)) != 0;) {
        if (n < 0 || write(out, block, (size_t)n) != n)
            rc = STATUS_IO;
    }
    if (rc == 0 && fsync(out) != 0)
        rc = STATUS_IO;
    if (rc != 0)
        log_error(MOD, "cannot copy %s to %s: %s", from, to, strerror(errno));
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

int store_restore(const char *from_dir, const struct store_config *cfg) {
    const char *data_dir = cfg->data_dir;
    char *from = join(from_dir, "db"), *to = join(data_dir, "db"), *current = join(from, "CURRENT");
    struct stat st;
    int rc = STATUS_OK;
    if (stat(current, &st) != 0) {
        log_error(MOD, "%s holds no backup (no db/CURRENT)", from_dir);
        rc = STATUS_NOT_FOUND;
    } else if (stat(to, &st) == 0) {
        log_error(MOD, "%s exists: a restore goes into a data directory without a database", to);
        rc = STATUS_CONFLICT;
    } else if ((mkdir(data_dir, 0700) != 0 && errno != EEXIST) || mkdir(to, 0700) != 0) {
        log_error(MOD, "cannot create %s: %s", to, strerror(errno));
        rc = STATUS_IO;
    }
    bool made = rc == 0; /* DATA/db is this restore's: removed again on failure */
    DIR *d = rc == 0 ? opendir(from) : NULL;
    if (rc == 0 && !d)
        rc = STATUS_IO;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *a = join(from, e->d_name), *b = join(to, e->d_name);
        rc = copy_file(a, b);
        free(a);
        free(b);
    }
    if (d)
        closedir(d);
    if (rc == 0) { /* the directory entries too */
        int fd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
            rc = STATUS_IO;
        if (fd >= 0)
            close(fd);
    }
    if (rc == 0) { /* it opens with these keys, or it goes */
        struct store_config oc = *cfg;
        oc.mode = STORE_OPEN;
        struct store *s = NULL;
        rc = store_open(&oc, &s);
        store_close(s);
        if (rc != 0)
            log_error(MOD, "the restored database does not open with the key store: removed");
    }
    if (rc != 0 && made)
        remove_flat_dir(to);
    free(current);
    free(to);
    free(from);
    return rc;
}
