/*
 * tests/bench/server_mode.h: carechat-bench --mode server (issue 14), the
 * server's own cost per message, per fan-out delivery and per connection,
 * with a load driver that costs little next to it.
 *
 * What it does, in order (server_mode.c has the details):
 *   setup     accounts through libcarechat (invitations, registrations), the
 *             1:1 conversations and one care-team channel; then every Send
 *             of every phase sealed ahead of time (real sizes, real HPKE
 *             wraps for every device of the conversation, real Ed25519
 *             signatures, distinct client_msg_ids), encoded and framed;
 *   connect   one receiving connection per account (Authenticate with the
 *             registration's token, Sync), on the lean driver (wire.h);
 *   1:1       `pairs` senders each keeping `window` Sends in flight until
 *             `messages` are answered and delivered;
 *   fan-out   one sender to a channel of `fanout` receiving members,
 *             `fanout_window` Sends in flight, `fanout_messages` in all;
 *   paced     `paced` 1:1 messages at `rate` a second: send-to-delivery
 *             latency;
 *   idle      `idle` more connections, each authenticated and then quiet:
 *             RSS and server CPU per connection set-up;
 *   paced     the paced run again with the idle connections open.
 * Server CPU comes from /proc/PID/stat around each phase, the group-commit
 * figures from GET /metrics. The server runs on one CPU, the driver on
 * another, when there are two.
 *
 * Output: one block per phase, then exactly these four lines, last:
 *   server_cpu_us_per_msg=N
 *   server_cpu_us_per_delivery=N
 *   idle_p99_ms=N
 *   kb_per_idle_conn=N
 *
 * Thread: the main thread (it starts its own worker threads for the setup
 * and the sealing, and joins them).
 */
#ifndef TESTS_BENCH_SERVER_MODE_H
#define TESTS_BENCH_SERVER_MODE_H

#include <stddef.h>

#define SERVER_MODE_MAX_PAIRS 64
#define SERVER_MODE_MAX_WINDOW 256
#define SERVER_MODE_MAX_MESSAGES 200000
#define SERVER_MODE_MAX_FANOUT 255 /* a channel holds 256 accounts over its life */
#define SERVER_MODE_MAX_IDLE 100000
#define SERVER_MODE_MAX_RATE 10000

struct server_mode_options {
    const char *carechatd; /* NULL: from the runfiles */
    int pairs;             /* 1:1 sender/recipient pairs at saturation */
    int window;            /* Sends in flight per 1:1 sender */
    int messages;          /* 1:1 messages at saturation, all senders together */
    int fanout;            /* receiving members of the channel */
    int fanout_messages;   /* messages to the channel */
    int fanout_window;     /* Sends in flight to the channel */
    int idle;              /* idle authenticated connections */
    int rate;              /* paced messages a second */
    int paced;             /* messages of each paced run */
    size_t size;           /* text bytes per message */
    int timeout_s;         /* deadline of the whole run */
};

/* The defaults the issue asks for. */
#define SERVER_MODE_DEFAULTS                                                                       \
    {                                                                                              \
        .pairs = 16, .window = 4, .messages = 20000, .fanout = 100, .fanout_messages = 300,        \
        .fanout_window = 4, .idle = 5000, .rate = 200, .paced = 2000, .size = 512,                 \
        .timeout_s = 600,                                                                          \
    }

/* Runs everything above against a carechatd it starts in a fresh data
 * directory under `tmp` (which the caller removes afterwards), printing the
 * figures on stdout and failures on stderr. Returns 0 when every phase
 * completed (every Send answered OK, every message delivered), 1 otherwise
 * (no final lines then). */
int server_mode_run(const struct server_mode_options *o, const char *tmp);

#endif
