/*
 * server/invite_tool.c: `carechatd invite` (see invite_tool.h). Main thread;
 * the journal's writer thread applies the entry and this thread polls for
 * its completion with a deadline.
 */
#include "server/invite_tool.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/config.h"
#include "server/records.h"
#include "server/rules.h"
#include "storage/journal.h"
#include "storage/store.h"

#define DEADLINE_MS 30000
#define CODE_BYTES 20 /* as Invite (server/sessions.c): 160 bits, 40 hex digits */

static uint32_t role_of(const char *s) {
    static const char *const names[] = {"", "patient", "provider", "admin", "sysadmin"};
    for (uint32_t r = REC_ROLE_PATIENT; r <= REC_ROLE_SYSADMIN; r++)
        if (strcmp(s, names[r]) == 0)
            return r;
    return 0;
}

static int run(const struct server_config *cfg, const char *email_arg, uint32_t role) {
    char email[RULES_EMAIL_MAX + 1];
    if (sodium_init() < 0) {
        fprintf(stderr, "carechatd invite: libsodium failed to initialise\n");
        return 1;
    }
    if (rules_normalize_email(email_arg, email) != 0) {
        fprintf(stderr, "carechatd invite: --email: not an email address\n");
        return 2;
    }
    int status = 1;
    struct store *store = NULL;
    struct journal *journal = NULL;
    struct buf entry, v;
    buf_init(&entry);
    buf_init(&v);
    char code[2 * CODE_BYTES + 1];
    uint8_t raw[CODE_BYTES], code_hash[REC_HASH_LEN], index[REC_HASH_LEN];
    const int open_status = config_open_store(cfg, "invite", &store);
    if (open_status != CONFIG_EXIT_OK) {
        status = open_status;
        goto out;
    }
    struct id sysadmin;
    int rc = store_get(store, CF_META, REC_META_SYSADMIN, strlen(REC_META_SYSADMIN), &v);
    if (rc != 0 || id_from_bytes(v.data, v.len, &sysadmin) != 0) {
        fprintf(stderr, "carechatd invite: refused: no system administrator yet (`carechatd "
                        "bootstrap` first)\n");
        goto out;
    }
    struct journal_config jc = {.store = store, .apply = apply_entry};
    if (journal_open(&jc, &journal) != 0) {
        fprintf(stderr, "carechatd invite: cannot open the journal (is carechatd running?)\n");
        goto out;
    }
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(code, sizeof code, raw, sizeof raw);
    rules_sha256(code, strlen(code), code_hash);
    store_blind_index(store, email, strlen(email), index);
    int64_t now = clock_now();
    Carechat__Entry__V1__InviteCreate in;
    carechat__entry__v1__invite_create__init(&in);
    in.code_hash = (ProtobufCBinaryData){REC_HASH_LEN, code_hash};
    in.email = email;
    in.email_index = (ProtobufCBinaryData){REC_HASH_LEN, index};
    in.role = role;
    in.expires_at = now + (int64_t)cfg->invite_ttl_s * 1000;
    Carechat__Entry__V1__Entry e;
    carechat__entry__v1__entry__init(&e);
    e.version = PROTO_ENTRY_VERSION;
    e.time = now;
    e.actor_account_id = (ProtobufCBinaryData){ID_LEN, sysadmin.b};
    e.source_address = "carechatd invite";
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INVITE_CREATE;
    e.invite_create = &in;
    rc = proto_entry_encode(&e, &entry);
    if (rc == 0)
        rc = journal_append_wait(journal, entry.data, entry.len, DEADLINE_MS);
    if (rc == STATUS_CONFLICT) {
        fprintf(stderr, "carechatd invite: refused: an account with this email exists\n");
    } else if (rc != 0) {
        fprintf(stderr, "carechatd invite: failed: %s\n", status_str(rc));
    } else {
        printf("%s\n", code);
        status = 0;
    }
out:
    journal_close(journal);
    store_close(store);
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(code, sizeof code);
    buf_wipe(&entry);
    buf_cleanup(&entry);
    buf_cleanup(&v);
    return status;
}

int invite_tool_main(int argc, char **argv) {
    const char *email = NULL, *role_name = NULL;
    char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
    int n = 0;
    rest[n++] = "carechatd invite";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--email") == 0 && i + 1 < argc)
            email = argv[++i];
        else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
            role_name = argv[++i];
        else
            rest[n++] = argv[i];
    }
    uint32_t role = role_name ? role_of(role_name) : 0;
    if (!email || !role) {
        fprintf(stderr, "usage: carechatd invite --data DIR --email EMAIL --role "
                        "patient|provider|admin|sysadmin [carechatd options]\n");
        free(rest);
        return 2;
    }
    struct server_config cfg;
    bool help;
    char err[512];
    int status;
    if (config_load(n, rest, &cfg, &help, err, sizeof err) != 0) {
        fprintf(stderr, "carechatd invite: %s\n", err);
        free(rest);
        return 2;
    }
    if (!help) {
        log_set_level(cfg.log_level);
        status = run(&cfg, email, role);
    } else {
        fputs(config_usage(), stdout);
        status = 0;
    }
    config_cleanup(&cfg);
    free(rest);
    return status;
}
