/* `twoway demo`: the whole two-way SSL story on a throwaway PKI, on loopback, narrated. Each
 * step says what happens in the seed's terms, does it with the real commands, and checks that
 * it behaved as narrated; the demo exits 0 only when every step did. */
#include "cli/cli.h"
#include "cli/demo.h"
#include "cli/flags.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fs.h"

#define OUT_MAX 8192

#define DEMO_P12_PASS "twoway-demo" /* a throwaway PKI on loopback: no secret to keep */

struct demo {
    char dir[64];
    char data[128], gw[128], alice[128], bob[128], admin[128];
    char url[128];     /* the CA server, https://127.0.0.1:PORT */
    char root_fp[128]; /* SHA-256 of the root, for enrollment */
    char port_text[16];
    int gw_port, backend_port;
    struct demo_proc ca, backend, gateway;
    struct demo_client alice_conn; /* kept open across the revocation */
};

static void say(const char *fmt, ...) TW_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* Print command output indented, so narration and tool output stay apart. */
static void show(const char *out)
{
    const char *line = out;
    while (*line != '\0') {
        size_t n = strcspn(line, "\n");
        say("    | %.*s\n", (int)n, line);
        line += n + (line[n] == '\n');
    }
}

static void show_cmd(char *const args[])
{
    say("  $ twoway");
    for (int i = 0; args[i] != NULL; i++)
        say(" %s", args[i]);
    say("\n");
}

