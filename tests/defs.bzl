"""Macros for tests/BUILD: the integration tests against the real carechatd."""

load("@rules_cc//cc:defs.bzl", "cc_test")
load("//bazel:copts.bzl", "TEST_COPTS")

def integration_test(name, srcs, deps = [], data = [], size = "medium", **kwargs):
    """A cmocka test that starts the real carechatd through tests/harness.

    Adds TEST_COPTS, carechatd to the runfiles (beside `data`), and the
    harness, //base and cmocka to `deps`; other attributes (timeout, ...)
    pass through.
    """
    cc_test(
        name = name,
        size = size,
        srcs = srcs,
        copts = TEST_COPTS,
        data = ["//server:carechatd"] + data,
        deps = [
            ":harness",
            "//base",
            "//bazel:cmocka",
        ] + deps,
        **kwargs
    )

def cli_sh_test(name, srcs, data = [], **kwargs):
    """A shell test of the carechat CLI against the real carechatd.

    It sources tests/lib.sh; carechat and carechatd are in its runfiles.
    """
    native.sh_test(
        name = name,
        size = "medium",
        srcs = srcs,
        data = [
            "lib.sh",
            "//client:carechat",
            "//server:carechatd",
        ] + data,
        **kwargs
    )
