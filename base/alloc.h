/*
 * base/alloc.h: allocation that aborts on exhaustion.
 *
 * Out of memory is not a recoverable condition for carechatd (STYLE.md): these
 * wrappers abort instead of returning NULL, so callers never test for it. Sizes a
 * peer controls must be checked against a configured limit before they reach
 * these functions. Everything returned is freed with free().
 */
#ifndef BASE_ALLOC_H
#define BASE_ALLOC_H

#include <stddef.h>

/* malloc(n) that aborts on failure; n == 0 returns a unique non-NULL pointer. */
void *xmalloc(size_t n);
/* calloc(count, size) that aborts on failure or on overflow of count * size. */
void *xcalloc(size_t count, size_t size);
/* realloc(p, n) that aborts on failure. */
void *xrealloc(void *p, size_t n);
/* A NUL-terminated copy of s (which must not be NULL). */
char *xstrdup(const char *s);
/* A copy of the n bytes at p, followed by one NUL byte that is not counted. */
void *xmemdup(const void *p, size_t n);

#endif
