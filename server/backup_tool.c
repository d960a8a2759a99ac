/*
 * server/backup_tool.c: `carechatd backup` and `carechatd restore`
 * (server/backup_tool.h).
 */
#include "server/backup_tool.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/status.h"
#include "server/config.h"
#include "storage/backup.h"

/* Runs `run` with the directory given by `flag` taken out of the arguments
 * and the rest loaded as carechatd's configuration. */
static int with_dir(int argc, char **argv, const char *name, const char *flag, const char *usage,
                    int (*run)(const struct server_config *cfg, const char *dir)) {
    const char *dir = NULL;
    bool help = false;
    char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
    int n = 0;
    rest[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], flag) == 0 && i + 1 < argc)
            dir = argv[++i];
        else {
            help = help || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
            rest[n++] = argv[i];
        }
    }
    int status = CONFIG_EXIT_CONFIG;
    struct server_config cfg;
    char err[512];
    if (help) {
        fputs(usage, stdout);
        status = CONFIG_EXIT_OK;
    } else if (!dir) {
        fputs(usage, stderr);
    } else if (config_load(n, rest, &cfg, &help, err, sizeof err) != 0) {
        fprintf(stderr, "carechatd %s: %s\n", name, err);
    } else {
        log_set_level(cfg.log_level);
        status = run(&cfg, dir);
        config_cleanup(&cfg);
    }
    free(rest);
    return status;
}

static int backup(const struct server_config *cfg, const char *out) {
    int rc = store_backup(cfg->data_dir, out);
    if (rc != 0)
        return rc == STATUS_CONFLICT ? CONFIG_EXIT_CONFIG : config_exit_status(rc);
    printf("backed up %s to %s/db; the keys are not in it: back up the key directory apart\n",
           cfg->data_dir, out);
    return CONFIG_EXIT_OK;
}

static int restore(const struct server_config *cfg, const char *from) {
    struct store_config sc;
    config_store(cfg, STORE_OPEN, &sc);
    int rc = store_restore(from, &sc);
    if (rc == STATUS_CONFLICT)
        return CONFIG_EXIT_DATA;
    if (rc != 0)
        return config_exit_status(rc);
    printf("restored %s/db into %s; it opens with the key store\n", from, cfg->data_dir);
    return CONFIG_EXIT_OK;
}

int backup_tool_main(int argc, char **argv) {
    return with_dir(argc, argv, "backup", "--out",
                    "usage: carechatd backup --data DIR --out NEW-DIR [carechatd options]\n"
                    "A consistent backup of the database while carechatd runs; keys are not in "
                    "it (back up the key directory apart).\n",
                    backup);
}

int restore_tool_main(int argc, char **argv) {
    return with_dir(argc, argv, "restore", "--from",
                    "usage: carechatd restore --from BACKUP-DIR --data DIR [--key-dir DIR] "
                    "[--master-key FILE]\n"
                    "Restores a backup into a data directory without a database, and checks "
                    "that it opens with the key store.\n",
                    restore);
}
