/*
 * server/server.h: carechatd's top level: owns the store, the journal, the
 * listener (ws.h) and the metrics, and runs them from start to clean stop.
 *
 *   server_open:  block SIGTERM/SIGINT (every thread inherits the mask; one
 *                 signal thread waits for them), store_open of an existing
 *                 database (STORE_OPEN: never created here, see
 *                 server/init_tool.h), read the server identity ServerInit
 *                 left, journal_open (apply = apply_entry, wake =
 *                 lws_cancel_service through ws_wake), then listen
 *   server_run:   the lws loop until a signal: stop accepting, close every
 *                 WebSocket with 1001 (bounded wait), then return
 *   server_close: journal_close (writes what was appended), close the
 *                 listener, store_close (RocksDB shut down cleanly)
 *
 * Thread: the main thread, which becomes the lws loop thread.
 */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include "server/config.h"

struct server;

/* Starts everything described above with `cfg` (borrowed; outlives the
 * server). Returns 0 and *out, or the status of the step that failed (logged):
 * from the store (storage/store.h): STATUS_NOT_FOUND (the database or key store
 * is missing or incomplete; also a database without its identity),
 * STATUS_BAD_REQUEST (a master key or key directory refused), STATUS_CORRUPT or
 * STATUS_IO; later steps (journal, handlers, listener) fail with STATUS_IO or
 * STATUS_INTERNAL, never with one of the first two. */
int server_open(const struct server_config *cfg, struct server **out);

/* Serves until SIGTERM or SIGINT, then stops accepting and closes the
 * WebSockets. Returns 0 after a signal, or STATUS_IO when the event loop
 * failed. */
int server_run(struct server *s);

/* Finishes pending writes, closes the listener and the database, frees the
 * server. Accepts NULL. */
void server_close(struct server *s);

#endif
