/*
 * tests/rawclient.h: one carechat.v1 client for the integration tests that
 * speak frames directly (accounts_test, messaging_test, authz_test) instead of
 * through libcarechat: a WebSocket connection (tests/wsclient.h) with request
 * numbering, a request/response call that answers and keeps the server's own
 * requests arriving meanwhile, and the session and account steps every such
 * test repeats (login, register, invite, authenticate, a new account with one
 * device, a message with dummy ciphertext).
 *
 *   struct rawc *c = rawc_open(h);
 *   struct raw_device d;
 *   raw_device_make(&d);
 *   rawc_login_ok(c, "root@clinic.example", password, &d, NULL, NULL);
 *   Carechat__V1__Frame *r = rawc_rpc(c, &frame);   // the Response; proto_free() it
 *   rawc_free(c);
 *
 * Invariant: every server request this client has read but not handed to the
 * test is answered OK and waits in the client's queue (rawc_next_request()).
 * Every wait has a deadline (RAWC_TIMEOUT_MS unless given). Failures fail the
 * running cmocka test (they do not return). Single-threaded test code.
 */
#ifndef TESTS_RAWCLIENT_H
#define TESTS_RAWCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/proto.h"
#include "tests/harness.h"
#include "tests/rawproto.h"
#include "tests/wsclient.h"

/* How long rawc_rpc() waits for its Response. */
#define RAWC_TIMEOUT_MS 10000
/* Server requests a client keeps before the test takes them. */
#define RAWC_MAX_QUEUED 256
/* Devices per account (the server's cap). */
#define RAWC_MAX_DEVICES 6
/* An invitation code and its terminator fit. */
#define RAWC_CODE_LEN 65
/* KeyWraps in one message built here. */
#define RAWC_MAX_WRAPS 16

/* A connection. `ws` and `next_id` are there for tests that send frames of
 * their own (rawc_send_request() numbers them); the queue is the client's. */
struct rawc {
    struct wsc *ws;
    uint64_t next_id; /* the last request id used */
    Carechat__V1__Frame *queued[RAWC_MAX_QUEUED];
    size_t n_queued;
};

/* An account as a test holds it: its id, its email and its devices (the
 * first `n_dev` of `dev` are registered). */
struct rawc_user {
    uint8_t account[16];
    char email[64];
    struct raw_device dev[RAWC_MAX_DEVICES];
    int n_dev;
};

/* A device a message's key is wrapped for, and the encryption key id used. */
struct rawc_wrap_to {
    const uint8_t *device_id;
    uint32_t key_id;
};

/* Connects to the server `h` with subprotocol carechat.v1 and returns the
 * connection (free it with rawc_free()); fails the test unless the upgrade
 * is answered 101. */
struct rawc *rawc_open(const struct harness *h);
/* rawc_open() from the local address `source` (127.0.0.x plays a client on
 * another network; NULL: any). */
struct rawc *rawc_open_from(const struct harness *h, const char *source);

/* Closes the socket and frees the connection and the frames still queued.
 * Accepts NULL. */
void rawc_free(struct rawc *c);

/* Encodes and sends `f` as it is (its request_id included). */
void rawc_send_frame(struct rawc *c, const Carechat__V1__Frame *f);

/* Gives `f` the next request id, sends it and returns that id; the Response
 * is left for the test to read (rawc_recv()). */
uint64_t rawc_send_request(struct rawc *c, Carechat__V1__Frame *f);

/* The next frame read from the socket (not from the queue; not answered),
 * decoded (the caller frees it with proto_free()), or NULL when none came
 * within `timeout_ms`. Fails the test when the connection closed or sent
 * anything but a binary message. */
Carechat__V1__Frame *rawc_recv(struct rawc *c, int timeout_ms);

/* Sends an OK Response to the server's request `request_id`. */
void rawc_answer_ok(struct rawc *c, uint64_t request_id);

/* Sends `f` with the next request id and returns the Response to it (the
 * caller frees it with proto_free()). Server requests that arrive first are
 * answered OK and queued. Fails the test when no Response came within
 * RAWC_TIMEOUT_MS or a Response to another request came. */
Carechat__V1__Frame *rawc_rpc(struct rawc *c, Carechat__V1__Frame *f);

/* The oldest queued server request or else the next one arriving within
 * `timeout_ms` (answered OK), or NULL when none came. The caller frees it
 * with proto_free(). Fails the test when a Response arrives instead. */
