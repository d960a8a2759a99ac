/*
 * tests/harness.c: fork/exec of the real carechatd, its log, its port, and its
 * end (see harness.h).
 *
 * Invariants: h->pid is 0 exactly when no child is running; every loop that
 * waits for the child polls with a short sleep and stops at a monotonic
 * deadline. Test thread only.
 */
#include "tests/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"

#define POLL_MS 10

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *harness_binary(void) {
    static char path[PATH_MAX];
    const char *env = getenv("CARECHATD");
    if (env && *env)
        return env;
    const char *srcdir = getenv("TEST_SRCDIR");
    const char *ws = getenv("TEST_WORKSPACE");
    if (srcdir && ws) {
        snprintf(path, sizeof path, "%s/%s/server/carechatd", srcdir, ws);
        if (access(path, X_OK) == 0)
            return path;
    }
    return "server/carechatd";
}

void harness_tmpdir(const char *prefix, char *out) {
    const char *base = getenv("TEST_TMPDIR");
    snprintf(out, PATH_MAX, "%s/%s-XXXXXX", base && *base ? base : "/tmp", prefix);
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        abort();
    }
}

static int exit_code(int wstatus) {
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return 255;
}

/* Waits for `pid` until the deadline; returns true and the status when it ended. */
static bool wait_exit(pid_t pid, int64_t deadline, int *exit_status) {
    for (;;) {
        int ws;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid) {
            *exit_status = exit_code(ws);
            return true;
        }
        if (r < 0 && errno != EINTR)
            return false;
        if (clock_monotonic_ms() >= deadline)
            return false;
        sleep_ms(POLL_MS);
    }
}

/* Forks carechatd with argv, stdout+stderr into log_fd, in cwd; with
 * `file_size_limit` (0: none) as its RLIMIT_FSIZE and SIGXFSZ ignored, so a
 * write past it fails with EFBIG; with `test_clock`, CARECHAT_TEST_CLOCK=1 in
 * its environment (carechatd takes --clock-offset only then). */
