/*
 * server/main.c: the carechatd executable.
 *
 *   carechatd [options]              serve (ws://127.0.0.1:8080, data in
 *                                    ./carechat-data by default)
 *   carechatd init [options]         create a new data directory (init_tool.h)
 *   carechatd bootstrap [options]    create the first system administrator
 *                                    (bootstrap.h)
 *   carechatd audit-verify [options] check the audit chain of a stopped server
 *                                    offline (audit_tool.h)
 *   carechatd invite [options]       invite someone offline, without mail
 *                                    (invite_tool.h)
 *
 *   carechatd backup [options]       a consistent backup while serving
 *                                    (backup_tool.h)
 *   carechatd restore [options]      restore one into a new data directory
 *   carechatd rotate-master-key --new-master-key FILE [options]
 *                                    re-wrap every data key under a new master
 *                                    key, on a stopped server (rekey_tool.h)
 *   carechatd --version              print the version
 *
 * Serving needs a data directory `init` created: carechatd never creates one,
 * so a lost or unmounted database is refused rather than replaced by an empty
 * one. Exit status (enum config_exit): 0 after --help or a clean stop on
 * SIGTERM/SIGINT; 2 for a refused configuration (message on stderr, or logged
 * for key and TLS files); 4 when the data directory is missing or incomplete
 * (logged: what is missing); 1 when start-up or the event loop fails (logged).
 *
 * Before anything else, for every subcommand: no core dumps (RLIMIT_CORE 0,
 * soft and hard) and not dumpable (PR_SET_DUMPABLE 0, which also keeps other
 * processes of the same user from ptrace-attaching), since the memory holds
 * passwords, session tokens, unwrapped data keys and the master key.
 * Main thread.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "base/log.h"
#include "base/version.h"
#include "server/audit_tool.h"
#include "server/backup_tool.h"
#include "server/bootstrap.h"
#include "server/config.h"
#include "server/init_tool.h"
#include "server/invite_tool.h"
#include "server/rekey_tool.h"
#include "server/server.h"

static int serve(const struct server_config *cfg) {
    /* A peer that vanishes mid-write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    struct server *s;
    int rc = server_open(cfg, &s);
    if (rc != 0)
        return config_exit_status(rc);
    rc = server_run(s);
    server_close(s);
    return rc == 0 ? CONFIG_EXIT_OK : CONFIG_EXIT_FAILED;
}

/* Returns 0, or -1 with a message on stderr. */
static int forbid_core_dumps(void) {
    const struct rlimit none = {.rlim_cur = 0, .rlim_max = 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        perror("carechatd: cannot forbid core dumps");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (forbid_core_dumps() != 0)
        return CONFIG_EXIT_FAILED;
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("carechatd %s\n", CARECHAT_VERSION);
        return CONFIG_EXIT_OK;
    }
    if (argc > 1 && strcmp(argv[1], "init") == 0)
        return init_tool_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "bootstrap") == 0)
        return bootstrap_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "invite") == 0)
        return invite_tool_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "audit-verify") == 0)
        return audit_tool_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "backup") == 0)
        return backup_tool_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "restore") == 0)
        return restore_tool_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "rotate-master-key") == 0)
        return rekey_tool_main(argc - 1, argv + 1);
    return config_run(argc, argv, NULL, config_usage(), serve);
}
