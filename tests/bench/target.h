/*
 * tests/bench/target.h: the carechatd a carechat-bench run measures, and what
 * the bench reads of it from outside: its CPU time and memory (/proc) and its
 * journal's group-commit figures (GET /metrics).
 *
 * target_open() either starts a carechatd of its own on 127.0.0.1, port 0,
 * with a fresh data directory (`carechatd init`, then `carechatd bootstrap`
 * with a sysadmin) and the extra options the caller passes (raised limits),
 * optionally pinned to one CPU; or describes a running server given by URL,
 * with a sysadmin's email and password read from a setup file. target_close()
 * stops a server it started (SIGTERM, then SIGKILL after a deadline).
 *
 * Invariants: a started server is a child of this process that dies with it
 * (PR_SET_PDEATHSIG); its stdout and stderr go to DIR/carechatd.log. Every
 * wait is bounded by a deadline.
 *
 * Threads: main thread only (fork, waitpid). The read-only helpers
 * (target_cpu_s(), target_journal(), ...) may run on any thread.
 */
#ifndef TESTS_BENCH_TARGET_H
#define TESTS_BENCH_TARGET_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct target_config {
    /* Start our own: the carechatd binary (NULL: from the runfiles), the
     * directory for its data, log and password file, options added to its
     * command line (borrowed, `n_args` strings), and the CPU to pin it to
     * (-1: not pinned). */
    const char *carechatd;
    const char *dir;
    const char *const *args;
    size_t n_args;
    int cpu;
    /* Or use a running server at `url` (ws://...): `setup_file` holds a
     * sysadmin's email (line 1) and password (line 2); `metrics` its
     * --metrics-listen address, IPV4:PORT (NULL: no journal figures). */
    const char *url;
    const char *setup_file;
    const char *metrics;
};

/* What the bench needs to know of the server (valid while it is open). */
struct target_info {
    pid_t pid; /* 0: not started here */
    int port;  /* the WebSocket listener's; 0 when not started here */
    char url[128];
    char admin_email[256];
    char admin_password[256];
    char log_path[PATH_MAX]; /* "" when not started here */
};

struct target;

/* Starts carechatd as `cfg` says (or checks the setup file of a running one)
 * and stores the handle in *out (close with target_close()). Returns 0;
 * STATUS_NOT_FOUND when no carechatd binary was found; STATUS_BAD_REQUEST for a
 * malformed setup file; STATUS_IO when a step failed (its log is printed to
 * stderr). */
int target_open(const struct target_config *cfg, struct target **out);

/* Stops a server started here and frees. When `show_log`, its log is copied
 * to stderr first. Accepts NULL. */
void target_close(struct target *t, bool show_log);

/* The handle's description, owned by `t`. */
const struct target_info *target_info(const struct target *t);

/* CPU seconds (user + system) process `pid` has used, from /proc/PID/stat, or
 * -1 when it cannot be read. */
double target_cpu_s(pid_t pid);

/* VmRSS and VmHWM of process `pid` in KiB (from /proc/PID/status). Returns
 * false when they cannot be read. */
bool target_rss_kb(pid_t pid, long *rss_kb, long *hwm_kb);

/* The journal figures of GET /metrics, cumulative since the server started:
 * batch sizes and synced-write latencies. */
#define TARGET_BATCH_BUCKETS 8
#define TARGET_FSYNC_BUCKETS 10
struct target_journal {
    bool ok;
    double batch_sum, batch_count;
    double batch_bucket[TARGET_BATCH_BUCKETS]; /* cumulative, le 1 2 4 8 16 32 64 +Inf */
    double fsync_sum_s, fsync_count;
    double fsync_bucket[TARGET_FSYNC_BUCKETS]; /* cumulative, le target_fsync_le_s[i] */
};

/* The upper bounds (seconds) of the fsync histogram's buckets; the last is
 * +Inf (HUGE_VAL). */
extern const double target_fsync_le_s[TARGET_FSYNC_BUCKETS];
/* The batch histogram's bucket labels ("1" ... "+Inf"). */
extern const char *const target_batch_le[TARGET_BATCH_BUCKETS];

/* Reads the figures; `ok` is false when the metrics listener is unknown or did
 * not answer. */
struct target_journal target_journal(const struct target *t);

/* The `q` quantile (0..1) of the synced writes between `a` and `b` (a later
 * reading), in milliseconds, interpolated linearly within its histogram
 * bucket as Prometheus' histogram_quantile() does; HUGE_VAL when it falls in
 * the +Inf bucket, -1 when there were none. */
double target_fsync_quantile_ms(const struct target_journal *a, const struct target_journal *b,
                                double q);

#endif
