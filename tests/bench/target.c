/*
 * tests/bench/target.c: starting, describing and stopping the carechatd a
 * bench run measures, and reading its /proc figures and GET /metrics
 * (contracts in target.h).
 *
 * Thread: the main thread for open and close; the readers on any.
 */
#define _GNU_SOURCE
#include "tests/bench/target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/status.h"

#define PASSWORD "bench-passphrase-0123"
#define START_DEADLINE_MS 30000
#define STOP_DEADLINE_MS 10000
#define STEP_DEADLINE_MS 60000
#define HTTP_DEADLINE_MS 5000
#define MAX_ARGS 64

struct target {
    struct target_info info;
    char metrics_host[64]; /* the metrics listener (GET /metrics) */
    int metrics_port;      /* 0 when unknown (a running server without --metrics) */
};

const double target_fsync_le_s[TARGET_FSYNC_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                        0.005,  0.01,    0.025,  0.1,   HUGE_VAL};
static const char *const fsync_le_label[TARGET_FSYNC_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.1", "+Inf"};
const char *const target_batch_le[TARGET_BATCH_BUCKETS] = {"1",  "2",  "4",  "8",
                                                           "16", "32", "64", "+Inf"};

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- our own carechatd -------------------------------------------------------------------- */

static const char *find_carechatd(const struct target_config *cfg, char path[PATH_MAX]) {
    if (cfg->carechatd)
        return cfg->carechatd;
    const char *roots[3] = {getenv("RUNFILES_DIR"), getenv("TEST_SRCDIR"), NULL};
    char exe[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char self_runfiles[PATH_MAX];
    if (n > 0) {
        exe[n] = '\0';
        snprintf(self_runfiles, sizeof self_runfiles, "%s.runfiles", exe);
        roots[2] = self_runfiles;
    }
    for (int i = 0; i < 3; i++) {
        if (!roots[i] || !*roots[i])
            continue;
        snprintf(path, PATH_MAX, "%s/carechat/server/carechatd", roots[i]);
        if (access(path, X_OK) == 0)
            return path;
    }
    return NULL;
}

static int exit_code(int ws) {
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    if (WIFSIGNALED(ws))
        return 128 + WTERMSIG(ws);
    return 255;
}

/* Waits for `pid` until `deadline`; true with its exit code when it ended. */
static bool wait_exit(pid_t pid, int64_t deadline, int *code) {
    for (;;) {
        int ws;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid) {
            *code = exit_code(ws);
            return true;
        }
        if ((r < 0 && errno != EINTR) || clock_monotonic_ms() >= deadline)
            return false;
        sleep_ms(10);
    }
}

/* Forks and execs `argv` with its output appended to `log_path`, on CPU
 * `cpu` alone unless it is negative. */
static pid_t spawn(char *const *argv, const char *log_path, int cpu) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "carechat-bench: %s: %s\n", log_path, strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            if (sched_setaffinity(0, sizeof set, &set) != 0)
                fprintf(stderr, "carechat-bench: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
        }
        execv(argv[0], argv);
        fprintf(stderr, "cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    if (pid < 0)
        fprintf(stderr, "carechat-bench: fork: %s\n", strerror(errno));
    return pid;
}

/* The port of the "listening on HOST:PORT" line in the log (with `metrics`, of
 * the "metrics listening on HOST:PORT" line), or 0. */
static int port_from_log(const char *log_path, bool metrics) {
    FILE *f = fopen(log_path, "r");
    if (!f)
        return 0;
    char line[512];
    int port = 0;
    while (port == 0 && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "listening on ");
        if (!p || (strstr(line, "metrics listening on ") != NULL) != metrics)
            continue;
        char *space = strchr(p + 13, ' ');
        if (space)
            *space = '\0';
        char *colon = strrchr(p, ':');
        if (colon)
            port = atoi(colon + 1);
    }
    fclose(f);
    return port;
}

