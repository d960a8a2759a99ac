"""Compiler flags shared by every CareChat target (STYLE.md: defined once, here)."""

# Our own code: C11, every warning we rely on, and warnings are errors.
COPTS = [
    "-std=c11",
    "-D_DEFAULT_SOURCE",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Wno-unused-parameter",
    "-fno-strict-aliasing",
]

# Code we did not write (protoc-c output): C11 without -Werror.
GENERATED_COPTS = [
    "-std=c11",
    "-D_DEFAULT_SOURCE",
]

# cmocka unit tests: the same flags (cmocka's test functions are static, so
# -Wmissing-prototypes still holds).
TEST_COPTS = COPTS
