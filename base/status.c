/* base/status.c: names of status codes and their wire mapping. */
#include "base/status.h"

const char *status_str(int status) {
    switch (status) {
    case STATUS_OK:
        return "ok";
    case STATUS_BAD_REQUEST:
        return "bad request";
    case STATUS_UNAUTHENTICATED:
        return "unauthenticated";
    case STATUS_FORBIDDEN:
        return "forbidden";
    case STATUS_NOT_FOUND:
        return "not found";
    case STATUS_CONFLICT:
        return "conflict";
    case STATUS_TOO_LARGE:
        return "too large";
    case STATUS_RATE_LIMITED:
        return "rate limited";
    case STATUS_UNAVAILABLE:
        return "unavailable";
    case STATUS_INTERNAL:
        return "internal error";
    case STATUS_IO:
        return "i/o error";
    case STATUS_CORRUPT:
        return "corrupt data";
    default:
        return "unknown status";
    }
}

int status_wire(int status) {
    if (status <= 0 && status >= STATUS_INTERNAL)
        return -status;
    if (status == STATUS_IO)
        return -STATUS_UNAVAILABLE;
    return -STATUS_INTERNAL;
}
