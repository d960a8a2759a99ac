/*
 * push/secret.h: reading a credential file (SMTP password, APNs key, FCM
 * service account, VAPID key) the careful way.
 *
 * The file must be a regular file (symbolic links are not followed) that
 * neither the group nor others may read or write: mode 0600 or stricter, the
 * same rule ssh applies to private keys. Its size is checked before anything is
 * read. Paths are logged; contents never are.
 *
 * Any thread.
 */
#ifndef PUSH_SECRET_H
#define PUSH_SECRET_H

#include <stddef.h>

#include "base/buf.h"

/* Reads the file at `path` into `out` (appended; out->data is NUL-terminated
 * afterwards). Returns 0; STATUS_NOT_FOUND when it does not exist;
 * STATUS_FORBIDDEN when it is not a regular file or its mode allows group or
 * other access; STATUS_TOO_LARGE when it is longer than `max` bytes; STATUS_IO
 * when it cannot be opened or read. On any failure `out` is left as it was
 * (bytes read are wiped). The caller wipes `out` (buf_wipe()) when done. */
int push_secret_read(const char *path, size_t max, struct buf *out);

#endif
