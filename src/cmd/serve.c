/* tally serve: open the store, start the HTTP server, wait for SIGTERM/SIGINT, shut down in
 * order (stop accepting, finish requests in flight, drain the writer, close the database). */
#include <signal.h>
#include <sys/resource.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "cmd/cmd.h"
#include "core/err.h"
#include "core/log.h"
#include "jobs/jobs.h"
#include "notify/dispatch.h"
#include "notify/ws.h"

/* After every durable commit: events may be waiting for sockets and webhooks. */
static void on_commit(void *arg)
{
    struct app *app = arg;
    if (app->ws)
        ws_hub_notify(app->ws);
    if (app->dispatch)
        dispatcher_notify(app->dispatch);
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

static int load_jwt_secret(struct app *app)
{
    if (app->cfg.jwt_secret[0]) {
        str_copy(app->jwt_secret, sizeof app->jwt_secret, app->cfg.jwt_secret);
    } else {
        /* First start without TALLY_JWT_SECRET: generate one and keep it in the database, so
         * tokens survive restarts. INSERT OR IGNORE: a concurrent first start keeps one. */
        struct store_write w = {.op = OP_META_PUT_IF_ABSENT};
        str_copy(w.in.meta.key, sizeof w.in.meta.key, "jwt_secret");
        random_hex(w.in.meta.value, 32);
        int e = store_exec(app->store, &w);
        sodium_memzero(w.in.meta.value, sizeof w.in.meta.value);
        if (e)
            return e;
        str_copy(app->jwt_secret, sizeof app->jwt_secret, w.out.meta.value);
        sodium_memzero(w.out.meta.value, sizeof w.out.meta.value);
    }
    app->jwt_secret_len = strlen(app->jwt_secret);
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    struct opt opts[] = {
        {"--port", "N", "port to listen on (env TALLY_PORT; default 8080; 0 picks a free one)", 0},
        {"--db", "PATH|URL", "a file or postgres:// URL (env TALLY_DB; default ./tally.db)", 0},
        {"--test-clock-offset", "SECONDS",
         "tests only: run the server's clock this many seconds ahead (or behind, if negative)", 0},
        {0},
    };
    const char *pos[1];
    int n_pos;
    bool help;
    if (cli_parse(argc, argv, 2, opts, pos, 0, &n_pos, &help))
        return 2;
    if (help) {
        cli_usage("tally serve [--port N] [--db PATH|URL]",
                  "Run the HTTP API. Applies pending migrations first. Stops cleanly on SIGTERM "
                  "or SIGINT.",
                  opts);
        return 0;
    }
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    int rc = 1;
    if (cli_config(&app->cfg, opts))
        goto out;
    if (opts[2].value) {
        long long off;
        if (config_parse_int(opts[2].value, -3650LL * 86400, 3650LL * 86400, &off)) {
            fprintf(stderr, "tally: --test-clock-offset must be seconds within ten years\n");
            goto out;
        }
        clock_set_offset_ms(off * 1000);
        log_warn("test clock: running %lld seconds off the real time", off);
    }

    /* Block the stop signals in every thread; the main thread waits for them below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    app->started_ms = now_ms();
    /* Every socket is a descriptor: ask for enough for the HTTP and WebSocket caps plus the
     * database and a margin, up to what the system allows. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        rlim_t want = LIMIT_CONNECTIONS + LIMIT_WS_SOCKETS + 1024;
        if (nofile.rlim_cur < want) {
            nofile.rlim_cur = want < nofile.rlim_max ? want : nofile.rlim_max;
            setrlimit(RLIMIT_NOFILE, &nofile);
        }
        if (nofile.rlim_cur < want)
            log_warn("only %llu file descriptors: fewer sockets than the limits allow",
                     (unsigned long long)nofile.rlim_cur);
    }
    char shown[sizeof app->cfg.db]; /* the database as shown: without its password */
    store_url_display(app->cfg.db, shown, sizeof shown);
    if (store_open(app->cfg.db, &app->store)) {
        fprintf(stderr, "tally: cannot open database %s\n", shown);
        goto out;
    }
    if (load_jwt_secret(app)) {
        fprintf(stderr, "tally: cannot load or create the JWT secret\n");
        goto out;
    }
    app->login_account = throttle_new(LIMIT_LOGIN_FAILS_ACCOUNT, LIMIT_LOGIN_WINDOW_S);
    app->login_address = throttle_new(LIMIT_LOGIN_FAILS_ADDRESS, LIMIT_LOGIN_WINDOW_S);
    app->lb = lb_cache_new();
    app->zones = zone_cache_new();
    if (!app->login_account || !app->login_address || !app->lb || !app->zones ||
        workq_new(app->cfg.hash_threads, LIMIT_HASH_QUEUE, &app->hashq))
        goto out;
    struct http_config hc = {
        .bind = app->cfg.bind,
        .port = app->cfg.port,
        .threads = app->cfg.http_threads,
        .conn_timeout_s = app->cfg.conn_timeout_s,
        .log_requests = app->cfg.log_requests,
    };
    if (app->cfg.automation_enabled) {
        struct job_ctx jc = {.store = app->store, .cfg = &app->cfg, .started_ms = app->started_ms};
        char err[512];
        if (scheduler_start(&jc, env_get, &app->scheduler, err, sizeof err)) {
            fprintf(stderr, "tally: invalid configuration: %s\n", err);
            goto out;
        }
    }
    if (ws_hub_new(app->store, &app->ws) || dispatcher_new(app->store, &app->cfg, &app->dispatch))
        goto out;
    store_set_commit_hook(app->store, on_commit, app);
    if (http_server_start(&hc, api_routes, api_routes_n, app, api_authenticate, &app->http))
        goto out;
    log_event("info", "listening",
              json_pack("{s:s, s:i, s:s}", "address", app->cfg.bind, "port",
                        http_server_port(app->http), "db", shown));

    int sig = 0;
    sigwait(&stop, &sig);
    log_event("info", "stopping", json_pack("{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    rc = 0;
out:
    scheduler_stop(app->scheduler); /* a running job finishes its batch first */
    /* Order matters: stop accepting; finish queued hashes while their connections are alive
     * (each resumes its request); then wait for the rest and close; then the database. */
    http_server_quiesce(app->http);
    if (app->hashq)
        workq_free(app->hashq);
    if (app->store)
        store_set_commit_hook(app->store, NULL, NULL);
    dispatcher_free(app->dispatch); /* an attempt in progress finishes; the rest stay pending */
    ws_hub_free(app->ws); /* closes every socket, before libmicrohttpd lets go of them */
    http_server_stop(app->http);
    store_close(app->store);
    throttle_free(app->login_account);
    throttle_free(app->login_address);
    lb_cache_free(app->lb);
    zone_cache_free(app->zones);
    sodium_memzero(app->jwt_secret, sizeof app->jwt_secret);
    sodium_memzero(app->cfg.jwt_secret, sizeof app->cfg.jwt_secret);
    free(app);
    if (rc == 0)
        log_info("stopped cleanly");
    return rc;
}
