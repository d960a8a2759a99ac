/*
 * base/log.h: leveled logging with a module tag.
 *
 * One line per call on stderr: "2026-11-28T16:20:01.123Z INFO  storage: text".
 * Safe from any thread (each line is written with one locked write). Log lines
 * carry ids, statuses and sizes only: never payloads, names, email addresses,
 * passwords, tokens or keys (DESIGN.md "Security posture").
 */
#ifndef BASE_LOG_H
#define BASE_LOG_H

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
};

/* Lines above `level` are dropped. The default is LOG_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "error", "warn", "info" or "debug" into *out. Returns 0, or
 * STATUS_BAD_REQUEST for any other name. */
int log_parse_level(const char *name, enum log_level *out);

/* Writes one line at `level` tagged with `module` (a short constant such as
 * "storage"); `fmt` is a printf format. A trailing newline in the text is
 * dropped. */
void log_msg(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(module, ...) log_msg(LOG_ERROR, module, __VA_ARGS__)
#define log_warn(module, ...) log_msg(LOG_WARN, module, __VA_ARGS__)
#define log_info(module, ...) log_msg(LOG_INFO, module, __VA_ARGS__)
#define log_debug(module, ...) log_msg(LOG_DEBUG, module, __VA_ARGS__)

#endif
