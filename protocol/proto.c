/*
 * protocol/proto.c: decoding and encoding of frames and entries with protobuf-c.
 *
 * Every decode runs protobuf-c's unpacker with a counting allocator whose budget
 * is proportional to the input, then walks the unpacked message through its
 * descriptors (generically: no per-message code) to refuse what protobuf-c lets
 * through: unknown fields, undefined enum numbers, strings that are not UTF-8 or
 * hold a NUL, and oversized strings or repeated fields.
 *
 * Invariant: every block protobuf-c gets from us carries a header with its size
 * and a magic number, so a string's true length (which protobuf-c's
 * NUL-terminated char * loses) can be read back: protobuf-c 1.4.1 allocates
 * each unpacked string separately with exactly its length plus one.
 * proto_test.c pins that behaviour (an embedded NUL must be refused).
 *
 * The blocks of one decode come from an arena: a few chunks, released (and
 * wiped) together when the message is freed, so that a frame of a hundred
 * wraps costs two or three allocations instead of hundreds. protobuf-c
 * allocates the message itself first, so it sits right after the arena in
 * the first chunk, which is how freeing the message finds its arena.
 *
 * Reentrant; no global state. Runs on whichever thread calls it.
 */
#include "protocol/proto.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/status.h"
#include "base/utf8.h"

#define ALLOC_MAGIC 0x70726f746f616c63ull /* "protoalc" */

struct alloc_hdr {
    size_t size;
    uint64_t magic;
};

_Static_assert(sizeof(struct alloc_hdr) % alignof(max_align_t) == 0,
               "the header keeps blocks aligned for any type");

/* A chunk of an arena: `size` bytes of data, the first `used` handed out. */
struct chunk {
    struct chunk *next;
    size_t size, used;
    alignas(max_align_t) uint8_t data[];
};

#define ARENA_MAGIC 0x70726f746f617265ull /* "protoare" */
#define ARENA_MIN_CHUNK 512

/* One decode's arena, at the start of its first chunk's data. `used` counts
 * every block handed out with its header (freed blocks stay in the arena until
 * it is released): the heap the decode holds, bounded by `limit`. */
struct arena {
    uint64_t magic;
    struct chunk *chunks; /* the newest first */
    size_t used, limit;
    bool refused; /* an allocation was refused: the decode fails with TOO_LARGE */
};

static size_t round_block(size_t n) {
    return (n + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t);
}

/* Where the first block of an arena's first chunk starts: after the arena. */
static size_t arena_space(void) {
    return round_block(sizeof(struct arena));
}

