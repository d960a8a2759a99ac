/*
 * client/transport_test.c: the client transport against a scripted WebSocket
 * server on 127.0.0.1 (a thread of this test that writes exact frames):
 * fragmented messages are reassembled, a message over the limit closes with
 * 1009, a text message closes with 1003, a receive deadline leaves the
 * connection open, and bytes sent arrive as one binary message.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "client/transport.h"

/* What the scripted server sends after the upgrade. */
enum script {
    SEND_FRAGMENTS, /* a binary message in 3 fragments, then one unfragmented */
    SEND_OVERSIZED, /* one binary message of 2000 bytes */
    SEND_TEXT,      /* one text message */
    SEND_NOTHING,   /* waits for a message from the client, then echoes it */
};

struct server {
    int listen_fd;
    int port;
    enum script script;
    pthread_t thread;
    int close_code;    /* the code of the client's close frame; 0: none seen */
    struct buf echoed; /* SEND_NOTHING: the client's message */
};

static int read_full(int fd, void *p, size_t n) {
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static void write_full(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0)
            return;
        b += w;
        n -= (size_t)w;
    }
}

/* An unmasked server frame. */
static void send_frame(int fd, bool fin, int opcode, const uint8_t *data, size_t len) {
    uint8_t h[4];
    size_t hl = 2;
    h[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        h[1] = (uint8_t)len;
    } else {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    }
    write_full(fd, h, hl);
    write_full(fd, data, len);
}

/* Reads one (masked) client frame; returns its opcode or -1. */
static int read_frame(int fd, struct buf *payload) {
    uint8_t h[2];
    if (read_full(fd, h, 2) != 0)
        return -1;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        uint8_t e[2];
        if (read_full(fd, e, 2) != 0)
            return -1;
        len = (uint64_t)e[0] << 8 | e[1];
    } else if (len == 127) {
        return -1;
    }
    uint8_t mask[4];
    if (read_full(fd, mask, 4) != 0)
        return -1;
    buf_reset(payload);
    buf_reserve(payload, len);
    if (read_full(fd, payload->data, len) != 0)
        return -1;
    payload->len = len;
    for (size_t i = 0; i < len; i++)
        payload->data[i] ^= mask[i % 4];
    return h[0] & 0x0f;
}

static void *serve(void *arg) {
    struct server *s = arg;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[4096];
    size_t n = 0;
    while (n < sizeof req - 1 && (n < 4 || memcmp(req + n - 4, "\r\n\r\n", 4) != 0)) {
        if (read(fd, req + n, 1) != 1) {
            close(fd);
            return NULL;
        }
        n++;
    }
    req[n] = '\0';
    /* Header names are case-insensitive: find the key in a lower-case copy. */
    char lower[sizeof req];
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)req[i]);
    char *found = strstr(lower, "sec-websocket-key:");
    if (found == NULL) {
        close(fd);
        return NULL;
    }
    char *key = req + (found - lower) + strlen("sec-websocket-key:");
    while (*key == ' ')
        key++;
    char text[128];
    size_t kl = strcspn(key, "\r");
    snprintf(text, sizeof text, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)kl, key);
    uint8_t digest[SHA_DIGEST_LENGTH];
    SHA1((const uint8_t *)text, strlen(text), digest);
    char accept_b64[64];
    EVP_EncodeBlock((uint8_t *)accept_b64, digest, sizeof digest);
    char resp[512];
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                      "Sec-WebSocket-Protocol: carechat.v1\r\n\r\n",
                      accept_b64);
    write_full(fd, resp, (size_t)rl);

    uint8_t data[2000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    switch (s->script) {
    case SEND_FRAGMENTS:
        send_frame(fd, false, 0x2, data, 100);
        send_frame(fd, false, 0x0, data + 100, 200);
        send_frame(fd, true, 0x0, data + 300, 50);
        send_frame(fd, true, 0x2, data, 7);
        break;
    case SEND_OVERSIZED:
        send_frame(fd, true, 0x2, data, sizeof data);
        break;
    case SEND_TEXT:
        send_frame(fd, true, 0x1, (const uint8_t *)"hello", 5);
        break;
    case SEND_NOTHING:
        break;
    }
    struct buf payload;
    buf_init(&payload);
    for (int frames = 0; frames < 16; frames++) {
        int op = read_frame(fd, &payload);
        if (op < 0)
            break;
        if (op == 0x2 && s->script == SEND_NOTHING) {
            buf_append(&s->echoed, payload.data, payload.len);
            send_frame(fd, true, 0x2, payload.data, payload.len);
        }
        if (op == 0x8) {
            s->close_code = payload.len >= 2 ? (payload.data[0] << 8 | payload.data[1]) : 1005;
            send_frame(fd, true, 0x8, payload.data, payload.len >= 2 ? 2 : 0);
            break;
        }
    }
    buf_cleanup(&payload);
    close(fd);
    return NULL;
}

