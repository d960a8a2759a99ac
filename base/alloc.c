/* base/alloc.c: aborting allocators. */
#include "base/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    CHECK(p != NULL);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    CHECK(q != NULL);
    return q;
}

char *xstrdup(const char *s) {
    return xmemdup(s, strlen(s));
}

void *xmemdup(const void *p, size_t n) {
    CHECK(n < (size_t)-1);
    char *q = xmalloc(n + 1);
    if (n)
        memcpy(q, p, n);
    q[n] = '\0';
    return q;
}
