/* `twoway demo`: until the CA server, gateway and tunnel land, the demo makes a throwaway CA in a
 * temp dir, issues one server and one client certificate, and shows what it made. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(cli_handler fn, char **argv)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    printf("\n$ twoway ca");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);
    return fn(argc, argv);
}

int cli_demo(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/twoway-demo-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("twoway demo: mkdtemp");
        return 1;
    }
    char data[sizeof(dir) + 8], out[sizeof(dir) + 8];
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(out, sizeof(out), "%s/out", dir);

    printf("twoway demo: a throwaway PKI in %s\n", dir);
    printf("Two-way SSL needs a CA that both sides trust: the server proves itself with a\n"
           "server certificate, the client with a client certificate, both signed by the CA.\n");
    char *init[] = {"ca", "init", "--dir", data, "--name", "Demo CA", NULL};
    char *server[] = {"ca", "issue", "server", "localhost", "--dir", data, "--out", out, NULL};
    char *client[] = {"ca", "issue", "client", "alice", "--dir", data, "--out", out, NULL};
    char *list[] = {"ca", "list", "--dir", data, NULL};
    if (run(cli_ca_init, init + 1) != 0 || run(cli_ca_issue, server + 1) != 0 ||
        run(cli_ca_issue, client + 1) != 0 || run(cli_ca_list, list + 1) != 0) {
        fprintf(stderr, "twoway demo: a step failed; the files are in %s\n", dir);
        return 1;
    }
    printf("\nDone. The CA, the inventory and the issued files are in %s\n", dir);
    return 0;
}
