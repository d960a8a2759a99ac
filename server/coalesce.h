/*
 * server/coalesce.h: repeated identical reads share one access record.
 *
 * Every read of patient or account data is audited before it is answered
 * (server/request.h). A read that repeats another (the same request from the
 * same device and address) within the window of the first one's durable
 * record is answered under that record; when the window ends one more record
 * says how many repeats it stood for (AuditRecord.repeated). The handlers
 * coalesce only while the store accepts writes, so the count can be written. So every access is
 * covered by a durable record before it is answered, yet a client cannot turn a read loop into a
 * synced write per read. At a clean stop the counts are written; after a
 * crash the last window's count is lost, while its first record still names
 * the access and its time.
 *
 * Windows live in a fixed-size table; a window evicted early is reported like
 * an ended one. Thread: the lws loop thread. Times come from the caller.
 */
#ifndef SERVER_COALESCE_H
#define SERVER_COALESCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"
#include "server/records.h"

/* What makes two accesses the same. Zero it before filling it in. */
struct coalesce_key {
    struct id actor, device, patient;
    bool has_patient;
    uint32_t action;
    uint8_t object[REC_AUDIT_OBJECT_MAX];
    uint32_t object_len;
    char source[REC_AUDIT_SOURCE_MAX + 1];
    uint8_t request[32]; /* SHA-256 of the request (its id aside) */
};

/* A window's repeats, when it ends: emit(ctx, key, repeated). */
typedef void (*coalesce_emit_fn)(void *ctx, const struct coalesce_key *k, uint32_t repeated);

struct coalesce;

/* A table of at most `max_windows` open windows (0: 1024) of `window_ms`
 * each (0: no coalescing, every read its own record). */
void coalesce_new(size_t max_windows, int64_t window_ms, coalesce_emit_fn emit, void *ctx,
                  struct coalesce **out);
/* Reports every window's repeats (emit), then frees. Accepts NULL. */
void coalesce_free(struct coalesce *c);

/* True when an access `k` at `now_ms` falls in an open window, whose durable
 * record covers it (then it is counted); false when it needs a record of its
 * own. */
bool coalesce_covered(struct coalesce *c, const struct coalesce_key *k, int64_t now_ms);
/* The access record of `k` is durable at `now_ms`: opens its window (a window
 * of the same key that had ended is reported first). */
void coalesce_opened(struct coalesce *c, const struct coalesce_key *k, int64_t now_ms);
/* Reports and closes the windows that ended by `now_ms`. */
void coalesce_tick(struct coalesce *c, int64_t now_ms);

#endif
