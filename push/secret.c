/*
 * push/secret.c: credential files (contract in secret.h).
 *
 * The mode is checked with fstat() on the opened descriptor, so the file read
 * is the file checked.
 */
#include "push/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "base/log.h"
#include "base/status.h"

#define MOD "push"

int push_secret_read(const char *path, size_t max, struct buf *out) {
    int rc = STATUS_IO;
    size_t start = out->len;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        log_error(MOD, "cannot open credential file %s: %s", path,
                  e == ENOENT ? "no such file" : "open failed");
        return e == ENOENT ? STATUS_NOT_FOUND : e == ELOOP ? STATUS_FORBIDDEN : STATUS_IO;
    }
    if (fstat(fd, &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        log_error(MOD, "credential file %s must be a regular file with mode 0600 or stricter",
                  path);
        rc = STATUS_FORBIDDEN;
        goto fail;
    }
    if ((uint64_t)st.st_size > max) {
        log_error(MOD, "credential file %s is larger than %zu bytes", path, max);
        rc = STATUS_TOO_LARGE;
        goto fail;
    }
    /* Room for the whole file and a read that finds its end: the buffer never
     * grows (a realloc would leave a copy of the secret behind). A file that
     * grew since fstat() is refused. */
    buf_reserve(out, (size_t)st.st_size + 2);
    for (;;) {
        size_t room = out->cap - out->len - 1;
        if (room == 0) {
            rc = STATUS_TOO_LARGE;
            goto fail;
        }
        ssize_t n = read(fd, out->data + out->len, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        out->len += (size_t)n;
        out->data[out->len] = 0;
    }
    if (out->len - start > max) {
        rc = STATUS_TOO_LARGE;
        goto fail;
    }
    close(fd);
    return 0;
fail:
    if (out->data != NULL) {
        sodium_memzero(out->data + start, out->cap - start);
        out->len = start;
    }
    close(fd);
    return rc;
}
