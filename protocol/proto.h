/*
 * protocol/proto.h: the frame and entry codec, the only gate between peer bytes
 * and protobuf-c.
 *
 * proto_decode() turns one WebSocket message into a Carechat__V1__Frame
 * (protocol/carechat.pb-c.h) and refuses, before or while unpacking, anything a
 * handler should never see:
 *   - more bytes than max_frame_bytes (TOO_LARGE, checked before any allocation);
 *   - input that costs more heap than memory_factor * len + memory_slack while
 *     being unpacked (every allocation protobuf-c makes goes through a counting
 *     allocator; a hostile frame of empty repeated entries or unknown fields
 *     fails here instead of costing 25x its size);
 *   - in any message at any depth: unknown fields, enum numbers the schema does
 *     not define, strings that are not UTF-8 or contain a NUL byte, strings
 *     longer than max_string_bytes, repeated fields with more than max_repeated
 *     entries;
 *   - a frame without a body, or with request_id 0.
 * Entries (protocol/entry.pb-c.h) get the same checks, with "no kind" in place
 * of "no body"; entries have no request id.
 *
 * Invariants: a decode either returns a fully checked message or leaves nothing
 * allocated; decoded messages are plain protobuf-c structs, read-only for their
 * users, freed only with proto_free()/proto_entry_free() (never with protobuf-c's
 * own free, which does not know the allocator).
 *
 * Lifetime: a decoded Frame lives for one handler call. Handlers copy what they
 * keep (ids into struct id, bytes into their own buffers or into a journal entry)
 * and free the frame before returning; no pointer into a decoded message is
 * stored in a session, queue or cache.
 *
 * Threads: every function is reentrant and keeps no global state; each call
 * works on its arguments only, so any thread may decode or encode.
 */
#ifndef PROTOCOL_PROTO_H
#define PROTOCOL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "protocol/carechat.pb-c.h"
#include "protocol/entry.pb-c.h"

/* The WebSocket subprotocol that carries these frames. */
#define PROTO_SUBPROTOCOL "carechat.v1"

/* Largest frame (one WebSocket message) accepted: 256 KiB, room for a 128 KiB file
 * chunk or a 64 KiB message with 512 key wraps. */
#define PROTO_DEFAULT_MAX_FRAME (256u * 1024u)
/* Most entries in any one repeated field (a DeviceMismatch or a breach notice
 * of 1024 accounts). Handlers apply tighter per-field limits (PROTOCOL.md). */
#define PROTO_DEFAULT_MAX_REPEATED 1024u
/* Longest string field in bytes (an FCM token is at most 4096). */
#define PROTO_DEFAULT_MAX_STRING 4096u
/* Heap a decode may take, as a multiple of the input length, plus
 * PROTO_DEFAULT_MEMORY_SLACK. Valid frames need at most about 6.5x their length
 * (the worst shape is a long list of 16-byte ids; proto_test.c measures it);
 * empty repeated entries or unknown fields would need 30-85x and are refused. */
#define PROTO_DEFAULT_MEMORY_FACTOR 8u
#define PROTO_DEFAULT_MEMORY_SLACK (16u * 1024u)
/* The one entry format version this codec writes and apply understands. */
#define PROTO_ENTRY_VERSION 1u

/* Decoding limits, filled in with designated initialisers. A member left 0
 * takes its PROTO_DEFAULT_* value, so `(struct proto_limits){0}` and NULL both
 * mean "the defaults". */
struct proto_limits {
    size_t max_frame_bytes;  /* input longer than this: STATUS_TOO_LARGE */
    size_t max_repeated;     /* entries in any one repeated field */
    size_t max_string_bytes; /* bytes in any one string field */
    size_t memory_factor;    /* heap a decode takes <= factor * len + slack */
    size_t memory_slack;
};

/* Decodes one frame from the `len` bytes at `data` (borrowed) under `lim`
 * (NULL for the defaults). On success returns 0 and stores in *out a frame the
 * caller frees with proto_free(). Otherwise returns STATUS_TOO_LARGE (input over
 * max_frame_bytes, a string over max_string_bytes, a repeated field over
 * max_repeated, or the memory budget exceeded) or STATUS_BAD_REQUEST (anything
 * else in the list at the top of this file, including truncated input), leaves
 * *out untouched and nothing allocated. Never logs: the caller decides. */
int proto_decode(const struct proto_limits *lim, const uint8_t *data, size_t len,
                 Carechat__V1__Frame **out);

/* proto_decode() that also writes the heap the decode took, in bytes (every
 * block protobuf-c asked for, headers included: what its budget counts), to
 * *peak_bytes, on success and on failure. For tests and metrics. */
int proto_decode_measured(const struct proto_limits *lim, const uint8_t *data, size_t len,
                          Carechat__V1__Frame **out, size_t *peak_bytes);

