/*
 * server/rekey_tool.c: `carechatd rotate-master-key` (server/rekey_tool.h).
 * Main thread.
 */
#include "server/rekey_tool.h"

#include <stdio.h>

#include "base/hex.h"
#include "base/status.h"
#include "server/config.h"
#include "storage/keystore.h"
#include "storage/store.h"

static void print_id(const char *what, const uint8_t id[KEYSTORE_MASTER_ID_LEN]) {
    struct buf h;
    buf_init(&h);
    hex_encode(id, KEYSTORE_MASTER_ID_LEN, &h);
    buf_append_u8(&h, '\0');
    printf("%s master key id %s\n", what, (char *)h.data);
    buf_cleanup(&h);
}

static int run(const struct server_config *cfg) {
    if (cfg->new_master_key == NULL) {
        fprintf(stderr, "carechatd rotate-master-key: --new-master-key FILE is required\n");
        return CONFIG_EXIT_CONFIG;
    }
    struct store *store = NULL;
    int status = config_open_store(cfg, "rotate-master-key", &store);
    if (status != CONFIG_EXIT_OK)
        return status;
    struct keystore *ks = store_keystore(store);
    uint8_t before[KEYSTORE_MASTER_ID_LEN], after[KEYSTORE_MASTER_ID_LEN];
    keystore_master_key_id(ks, before);
    int rc = keystore_rotate_master(ks, cfg->new_master_key);
    keystore_master_key_id(ks, after);
    store_close(store);
    if (rc == STATUS_BAD_REQUEST) {
        fprintf(stderr,
                "carechatd rotate-master-key: %s is not a usable master key (32 bytes, a "
                "regular file of mode 0600)\n",
                cfg->new_master_key);
        return CONFIG_EXIT_CONFIG;
    }
    if (rc != 0) {
        fprintf(stderr,
                "carechatd rotate-master-key: the key store could not be rewritten (%s); start "
                "with --master-key %s --old-master-key <the old one> to finish\n",
                status_str(rc), cfg->new_master_key);
        return CONFIG_EXIT_FAILED;
    }
    print_id("old", before);
    print_id("new", after);
    printf("master key rotated: start carechatd with --master-key %s\n", cfg->new_master_key);
    return CONFIG_EXIT_OK;
}

int rekey_tool_main(int argc, char **argv) {
    return config_run(argc, argv, "rotate-master-key",
                      "usage: carechatd rotate-master-key --data DIR --new-master-key FILE "
                      "[--key-dir DIR] [--master-key FILE]\n",
                      run);
}