static void server_start(struct server *s, enum script script) {
    memset(s, 0, sizeof *s);
    buf_init(&s->echoed);
    s->script = script;
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s->listen_fd, 1), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_join(struct server *s) {
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    buf_cleanup(&s->echoed);
}

static struct transport *connect_to(const struct server *s, size_t max_frame) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d", s->port);
    struct transport_config cfg = {
        .url = url, .max_frame_bytes = max_frame, .deadline_ms = clock_monotonic_ms() + 5000};
    struct transport *t = NULL;
    assert_int_equal(transport_open(&cfg, &t, NULL, 0), 0);
    assert_true(transport_is_open(t));
    return t;
}

static void test_transport_reassembles_fragments(void **state) {
    (void)state;
    struct server s;
    server_start(&s, SEND_FRAGMENTS);
    struct transport *t = connect_to(&s, 1000);
    struct buf msg;
    buf_init(&msg);
    assert_int_equal(transport_recv(t, clock_monotonic_ms() + 5000, &msg), 0);
    assert_int_equal(msg.len, 350);
    for (size_t i = 0; i < msg.len; i++)
        assert_int_equal(msg.data[i], (uint8_t)i);
    assert_int_equal(transport_recv(t, clock_monotonic_ms() + 5000, &msg), 0);
    assert_int_equal(msg.len, 7);
    buf_cleanup(&msg);
    transport_close(t, 2000);
    server_join(&s);
    assert_int_equal(s.close_code, 1000);
}

static void test_transport_oversized_message_closes_1009(void **state) {
    (void)state;
    struct server s;
    server_start(&s, SEND_OVERSIZED);
    struct transport *t = connect_to(&s, 1000);
    struct buf msg;
    buf_init(&msg);
    assert_int_equal(transport_recv(t, clock_monotonic_ms() + 5000, &msg), STATUS_TOO_LARGE);
    assert_int_equal(msg.len, 0);
    assert_false(transport_is_open(t));
    buf_cleanup(&msg);
    transport_close(t, 0);
    server_join(&s);
    assert_int_equal(s.close_code, 1009);
}

static void test_transport_text_message_closes_1003(void **state) {
    (void)state;
    struct server s;
    server_start(&s, SEND_TEXT);
    struct transport *t = connect_to(&s, 0);
    struct buf msg;
    buf_init(&msg);
    assert_int_equal(transport_recv(t, clock_monotonic_ms() + 5000, &msg), STATUS_TOO_LARGE);
    buf_cleanup(&msg);
    transport_close(t, 0);
    server_join(&s);
    assert_int_equal(s.close_code, 1003);
}

static void test_transport_deadline_keeps_connection(void **state) {
    (void)state;
    struct server s;
    server_start(&s, SEND_NOTHING);
    struct transport *t = connect_to(&s, 0);
    struct buf msg;
    buf_init(&msg);
    int64_t t0 = clock_monotonic_ms();
    assert_int_equal(transport_recv(t, t0 + 300, &msg), STATUS_UNAVAILABLE);
    int64_t took = clock_monotonic_ms() - t0;
    assert_true(took >= 290 && took < 3000);
    assert_true(transport_is_open(t));

    const uint8_t hello[] = {1, 2, 3, 4, 5};
    assert_int_equal(transport_send(t, hello, sizeof hello, clock_monotonic_ms() + 5000), 0);
    assert_int_equal(transport_recv(t, clock_monotonic_ms() + 5000, &msg), 0);
    assert_int_equal(msg.len, sizeof hello);
    assert_memory_equal(msg.data, hello, sizeof hello);
    buf_cleanup(&msg);
    transport_close(t, 2000);
    pthread_join(s.thread, NULL);
    assert_int_equal(s.echoed.len, sizeof hello);
    assert_int_equal(s.close_code, 1000);
    close(s.listen_fd);
    buf_cleanup(&s.echoed);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_reassembles_fragments),
        cmocka_unit_test(test_transport_oversized_message_closes_1009),
        cmocka_unit_test(test_transport_text_message_closes_1003),
        cmocka_unit_test(test_transport_deadline_keeps_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
