/*
 * tests/harness.h: starts and stops the real carechatd for integration tests.
 *
 *   struct harness *h;
 *   const char *args[] = {"--auth-timeout", "2", NULL};
 *   assert_int_equal(harness_start(args, &h), 0);   // fresh data dir, port 0
 *   ... talk to 127.0.0.1:h->port ...
 *   int status;
 *   assert_int_equal(harness_stop(h, &status), 0);  // SIGTERM, then the exit status
 *   assert_int_equal(harness_restart(h), 0);        // same data dir and flags
 *   harness_free(h);                                // SIGKILLs a server still running
 *
 * The binary comes from the runfiles (data dependency //server:carechatd), or from
 * $CARECHATD when set. Each start gets a new log file (its stderr and stdout) in
 * $TEST_UNDECLARED_OUTPUTS_DIR when Bazel provides one (so the logs are kept with
 * the test's outputs), else beside the data directory. The ports are learnt from
 * the "listening on HOST:PORT" and "metrics listening on HOST:PORT" lines. The server always
 * listens on 127.0.0.1 (or the loopback address given with --listen in `args`) and dies with the
 * test process (PR_SET_PDEATHSIG). The servers it starts (and their init) have
 * CARECHAT_TEST_CLOCK=1 in their environment, so --clock-offset is taken;
 * harness_run() leaves it out. Every wait here has a deadline.
 *
 * Single-threaded test code; not thread-safe.
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"

#define HARNESS_MAX_ARGS 32
/* How long a start may take to print its "listening on" line (ASan builds are
 * slow) and how long a SIGTERM may take before SIGKILL. */
#define HARNESS_START_DEADLINE_MS 20000
/* How long `carechatd init` may take. */
#define HARNESS_INIT_DEADLINE_MS 60000
#define HARNESS_STOP_DEADLINE_MS 10000

struct harness {
    pid_t pid;        /* 0 when not running */
    int port;         /* the WebSocket listener's, learnt from the log; 0 when not running */
    int metrics_port; /* the metrics listener's (GET /metrics, /healthz), likewise */
    char host[64];
    char metrics_host[64];
    char data_dir[PATH_MAX];
    char log_path[PATH_MAX]; /* this start's log */
    int starts;
    char *args[HARNESS_MAX_ARGS]; /* extra flags, copied */
    int n_args;
    /* Set before harness_restart() for fault injection: the RLIMIT_FSIZE of
     * the next starts (0: none); a write past it fails with EFBIG, as on a
     * full disk. */
    uint64_t file_size_limit;
};

/* Creates a fresh data directory under $TEST_TMPDIR with `carechatd init`
 * (given `args` too, so --key-dir and --master-key apply), and starts carechatd
 * on it with "--listen 127.0.0.1:0" and "--metrics-listen 127.0.0.1:0" (unless
 * `args` has its own) and `args` (NULL-terminated, may be NULL). Returns 0 and *out once the server
 * listens; STATUS_IO when init failed, or the server exited or did not listen
 * within the deadline (the output is printed to stderr). */
int harness_start(const char *const *args, struct harness **out);

/* Sends SIGTERM and waits for the exit. Returns 0 and writes the exit status
 * (0..255, or 128 + signal number when killed by one) to *exit_status;
 * STATUS_UNAVAILABLE when it had to SIGKILL after the deadline. */
int harness_stop(struct harness *h, int *exit_status);

/* SIGKILL, and reaps the process. */
void harness_kill9(struct harness *h);

/* Starts carechatd again on the same data directory with the same flags (a new
 * port). The previous process must have been stopped. Same returns as
 * harness_start(). */
int harness_restart(struct harness *h);

/* Kills a running server (SIGKILL) and frees everything; the data directory is
 * left for Bazel to clean up. Accepts NULL. */
void harness_free(struct harness *h);

/* True when this start's log contains `text`. */
bool harness_log_contains(const struct harness *h, const char *text);

/* Runs carechatd with exactly `args` (NULL-terminated, argv[0] excluded), and
 * without CARECHAT_TEST_CLOCK in its environment, to completion, in `cwd` (NULL: the current
 * directory), capturing stderr and stdout into `output`. Returns 0 and the exit status in
 * *exit_status (as harness_stop), or STATUS_UNAVAILABLE when it did not exit within `deadline_ms`
 * (it is then killed). For configurations that must fail before serving. */
int harness_run(const char *const *args, const char *cwd, int deadline_ms, int *exit_status,
                struct buf *output);

/* The carechatd binary the harness runs ($CARECHATD, or from the runfiles). */
const char *harness_binary(void);

/* The absolute path of a fresh directory under $TEST_TMPDIR, in out[PATH_MAX]. */
void harness_tmpdir(const char *prefix, char *out);

#endif
