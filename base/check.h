/*
 * base/check.h: always-on invariant checks.
 *
 * CHECK(cond) is compiled into every build (unlike assert): when `cond` is false
 * it logs the file, line and condition text at error level and aborts. Use it for
 * cheap invariants whose failure means a bug in CareChat, never for input a peer
 * controls (that gets a status).
 */
#ifndef BASE_CHECK_H
#define BASE_CHECK_H

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_failed(__FILE__, __LINE__, #cond);                                               \
    } while (0)

/* Logs "check failed: FILE:LINE: COND" and aborts. Never returns. */
_Noreturn void check_failed(const char *file, int line, const char *cond);

#endif
