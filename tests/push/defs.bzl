"""push_peer_test: a Node script of tests/push/ run against push_tool."""

def push_peer_test(name, script, size = "small", **kwargs):
    """Runs `node script push_tool` through run_peer_test.sh.

    Needs node on PATH and --test_env=CARECHAT_NODE_MODULES (set by .bazelrc
    and bazel/test.sh); fails, never skips, without them.
    """
    native.sh_test(
        name = name,
        size = size,
        srcs = ["run_peer_test.sh"],
        args = [
            "$(location %s)" % script,
            "$(location :push_tool)",
        ],
        data = [
            script,
            "peers.mjs",
            ":push_tool",
        ],
        **kwargs
    )