Carechat__V1__Frame *rawc_next_request(struct rawc *c, int timeout_ms);

/* Login with `email` and `password` and device `d`: its id when it has one,
 * else a new device with d's keys. Returns the Response (caller frees); on OK
 * it checks that a SessionResult came and copies its device id into d->id. */
Carechat__V1__Frame *rawc_login(struct rawc *c, const char *email, const char *password,
                                struct raw_device *d);

/* rawc_login() that must answer OK; copies the account id into account[16]
 * and the session token into token[32] when these are not NULL. */
void rawc_login_ok(struct rawc *c, const char *email, const char *password, struct raw_device *d,
                   uint8_t *account, uint8_t *token);

/* Opens a connection to `h` and logs in with rawc_login_ok(); returns the
 * connection (the caller frees it with rawc_free()). */
struct rawc *rawc_open_login(const struct harness *h, const char *email, const char *password,
                             struct raw_device *d, uint8_t *account);

/* Authenticate with `token` (32 bytes) for `device_id`. Returns the Response
 * (caller frees). */
Carechat__V1__Frame *rawc_authenticate(struct rawc *c, const uint8_t token[32],
                                       const uint8_t device_id[16]);

/* Invites `email` as `role`. Returns the wire status of the answer; on OK the
 * code is in code[RAWC_CODE_LEN] and its expiry in *expires_at (may be NULL). */
int rawc_invite(struct rawc *c, const char *email, Carechat__V1__Role role, char *code,
                int64_t *expires_at);

/* Register with invitation `code` and d's keys as its first device. Returns the
 * Response (caller frees); on OK copies the new device's id into d->id. */
Carechat__V1__Frame *rawc_register(struct rawc *c, const char *code, const char *email,
                                   const char *password, const char *birth_date,
                                   const char *display_name, struct raw_device *d);

/* `inviter` (logged in) invites a new account of `role` with a fresh email
 * ("userN@clinic.example", unique in this process), which registers with
 * `password` and one new device on a connection of its own (then closed).
 * Fills all of `u`. */
void rawc_make_user(const struct harness *h, struct rawc *inviter, Carechat__V1__Role role,
                    const char *password, struct rawc_user *u);

/* Adds a new device to `u` (a Login with new keys on a connection of its own,
 * then closed). */
void rawc_add_device(const struct harness *h, struct rawc_user *u, const char *password);

/* The storage a Send frame built by rawc_build_send() points into: keep it
 * alive (and unmoved) until the frame is sent. */
struct rawc_send_buf {
    Carechat__V1__Send send;
    Carechat__V1__Envelope env;
    Carechat__V1__KeyWrap wraps[RAWC_MAX_WRAPS];
    Carechat__V1__KeyWrap *wp[RAWC_MAX_WRAPS];
    uint8_t nonce[24], sig[64], enc[RAWC_MAX_WRAPS][32], wk[RAWC_MAX_WRAPS][48];
};

/* Fills `f` (initialised here) with a Send in `conv` whose body is `text`
 * (dummy ciphertext: random nonce, wraps and signature of the right sizes)
 * with one KeyWrap for each of the `n_to` devices in `to` (at most
 * RAWC_MAX_WRAPS), from `sender_device`, with idempotency key `cmid` (16
 * bytes) and Send.urgent = `urgent`. `f` points into `b` and at the caller's
 * ids and text, which must outlive it. */
void rawc_build_send(Carechat__V1__Frame *f, struct rawc_send_buf *b, const uint8_t conv[16],
                     const uint8_t cmid[16], const uint8_t sender_device[16],
                     const struct rawc_wrap_to *to, size_t n_to, const char *text, bool urgent);

/* Sends the message rawc_build_send() describes and returns the Response
 * (caller frees). */
Carechat__V1__Frame *rawc_send_msg(struct rawc *c, const uint8_t conv[16], const uint8_t cmid[16],
                                   const uint8_t sender_device[16], const struct rawc_wrap_to *to,
                                   size_t n_to, const char *text, bool urgent);

/* History of `conv` (the newest page) as `c`: returns the status answered
 * (negated wire status, 0 for OK) and sets *found when a message's body holds
 * `text`. */
int rawc_history_contains(struct rawc *c, const uint8_t conv[16], const char *text, bool *found);

#endif
