/*
 * bench_http_hello.c — a bare libmicrohttpd hello-world, the baseline of
 * bench/auth_bench.sh: the daemon flags vbatch's http_server_start uses
 * (internal thread pool, one thread per pool slot), no routing, no
 * metrics, no log, one fixed JSON answer to every request.
 *
 *   bench_http_hello PORT [THREADS]    (THREADS default 8, as `vbatch serve`
 *                                       picks on a 2-CPU machine)
 *
 * Prints "listening: PORT" and serves until SIGINT/SIGTERM.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum MHD_Result hello(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                             const char *version, const char *data, size_t *size, void **con_cls)
{
    static const char body[] = "{\"hello\":\"world\"}";
    (void)cls, (void)url, (void)method, (void)version, (void)data, (void)size;
    if (!*con_cls) { /* answer on the second call, as vbatch does (DEPENDENCIES.md) */
        *con_cls = (void *)1;
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_http_hello PORT [THREADS]\n");
        return 2;
    }
    unsigned port = (unsigned)atoi(argv[1]), threads = argc > 2 ? (unsigned)atoi(argv[2]) : 8;
    sigset_t sigs;
    int sig;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, (uint16_t)port, NULL, NULL, hello, NULL,
                                            MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bench_http_hello: cannot listen on port %u\n", port);
        return 1;
    }
    printf("listening: %u\n", MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    fflush(stdout);
    while (sigwait(&sigs, &sig) != 0)
        ;
    MHD_stop_daemon(d);
    return 0;
}
