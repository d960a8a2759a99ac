/*
 * tests/fuzz/make_corpus.c: writes the seed corpus of the frame fuzzer.
 *
 *   bazel run //tests/fuzz:make_corpus -- $PWD/tests/fuzz/corpus/frame
 *
 * Valid seeds ("valid_<body>[_<choice>].bin") are built generically from the
 * generated descriptors: for every body of Frame, a message with every field
 * set (ids of 16 bytes, short UTF-8 strings, the highest defined enum value,
 * two entries per repeated field), once per member of its largest oneof, so
 * that every request, result and delivery item has a seed and new messages get
 * theirs without editing this file. Invalid seeds ("bad_<what>.bin") are written
 * byte by byte; each is a kind of input proto_decode() must refuse.
 * frame_corpus_test replays the directory and holds both promises.
 *
 * A one-shot tool, single-threaded; it exits non-zero on any failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/check.h"
#include "base/status.h"
#include "protocol/proto.h"

/* Everything the generator allocates, freed at the end of each seed. */
#define MAX_BLOCKS 4096
static void *blocks[MAX_BLOCKS];
static size_t n_blocks;

static void *gen_alloc(size_t n) {
    CHECK(n_blocks < MAX_BLOCKS);
    void *p = xcalloc(1, n ? n : 1);
    blocks[n_blocks++] = p;
    return p;
}

static void gen_free_all(void) {
    for (size_t i = 0; i < n_blocks; i++)
        free(blocks[i]);
    n_blocks = 0;
}

static const char *out_dir;
static int n_written;

static void write_seed(const char *name, const uint8_t *data, size_t len) {
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s.bin", out_dir, name);
    CHECK(n > 0 && (size_t)n < sizeof path);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "make_corpus: cannot create %s: %s\n", path, strerror(errno));
        exit(1);
    }
    CHECK(fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
    n_written++;
}

/* The oneof a field belongs to is named by its quantifier offset (its case
 * member). Returns how many members that oneof has and the field's index among
 * them. */
static unsigned oneof_position(const ProtobufCMessageDescriptor *d,
                               const ProtobufCFieldDescriptor *f, unsigned *size) {
    unsigned pos = 0;
    *size = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *g = &d->fields[i];
        if (!(g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            g->quantifier_offset != f->quantifier_offset)
            continue;
        if (g == f)
            pos = *size;
        (*size)++;
    }
    return pos;
}

static ProtobufCMessage *gen_message(const ProtobufCMessageDescriptor *d, unsigned choice);

static size_t value_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