static void print_log(const char *log_path) {
    FILE *f = fopen(log_path, "r");
    if (!f)
        return;
    char line[512];
    fprintf(stderr, "---- %s ----\n", log_path);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* Runs carechatd `argv` (a subcommand) to its end; 0 when it exited with 0. */
static int run_step(char *const *argv, const char *log_path) {
    pid_t pid = spawn(argv, log_path, -1);
    int code = -1;
    if (pid < 0)
        return STATUS_IO;
    if (!wait_exit(pid, clock_monotonic_ms() + STEP_DEADLINE_MS, &code) || code != 0) {
        if (code < 0) {
            kill(pid, SIGKILL);
            wait_exit(pid, clock_monotonic_ms() + STOP_DEADLINE_MS, &code);
        }
        fprintf(stderr, "carechat-bench: carechatd %s failed (%d)\n", argv[1], code);
        print_log(log_path);
        return STATUS_IO;
    }
    return 0;
}

/* SIGTERM, then SIGKILL after the deadline. */
static void stop_server(struct target *t) {
    if (t->info.pid <= 0)
        return;
    int code = -1;
    kill(t->info.pid, SIGTERM);
    if (!wait_exit(t->info.pid, clock_monotonic_ms() + STOP_DEADLINE_MS, &code)) {
        fprintf(stderr, "carechat-bench: carechatd ignored SIGTERM; killing it\n");
        kill(t->info.pid, SIGKILL);
        wait_exit(t->info.pid, clock_monotonic_ms() + STOP_DEADLINE_MS, &code);
    } else if (code != 0) {
        fprintf(stderr, "carechat-bench: carechatd exited with %d\n", code);
    }
    t->info.pid = 0;
}

/* Creates a fresh data directory under cfg->dir (`carechatd init`),
 * bootstraps it with a sysadmin and starts carechatd on it. */
static int start_server(const struct target_config *cfg, struct target *t) {
    struct target_info *ti = &t->info;
    char bin_buf[PATH_MAX];
    const char *bin = find_carechatd(cfg, bin_buf);
    if (!bin) {
        fprintf(stderr, "carechat-bench: carechatd not found in the runfiles; use --carechatd\n");
        return STATUS_NOT_FOUND;
    }
    if (cfg->n_args > MAX_ARGS)
        return STATUS_BAD_REQUEST;
    char data[PATH_MAX], pw_path[PATH_MAX];
    snprintf(data, sizeof data, "%.*s/data", PATH_MAX - 8, cfg->dir);
    snprintf(pw_path, sizeof pw_path, "%.*s/sysadmin.pw", PATH_MAX - 16, cfg->dir);
    snprintf(ti->log_path, sizeof ti->log_path, "%.*s/carechatd.log", PATH_MAX - 16, cfg->dir);
    struct id tag = id_new();
    snprintf(ti->admin_email, sizeof ti->admin_email, "bench-root-%02x%02x@clinic.example",
             tag.b[0], tag.b[1]);
    snprintf(ti->admin_password, sizeof ti->admin_password, "%s", PASSWORD);
    FILE *f = fopen(pw_path, "w");
    if (!f) {
        fprintf(stderr, "carechat-bench: %s: %s\n", pw_path, strerror(errno));
        return STATUS_IO;
    }
    fprintf(f, "%s\n", ti->admin_password);
    fclose(f);

    char *init[] = {(char *)bin, "init", "--data", data, NULL};
    char *boot[] = {(char *)bin,     "bootstrap",       "--data", data, "--email",
                    ti->admin_email, "--password-file", pw_path,  NULL};
    if (run_step(init, ti->log_path) != 0 || run_step(boot, ti->log_path) != 0)
        return STATUS_IO;
    int code = -1;

    char *argv[9 + MAX_ARGS];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--dev-invite-codes"; /* no mail relay here: codes come in the answer */
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--metrics-listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--data";
    argv[n++] = data;
    for (size_t i = 0; i < cfg->n_args; i++)
        argv[n++] = (char *)cfg->args[i];
    argv[n] = NULL;
    ti->pid = spawn(argv, ti->log_path, cfg->cpu);
    if (ti->pid < 0) {
        ti->pid = 0;
        return STATUS_IO;
    }
    int64_t deadline = clock_monotonic_ms() + START_DEADLINE_MS;
    while ((ti->port = port_from_log(ti->log_path, false)) == 0 ||
           (t->metrics_port = port_from_log(ti->log_path, true)) == 0) {
        if (wait_exit(ti->pid, 0, &code) || clock_monotonic_ms() >= deadline) {
            fprintf(stderr, "carechat-bench: carechatd did not start\n");
            print_log(ti->log_path);
            return STATUS_IO;
        }
        sleep_ms(10);
    }
    snprintf(t->metrics_host, sizeof t->metrics_host, "127.0.0.1");
    snprintf(ti->url, sizeof ti->url, "ws://127.0.0.1:%d", ti->port);
    return 0;
}

/* Reads the sysadmin's email and password of a running server, and its
 * metrics address. */
static int external_server(const struct target_config *cfg, struct target *t) {
    struct target_info *ti = &t->info;
    snprintf(ti->url, sizeof ti->url, "%s", cfg->url);
    FILE *f = fopen(cfg->setup_file, "r");
    if (!f) {
        fprintf(stderr, "carechat-bench: %s: %s\n", cfg->setup_file, strerror(errno));
        return STATUS_IO;
    }
    bool ok = fgets(ti->admin_email, sizeof ti->admin_email, f) &&
              fgets(ti->admin_password, sizeof ti->admin_password, f);
    fclose(f);
    ti->admin_email[strcspn(ti->admin_email, "\r\n")] = '\0';
    ti->admin_password[strcspn(ti->admin_password, "\r\n")] = '\0';
    if (!ok || !*ti->admin_email || !*ti->admin_password) {
        fprintf(stderr, "carechat-bench: %s: expected an email line and a password line\n",
                cfg->setup_file);
        return STATUS_BAD_REQUEST;
    }
    /* Metrics over plain HTTP only, from the --metrics-listen address. */
    const char *colon = cfg->metrics ? strrchr(cfg->metrics, ':') : NULL;
    if (colon && (size_t)(colon - cfg->metrics) < sizeof t->metrics_host) {
        snprintf(t->metrics_host, sizeof t->metrics_host, "%.*s", (int)(colon - cfg->metrics),
                 cfg->metrics);
        t->metrics_port = atoi(colon + 1);
    }
    return 0;
}

int target_open(const struct target_config *cfg, struct target **out) {
    struct target *t = xcalloc(1, sizeof *t);
    int rc = cfg->url ? external_server(cfg, t) : start_server(cfg, t);
    if (rc != 0) {
        target_close(t, false);
        return rc;
    }
    *out = t;
    return 0;
}

void target_close(struct target *t, bool show_log) {
    if (!t)
        return;
    if (t->info.pid) {
        stop_server(t);
        if (show_log)
            print_log(t->info.log_path);
    }
    free(t);
}

const struct target_info *target_info(const struct target *t) {
    return &t->info;
}

/* ---- /proc -------------------------------------------------------------------------------- */

double target_cpu_s(pid_t pid) {
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    double cpu = -1;
    if (fgets(line, sizeof line, f)) {
        /* Fields after the command name (which may hold spaces): state is
         * field 3, utime 14, stime 15. */
        const char *p = strrchr(line, ')');
        unsigned long ut, st;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    fclose(f);
    return cpu;
}

bool target_rss_kb(pid_t pid, long *rss_kb, long *hwm_kb) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    long rss = -1, hwm = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            rss = atol(line + 6);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            hwm = atol(line + 6);
    }
    fclose(f);
    *rss_kb = rss;
    *hwm_kb = hwm;
    return rss >= 0 && hwm >= 0;
}