/* Run a twoway command, show it and its output; 0 when it exited 0. */
static int run_shown(char *const args[], char *out, size_t cap)
{
    show_cmd(args);
    int rc = demo_run(args, out, cap);
    show(out);
    return rc;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int fail(const char *what, const struct tw_err *err)
{
    say("  FAILED: %s%s%s\n", what, err != NULL ? ": " : "", err != NULL ? err->msg : "");
    return -1;
}

/* The last line of out that starts with prefix, value after it copied to dst. */
static int find_value(const char *out, const char *prefix, char *dst, size_t cap)
{
    const char *hit = NULL;
    for (const char *p = out; (p = strstr(p, prefix)) != NULL; p++)
        if (p == out || p[-1] == '\n')
            hit = p;
    if (hit == NULL)
        return -1;
    hit += strlen(prefix);
    snprintf(dst, cap, "%.*s", (int)strcspn(hit, "\n"), hit);
    return 0;
}

static int step_ca(struct demo *d)
{
    say("A CA that both sides trust is where two-way SSL starts: it signs the server's\n"
        "certificate and every client's. We make a root, an intermediate and an inventory.\n");
    char out[OUT_MAX];
    char *init[] = {"ca", "init", "--dir", d->data, "--name", "Demo Bank", NULL};
    if (run_shown(init, out, sizeof(out)) != 0)
        return fail("ca init", NULL);
    if (find_value(out, "SHA256: ", d->root_fp, sizeof(d->root_fp)) != 0)
        return fail("ca init printed no fingerprint", NULL);
    char *issue[] = {"ca", "issue", "server", "localhost", "--san", "ip:127.0.0.1",
                     "--dir", d->data, "--out", d->gw, NULL};
    if (run_shown(issue, out, sizeof(out)) != 0)
        return fail("ca issue server", NULL);
    say("The security team gets an admin certificate for the CA's web console, as a PKCS#12 for\n"
        "the browser (password " DEMO_P12_PASS ").\n");
    char pass[192];
    struct tw_err err;
    snprintf(pass, sizeof(pass), "%s/admin.pass", d->dir);
    if (fs_write_atomic(pass, DEMO_P12_PASS "\n", strlen(DEMO_P12_PASS) + 1, 0600, &err) != 0)
        return fail("admin password file", &err);
    char *admin[] = {"ca", "issue", "admin", "ops", "--dir", d->data, "--out", d->admin,
                     "--p12", "--p12-pass-file", pass, NULL};
    return run_shown(admin, out, sizeof(out)) == 0 ? 0 : fail("ca issue admin", NULL);
}

static int step_servers(struct demo *d)
{
    say("The CA goes online (EST enrollment, CRL, OCSP); a plain HTTP backend that knows nothing\n"
        "about certificates starts; the twoway gateway goes in front of it and requires a client\n"
        "certificate from our CA on every connection.\n");
    struct tw_err err;
    char line[512], log[256], listen[64], backend[64], cert[160], key[160], ca[160], crl[160];
    char *serve[] = {"ca", "serve", "--dir", d->data, "--listen", "127.0.0.1:0",
                     "--access-log", "off", "--console", "--console-admin-allow", "cn:ops", NULL};
    snprintf(log, sizeof(log), "%s/ca-serve.log", d->dir);
    show_cmd(serve);
    if (demo_spawn(&d->ca, serve, log, "ready", 15000, line, sizeof(line), &err) != 0)
        return fail("ca serve", &err);
    const char *url = strstr(line, "https://");
    if (url == NULL)
        return fail("ca serve printed no URL", NULL);
    snprintf(d->url, sizeof(d->url), "%.*s", (int)strcspn(url, " \n"), url);
    say("    | CA server ready at %s\n", d->url);

    d->backend_port = free_port();
    snprintf(backend, sizeof(backend), "127.0.0.1:%d", d->backend_port);
    char *be[] = {"demo", "backend", "--listen", backend, NULL};
    snprintf(log, sizeof(log), "%s/backend.log", d->dir);
    show_cmd(be);
    if (demo_spawn(&d->backend, be, log, "ready", 10000, line, sizeof(line), &err) != 0)
        return fail("demo backend", &err);

    d->gw_port = free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", d->gw_port);
    snprintf(cert, sizeof(cert), "%s/localhost.chain.pem", d->gw);
    snprintf(key, sizeof(key), "%s/localhost.key", d->gw);
    snprintf(ca, sizeof(ca), "%s/ca/chain.pem", d->data);
    snprintf(crl, sizeof(crl), "%s/ca/crl.pem", d->data);
    char *gw[] = {"gateway", "--listen", listen, "--backend", backend, "--cert", cert,
                  "--key", key, "--client-ca", ca, "--crl", crl, "--workers", "1", NULL};
    snprintf(log, sizeof(log), "%s/gateway.log", d->dir);
    show_cmd(gw);
    if (demo_spawn(&d->gateway, gw, log, "ready", 15000, line, sizeof(line), &err) != 0)
        return fail("gateway", &err);
    say("    | %s\n", line);
    return 0;
}

static int step_no_cert(struct demo *d)
{
    say("A client without a certificate connects. The server asks for one in the handshake\n"
        "(CertificateRequest), gets none, and refuses.\n");
    char root[160], target[64], out[OUT_MAX];
    snprintf(root, sizeof(root), "%s/ca/root.crt", d->data);
    struct tw_err err;
    struct demo_client c;
    int status = 0;
    char body[512];
    int refused = demo_client_open(&c, d->gw_port, root, NULL, NULL, &err) != 0 ||
                  demo_client_get(&c, "/", &status, body, sizeof(body), &err) != 0;
    demo_client_close(&c);
    if (!refused)
        return fail("the gateway let a client without a certificate in", NULL);
    say("    | refused: %s\n", err.msg);
    say("twoway doctor shows each step of that handshake and says why in plain words:\n");
    snprintf(target, sizeof(target), "127.0.0.1:%d", d->gw_port);
    char *doctor[] = {"doctor", target, "--ca", root, "--server-name", "localhost", NULL};
    show_cmd(doctor);
    int rc = demo_run(doctor, out, sizeof(out));
    const char *diag = strstr(out, "iagnosis");
    show(diag != NULL ? diag - 1 : out);
    return rc == 1 ? 0 : fail("doctor should have exited 1", NULL);
}

/* ca token NAME, then enroll NAME into dir: the key is made on the client and never leaves. */
static int enroll(struct demo *d, const char *name, const char *dir)
{
    char out[OUT_MAX], token[128];
    char *tok[] = {"ca", "token", (char *)name, "--dir", d->data, "--ttl", "10m", NULL};
    show_cmd(tok);
    if (demo_run(tok, out, sizeof(out)) != 0)
        return fail("ca token", NULL);
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '\n')
        out[--len] = '\0';
    const char *last = strrchr(out, '\n');
    snprintf(token, sizeof(token), "%.127s", last != NULL ? last + 1 : out);
    say("    | one-time token for %s: %.8s... (only its hash is stored)\n", name, token);
    char *en[] = {"enroll", d->url, "--name", (char *)name, "--token", token,
                  "--ca-fingerprint", d->root_fp, "--out", (char *)dir, NULL};
    return run_shown(en, out, sizeof(out)) == 0 ? 0 : fail("enroll", NULL);
}