/* A plausible value of field `f` for element `k`, written at `at`. */
static void gen_value(const ProtobufCFieldDescriptor *f, void *at, unsigned k) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: {
        int64_t v = 1795883143000 + f->id + k; /* a time in 2026 */
        memcpy(at, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_UINT64: {
        uint64_t v = 1000u * f->id + k + 1;
        memcpy(at, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_UINT32: {
        uint32_t v = f->id + k + 1;
        memcpy(at, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v = 1;
        memcpy(at, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        int v = e->values[e->n_values - 1].value;
        memcpy(at, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        /* Multi-byte UTF-8 so the validator has something to chew on. */
        static const char *const samples[] = {"caf\xc3\xa9", "x", "1990-02-03",
                                              "\xe2\x82\xac \xf0\x9f\x93\xb1"};
        const char *s = samples[(f->id + k) % 4];
        char *copy = gen_alloc(strlen(s) + 1);
        memcpy(copy, s, strlen(s));
        memcpy(at, &copy, sizeof copy);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData bd;
        bd.len = 16;
        bd.data = gen_alloc(bd.len);
        for (size_t i = 0; i < bd.len; i++)
            bd.data[i] = (uint8_t)(f->id * 16 + i + k);
        memcpy(at, &bd, sizeof bd);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *m = gen_message(f->descriptor, 0);
        memcpy(at, &m, sizeof m);
        break;
    }
    default:
        CHECK(!"field type not used by carechat.proto");
    }
}

static ProtobufCMessage *gen_message(const ProtobufCMessageDescriptor *d, unsigned choice) {
    ProtobufCMessage *m = gen_alloc(d->sizeof_message);
    d->message_init(m);
    char *base = (char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            unsigned size;
            if (oneof_position(d, f, &size) != choice % size)
                continue;
            memcpy(base + f->quantifier_offset, &f->id, sizeof f->id);
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = 2;
            size_t step = value_size(f->type);
            char *arr = gen_alloc(n * step);
            for (unsigned k = 0; k < n; k++)
                gen_value(f, arr + k * step, k);
            memcpy(base + f->quantifier_offset, &n, sizeof n);
            memcpy(base + f->offset, &arr, sizeof arr);
        } else {
            gen_value(f, base + f->offset, 0);
        }
    }
    return m;
}

/* The largest oneof of `d` (1 when it has none): how many variants to write. */
static unsigned variants(const ProtobufCMessageDescriptor *d) {
    unsigned most = 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        unsigned size;
        if (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            oneof_position(d, &d->fields[i], &size);
            if (size > most)
                most = size;
        }
    }
    return most;
}

/* The name of the oneof member `choice` selects in `d` (the largest oneof). */
static const char *choice_name(const ProtobufCMessageDescriptor *d, unsigned choice) {
    unsigned most = variants(d);
    for (unsigned i = 0; i < d->n_fields; i++) {
        unsigned size;
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && oneof_position(d, f, &size) == choice &&
            size == most)
            return f->name;
    }
    return "none";
}

static void write_valid_seeds(void) {
    const ProtobufCMessageDescriptor *fd = &carechat__v1__frame__descriptor;
    uint64_t rid = 1;
    for (unsigned i = 0; i < fd->n_fields; i++) {
        const ProtobufCFieldDescriptor *body = &fd->fields[i];
        if (!(body->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        const ProtobufCMessageDescriptor *bd = body->descriptor;
        unsigned nv = variants(bd);
        for (unsigned v = 0; v < nv; v++) {
            Carechat__V1__Frame frame = CARECHAT__V1__FRAME__INIT;
            frame.request_id = rid++;
            frame.body_case = (Carechat__V1__Frame__BodyCase)body->id;
            ProtobufCMessage *m = gen_message(bd, v);
            memcpy((char *)&frame + body->offset, &m, sizeof m);
            struct buf b;
            buf_init(&b);
            CHECK(proto_encode(&frame, &b) == 0);
            Carechat__V1__Frame *check = NULL;
            CHECK(proto_decode(NULL, b.data, b.len, &check) == 0);
            proto_free(check);
            char name[256];
            if (nv > 1)
                snprintf(name, sizeof name, "valid_%s_%s", body->name, choice_name(bd, v));
            else
                snprintf(name, sizeof name, "valid_%s", body->name);
            write_seed(name, b.data, b.len);
            buf_cleanup(&b);
            gen_free_all();
        }
    }
}

static void put_varint(struct buf *b, uint32_t field, uint64_t v) {
    buf_append_varint(b, (uint64_t)field << 3);
    buf_append_varint(b, v);
}

static void put_len(struct buf *b, uint32_t field, const void *data, size_t n) {
    buf_append_varint(b, ((uint64_t)field << 3) | 2);
    buf_append_varint(b, n);
    buf_append(b, data, n);
}

/* Writes `name` for a frame {request_id rid, field body: inner} and checks that
 * the codec refuses it. */
static void bad_frame(const char *name, uint64_t rid, uint32_t body, const struct buf *inner) {
    struct buf b;
    buf_init(&b);
    if (rid)
        put_varint(&b, 1, rid);
    put_len(&b, body, inner->data, inner->len);
    Carechat__V1__Frame *f = NULL;
    CHECK(proto_decode(NULL, b.data, b.len, &f) != 0);
    write_seed(name, b.data, b.len);
    buf_cleanup(&b);
}

static void bad_bytes(const char *name, const uint8_t *data, size_t len) {
    Carechat__V1__Frame *f = NULL;
    CHECK(proto_decode(NULL, data, len, &f) != 0);
    write_seed(name, data, len);
}

static void write_bad_seeds(void) {
    static const uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    struct buf in, mid, b;
    buf_init(&in);
    buf_init(&mid);

    bad_bytes("bad_empty", (const uint8_t *)"", 0);
    const uint8_t only_id[] = {0x08, 0x05};
    bad_bytes("bad_no_body", only_id, sizeof only_id);
    const uint8_t zero_tag[] = {0x08, 0x05, 0x00};
    bad_bytes("bad_zero_tag", zero_tag, sizeof zero_tag);
    const uint8_t endless[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    bad_bytes("bad_endless_varint", endless, sizeof endless);
    const uint8_t overrun[] = {0x08, 0x01, 0x12, 0x7f, 0x08, 0x00};
    bad_bytes("bad_length_overrun", overrun, sizeof overrun);
    const uint8_t wrong_wire[] = {0x08, 0x01, 0x10, 0x01}; /* response as a varint */
    bad_bytes("bad_wrong_wire_type", wrong_wire, sizeof wrong_wire);
    const uint8_t group[] = {0x08, 0x01, 0x6b, 0x6c}; /* field 13 as start/end group */
    bad_bytes("bad_group_wire_type", group, sizeof group);

    /* Logout with request id 0 (explicit). */
    buf_init(&b);
    put_varint(&b, 1, 0);
    put_len(&b, 13, "", 0);
    bad_bytes("bad_request_id_zero", b.data, b.len);
    buf_cleanup(&b);

    /* Unknown field at the top, and three levels down. */
    buf_init(&b);
    put_varint(&b, 1, 9);
    put_len(&b, 13, "", 0);
    put_varint(&b, 99, 1);
    bad_bytes("bad_unknown_field_top", b.data, b.len);
    buf_cleanup(&b);
    put_varint(&mid, 1, 1);
    put_len(&mid, 15, "zz", 2);
    put_len(&in, 1, id, 16);
    put_len(&in, 3, mid.data, mid.len);
    bad_frame("bad_unknown_field_in_envelope", 9, 40, &in);

    /* Enum numbers the schema does not define. */
    buf_reset(&in);
    put_varint(&in, 1, 10);
    bad_frame("bad_enum_status", 9, 2, &in);
    buf_reset(&in);
    put_len(&in, 1, "a@b.example", 11);
    put_varint(&in, 2, 5);
    bad_frame("bad_enum_role", 9, 14, &in);

    /* Strings: invalid UTF-8 nested in Register.device.label, an embedded NUL,
     * and an FCM token over the 4096-byte limit. */
    buf_reset(&mid);
    put_len(&mid, 2, "\xed\xa0\x80", 3);
    buf_reset(&in);
    put_len(&in, 6, mid.data, mid.len);
    bad_frame("bad_utf8_surrogate_nested", 9, 12, &in);
    buf_reset(&in);
    put_len(&in, 1, "a@b\0.example", 12);
    bad_frame("bad_string_nul", 9, 10, &in);
    static char token[4097];
    memset(token, 't', sizeof token);
    buf_reset(&mid);
    put_len(&mid, 1, token, sizeof token);
    buf_reset(&in);
    put_len(&in, 2, mid.data, mid.len);
    bad_frame("bad_string_too_long", 9, 62, &in);

    /* 1025 account ids: one over the repeated limit. */
    buf_reset(&in);
    for (int i = 0; i < 1025; i++)
        put_len(&in, 1, id, 16);
    bad_frame("bad_repeated_too_many", 9, 21, &in);

    /* 4000 empty key wraps: 8 KB on the wire, ~340 KB unpacked: over budget. */
    buf_reset(&mid);
    for (int i = 0; i < 4000; i++)
        put_len(&mid, 6, "", 0);
    buf_reset(&in);
    put_len(&in, 3, mid.data, mid.len);
    bad_frame("bad_memory_budget_empty_wraps", 9, 40, &in);

    buf_cleanup(&mid);
    buf_cleanup(&in);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIR\n");
        return 2;
    }
    out_dir = argv[1];
    write_valid_seeds();
    write_bad_seeds();
    printf("make_corpus: %d seeds written to %s\n", n_written, out_dir);
    return 0;
}
