/*
 * tests/fuzz/frame_fuzzer.c: libFuzzer target for the frame codec.
 *
 * Every input goes through proto_decode() with the default limits, as a peer's
 * WebSocket message would. A refusal must be BAD_REQUEST or TOO_LARGE with no
 * frame returned. An accepted frame must survive a round trip: it encodes, the
 * encoding decodes again, and encoding that gives the same bytes (the encoding
 * of a decoded frame is canonical). The same input is also offered to
 * proto_entry_decode() with the same promises, since entries share the walker.
 * A broken promise aborts (CHECK), which libFuzzer reports as a crash; ASan
 * reports leaks and memory errors.
 *
 * The re-decode gets the first decode's absolute memory budget: a non-canonical
 * input (padded varints, repeated singular fields) may be far longer than its
 * canonical encoding, and the budget scales with the input length.
 *
 * Built by //tests/fuzz:frame_fuzzer (--config=fuzz) and replayed over the seed
 * corpus by //tests/fuzz:frame_corpus_test. Single-threaded.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/status.h"
#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct proto_limits redecode_limits(size_t first_len) {
    struct proto_limits lim = {
        .memory_factor = 1,
        .memory_slack = PROTO_DEFAULT_MEMORY_FACTOR * first_len + PROTO_DEFAULT_MEMORY_SLACK,
    };
    return lim;
}

static void fuzz_frame(const uint8_t *data, size_t size) {
    Carechat__V1__Frame *f = NULL;
    int rc = proto_decode(NULL, data, size, &f);
    if (rc) {
        CHECK(rc == STATUS_BAD_REQUEST || rc == STATUS_TOO_LARGE);
        CHECK(f == NULL);
        return;
    }
    CHECK(f != NULL);
    CHECK(strcmp(proto_body_name(f), "none") != 0);

    struct buf first, second;
    buf_init(&first);
    buf_init(&second);
    CHECK(proto_encode(f, &first) == 0);
    CHECK(first.len <= size);
    struct proto_limits lim = redecode_limits(size);
    Carechat__V1__Frame *g = NULL;
    CHECK(proto_decode(&lim, first.data, first.len, &g) == 0);
    CHECK(g->request_id == f->request_id);
    CHECK(g->body_case == f->body_case);
    CHECK(proto_encode(g, &second) == 0);
    CHECK(second.len == first.len);
    CHECK(memcmp(second.data, first.data, first.len) == 0);

    proto_free(g);
    proto_free(f);
    buf_cleanup(&second);
    buf_cleanup(&first);
}

static void fuzz_entry(const uint8_t *data, size_t size) {
    Carechat__Entry__V1__Entry *e = NULL;
    int rc = proto_entry_decode(NULL, data, size, &e);
    if (rc) {
        CHECK(rc == STATUS_BAD_REQUEST || rc == STATUS_TOO_LARGE);
        CHECK(e == NULL);
        return;
    }
    struct buf first, second;
    buf_init(&first);
    buf_init(&second);
    CHECK(proto_entry_encode(e, &first) == 0);
    struct proto_limits lim = redecode_limits(size);
    Carechat__Entry__V1__Entry *g = NULL;
    CHECK(proto_entry_decode(&lim, first.data, first.len, &g) == 0);
    CHECK(proto_entry_encode(g, &second) == 0);
    CHECK(second.len == first.len && memcmp(second.data, first.data, first.len) == 0);
    proto_entry_free(g);
    proto_entry_free(e);
    buf_cleanup(&second);
    buf_cleanup(&first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_frame(data, size);
    fuzz_entry(data, size);
    return 0;
}
