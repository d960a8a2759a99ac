/*
 * server/init_tool.c: `carechatd init` (server/init_tool.h). Main thread; the
 * journal's writer thread applies ServerInit while this thread waits for it.
 */
#include "server/init_tool.h"

#include <stdio.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "base/status.h"
#include "server/apply.h"
#include "server/config.h"
#include "storage/journal.h"
#include "storage/store.h"

/* How long ServerInit may take to become durable. */
#define DEADLINE_MS 30000

static int run(const struct server_config *cfg) {
    struct store_config sc;
    config_store(cfg, STORE_CREATE, &sc);
    struct store *store = NULL;
    struct journal *journal = NULL;
    struct buf entry;
    buf_init(&entry);
    struct id id = id_new();
    int rc = store_open(&sc, &store);
    if (rc == 0)
        rc = journal_open(&(struct journal_config){.store = store, .apply = apply_entry}, &journal);
    if (rc == 0)
        rc = apply_encode_server_init(&id, clock_now(), &entry);
    if (rc == 0)
        rc = journal_append_wait(journal, entry.data, entry.len, DEADLINE_MS);
    journal_close(journal);
    store_close(store);
    buf_cleanup(&entry);
    if (rc == 0) {
        char hex[ID_HEX_LEN + 1];
        id_to_hex(&id, hex);
        printf("initialised %s (server %s)\n", cfg->data_dir, hex);
    } else if (rc == STATUS_CONFLICT) {
        fprintf(stderr,
                "carechatd init: refused: %s holds a database or its keys already (see "
                "above); nothing was changed\n",
                cfg->data_dir);
    } else {
        fprintf(stderr, "carechatd init: failed: %s (see above)\n", status_str(rc));
    }
    return config_exit_status(rc);
}

int init_tool_main(int argc, char **argv) {
    return config_run(argc, argv, "init",
                      "usage: carechatd init --data DIR [--key-dir DIR] [--master-key FILE] "
                      "[carechatd options]\n"
                      "Creates a new data directory; refuses when DIR/db or the key directory's "
                      "keys exist.\n",
                      run);
}
