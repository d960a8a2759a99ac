/* base/log.c: leveled logging to stderr; any thread. */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/check.h"
#include "base/status.h"

static _Atomic int log_level = LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_level(enum log_level level) {
    atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void) {
    return (enum log_level)atomic_load(&log_level);
}

int log_parse_level(const char *name, enum log_level *out) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum log_level)i;
            return STATUS_OK;
        }
    }
    return STATUS_BAD_REQUEST;
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...) {
    if ((int)level > atomic_load(&log_level))
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    while (len > 0 && line[len - 1] == '\n')
        len--;
    line[len++] = '\n';
    /* One write(2) per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

_Noreturn void check_failed(const char *file, int line, const char *cond) {
    log_msg(LOG_ERROR, "check", "check failed: %s:%d: %s", file, line, cond);
    abort();
}