static struct chunk *chunk_new(size_t size) {
    struct chunk *c = xmalloc(sizeof *c + size);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

/* An arena for decoding `len` bytes (a buffer in memory, so far below
 * SIZE_MAX) within `limit`. Its first chunk holds the input's size again and
 * more, which most decodes need in all; each later one is at least twice the
 * one before, so the chunks hold at most about three times what the budget
 * lets protobuf-c take. */
static struct arena *arena_new(size_t len, size_t limit) {
    struct chunk *c = chunk_new(arena_space() + round_block(len) + ARENA_MIN_CHUNK);
    struct arena *a = (struct arena *)c->data;
    c->used = arena_space();
    *a = (struct arena){.magic = ARENA_MAGIC, .chunks = c, .limit = limit};
    return a;
}

/* Wipes and frees every chunk, the arena's own included: decoded frames carry
 * passwords, tokens and codes, and nothing of them stays in freed memory (a
 * core dump, a later allocation). */
static void arena_release(struct arena *a) {
    for (struct chunk *c = a->chunks, *next; c; c = next) {
        next = c->next;
        explicit_bzero(c->data, c->used);
        free(c);
    }
}

static void *arena_alloc(void *data, size_t size) {
    struct arena *a = data;
    size_t total = sizeof(struct alloc_hdr) + size;
    /* Far above any budget a real limit gives; it keeps the roundings and
     * the doubling below from wrapping under a limit of SIZE_MAX. */
    if (size > SIZE_MAX / 4 || total > a->limit - a->used) {
        a->refused = true;
        return NULL;
    }
    a->used += total;
    size_t need = round_block(total);
    struct chunk *c = a->chunks;
    if (need > c->size - c->used) {
        /* A new current chunk at least twice the last; the old one's rest is
         * not used again. */
        struct chunk *n = chunk_new(need > 2 * c->size ? need : 2 * c->size);
        n->next = c;
        a->chunks = c = n;
    }
    struct alloc_hdr *h = (struct alloc_hdr *)(c->data + c->used);
    c->used += need;
    h->size = size;
    h->magic = ALLOC_MAGIC;
    return h + 1;
}

/* protobuf-c frees its scratch and, on failure, what it built: all of it
 * stays in the arena until it is released. */
static void arena_free(void *data, void *ptr) {
    (void)data;
    (void)ptr;
}

/* The arena a decoded message (the first block of its first chunk) is in. */
static struct arena *arena_of(const ProtobufCMessage *msg) {
    const struct alloc_hdr *h = (const struct alloc_hdr *)msg - 1;
    struct arena *a = (struct arena *)((uint8_t *)h - arena_space());
    CHECK(h->magic == ALLOC_MAGIC && a->magic == ARENA_MAGIC);
    return a;
}

static void message_free(const ProtobufCMessage *msg) {
    if (msg)
        arena_release(arena_of(msg));
}

/* The size protobuf-c asked for when it allocated `p` (one of our blocks). */
static size_t block_size(const void *p) {
    const struct alloc_hdr *h = (const struct alloc_hdr *)p - 1;
    CHECK(h->magic == ALLOC_MAGIC);
    return h->size;
}

static struct proto_limits resolve_limits(const struct proto_limits *lim) {
    struct proto_limits r = {0};
    if (lim)
        r = *lim;
    if (!r.max_frame_bytes)
        r.max_frame_bytes = PROTO_DEFAULT_MAX_FRAME;
    if (!r.max_repeated)
        r.max_repeated = PROTO_DEFAULT_MAX_REPEATED;
    if (!r.max_string_bytes)
        r.max_string_bytes = PROTO_DEFAULT_MAX_STRING;
    if (!r.memory_factor)
        r.memory_factor = PROTO_DEFAULT_MEMORY_FACTOR;
    if (!r.memory_slack)
        r.memory_slack = PROTO_DEFAULT_MEMORY_SLACK;
    return r;
}

/* Bytes one element of a repeated field of `type` takes in its array. */
static size_t element_size(ProtobufCType type) {
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    CHECK(!"unknown protobuf-c field type");
    return 0;
}

static int check_message(const ProtobufCMessage *msg, const struct proto_limits *lim, bool strict);

static int check_string(const ProtobufCFieldDescriptor *f, const char *s,
                        const struct proto_limits *lim) {
    /* Fields absent from the input point at the shared empty default. */
    if (!s || s == protobuf_c_empty_string || s == f->default_value)
        return 0;
    size_t n = block_size(s) - 1;
    if (n > lim->max_string_bytes)
        return STATUS_TOO_LARGE;
    if (memchr(s, '\0', n))
        return STATUS_BAD_REQUEST;
    if (!utf8_valid((const uint8_t *)s, n))
        return STATUS_BAD_REQUEST;
    return 0;
}

/* Checks one value of field `f` stored at `elem` (undefined enum numbers only
 * when `strict`). */
static int check_value(const ProtobufCFieldDescriptor *f, const void *elem,
                       const struct proto_limits *lim, bool strict) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_ENUM: {
        int v;
        memcpy(&v, elem, sizeof v);
        if (strict && !protobuf_c_enum_descriptor_get_value(f->descriptor, v))
            return STATUS_BAD_REQUEST;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s;
        memcpy(&s, elem, sizeof s);
        return check_string(f, s, lim);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m;
        memcpy(&m, elem, sizeof m);
        return m ? check_message(m, lim, strict) : 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        /* Every repeated bytes field of the schema holds ids or hashes: an
         * empty element is malformed, and protobuf-c would pack it again by
         * memcpy from a NULL pointer. */
        ProtobufCBinaryData b;
        memcpy(&b, elem, sizeof b);
        return f->label == PROTOBUF_C_LABEL_REPEATED && b.len == 0 ? STATUS_BAD_REQUEST : 0;
    }
    default:
        return 0;
    }
}

/* The recursive walk. The schema has no recursive messages, so the depth is
 * bounded by the schema, not by the input. Not `strict`: unknown fields and
 * enum numbers pass (their heap is still within the decode's budget). */