static pid_t spawn(char *const *argv, int log_fd, const char *cwd, uint64_t file_size_limit,
                   bool test_clock) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        if (test_clock)
            setenv("CARECHAT_TEST_CLOCK", "1", 1);
        else
            unsetenv("CARECHAT_TEST_CLOCK");
        if (file_size_limit) {
            struct rlimit lim = {.rlim_cur = file_size_limit, .rlim_max = file_size_limit};
            signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
                _exit(126);
        }
        execv(argv[0], argv);
        fprintf(stderr, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static void read_file(const char *path, struct buf *out) {
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(out, chunk, n);
    fclose(f);
    buf_append(out, "", 0);
}

bool harness_log_contains(const struct harness *h, const char *text) {
    struct buf log;
    buf_init(&log);
    read_file(h->log_path, &log);
    bool found = log.data && strstr((const char *)log.data, text) != NULL;
    buf_cleanup(&log);
    return found;
}

/* Finds "listening on HOST:PORT" in the log (with `metrics`, "metrics
 * listening on HOST:PORT"); returns the port or 0. */
static int port_from_log(const struct harness *h, bool metrics) {
    struct buf log;
    buf_init(&log);
    read_file(h->log_path, &log);
    int port = 0;
    const char *p = log.data ? (const char *)log.data : NULL;
    while (p && (p = strstr(p, "listening on ")) != NULL) {
        bool is_metrics = p - (const char *)log.data >= 8 && memcmp(p - 8, "metrics ", 8) == 0;
        if (is_metrics == metrics)
            break;
        p += 13;
    }
    if (p) {
        const char *eol = strchr(p, '\n');
        const char *space = strchr(p + 13, ' ');
        const char *end = space && (!eol || space < eol) ? space : eol;
        if (end) {
            const char *colon = end;
            while (colon > p && *colon != ':')
                colon--;
            if (*colon == ':')
                port = atoi(colon + 1);
        }
    }
    buf_cleanup(&log);
    return port;
}

static void dump_log(const struct harness *h) {
    struct buf log;
    buf_init(&log);
    read_file(h->log_path, &log);
    fprintf(stderr, "---- %s ----\n%s---- end ----\n", h->log_path,
            log.data ? (const char *)log.data : "(empty)\n");
    buf_cleanup(&log);
}

static int launch(struct harness *h) {
    char *argv[HARNESS_MAX_ARGS + 9];
    int n = 0;
    argv[n++] = (char *)harness_binary();
    bool has_listen = false, has_metrics = false, has_mail = false;
    for (int i = 0; i < h->n_args; i++) {
        has_listen |= strcmp(h->args[i], "--listen") == 0;
        has_metrics |= strcmp(h->args[i], "--metrics-listen") == 0;
        has_mail |= strcmp(h->args[i], "--smtp-url") == 0;
    }
    /* Without a mail relay, invitation codes come in the answer. */
    if (!has_mail)
        argv[n++] = "--dev-invite-codes";
    if (!has_listen) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
    if (!has_metrics) {
        argv[n++] = "--metrics-listen";
        argv[n++] = "127.0.0.1:0";
    }
    argv[n++] = "--data";
    argv[n++] = h->data_dir;
    for (int i = 0; i < h->n_args; i++)
        argv[n++] = h->args[i];
    argv[n] = NULL;

    h->starts++;
    const char *outdir = getenv("TEST_UNDECLARED_OUTPUTS_DIR");
    struct buf path;
    buf_init(&path);
    if (outdir && *outdir)
        buf_printf(&path, "%s/carechatd-%s-%d.log", outdir, strrchr(h->data_dir, '/') + 1,
                   h->starts);
    else
        buf_printf(&path, "%s.%d.log", h->data_dir, h->starts);
    if (path.len >= sizeof h->log_path) {
        fprintf(stderr, "harness: log path too long\n");
        abort();
    }
    memcpy(h->log_path, path.data, path.len + 1);
    buf_cleanup(&path);
    int fd = open(h->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(h->log_path);
        return STATUS_IO;
    }
    pid_t pid = spawn(argv, fd, NULL, h->file_size_limit, true);
    close(fd);
    if (pid < 0)
        return STATUS_IO;
    h->pid = pid;

    int64_t deadline = clock_monotonic_ms() + HARNESS_START_DEADLINE_MS;
    for (;;) {
        h->port = port_from_log(h, false);
        h->metrics_port = port_from_log(h, true);
        if (h->port > 0 && h->metrics_port > 0)
            return STATUS_OK;
        int status;
        if (wait_exit(pid, 0, &status)) {
            h->pid = 0;
            fprintf(stderr, "harness: carechatd exited with %d before listening\n", status);
            dump_log(h);
            return STATUS_IO;
        }
        if (clock_monotonic_ms() >= deadline)
            break;
        sleep_ms(POLL_MS);
    }
    fprintf(stderr, "harness: carechatd did not listen within %d ms\n", HARNESS_START_DEADLINE_MS);
    dump_log(h);
    harness_kill9(h);
    return STATUS_IO;
}

static int run_to_end(const char *const *args, const char *cwd, int deadline_ms, int *exit_status,
                      struct buf *output, bool test_clock);

/* `carechatd init --data DIR` with the harness's flags. */
static int init_data(const struct harness *h) {
    const char *argv[HARNESS_MAX_ARGS + 4];
    int n = 0;
    argv[n++] = "init";
    argv[n++] = "--data";
    argv[n++] = h->data_dir;
    for (int i = 0; i < h->n_args; i++)
        argv[n++] = h->args[i];
    argv[n] = NULL;
    struct buf out;
    buf_init(&out);
    int status = -1;
    int rc = run_to_end(argv, NULL, HARNESS_INIT_DEADLINE_MS, &status, &out, true);
    if (rc != 0 || status != 0) {
        fprintf(stderr, "harness: carechatd init exited with %d:\n%s\n", status,
                out.data ? (const char *)out.data : "");
        rc = STATUS_IO;
    }
    buf_cleanup(&out);
    return rc;
}

int harness_start(const char *const *args, struct harness **out) {
    struct harness *h = xcalloc(1, sizeof *h);
    harness_tmpdir("carechat", h->data_dir);
    snprintf(h->host, sizeof h->host, "127.0.0.1");
    snprintf(h->metrics_host, sizeof h->metrics_host, "127.0.0.1");
    for (int i = 0; args && args[i]; i++) {
        if (h->n_args == HARNESS_MAX_ARGS) {
            fprintf(stderr, "harness: too many arguments\n");
            abort();
        }
        h->args[h->n_args++] = xstrdup(args[i]);
        bool metrics = strcmp(args[i], "--metrics-listen") == 0;
        if ((metrics || strcmp(args[i], "--listen") == 0) && args[i + 1]) {
            /* Keep the host for clients: "127.0.0.2:0" -> "127.0.0.2". */
            char *host = metrics ? h->metrics_host : h->host;
            snprintf(host, sizeof h->host, "%s", args[i + 1]);
            char *colon = strrchr(host, ':');
            if (colon)
                *colon = '\0';
        }
    }
    int rc = init_data(h);
    if (rc == 0)
        rc = launch(h);
    if (rc != 0) {
        harness_free(h);
        return rc;
    }
    *out = h;
    return STATUS_OK;
}

int harness_stop(struct harness *h, int *exit_status) {
    if (h->pid == 0) {
        *exit_status = 0;
        return STATUS_OK;
    }
    kill(h->pid, SIGTERM);
    bool ended = wait_exit(h->pid, clock_monotonic_ms() + HARNESS_STOP_DEADLINE_MS, exit_status);
    if (!ended) {
        fprintf(stderr, "harness: carechatd ignored SIGTERM for %d ms\n", HARNESS_STOP_DEADLINE_MS);
        dump_log(h);
        harness_kill9(h);
        return STATUS_UNAVAILABLE;
    }
    h->pid = 0;
    h->port = h->metrics_port = 0;
    return STATUS_OK;
}

void harness_kill9(struct harness *h) {
    if (h->pid == 0)
        return;
    kill(h->pid, SIGKILL);
    int status;
    wait_exit(h->pid, clock_monotonic_ms() + HARNESS_STOP_DEADLINE_MS, &status);
    h->pid = 0;
    h->port = h->metrics_port = 0;
}

int harness_restart(struct harness *h) {
    if (h->pid != 0)
        return STATUS_CONFLICT;
    return launch(h);
}

void harness_free(struct harness *h) {
    if (!h)
        return;
    harness_kill9(h);
    for (int i = 0; i < h->n_args; i++)
        free(h->args[i]);
    free(h);
}

static int run_to_end(const char *const *args, const char *cwd, int deadline_ms, int *exit_status,
                      struct buf *output, bool test_clock) {
    char *argv[HARNESS_MAX_ARGS + 2];
    int n = 0;
    argv[n++] = (char *)harness_binary();
    for (int i = 0; args && args[i] && n < HARNESS_MAX_ARGS; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    char dir[PATH_MAX], log_path[PATH_MAX + 16];
    harness_tmpdir("run", dir);
    snprintf(log_path, sizeof log_path, "%s/output", dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return STATUS_IO;
    pid_t pid = spawn(argv, fd, cwd, 0, test_clock);
    close(fd);
    if (pid < 0)
        return STATUS_IO;
    int rc = STATUS_OK;
    if (!wait_exit(pid, clock_monotonic_ms() + deadline_ms, exit_status)) {
        kill(pid, SIGKILL);
        int ignored;
        wait_exit(pid, clock_monotonic_ms() + HARNESS_STOP_DEADLINE_MS, &ignored);
        rc = STATUS_UNAVAILABLE;
    }
    read_file(log_path, output);
    return rc;
}

int harness_run(const char *const *args, const char *cwd, int deadline_ms, int *exit_status,
                struct buf *output) {
    return run_to_end(args, cwd, deadline_ms, exit_status, output, false);
}
