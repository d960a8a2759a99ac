/* base/id.c: 128-bit random ids (base/id.h). */
#include "base/id.h"

#include <string.h>

#include "base/buf.h"
#include "base/hex.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"

struct id id_new(void) {
    struct id id;
    rand_bytes(id.b, sizeof id.b);
    return id;
}

bool id_equal(const struct id *a, const struct id *b) {
    return memcmp(a->b, b->b, ID_LEN) == 0;
}

bool id_is_zero(const struct id *id) {
    static const struct id none;
    return id_equal(id, &none);
}

void id_to_hex(const struct id *id, char out[ID_HEX_LEN + 1]) {
    struct buf b;
    buf_init(&b);
    hex_encode(id->b, ID_LEN, &b);
    memcpy(out, b.data, ID_HEX_LEN + 1);
    buf_cleanup(&b);
}

int id_from_hex(const char *hex, struct id *out) {
    if (strlen(hex) != ID_HEX_LEN)
        return STATUS_BAD_REQUEST;
    struct buf b;
    buf_init(&b);
    int rc = hex_decode(hex, ID_HEX_LEN, &b);
    if (rc == 0)
        memcpy(out->b, b.data, ID_LEN);
    buf_cleanup(&b);
    return rc;
}

int id_from_bytes(const uint8_t *bytes, size_t len, struct id *out) {
    if (len != ID_LEN)
        return STATUS_BAD_REQUEST;
    memcpy(out->b, bytes, ID_LEN);
    return STATUS_OK;
}
