/*
 * storage/presence.h: which devices are online, as a hint for notifications
 * (push and email only go to devices that are not connected).
 *
 * The single-node implementation keeps a table in memory: a device is online
 * while it has at least one open connection (a second connection of the same
 * device replaces the first, and the first's close must not make it look
 * offline). Since when a device has been offline is kept too, for the email
 * digest ("still unread and the user is offline"). After a restart every device
 * is offline until it reconnects, which is the truth. On several nodes this
 * becomes a shared table with per-node leases; callers stay the same.
 *
 * Memory: one small entry per device seen since start (devices are registered
 * and authenticated before they can connect, so this is bounded by them).
 *
 * Threads: every function is thread-safe.
 */
#ifndef STORAGE_PRESENCE_H
#define STORAGE_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/id.h"

struct presence_info {
    bool online;
    uint32_t connections; /* open connections of the device */
    int64_t since_ms;     /* when it last went online or offline (clock_now() time) */
};

struct presence;

/* Returns 0 and *out (free with presence_free()). */
int presence_new(struct presence **out);

/* Frees the table. Accepts NULL. */
void presence_free(struct presence *p);

/* Records that `device` opened a connection at `now_ms`. */
void presence_connect(struct presence *p, const struct id *device, int64_t now_ms);

/* Records that one connection of `device` closed at `now_ms`; it goes offline
 * when it was the last. Returns 0, or STATUS_NOT_FOUND when the device had no
 * open connection (a bug in the caller; the table is left as it was). */
int presence_disconnect(struct presence *p, const struct id *device, int64_t now_ms);

/* True while the device has an open connection. */
bool presence_is_online(struct presence *p, const struct id *device);

/* Copies what is known about `device` into *out. Returns 0, or STATUS_NOT_FOUND
 * for a device never seen since start (offline, since unknown). */
int presence_get(struct presence *p, const struct id *device, struct presence_info *out);

/* Number of devices online now, for /metrics. */
uint64_t presence_online_count(struct presence *p);

#endif