/* ---- GET /metrics ------------------------------------------------------------------------- */

/* GET http://host:port/path from the metrics listener into `out` (the whole
 * response). */
static int http_get(const struct target *t, const char *path, struct buf *out) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->metrics_port)};
    if (t->metrics_port <= 0 || inet_pton(AF_INET, t->metrics_host, &sa.sin_addr) != 1)
        return STATUS_BAD_REQUEST;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return STATUS_IO;
    struct timeval tv = {.tv_sec = HTTP_DEADLINE_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc = STATUS_IO;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto out;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, t->metrics_host);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    int64_t deadline = clock_monotonic_ms() + HTTP_DEADLINE_MS;
    char chunk[4096];
    while (clock_monotonic_ms() < deadline && out->len < (4u << 20)) {
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r <= 0)
            break;
        buf_append(out, chunk, (size_t)r);
    }
    buf_append(out, "", 1);
    rc = out->len > 1 ? 0 : STATUS_IO;
out:
    close(fd);
    return rc;
}

/* The value of the sample line `name` (exact, followed by a space), or -1. */
static double metric(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

struct target_journal target_journal(const struct target *t) {
    struct target_journal j = {.ok = false};
    struct buf b;
    buf_init(&b);
    if (http_get(t, "/metrics", &b) == 0) {
        const char *text = (const char *)b.data;
        j.batch_sum = metric(text, "carechat_journal_batch_size_sum");
        j.batch_count = metric(text, "carechat_journal_batch_size_count");
        j.fsync_sum_s = metric(text, "carechat_journal_fsync_seconds_sum");
        j.fsync_count = metric(text, "carechat_journal_fsync_seconds_count");
        j.ok = j.batch_sum >= 0 && j.batch_count >= 0;
        char name[80];
        for (int i = 0; i < TARGET_BATCH_BUCKETS; i++) {
            snprintf(name, sizeof name, "carechat_journal_batch_size_bucket{le=\"%s\"}",
                     target_batch_le[i]);
            j.batch_bucket[i] = metric(text, name);
        }
        for (int i = 0; i < TARGET_FSYNC_BUCKETS; i++) {
            snprintf(name, sizeof name, "carechat_journal_fsync_seconds_bucket{le=\"%s\"}",
                     fsync_le_label[i]);
            j.fsync_bucket[i] = metric(text, name);
        }
    }
    buf_cleanup(&b);
    return j;
}

double target_fsync_quantile_ms(const struct target_journal *a, const struct target_journal *b,
                                double q) {
    if (!a->ok || !b->ok)
        return -1;
    double total =
        b->fsync_bucket[TARGET_FSYNC_BUCKETS - 1] - a->fsync_bucket[TARGET_FSYNC_BUCKETS - 1];
    if (total <= 0)
        return -1;
    double rank = q * total, below = 0, lower_s = 0;
    for (int i = 0; i < TARGET_FSYNC_BUCKETS; i++) {
        double cum = b->fsync_bucket[i] - a->fsync_bucket[i];
        if (cum >= rank && cum > below) {
            if (i == TARGET_FSYNC_BUCKETS - 1)
                return HUGE_VAL;
            double upper_s = target_fsync_le_s[i];
            return (lower_s + (upper_s - lower_s) * (rank - below) / (cum - below)) * 1e3;
        }
        below = cum;
        lower_s = target_fsync_le_s[i];
    }
    return HUGE_VAL;
}
