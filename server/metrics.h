/*
 * server/metrics.h: carechatd's counters and their Prometheus text rendering
 * (GET /metrics).
 *
 * Counters are atomics, so any thread may bump them; rendering reads each one
 * once (a scrape is not a consistent snapshot across counters, as usual for
 * Prometheus). Journal and storage figures are not kept here: the caller reads
 * them (journal_get_stats(), store_size_bytes()) and passes them to
 * metrics_render().
 */
#ifndef SERVER_METRICS_H
#define SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "storage/journal.h"

/* Frame body types are counted by their field number in carechat.proto's
 * Frame.body oneof (1..METRICS_MAX_BODY); number 0 counts messages that did not
 * decode. */
#define METRICS_MAX_BODY 127
#define METRICS_BODY_UNDECODABLE 0

/* Why a connection was refused before it could send a frame. */
enum metrics_reject {
    METRICS_REJECT_PER_IP = 0, /* --max-conns-per-ip reached */
    METRICS_REJECT_ORIGIN,     /* Origin header not allowed */
    METRICS_REJECT_PROTOCOL,   /* WebSocket upgrade without subprotocol carechat.v1 */
    METRICS_REJECT_SHUTDOWN,   /* the server is stopping */
    METRICS_REJECT_HEADERS,    /* request headers or URI too large (431, 414) */
    METRICS_REJECT_COUNT
};

/* Why the server closed a WebSocket. */
enum metrics_close {
    METRICS_CLOSE_TOO_LARGE = 0, /* message over --max-frame (1009) */
    METRICS_CLOSE_TEXT,          /* a text message (1003) */
    METRICS_CLOSE_AUTH_TIMEOUT,  /* not authenticated in time, or too many requests before (1008) */
    METRICS_CLOSE_BAD_FRAMES,    /* too many undecodable frames in a row (1002) */
    METRICS_CLOSE_SEND_QUEUE,    /* the peer does not read its responses (1008) */
    METRICS_CLOSE_SHUTDOWN,      /* server stopping (1001) */
    METRICS_CLOSE_LOGOUT,        /* after Logout (1000) */
    METRICS_CLOSE_REPLACED,      /* the same device connected again (1000) */
    METRICS_CLOSE_REVOKED,       /* the session ended: expired, device removed (1008) */
    METRICS_CLOSE_BAD_CLOSE,     /* a close frame with a bad code or a 1-byte body (1002) */
    METRICS_CLOSE_COUNT
};

struct metrics_config {
    /* The name of a Frame body ("login", "response") for a field number, or NULL
     * for a number that is not one; used as the `body` label. Required. */
    const char *(*body_name)(unsigned number);
};

struct metrics;

/* Creates zeroed counters. Returns 0 and *out (free with metrics_free()). */
int metrics_new(const struct metrics_config *cfg, struct metrics **out);
/* Accepts NULL. */
void metrics_free(struct metrics *m);

/* A TCP connection was accepted (opened) or closed; a WebSocket was upgraded
 * (ws_opened) or closed; a connection was refused for `reason`. */
void metrics_conn_opened(struct metrics *m);
void metrics_conn_closed(struct metrics *m);
void metrics_ws_opened(struct metrics *m);
void metrics_ws_closed(struct metrics *m);
void metrics_conn_rejected(struct metrics *m, enum metrics_reject reason);
void metrics_ws_closed_by_server(struct metrics *m, enum metrics_close reason);

/* One frame received or sent with the body of field `number` (see above);
 * numbers above METRICS_MAX_BODY count as undecodable. */
void metrics_frame_in(struct metrics *m, unsigned number);
void metrics_frame_out(struct metrics *m, unsigned number);

/* One Response sent with wire status `wire_status` (0..9, carechat.proto's
 * Status); anything else is counted as INTERNAL. */
void metrics_response(struct metrics *m, int wire_status);

/* Current values of two counters (the unit tests read them). */
uint64_t metrics_frames_in(struct metrics *m, unsigned number);
uint64_t metrics_connections_open(struct metrics *m);

/* Appends the Prometheus text exposition (version 0.0.4) of every counter to
 * `out`: a # HELP and a # TYPE line per metric family, then its samples.
 * `journal` (may be NULL before the journal is open) and `store_bytes` come
 * from the storage layer. */
void metrics_render(struct metrics *m, const struct journal_stats *journal, uint64_t store_bytes,
                    struct buf *out);

/* The maintenance's counters (server/maintenance.h). */
struct metrics_retention {
    uint64_t passes;         /* maintenance passes completed */
    uint64_t restricted;     /* accounts moved to RESTRICTED */
    uint64_t purged;         /* accounts moved to PURGED */
    uint64_t keys_destroyed; /* data keys destroyed (crypto-shredding) */
    uint64_t compactions;    /* full compactions after a purge */
    uint64_t swept_invites;  /* expired invitations deleted */
    uint64_t swept_sessions; /* expired sessions deleted */
    uint64_t failures;       /* proposals or key destructions that failed */
    uint64_t breach_overdue; /* breach notices not sent by their deadline */
    int64_t last_pass_ms;    /* wall time of the last completed pass; 0: none */
};

/* Appends the maintenance's families to `out` (after metrics_render()). */
void metrics_render_retention(const struct metrics_retention *r, struct buf *out);

#endif