/* Frees a frame from proto_decode(). Accepts NULL. */
void proto_free(Carechat__V1__Frame *frame);

/* Appends the protobuf encoding of `frame` (borrowed; a decoded frame or one
 * built on the stack with CARECHAT__V1__FRAME__INIT) to `out`. Returns 0, or
 * STATUS_BAD_REQUEST when the frame has no body or request_id 0 (the peer
 * would refuse it), leaving `out` unchanged. The encoder does not check string
 * contents: build frames from valid UTF-8. */
int proto_encode(const Carechat__V1__Frame *frame, struct buf *out);

/* One StoredMessage delivered to many devices, encoded once. The Delivery
 * frames of its devices differ only in the request id, the cursor and the
 * device's KeyWrap (Envelope.wraps), so the rest is packed once and each frame
 * assembled around them: byte for byte what proto_encode() makes of the same
 * frame (canonical, fields in number order). */
struct proto_delivery {
    struct buf head;     /* StoredMessage fields before the envelope (1-6) */
    struct buf env_head; /* Envelope fields before its wraps (1-5) */
    struct buf env_tail; /* Envelope fields after its wraps (7-9) */
    struct buf tail;     /* StoredMessage fields after the envelope (8-13) */
};

/* Packs `sm` (borrowed; with an envelope, whose wraps are ignored) into `d`.
 * Release with proto_delivery_cleanup(). */
void proto_delivery_init(struct proto_delivery *d, const Carechat__V1__StoredMessage *sm);
void proto_delivery_cleanup(struct proto_delivery *d);

/* Appends to `out` the Frame {request_id, Delivery {cursor, message}} of the
 * message with `wrap` (NULL: none) as its only KeyWrap. `request_id` is not
 * 0 and `cursor` not empty. */
void proto_delivery_frame(const struct proto_delivery *d, uint64_t request_id,
                          const uint8_t *cursor, size_t cursor_len,
                          const Carechat__V1__KeyWrap *wrap, struct buf *out);

/* Makes `frame` a Response to `request_id`: initialises both structs (the
 * caller owns them, typically on its stack), links `resp` into `frame`, sets
 * the wire status for `status` (0 or a negative STATUS_*, mapped with
 * status_wire()) and `detail` (borrowed; a constant UTF-8 text free of personal
 * data, or NULL for none). The caller may then set a result in `resp` and call
 * proto_encode(); both structs must outlive that call. */
void proto_response_frame(Carechat__V1__Frame *frame, Carechat__V1__Response *resp,
                          uint64_t request_id, int status, const char *detail);

/* The schema name of the frame's body ("send", "delivery", ...), or "none" when
 * it has none. A constant string, for logs and metrics. */
const char *proto_body_name(const Carechat__V1__Frame *frame);

/* The bytes field `name` (e.g. "conversation_id") of the frame's body message:
 * true with *out pointing into `frame` (borrowed), false when the body has no
 * bytes field of that name (or the frame no body). */
bool proto_body_bytes(const Carechat__V1__Frame *frame, const char *name, ProtobufCBinaryData *out);
/* The string field `name` of f's body (borrowed), or NULL when it has none. */
const char *proto_body_string(const Carechat__V1__Frame *frame, const char *name);

/* Entries: the same contract as proto_decode()/proto_free()/proto_encode(), for
 * protocol/entry.proto. An entry must have a kind; its version is apply's to
 * check (PROTO_ENTRY_VERSION). */
int proto_entry_decode(const struct proto_limits *lim, const uint8_t *data, size_t len,
                       Carechat__Entry__V1__Entry **out);
void proto_entry_free(Carechat__Entry__V1__Entry *entry);
/* Returns 0, or STATUS_BAD_REQUEST for an entry without a kind (`out` unchanged). */
int proto_entry_encode(const Carechat__Entry__V1__Entry *entry, struct buf *out);

/* End-to-end content (carechat.proto MessageContent): the plaintext clients
 * exchange inside envelopes, which the server never sees. Decodes the `len`
 * bytes at `data` with proto_decode()'s checks (sizes before allocation, the
 * memory budget, UTF-8 without NUL, string and repeated limits) under the
 * defaults with `max_len` as the input limit, except that unknown fields and
 * undefined enum numbers are accepted: a newer client's content still
 * decodes, and the caller decides what a kind it does not know means. Returns
 * 0 and *out (free with proto_content_free()), or STATUS_TOO_LARGE /
 * STATUS_BAD_REQUEST leaving nothing allocated. */
int proto_content_decode(const uint8_t *data, size_t len, size_t max_len,
                         Carechat__V1__MessageContent **out);
/* Accepts NULL. */
void proto_content_free(Carechat__V1__MessageContent *content);
/* Appends the encoding of `content` (built from valid UTF-8 strings) to `out`. */
void proto_content_encode(const Carechat__V1__MessageContent *content, struct buf *out);

#endif
