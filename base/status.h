/*
 * base/status.h: the status codes every CareChat function returns.
 *
 * A function that can fail returns 0 (STATUS_OK) or one of the negative codes
 * below. The first ten mirror the wire protocol's response statuses one to one
 * (protocol/carechat.proto `Status`), so a handler can answer a request with the
 * status its callee returned. The rest are internal and map to INTERNAL or
 * UNAVAILABLE on the wire (status_wire()).
 */
#ifndef BASE_STATUS_H
#define BASE_STATUS_H

enum status {
    STATUS_OK = 0,
    STATUS_BAD_REQUEST = -1,     /* malformed or invalid input */
    STATUS_UNAUTHENTICATED = -2, /* no valid session */
    STATUS_FORBIDDEN = -3,       /* authenticated, not allowed */
    STATUS_NOT_FOUND = -4,       /* no such object (or not visible to the caller) */
    STATUS_CONFLICT = -5,        /* state does not match the request */
    STATUS_TOO_LARGE = -6,       /* a size limit was exceeded */
    STATUS_RATE_LIMITED = -7,    /* slow down */
    STATUS_UNAVAILABLE = -8,     /* temporarily unable (disk reserve, shutting down) */
    STATUS_INTERNAL = -9,        /* a bug or an unexpected library failure */
    STATUS_IO = -10,             /* an operating-system or storage I/O failure */
    STATUS_CORRUPT = -11,        /* stored data failed authentication or decoding */
};

/* Returns a short constant English name for `status` ("ok", "not found", ...);
 * never NULL, also for codes it does not know. */
const char *status_str(int status);

/* Returns the wire status (0..9 as in carechat.proto's Status enum: OK=0,
 * BAD_REQUEST=1, ... INTERNAL=9) that answers a request failing with `status`.
 * Internal codes map to INTERNAL (CORRUPT, unknown) or UNAVAILABLE (IO). */
int status_wire(int status);

#endif