static int check_message(const ProtobufCMessage *msg, const struct proto_limits *lim, bool strict) {
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *)msg;
    if (strict && msg->n_unknown_fields > 0)
        return STATUS_BAD_REQUEST;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const char *member = base + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, base + f->quantifier_offset, sizeof which);
            if (which != f->id)
                continue;
        }
        int rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            const char *arr;
            memcpy(&n, base + f->quantifier_offset, sizeof n);
            memcpy(&arr, member, sizeof arr);
            if (n > lim->max_repeated)
                return STATUS_TOO_LARGE;
            size_t step = element_size(f->type);
            for (size_t k = 0; k < n; k++) {
                rc = check_value(f, arr + k * step, lim, strict);
                if (rc)
                    return rc;
            }
        } else {
            rc = check_value(f, member, lim, strict);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Unpacks `desc` from the input within the budget and checks it (`strict`:
 * see check_message()). On success the message is in *out (freed with
 * message_free()); on failure nothing stays allocated. */
static int decode_checked(const ProtobufCMessageDescriptor *desc, const struct proto_limits *lim_in,
                          bool strict, const uint8_t *data, size_t len, ProtobufCMessage **out,
                          size_t *peak_bytes) {
    struct proto_limits lim = resolve_limits(lim_in);
    if (peak_bytes)
        *peak_bytes = 0;
    if (len > lim.max_frame_bytes)
        return STATUS_TOO_LARGE;
    if (len > 0 && !data)
        return STATUS_BAD_REQUEST;

    /* len <= max_frame_bytes, so only absurd limits could overflow: saturate. */
    size_t limit;
    if (lim.memory_factor > (SIZE_MAX - lim.memory_slack) / (len ? len : 1))
        limit = SIZE_MAX;
    else
        limit = lim.memory_factor * len + lim.memory_slack;
    struct arena *a = arena_new(len, limit);
    ProtobufCAllocator alloc = {
        .alloc = arena_alloc,
        .free = arena_free,
        .allocator_data = a,
    };
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &alloc, len, data);
    if (peak_bytes)
        *peak_bytes = a->used;
    int rc = msg          ? check_message(msg, &lim, strict)
             : a->refused ? STATUS_TOO_LARGE
                          : STATUS_BAD_REQUEST;
    if (rc) {
        arena_release(a);
        return rc;
    }
    CHECK(arena_of(msg) == a);
    *out = msg;
    return 0;
}

static void encode_message(const ProtobufCMessage *msg, struct buf *out) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    buf_reserve(out, n);
    size_t written = protobuf_c_message_pack(msg, out->data + out->len);
    CHECK(written == n);
    out->len += n;
    out->data[out->len] = '\0';
}

int proto_decode_measured(const struct proto_limits *lim, const uint8_t *data, size_t len,
                          Carechat__V1__Frame **out, size_t *peak_bytes) {
    ProtobufCMessage *msg = NULL;
    int rc =
        decode_checked(&carechat__v1__frame__descriptor, lim, true, data, len, &msg, peak_bytes);
    if (rc)
        return rc;
    Carechat__V1__Frame *frame = (Carechat__V1__Frame *)msg;
    if (frame->body_case == CARECHAT__V1__FRAME__BODY__NOT_SET || frame->request_id == 0) {
        proto_free(frame);
        return STATUS_BAD_REQUEST;
    }
    *out = frame;
    return 0;
}

int proto_decode(const struct proto_limits *lim, const uint8_t *data, size_t len,
                 Carechat__V1__Frame **out) {
    return proto_decode_measured(lim, data, len, out, NULL);
}

void proto_free(Carechat__V1__Frame *frame) {
    message_free(frame ? &frame->base : NULL);
}

int proto_encode(const Carechat__V1__Frame *frame, struct buf *out) {
    if (frame->body_case == CARECHAT__V1__FRAME__BODY__NOT_SET || frame->request_id == 0)
        return STATUS_BAD_REQUEST;
    encode_message(&frame->base, out);
    return 0;
}

/* Wire tags (field number << 3 | 2, length-delimited) of the parts
 * proto_delivery_frame() assembles; Frame.request_id is a varint (1 << 3). */
