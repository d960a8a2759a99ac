/*
 * server/maintenance.h: the maintenance thread of carechatd. At start and
 * every --maintenance-interval it
 *
 *   1. moves the retention clock on: for every lifecycle record whose
 *      deadline has passed (rules_lifecycle_due()) it proposes a
 *      RetentionAdvance entry, one step at a time, so a restart after a long
 *      downtime catches up in order (REVIEW -> RESTRICTED -> PURGED);
 *   2. completes purges: the data key of every PURGED account is destroyed
 *      (keystore_destroy(): crypto-shredding); then the whole store is
 *      compacted, so the compaction filter drops the purged records from the
 *      files (store_compact()). A purge whose entry was written before a
 *      crash took the server down is finished by maintenance_start(), before
 *      the server serves anything;
 *   3. sweeps expired invitations and sessions (Sweep entries);
 *   4. counts breach notices not sent by their deadline (GetBreachStatus), and
 *      logs each such incident once per run (its id only).
 *
 * Apply decides every change by the entry's time, so the thread only
 * proposes; the entries are journalled and audited like any other. Reads of
 * the store happen on this thread (store reads are thread-safe); the entries'
 * completions arrive through journal_poll() on the loop thread, which wakes
 * this one.
 *
 * Lifetime: maintenance_start() once the journal is open; maintenance_stop()
 * before journal_close() (it waits for a compaction in progress to finish);
 * maintenance_free() after it.
 */
#ifndef SERVER_MAINTENANCE_H
#define SERVER_MAINTENANCE_H

#include <stdint.h>

#include "server/config.h"
#include "server/metrics.h"
#include "storage/journal.h"
#include "storage/store.h"

struct maintenance_config {
    const struct server_config *config; /* maintenance_interval_s */
    struct store *store;                /* borrowed */
    struct journal *journal;            /* borrowed */
};

struct maintenance;

/* Destroys the keys of PURGED accounts still there (and compacts), then
 * starts the thread (its first pass runs at once). Returns 0 and *out, or
 * STATUS_INTERNAL when the thread cannot start. */
int maintenance_start(const struct maintenance_config *cfg, struct maintenance **out);

/* Stops the thread and waits for it. Accepts NULL. */
void maintenance_stop(struct maintenance *m);

/* Frees what maintenance_stop() left (completions may still arrive until
 * journal_close()). Accepts NULL. */
void maintenance_free(struct maintenance *m);

/* The counters since start, for /metrics. Any thread. */
void maintenance_get_stats(struct maintenance *m, struct metrics_retention *out);

#endif
