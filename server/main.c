/*
 * server/main.c: the carechatd executable.
 *
 * With no arguments it serves ws://127.0.0.1:8080 with its data in
 * ./carechat-data. `carechatd bootstrap ...` creates the first system
 * administrator instead (server/bootstrap.h); `carechatd audit-verify ...`
 * checks the audit chain of a stopped server offline (server/audit_tool.h). Exit status: 0 after
 * --help or a clean stop on SIGTERM/SIGINT, 2 for a bad configuration (message on stderr), 1 when
 * start-up or the event loop fails (logged). Main thread.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include <string.h>

#include "base/log.h"
#include "server/audit_tool.h"
#include "server/bootstrap.h"
#include "server/config.h"
#include "server/server.h"

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "bootstrap") == 0)
        return bootstrap_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "audit-verify") == 0)
        return audit_tool_main(argc - 1, argv + 1);
    struct server_config cfg;
    bool help;
    char err[512];
    if (config_load(argc, argv, &cfg, &help, err, sizeof err) != 0) {
        fprintf(stderr, "carechatd: %s\n", err);
        return 2;
    }
    if (help) {
        fputs(config_usage(), stdout);
        config_cleanup(&cfg);
        return 0;
    }
    log_set_level(cfg.log_level);
    /* A peer that vanishes mid-write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);

    struct server *s;
    int rc = server_open(&cfg, &s);
    if (rc == 0) {
        rc = server_run(s);
        server_close(s);
    }
    config_cleanup(&cfg);
    return rc == 0 ? 0 : 1;
}