#define TAG_FRAME_REQUEST_ID 0x08
#define TAG_FRAME_DELIVERY ((uint64_t)CARECHAT__V1__FRAME__BODY_DELIVERY << 3 | 2)
#define TAG_DELIVERY_CURSOR 0x0a
#define TAG_DELIVERY_MESSAGE 0x12
#define TAG_STORED_ENVELOPE 0x3a
#define TAG_ENVELOPE_WRAPS 0x32

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A length-delimited field: its tag, length and bytes (len: of what follows). */
static void append_field_head(struct buf *out, uint64_t tag, size_t len) {
    buf_append_varint(out, tag);
    buf_append_varint(out, len);
}

void proto_delivery_init(struct proto_delivery *d, const Carechat__V1__StoredMessage *sm) {
    buf_init(&d->head);
    buf_init(&d->env_head);
    buf_init(&d->env_tail);
    buf_init(&d->tail);
    /* Each part is protobuf-c's packing of the message with the other parts'
     * fields at their defaults, which it leaves out. */
    Carechat__V1__StoredMessage part = *sm;
    part.envelope = NULL;
    part.client_msg_id = (ProtobufCBinaryData){0, NULL};
    part.recalled_at = 0;
    part.n_recipients = 0;
    part.recall_signer_device_id = (ProtobufCBinaryData){0, NULL};
    part.recall_signature = (ProtobufCBinaryData){0, NULL};
    part.recall_signer_account_id = (ProtobufCBinaryData){0, NULL};
    encode_message(&part.base, &d->head);
    part = *sm;
    part.message_id = (ProtobufCBinaryData){0, NULL};
    part.conversation_id = (ProtobufCBinaryData){0, NULL};
    part.seq = 0;
    part.sender_account_id = (ProtobufCBinaryData){0, NULL};
    part.sent_at = 0;
    part.urgent = false;
    part.envelope = NULL;
    encode_message(&part.base, &d->tail);
    Carechat__V1__Envelope env = *sm->envelope;
    env.n_wraps = 0;
    env.signature = (ProtobufCBinaryData){0, NULL};
    env.sent_at = 0;
    env.counter = 0;
    encode_message(&env.base, &d->env_head);
    env = *sm->envelope;
    env.version = 0;
    env.sender_device_id = (ProtobufCBinaryData){0, NULL};
    env.header = (ProtobufCBinaryData){0, NULL};
    env.body = (ProtobufCBinaryData){0, NULL};
    env.body_nonce = (ProtobufCBinaryData){0, NULL};
    env.n_wraps = 0;
    encode_message(&env.base, &d->env_tail);
}

void proto_delivery_cleanup(struct proto_delivery *d) {
    buf_cleanup(&d->head);
    buf_cleanup(&d->env_head);
    buf_cleanup(&d->env_tail);
    buf_cleanup(&d->tail);
}

void proto_delivery_frame(const struct proto_delivery *d, uint64_t request_id,
                          const uint8_t *cursor, size_t cursor_len,
                          const Carechat__V1__KeyWrap *wrap, struct buf *out) {
    uint8_t w[128];
    size_t w_len = 0, env_len = d->env_head.len + d->env_tail.len;
    if (wrap) {
        w_len = protobuf_c_message_get_packed_size(&wrap->base);
        CHECK(w_len <= sizeof w);
        protobuf_c_message_pack(&wrap->base, w);
        env_len += 1 + varint_len(w_len) + w_len;
    }
    size_t sm_len = d->head.len + 1 + varint_len(env_len) + env_len + d->tail.len;
    size_t del_len = 1 + varint_len(cursor_len) + cursor_len + 1 + varint_len(sm_len) + sm_len;
    buf_reserve(out, 1 + varint_len(request_id) + varint_len(TAG_FRAME_DELIVERY) +
                         varint_len(del_len) + del_len);
    buf_append_u8(out, TAG_FRAME_REQUEST_ID);
    buf_append_varint(out, request_id);
    append_field_head(out, TAG_FRAME_DELIVERY, del_len);
    append_field_head(out, TAG_DELIVERY_CURSOR, cursor_len);
    buf_append(out, cursor, cursor_len);
    append_field_head(out, TAG_DELIVERY_MESSAGE, sm_len);
    buf_append(out, d->head.data, d->head.len);
    append_field_head(out, TAG_STORED_ENVELOPE, env_len);
    buf_append(out, d->env_head.data, d->env_head.len);
    if (wrap) {
        append_field_head(out, TAG_ENVELOPE_WRAPS, w_len);
        buf_append(out, w, w_len);
    }
    buf_append(out, d->env_tail.data, d->env_tail.len);
    buf_append(out, d->tail.data, d->tail.len);
}