/* Connect as name with the files enrolled into dir and GET /: 0 when the backend greeted
 * name; otherwise err says what the gateway (or backend) answered. */
static int greet(struct demo *d, struct demo_client *c, const char *name, const char *dir,
                 struct tw_err *err)
{
    char root[160], cert[160], key[160], body[512];
    snprintf(root, sizeof(root), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/%s.crt", dir, name);
    snprintf(key, sizeof(key), "%s/%s.key", dir, name);
    int status = 0;
    TW_GUARD(demo_client_open(c, d->gw_port, root, cert, key, err));
    TW_GUARD(demo_client_get(c, "/", &status, body, sizeof(body), err));
    say("    | backend says (HTTP %d): %s\n", status, body);
    TW_ENSURE(status == 200 && strstr(body, name) != NULL, err, TW_ERR_INTERNAL,
              "the backend did not greet %s by name", name);
    return 0;
}

static int step_enroll_alice(struct demo *d)
{
    say("Alice enrolls over EST (RFC 7030): her machine makes the key pair, sends only a CSR\n"
        "with a one-time token, and pins the CA by the root's fingerprint.\n");
    TW_GUARD(enroll(d, "alice", d->alice));
    say("Alice connects with her certificate; both sides prove who they are, and the backend\n"
        "greets her by the name the gateway verified and forwarded (RFC 9440 Client-Cert).\n");
    struct tw_err err;
    return greet(d, &d->alice_conn, "alice", d->alice, &err) == 0 ? 0 : fail("alice", &err);
}

static int step_revoke(struct demo *d)
{
    say("Alice's laptop is stolen: the CA revokes her certificate and publishes a new CRL.\n"
        "The gateway sees the CRL change, cuts her open connection and refuses her next one.\n");
    char out[OUT_MAX];
    char *rv[] = {"ca", "revoke", "alice", "--reason", "keyCompromise", "--dir", d->data, NULL};
    if (run_shown(rv, out, sizeof(out)) != 0)
        return fail("ca revoke", NULL);
    if (!demo_client_wait_closed(&d->alice_conn, 10000))
        return fail("alice's open connection was not cut", NULL);
    say("    | alice's open connection: closed by the gateway\n");
    struct demo_client c;
    struct tw_err err;
    int refused = greet(d, &c, "alice", d->alice, &err) != 0;
    demo_client_close(&c);
    if (!refused)
        return fail("revoked alice got in", NULL);
    say("    | alice connects again: %s\n", err.msg);
    return 0;
}

static int step_renew_bob(struct demo *d)
{
    say("Bob enrolls too; later his certificate is renewed before it expires: renew proves\n"
        "who he is with the current certificate (mTLS) and swaps the files atomically.\n");
    TW_GUARD(enroll(d, "bob", d->bob));
    char out[OUT_MAX], cert[160], key[160], before[128] = "", after[128] = "";
    snprintf(cert, sizeof(cert), "%s/bob.crt", d->bob);
    snprintf(key, sizeof(key), "%s/bob.key", d->bob);
    char *show_bob[] = {"ca", "show", "bob", "--dir", d->data, NULL};
    demo_run(show_bob, out, sizeof(out));
    find_value(out, "serial: ", before, sizeof(before));
    char *rn[] = {"renew", "--cert", cert, "--key", key, "--server", d->url, NULL};
    if (run_shown(rn, out, sizeof(out)) != 0)
        return fail("renew", NULL);
    demo_run(show_bob, out, sizeof(out));
    find_value(out, "serial: ", after, sizeof(after));
    say("    | bob's serial: %s -> %s\n", before, after);
    if (strcmp(before, after) == 0)
        return fail("renew issued nothing new", NULL);
    struct demo_client c;
    struct tw_err err;
    int rc = greet(d, &c, "bob", d->bob, &err);
    demo_client_close(&c);
    return rc == 0 ? 0 : fail("bob", &err);
}

static const struct {
    const char *title;
    int (*run)(struct demo *d);
} steps[] = {
    {"The certificate authority", step_ca},
    {"The CA server, the backend and the gateway", step_servers},
    {"A client without a certificate", step_no_cert},
    {"Enrollment and a two-way handshake", step_enroll_alice},
    {"Revocation that takes effect", step_revoke},
    {"Renewal", step_renew_bob},
};

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void serve_forever(const struct demo *d)
{
    say("\nThe CA's web console: %s/console/\n"
        "  import %s/ops.p12 into the browser (password " DEMO_P12_PASS ") and choose it when\n"
        "  asked; the browser warns about the server certificate: the demo CA is not one it "
        "trusts\n"
        "  curl --cacert %s/ca/chain.pem --cert %s/ops.crt --key %s/ops.key %s/api/v1/overview\n",
        d->url, d->admin, d->data, d->admin, d->admin, d->url);
    say("\nEverything keeps running until Ctrl-C. Try it by hand:\n"
        "  curl --cacert %s/ca.pem --cert %s/bob.crt --key %s/bob.key https://localhost:%d/\n"
        "  curl --cacert %s/ca/root.crt https://localhost:%d/      # no certificate: refused\n"
        "  %s doctor 127.0.0.1:%d --ca %s/ca/root.crt --cert %s/bob.crt --key %s/bob.key\n"
        "  %s ca list --dir %s\n",
        d->bob, d->bob, d->bob, d->gw_port, d->data, d->gw_port, demo_self(), d->gw_port,
        d->data, d->bob, d->bob, demo_self(), d->data);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!interrupted)
        pause();
}

