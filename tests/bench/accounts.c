/*
 * tests/bench/accounts.c: carechat-bench's accounts (accounts.h).
 */
#include "tests/bench/accounts.h"

#include <limits.h>
#include <stdio.h>

#include "base/status.h"

struct carechat *bench_open(const char *url, const char *dir) {
    struct carechat_config cfg = {.server_url = url, .profile_dir = dir, .device_label = "bench"};
    struct carechat *c = NULL;
    int rc = carechat_open(&cfg, &c);
    if (rc != 0) {
        fprintf(stderr, "carechat-bench: cannot open a profile in %s: %s\n", dir, status_str(rc));
        return NULL;
    }
    return c;
}

int bench_inviter(struct carechat *root, const char *url, const char *tmp, const struct id *run,
                  size_t k, struct carechat **admin) {
    if (k % BENCH_INVITES_PER_ADMIN != 0)
        return 0;
    carechat_close(*admin);
    *admin = NULL;
    size_t n = k / BENCH_INVITES_PER_ADMIN;
    char email[64], code[CARECHAT_MAX_CODE + 1], dir[PATH_MAX];
    snprintf(email, sizeof email, "bench-admin%zu-%02x%02x%02x@clinic.example", n, run->b[0],
             run->b[1], run->b[2]);
    snprintf(dir, sizeof dir, "%.*s/p-admin%zu", PATH_MAX - 32, tmp, n);
    int rc = carechat_invite(root, email, CARECHAT_ROLE_ADMIN, code, NULL);
    if (rc != 0) {
        fprintf(stderr, "carechat-bench: invite admin: %s\n", carechat_error(root));
        return rc;
    }
    *admin = bench_open(url, dir);
    rc = *admin ? carechat_register(*admin, code, email, BENCH_PASSWORD, BENCH_BIRTHDATE,
                                    "Bench Admin")
                : STATUS_IO;
    if (rc != 0)
        fprintf(stderr, "carechat-bench: register admin: %s\n",
                *admin ? carechat_error(*admin) : "");
    return rc;
}
