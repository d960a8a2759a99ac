/*
 * server/bootstrap.c: `carechatd bootstrap` (see bootstrap.h). Main thread;
 * the journal's writer thread applies the entry and this thread polls for
 * its completion with a deadline.
 */
#include "server/bootstrap.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/id.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/config.h"
#include "server/records.h"
#include "server/rules.h"
#include "storage/journal.h"
#include "storage/store.h"

#define DEADLINE_MS 30000
#define DISPLAY_NAME "System administrator"

/* Reads the first line of `path` into sodium memory. Returns NULL on error. */
static char *read_password(const char *path, size_t *len) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "carechatd bootstrap: --password-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *p = sodium_malloc(RULES_PASSWORD_MAX + 2);
    if (!p) {
        fclose(f);
        return NULL;
    }
    size_t n = fread(p, 1, RULES_PASSWORD_MAX + 1, f);
    fclose(f);
    p[n] = '\0';
    char *nl = strpbrk(p, "\r\n");
    if (nl)
        *nl = '\0';
    *len = strlen(p);
    return p;
}

static int run(const struct server_config *cfg, const char *email_arg, const char *password_file) {
    char email[RULES_EMAIL_MAX + 1];
    if (sodium_init() < 0) {
        fprintf(stderr, "carechatd bootstrap: libsodium failed to initialise\n");
        return 1;
    }
    if (rules_normalize_email(email_arg, email) != 0) {
        fprintf(stderr, "carechatd bootstrap: --email: not an email address\n");
        return 2;
    }
    size_t plen = 0;
    char *password = read_password(password_file, &plen);
    if (!password)
        return 1;
    int status = 1;
    struct store *store = NULL;
    struct journal *journal = NULL;
    struct buf entry;
    buf_init(&entry);
    char hash[crypto_pwhash_STRBYTES];
    if (plen < cfg->password_min || plen > RULES_PASSWORD_MAX) {
        fprintf(stderr, "carechatd bootstrap: the password must be %u..%d bytes\n",
                cfg->password_min, RULES_PASSWORD_MAX);
        status = 2;
        goto out;
    }
    const int open_status = config_open_store(cfg, "bootstrap", &store);
    if (open_status != CONFIG_EXIT_OK) {
        status = open_status;
        goto out;
    }
    struct buf v;
    buf_init(&v);
    int rc = store_get(store, CF_META, REC_META_SYSADMIN, strlen(REC_META_SYSADMIN), &v);
    buf_cleanup(&v);
    if (rc == 0) {
        fprintf(stderr, "carechatd bootstrap: refused: a system administrator already exists\n");
        goto out;
    }
    if (crypto_pwhash_str(hash, password, plen, cfg->pwhash_ops, (size_t)cfg->pwhash_mem) != 0) {
        fprintf(stderr, "carechatd bootstrap: cannot hash the password (out of memory)\n");
        goto out;
    }
    struct journal_config jc = {.store = store, .apply = apply_entry};
    if (journal_open(&jc, &journal) != 0) {
        fprintf(stderr, "carechatd bootstrap: cannot open the journal\n");
        goto out;
    }
    struct id id = id_new();
    uint8_t index[REC_HASH_LEN];
    store_blind_index(store, email, strlen(email), index);
    Carechat__Entry__V1__Bootstrap b;
    carechat__entry__v1__bootstrap__init(&b);
    b.account_id = (ProtobufCBinaryData){ID_LEN, id.b};
    b.email = email;
    b.email_index = (ProtobufCBinaryData){REC_HASH_LEN, index};
    b.password_hash = hash;
    b.display_name = DISPLAY_NAME;
    Carechat__Entry__V1__Entry e;
    carechat__entry__v1__entry__init(&e);
    e.version = PROTO_ENTRY_VERSION;
    e.time = clock_now();
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_BOOTSTRAP;
    e.bootstrap = &b;
    rc = proto_entry_encode(&e, &entry);
    if (rc == 0)
        rc = journal_append_wait(journal, entry.data, entry.len, DEADLINE_MS);
    if (rc == STATUS_CONFLICT) {
        fprintf(stderr, "carechatd bootstrap: refused: a system administrator already exists or "
                        "the email is taken\n");
    } else if (rc != 0) {
        fprintf(stderr, "carechatd bootstrap: failed: %s\n", status_str(rc));
    } else {
        char hex[ID_HEX_LEN + 1];
        id_to_hex(&id, hex);
        printf("created system administrator %s\n", hex);
        status = 0;
    }
out:
    journal_close(journal);
    store_close(store);
    sodium_memzero(hash, sizeof hash);
    buf_wipe(&entry);
    buf_cleanup(&entry);
    sodium_free(password);
    return status;
}

int bootstrap_main(int argc, char **argv) {
    const char *email = NULL, *password_file = NULL;
    char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
    int n = 0;
    rest[n++] = "carechatd bootstrap";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--email") == 0 && i + 1 < argc)
            email = argv[++i];
        else if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc)
            password_file = argv[++i];
        else
            rest[n++] = argv[i];
    }
    int status = 2;
    bool asked = false;
    for (int i = 1; i < n; i++)
        asked = asked || strcmp(rest[i], "--help") == 0 || strcmp(rest[i], "-h") == 0;
    if (!asked && (!email || !password_file)) {
        fprintf(stderr, "usage: carechatd bootstrap --data DIR --email EMAIL --password-file FILE "
                        "[carechatd options]\n");
        free(rest);
        return 2;
    }
    struct server_config cfg;
    bool help;
    char err[512];
    if (config_load(n, rest, &cfg, &help, err, sizeof err) != 0) {
        fprintf(stderr, "carechatd bootstrap: %s\n", err);
        free(rest);
        return 2;
    }
    if (!help) {
        log_set_level(cfg.log_level);
        status = run(&cfg, email, password_file);
    } else {
        fputs(config_usage(), stdout);
        status = 0;
    }
    config_cleanup(&cfg);
    free(rest);
    return status;
}
