/* Pieces of `twoway demo`: child processes, the built-in backend, a small HTTPS client. */
#ifndef TW_CLI_DEMO_H
#define TW_CLI_DEMO_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "util/err.h"

/* A twoway child process whose output goes to a log file. */
struct demo_proc {
    pid_t pid;
    char log[512];
};

/* Path of this executable, so the demo runs the same twoway it is. */
const char *demo_self(void);

/* Start `twoway ARGS...` with stdout+stderr appended to log and wait (bounded by timeout_ms)
 * until the log holds a line containing ready_word; that line is copied to line. */
int demo_spawn(struct demo_proc *p, char *const args[], const char *log, const char *ready_word,
               int timeout_ms, char *line, size_t cap, struct tw_err *err) TW_MUST_CHECK;

/* SIGTERM, wait up to 5 s, then SIGKILL. Accepts a proc that never started (pid 0). */
void demo_stop(struct demo_proc *p);

/* Run `twoway ARGS...` to completion, capturing stdout+stderr (truncated to cap). Returns the
 * exit status, or -1 when it could not run. */
int demo_run(char *const args[], char *out, size_t cap);

/* `twoway demo backend --listen ADDR:PORT`: an HTTP service that greets the client whose
 * certificate the gateway forwarded (RFC 9440 Client-Cert). */
int demo_backend_main(int argc, char **argv);

/* A client connection to the gateway. */
struct demo_client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

/* Connect to 127.0.0.1:port and handshake as a client of server_name, presenting cert/key when
 * given. A refusal that TLS 1.3 delivers after the handshake shows up in demo_client_get. */
int demo_client_open(struct demo_client *c, int port, const char *ca, const char *cert,
                     const char *key, struct tw_err *err) TW_MUST_CHECK;
/* GET path on the open connection (keep-alive); the response body goes to body. */
int demo_client_get(struct demo_client *c, const char *path, int *status, char *body, size_t cap,
                    struct tw_err *err) TW_MUST_CHECK;
/* Wait up to timeout_ms for the server to close the connection: 1 closed, 0 still open. */
int demo_client_wait_closed(struct demo_client *c, int timeout_ms);
void demo_client_close(struct demo_client *c);

#endif
