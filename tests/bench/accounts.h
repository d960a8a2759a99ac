/*
 * tests/bench/accounts.h: the accounts both modes of carechat-bench make
 * through libcarechat: one password and birth date for all, and the
 * administrators that invite them (the server lets one account invite 30 an
 * hour, so a new administrator every BENCH_INVITES_PER_ADMIN invitations).
 */
#ifndef TESTS_BENCH_ACCOUNTS_H
#define TESTS_BENCH_ACCOUNTS_H

#include <stddef.h>

#include "base/id.h"
#include "client/carechat.h"

#define BENCH_PASSWORD "bench-passphrase-0123"
#define BENCH_BIRTHDATE "1980-01-01"
#define BENCH_INVITES_PER_ADMIN 25

/* A libcarechat handle on the profile `dir` (created if missing) for the
 * server at `url`; NULL (said on stderr) when it cannot be opened. */
struct carechat *bench_open(const char *url, const char *dir);

/* The administrator that invites the k-th account (k from 0): every
 * BENCH_INVITES_PER_ADMIN accounts, closes *admin and makes a new one, invited
 * by `root` as bench-admin<N>-<run>@clinic.example with its profile in
 * TMP/p-admin<N>. Returns 0, or a libcarechat status (said on stderr). */
int bench_inviter(struct carechat *root, const char *url, const char *tmp, const struct id *run,
                  size_t k, struct carechat **admin);

#endif
