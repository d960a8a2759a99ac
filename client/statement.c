/*
 * client/statement.c: the signed byte layouts of carechat.proto (statement.h).
 */
#include "client/statement.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

static const char encryption_key_context[] = "carechat.v1 encryption key";
static const char device_list_context[] = "carechat.v1 device list";

static void put_be(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

void statement_encryption_key(const uint8_t encryption_key[STATEMENT_KEY_LEN], uint32_t key_id,
                              int64_t expires_at, uint8_t out[STATEMENT_ENCRYPTION_KEY_LEN]) {
    uint8_t *p = out;
    memcpy(p, encryption_key_context, sizeof encryption_key_context - 1);
    p += sizeof encryption_key_context - 1;
    memcpy(p, encryption_key, STATEMENT_KEY_LEN);
    p += STATEMENT_KEY_LEN;
    put_be(p, key_id, 4);
    p += 4;
    put_be(p, (uint64_t)expires_at, 8);
}

static int compare_devices(const void *a, const void *b) {
    const struct statement_device *x = a, *y = b;
    return memcmp(x->device_id.b, y->device_id.b, ID_LEN);
}

int statement_device_list(const struct id *account_id, uint64_t version,
                          const struct statement_device *devices, size_t n,
                          const uint8_t *prev_hash, struct buf *out) {
    if (n == 0 || n > STATEMENT_MAX_DEVICES)
        return STATUS_BAD_REQUEST;
    struct statement_device sorted[STATEMENT_MAX_DEVICES];
    memcpy(sorted, devices, n * sizeof *devices);
    qsort(sorted, n, sizeof *sorted, compare_devices);
    for (size_t i = 1; i < n; i++)
        if (compare_devices(&sorted[i - 1], &sorted[i]) == 0)
            return STATUS_BAD_REQUEST;

    uint8_t head[sizeof device_list_context - 1 + ID_LEN + 8 + 4];
    uint8_t *p = head;
    memcpy(p, device_list_context, sizeof device_list_context - 1);
    p += sizeof device_list_context - 1;
    memcpy(p, account_id->b, ID_LEN);
    p += ID_LEN;
    put_be(p, version, 8);
    p += 8;
    put_be(p, n, 4);
    buf_reserve(out, sizeof head + n * (ID_LEN + STATEMENT_KEY_LEN));
    buf_append(out, head, sizeof head);
    for (size_t i = 0; i < n; i++) {
        buf_append(out, sorted[i].device_id.b, ID_LEN);
        buf_append(out, sorted[i].identity_key, STATEMENT_KEY_LEN);
    }
    if (version >= 2) {
        static const uint8_t zeros[STATEMENT_HASH_LEN];
        buf_append(out, prev_hash != NULL ? prev_hash : zeros, STATEMENT_HASH_LEN);
    }
    return 0;
}
