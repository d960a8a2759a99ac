/*
 * server/audit_tool.c: `carechatd audit-verify` (server/audit_tool.h).
 * Main thread.
 */
#include "server/audit_tool.h"

#include <inttypes.h>
#include <stdio.h>

#include "base/log.h"
#include "base/status.h"
#include "server/audit.h"
#include "server/config.h"
#include "storage/store.h"

/* Records read per verification step. */
#define STEP 4096

static int run(const struct server_config *cfg) {
    struct store *store = NULL;
    int status = config_open_store(cfg, "audit-verify", &store);
    if (status != CONFIG_EXIT_OK)
        return status;
    struct audit_verify v;
    int rc = audit_verify_begin(store, &v);
    while (rc == 0 && !v.done)
        rc = audit_verify_step(store, &v, STEP);
    store_close(store);
    if (rc != 0) {
        fprintf(stderr, "carechatd audit-verify: cannot read the audit log (%s)\n", status_str(rc));
        return 1;
    }
    if (v.ok) {
        printf("audit chain intact (%" PRIu64 " records)\n", v.checked);
        return 0;
    }
    printf("audit chain broken at index %" PRIu64 " (%" PRIu64 " records verified before it)\n",
           v.first_bad, v.checked);
    return 3;
}

int audit_tool_main(int argc, char **argv) {
    return config_run(argc, argv, "audit-verify",
                      "usage: carechatd audit-verify --data DIR [--key-dir DIR] [--master-key "
                      "FILE]\n",
                      run);
}
