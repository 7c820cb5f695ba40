/* twoway: two-way SSL (mutual TLS) toolkit. The command table is the whole program's map. */
#include <signal.h>
#include <string.h>

#include "cli/cli.h"

static const struct cli_command commands[] = {
    {"ca", cli_ca, "certificate authority: init, issue, list, show, revoke, crl, export, token, "
                   "serve, migrate"},
    {"enroll", cli_enroll, "get a certificate from 'ca serve' with a one-time token (EST)"},
    {"renew", cli_renew, "re-enroll with the current certificate over mTLS; --daemon"},
    {"gateway", cli_gateway, "mTLS-terminating reverse proxy (TCP or HTTP), config file or flags"},
    {"tunnel", cli_tunnel, "client side: local plaintext -> remote mTLS with a client certificate"},
    {"doctor", cli_doctor, "connect to HOST:PORT, show each handshake step, explain failures"},
    {"bench", cli_bench, "mTLS load generator: handshakes/s, latency, throughput, server cost"},
    {"demo", cli_demo, "the whole two-way SSL story on a throwaway PKI, narrated"},
    {"version", cli_version, "print the version of twoway and of its libraries"},
    {NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    /* Every command talks to peers that may close first (a GOAWAY'd h2 connection in bench, a
     * backend, an EST server): a write to a closed socket must be an EPIPE error, not a kill. */
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "--version") == 0)
        return cli_version(1, argv + 1);
    return cli_dispatch("twoway", commands, argc, argv);
}
