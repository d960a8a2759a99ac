/* base/hex.c: lower-case hexadecimal text for bytes, both ways. */
#include "base/hex.h"

#include <string.h>

#include "base/status.h"

static int digit_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void hex_encode(const uint8_t *in, size_t n, struct buf *out) {
    static const char digits[] = "0123456789abcdef";
    /* Appending nothing still allocates, so the text is a C string even for n == 0. */
    buf_append(out, "", 0);
    buf_reserve(out, 2 * n);
    for (size_t i = 0; i < n; i++) {
        char pair[2] = {digits[in[i] >> 4], digits[in[i] & 15]};
        buf_append(out, pair, 2);
    }
}

int hex_decode(const char *hex, size_t len, struct buf *out) {
    if (len % 2 != 0)
        return STATUS_BAD_REQUEST;
    /* Validate everything first so a bad string leaves `out` untouched. */
    for (size_t i = 0; i < len; i++)
        if (digit_value(hex[i]) < 0)
            return STATUS_BAD_REQUEST;
    buf_reserve(out, len / 2);
    for (size_t i = 0; i < len; i += 2)
        buf_append_u8(out, (uint8_t)(digit_value(hex[i]) << 4 | digit_value(hex[i + 1])));
    return 0;
}

int hex_decode_exact(const char *hex, uint8_t *out, size_t n) {
    struct buf b;
    buf_init(&b);
    int rc = hex_decode(hex, strlen(hex), &b);
    if (rc == 0 && b.len != n)
        rc = STATUS_BAD_REQUEST;
    if (rc == 0 && n > 0)
        memcpy(out, b.data, n);
    buf_wipe(&b);
    buf_cleanup(&b);
    return rc;
}