void proto_response_frame(Carechat__V1__Frame *frame, Carechat__V1__Response *resp,
                          uint64_t request_id, int status, const char *detail) {
    carechat__v1__frame__init(frame);
    carechat__v1__response__init(resp);
    resp->status = (Carechat__V1__Status)status_wire(status);
    /* protobuf-c's structs are not const-correct; the encoder only reads. */
    resp->detail = (char *)(detail ? detail : "");
    frame->request_id = request_id;
    frame->body_case = CARECHAT__V1__FRAME__BODY_RESPONSE;
    frame->response = resp;
}

const char *proto_body_name(const Carechat__V1__Frame *frame) {
    if (!frame || frame->body_case == CARECHAT__V1__FRAME__BODY__NOT_SET)
        return "none";
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &carechat__v1__frame__descriptor, (unsigned)frame->body_case);
    return f ? f->name : "none";
}

/* The field `name` of f's body, when it has one of `type` (not repeated);
 * its bytes are at the returned pointer. */
static const void *body_field(const Carechat__V1__Frame *frame, const char *name,
                              ProtobufCType type) {
    if (!frame || frame->body_case == CARECHAT__V1__FRAME__BODY__NOT_SET)
        return NULL;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &carechat__v1__frame__descriptor, (unsigned)frame->body_case);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    const ProtobufCMessage *body = *(ProtobufCMessage *const *)((const char *)frame + f->offset);
    if (!body)
        return NULL;
    const ProtobufCFieldDescriptor *b =
        protobuf_c_message_descriptor_get_field_by_name(body->descriptor, name);
    if (!b || b->type != type || b->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return (const char *)body + b->offset;
}

bool proto_body_bytes(const Carechat__V1__Frame *frame, const char *name,
                      ProtobufCBinaryData *out) {
    const void *field = body_field(frame, name, PROTOBUF_C_TYPE_BYTES);
    if (field)
        *out = *(const ProtobufCBinaryData *)field;
    return field != NULL;
}

const char *proto_body_string(const Carechat__V1__Frame *frame, const char *name) {
    const void *field = body_field(frame, name, PROTOBUF_C_TYPE_STRING);
    return field ? *(char *const *)field : NULL;
}

int proto_entry_decode(const struct proto_limits *lim, const uint8_t *data, size_t len,
                       Carechat__Entry__V1__Entry **out) {
    ProtobufCMessage *msg = NULL;
    int rc =
        decode_checked(&carechat__entry__v1__entry__descriptor, lim, true, data, len, &msg, NULL);
    if (rc)
        return rc;
    Carechat__Entry__V1__Entry *entry = (Carechat__Entry__V1__Entry *)msg;
    if (entry->kind_case == CARECHAT__ENTRY__V1__ENTRY__KIND__NOT_SET) {
        proto_entry_free(entry);
        return STATUS_BAD_REQUEST;
    }
    *out = entry;
    return 0;
}

void proto_entry_free(Carechat__Entry__V1__Entry *entry) {
    message_free(entry ? &entry->base : NULL);
}

int proto_entry_encode(const Carechat__Entry__V1__Entry *entry, struct buf *out) {
    if (entry->kind_case == CARECHAT__ENTRY__V1__ENTRY__KIND__NOT_SET)
        return STATUS_BAD_REQUEST;
    encode_message(&entry->base, out);
    return 0;
}

int proto_content_decode(const uint8_t *data, size_t len, size_t max_len,
                         Carechat__V1__MessageContent **out) {
    const struct proto_limits lim = {.max_frame_bytes = max_len};
    ProtobufCMessage *msg = NULL;
    int rc = decode_checked(&carechat__v1__message_content__descriptor, &lim, false, data, len,
                            &msg, NULL);
    if (rc)
        return rc;
    *out = (Carechat__V1__MessageContent *)msg;
    return 0;
}

void proto_content_free(Carechat__V1__MessageContent *content) {
    message_free(content ? &content->base : NULL);
}

void proto_content_encode(const Carechat__V1__MessageContent *content, struct buf *out) {
    encode_message(&content->base, out);
}
