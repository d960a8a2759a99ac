/*
 * tests/fuzz/replay_main.c: replays a fuzz corpus through LLVMFuzzerTestOneInput
 * without libFuzzer, so a plain gcc cc_test checks the corpus in CI.
 *
 *   frame_corpus_test [DIR]
 *
 * DIR defaults to the corpus in the test's runfiles
 * ($TEST_SRCDIR/$TEST_WORKSPACE/tests/fuzz/corpus/frame). Every file goes
 * through the fuzz target (whose CHECKs abort on a broken promise). On top of
 * that the file name states what the codec must do: "valid_*" must decode,
 * "bad_*" must be refused; other names (inputs the fuzzer found) only have to
 * pass the target. Fails when the directory holds fewer than MIN_FILES seeds
 * (a lost data dependency must not pass as an empty run). Single-threaded;
 * bounded by MAX_FILES files of at most MAX_FILE bytes.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "protocol/proto.h"

#define MIN_FILES 40
#define MAX_FILES 100000
#define MAX_FILE (4u * 1024u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_file(const char *path, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *data = xmalloc(MAX_FILE + 1);
    size_t n = fread(data, 1, MAX_FILE + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > MAX_FILE) {
        free(data);
        return -1;
    }
    *out = data;
    *len = n;
    return 0;
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int main(int argc, char **argv) {
    char dir[4096];
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    } else {
        const char *srcdir = getenv("TEST_SRCDIR");
        const char *ws = getenv("TEST_WORKSPACE");
        if (!srcdir || !ws) {
            fprintf(stderr, "replay: give a corpus directory (or run under bazel test)\n");
            return 2;
        }
        snprintf(dir, sizeof dir, "%s/%s/tests/fuzz/corpus/frame", srcdir, ws);
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        return 1;
    }
    int files = 0, valid = 0, bad = 0, failures = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && files < MAX_FILES) {
        if (de->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        uint8_t *data = NULL;
        size_t len = 0;
        if (read_file(path, &data, &len) != 0) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            failures++;
            continue;
        }
        files++;
        LLVMFuzzerTestOneInput(data, len);

        Carechat__V1__Frame *f = NULL;
        int rc = proto_decode(NULL, data, len, &f);
        proto_free(f);
        if (starts_with(de->d_name, "valid_")) {
            valid++;
            if (rc != 0) {
                fprintf(stderr, "replay: %s refused (%d), expected to decode\n", de->d_name, rc);
                failures++;
            }
        } else if (starts_with(de->d_name, "bad_")) {
            bad++;
            if (rc == 0) {
                fprintf(stderr, "replay: %s decoded, expected a refusal\n", de->d_name);
                failures++;
            }
        }
        free(data);
    }
    closedir(d);
    printf("replay: %d files (%d valid, %d bad), %d failures\n", files, valid, bad, failures);
    if (files < MIN_FILES) {
        fprintf(stderr, "replay: only %d files in %s, expected at least %d\n", files, dir,
                MIN_FILES);
        return 1;
    }
    return failures ? 1 : 0;
}
