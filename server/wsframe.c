#include "server/wsframe.h"

#include <string.h>

#include "base/check.h"

#define FIN_BINARY 0x82

size_t wsframe_header(uint8_t out[WSFRAME_HEADER_MAX], uint64_t len) {
    out[0] = FIN_BINARY;
    if (len <= 125) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return WSFRAME_HEADER_MAX;
}

size_t wsframe_length(const uint8_t *frame) {
    uint64_t len = frame[1] & 0x7f;
    size_t header = 2;
    if (len == 126) {
        len = (uint64_t)frame[2] << 8 | frame[3];
        header = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | frame[2 + i];
        header = WSFRAME_HEADER_MAX;
    }
    return header + (size_t)len;
}

void wsframe_queue_init(struct wsframe_queue *q) {
    buf_init(&q->out);
    q->sent = 0;
}

void wsframe_queue_cleanup(struct wsframe_queue *q) {
    buf_cleanup(&q->out);
    q->sent = 0;
}

size_t wsframe_queue_len(const struct wsframe_queue *q) {
    return q->out.len - q->sent;
}

void wsframe_queue_push(struct wsframe_queue *q, const uint8_t *payload, size_t len) {
    uint8_t header[WSFRAME_HEADER_MAX];
    buf_append(&q->out, header, wsframe_header(header, len));
    buf_append(&q->out, payload, len);
}

const uint8_t *wsframe_queue_peek(const struct wsframe_queue *q, size_t max, size_t *n) {
    const uint8_t *first = q->out.data + q->sent;
    size_t len = wsframe_queue_len(q), take = 0;
    while (take < len) {
        size_t f = wsframe_length(first + take);
        if (take > 0 && take + f > max)
            break;
        take += f;
    }
    *n = take;
    return take ? first : NULL;
}

void wsframe_queue_consumed(struct wsframe_queue *q, size_t n) {
    CHECK(n <= wsframe_queue_len(q));
    q->sent += n;
    if (q->sent == q->out.len) {
        if (q->out.cap > WSFRAME_KEEP_CAP)
            buf_cleanup(&q->out);
        else
            buf_reset(&q->out);
        q->sent = 0;
    } else if (q->sent > q->out.len / 2) {
        memmove(q->out.data, q->out.data + q->sent, q->out.len - q->sent);
        q->out.len -= q->sent;
        q->out.data[q->out.len] = 0; /* as buf keeps it */
        q->sent = 0;
    }
}
