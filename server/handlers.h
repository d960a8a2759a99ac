/*
 * server/handlers.h: carechatd's request handlers for accounts, invitations,
 * sessions, devices, conversations, messages and their delivery, and the
 * registry of authenticated connections.
 *
 * Each connection (server/conn.h) gets per-connection state through the
 * struct conn_handler that handlers_conn_handler() fills in. Every request
 * has one row in the request table (server/requests.c) and runs through the
 * request core (server/request.h draws the path): authenticated, authorized
 * and validated here, on the lws loop thread; a request that changes state
 * then becomes an entry (protocol/entry.proto, with every id, token, hash and
 * the time chosen here) that goes through journal_append(); apply
 * (server/apply.h) re-checks it and writes the records; the completion
 * answers the request. Password hashing and verification go to the password
 * worker (server/pwhash.h) first. Reads go straight to the store, bounded,
 * once their access record is durable.
 *
 * The files of the handlers library call each other in one direction:
 *   handlers.c (dispatch, lifecycle) -> requests.c (the table)
 *     -> the topic files: sessions.c, devices.c, conversations.c,
 *        messaging.c, channels.c, admin.c, audit_queries.c
 *       -> delivery.c (inboxes to connections) -> request.c (the core)
 *
 * Sessions: a Login, Register or Authenticate that succeeds moves the
 * connection to AUTHENTICATED and replaces any other connection of the same
 * device (ReplacedElsewhere, close 1000). Every authenticated request first
 * checks the session's absolute and idle expiry (expired: UNAUTHENTICATED,
 * SessionRevoked EXPIRED, close 1008) and pushes the idle expiry forward (made
 * durable with a SessionTouch entry at most once a minute); handlers_tick()
 * logs idle connections off when their session ends. Logout ends the
 * session durably, answers OK and closes with 1000; RemoveDevice closes the
 * removed device's connections (SessionRevoked DEVICE_REMOVED, 1008).
 *
 * Threads: everything on the lws loop thread, except that handlers_new and
 * handlers_free run on the main thread (which is the loop thread in carechatd).
 */
#ifndef SERVER_HANDLERS_H
#define SERVER_HANDLERS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/id.h"
#include "server/config.h"
#include "server/conn.h"
#include "server/http.h"
#include "storage/journal.h"
#include "storage/store.h"

struct handlers_config {
    const struct server_config *config; /* required, borrowed: limits and expiries */
    struct store *store;                /* required, borrowed */
    struct journal *journal;            /* required, borrowed */
    /* Wakes the loop thread (any thread may call it); the loop thread then
     * calls handlers_poll(). */
    void (*wake)(void *ctx);
    void *wake_ctx;
    /* Email can be sent (the notifier's email channel works): invitations
     * then go by email. Without it, Invite is refused unless
     * config->dev_invite_codes. */
    bool mail;
};

struct handlers;

/* Starts the password worker and the rate limiters. Returns 0 and *out (free
 * with handlers_free()), STATUS_BAD_REQUEST for Argon2 limits below the floor,
 * or STATUS_INTERNAL. */
int handlers_new(const struct handlers_config *cfg, struct handlers **out);

/* Stops the password worker, drops the operations still waiting for it (their
 * requests get no answer: call it after the connections are closed) and
 * frees. Accepts NULL. */
void handlers_free(struct handlers *h);

/* Fills in the conn_handler to put into each connection's conn_config. */
void handlers_conn_handler(struct handlers *h, struct conn_handler *out);

/* Runs the continuations of finished password operations and delivers the
 * typing hints waiting on the bus. Loop thread, after a wake. */
void handlers_poll(struct handlers *h);

/* Ends the sessions of authenticated connections whose absolute or idle expiry
 * has passed (SessionRevoked EXPIRED, close 1008), so an idle connection is
 * logged off without waiting for its next request. Loop thread, about once a
 * second. */
void handlers_tick(struct handlers *h);

/* The server is about to close every connection: departures are not the
 * devices' own (no "device left" push for them). Loop thread. */
void handlers_draining(struct handlers *h);

/* Whether `device` has an authenticated connection now (the outbox's
 * presence check, server/outbox.h). `h` is a struct handlers. */
bool handlers_device_online(void *h, const struct id *device);

/* The server is stopping and will take no more requests: writes what must
 * be written while the journal still runs (the counts of coalesced reads,
 * server/coalesce.h). Loop thread. */
void handlers_stopping(struct handlers *h);

/* Appends the handlers' own metrics (file transfer) to a Prometheus text
 * page. */
void handlers_render_metrics(struct handlers *h, struct buf *out);

/* Fills in the handler of the HTTP requests under /files/ (tus, downloads;
 * server/http.h) for ws.c. */
void handlers_http_handler(struct handlers *h, struct http_handler *out);

#endif