static const char usage[] =
    "usage: twoway demo [--serve] [--keep]\n"
    "\n"
    "Runs the whole two-way SSL story on a throwaway PKI in a temp dir, all on loopback, and\n"
    "narrates it: a CA, the CA server, a gateway in front of a plain backend; a client without a\n"
    "certificate is refused (and doctor says why); alice enrolls by EST and is greeted by name;\n"
    "she is revoked, her open connection is cut and she is refused; bob enrolls and renews.\n"
    "Exit 0 when every step behaved as narrated, 1 otherwise.\n"
    "\n"
    "  --serve   then keep everything running and print commands to try by hand, until Ctrl-C\n"
    "  --keep    keep the temp dir (its path is printed)\n";

struct demo_args {
    bool serve, keep;
};

static const struct flag flags[] = {
    {.name = "serve", .kind = FLAG_BOOL, .off = offsetof(struct demo_args, serve)},
    {.name = "keep", .kind = FLAG_BOOL, .off = offsetof(struct demo_args, keep)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = "demo", .usage = usage, .flags = flags};

int cli_demo(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "backend") == 0)
        return demo_backend_main(argc - 1, argv + 1);
    struct demo_args a = {false, false};
    int rc = flags_parse(&flag_set, &a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    bool serve = a.serve, keep = a.keep || a.serve;

    struct demo d;
    memset(&d, 0, sizeof(d));
    d.alice_conn.fd = -1;
    snprintf(d.dir, sizeof(d.dir), "/tmp/twoway-demo-XXXXXX");
    if (mkdtemp(d.dir) == NULL) {
        perror("twoway demo: mkdtemp");
        return 1;
    }
    snprintf(d.data, sizeof(d.data), "%s/ca-data", d.dir);
    snprintf(d.gw, sizeof(d.gw), "%s/gateway", d.dir);
    snprintf(d.alice, sizeof(d.alice), "%s/alice", d.dir);
    snprintf(d.bob, sizeof(d.bob), "%s/bob", d.dir);
    snprintf(d.admin, sizeof(d.admin), "%s/admin", d.dir);
    say("twoway demo: two-way SSL on a throwaway PKI in %s (all on 127.0.0.1)\n", d.dir);

    int ok = 1;
    size_t n = sizeof(steps) / sizeof(steps[0]);
    for (size_t i = 0; ok && i < n; i++) {
        say("\n[%zu/%zu] %s\n", i + 1, n, steps[i].title);
        ok = steps[i].run(&d) == 0;
    }
    demo_client_close(&d.alice_conn);
    if (ok)
        say("\nEvery step behaved as narrated.\n");
    else
        say("\nThe demo stopped at a failed step; logs are in %s\n", d.dir);
    if (ok && serve)
        serve_forever(&d);
    demo_stop(&d.gateway);
    demo_stop(&d.backend);
    demo_stop(&d.ca);
    if (ok && !keep) {
        char *rm[] = {"/bin/rm", "-rf", d.dir, NULL};
        pid_t pid = fork();
        if (pid == 0) {
            execv(rm[0], rm);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    return ok ? 0 : 1;
}
