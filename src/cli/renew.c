/* `twoway renew`: re-enroll with the current certificate over mTLS (RFC 7030 §4.2.2) and
 * replace the files without ever leaving an unusable pair; --daemon does it at about two
 * thirds of each certificate's life, retrying with backoff while the CA is unreachable. */
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "cli/renew_swap.h"
#include "est/est.h"
#include "keystore/keystore.h"
#include "tlsx/tlsx.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fs.h"

static const char usage[] =
    "usage: twoway renew --cert C --key K --server URL [--ca F] [--rekey] [--key-type TYPE]\n"
    "                    [--exec CMD] [--daemon] [--retry-max DURATION] [--chain F]\n"
    "\n"
    "Re-enroll at the CA (`twoway ca serve` at URL) using the current certificate as the TLS\n"
    "client certificate, and replace C (and K with --rekey) atomically: a crash at any point\n"
    "leaves a matching key and certificate (see docs/commands/renew.md).\n"
    "\n"
    "  --ca F               CA certificates to verify the server (default: ca.pem next to C)\n"
    "  --rekey              make a new key pair too (same type, or --key-type)\n"
    "  --pin-file F         PIN of keys in a PKCS#11 token (0600 file, first line), for\n"
    "                       pkcs11: references without pin-source=\n"
    "  --pkcs11-module M    the PKCS#11 module (.so) when the reference names none\n"
    "  --exec CMD           run CMD with /bin/sh -c after each renewal (e.g. reload a server)\n"
    "  --daemon             keep running: renew at about 2/3 of each certificate's lifetime\n"
    "                       (with jitter), retry with exponential backoff while the CA is down\n"
    "  --retry-max D        longest wait between retries (default 5m)\n"
    "  --chain F            also rewrite F (certificate then CA certificates); default: the\n"
    "                       N.chain.pem next to N.crt, when it exists\n"
    "\n"
    "A certificate that has expired, or was revoked, cannot renew itself: it needs a new token\n"
    "(twoway ca token NAME, then twoway enroll).\n"
    "\n"
    "Examples:\n"
    "  twoway renew --cert alice.crt --key alice.key --server https://ca.example.com:8443\n"
    "  twoway renew --cert tls/web1.crt --key tls/web1.key --server https://ca:8443 --rekey \\\n"
    "      --daemon --exec 'systemctl reload nginx'\n";

static const char cmd[] = "renew";

static volatile sig_atomic_t stop_requested;

struct renew_args {
    struct flags_tls tls; /* --cert, --key (the current pair), --ca */
    const char *server, *exec;
    bool rekey, daemon;
    struct ca_key_flag key_type;
    int64_t retry_max;
    char ca_default[PATH_MAX];
    char chain[PATH_MAX]; /* N.chain.pem to keep in step with C, or "" */
};

/* `twoway enroll` and `ca issue` write N.crt next to N.chain.pem: keep that one current too. */
static void chain_default(struct renew_args *a)
{
    size_t n = strlen(a->tls.cert);
    if (a->chain[0] != '\0' || n < 4 || strcmp(a->tls.cert + n - 4, ".crt") != 0)
        return;
    snprintf(a->chain, sizeof(a->chain), "%.*s.chain.pem", (int)(n - 4), a->tls.cert);
    if (!fs_exists(a->chain))
        a->chain[0] = '\0';
}

static int chain_flag(void *chain, const char *value, struct tw_err *err)
{
    TW_ENSURE(snprintf(chain, PATH_MAX, "%s", value) < PATH_MAX, err, TW_ERR_USAGE,
              "--chain: path too long");
    return 0;
}

#define AT(field) offsetof(struct renew_args, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(tls), .group = flags_tls_group},
    {.kind = FLAG_GROUP, .off = 0, .group = flags_hw_group},
    {.name = "server", .kind = FLAG_STRING, .off = AT(server)},
    {.name = "exec", .kind = FLAG_STRING, .off = AT(exec)},
    {.name = "rekey", .kind = FLAG_BOOL, .off = AT(rekey)},
    {.name = "daemon", .kind = FLAG_BOOL, .off = AT(daemon)},
    {.name = "retry-max",
     .kind = FLAG_DURATION,
     .off = AT(retry_max),
     .min = 1,
     .bad = "expected a duration (5m)"},
    {.name = "key-type", .kind = FLAG_CALL, .off = AT(key_type), .call = ca_flag_key},
    {.name = "chain", .kind = FLAG_CALL, .off = AT(chain), .call = chain_flag},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = cmd, .usage = usage, .flags = flags};

static int parse(int argc, char **argv, struct renew_args *a)
{
    a->retry_max = 300;
    int rc = flags_parse(&flag_set, a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    if (a->tls.cert == NULL || a->tls.key == NULL || a->server == NULL)
        return cli_usage_error(cmd, "--cert, --key and --server are required");
    if (a->key_type.given && !a->rekey)
        return cli_usage_error(cmd, "--key-type needs --rekey");
    if (a->rekey && keystore_is_ref(a->tls.key))
        return cli_usage_error(cmd, "--rekey needs --key to be a key file, where the new key's "
                                    "reference is written: put '%s' on one line of a file (0600)",
                               a->tls.key);
    chain_default(a);
    if (a->tls.ca == NULL) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof(copy), "%s", a->tls.cert);
        snprintf(a->ca_default, sizeof(a->ca_default), "%s/ca.pem", dirname(copy));
        if (!fs_exists(a->ca_default))
            return cli_usage_error(cmd, "--ca F is needed (no %s next to the certificate)",
                                   a->ca_default);
        a->tls.ca = a->ca_default;
    }
    return FLAGS_GO_ON;
}

/* The key type of an existing key, for --rekey without --key-type. */
static enum pki_key_type key_type_of(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519"))
        return PKI_KEY_ED25519;
    if (EVP_PKEY_is_a(key, "RSA")) {
        int bits = EVP_PKEY_get_bits(key);
        return bits >= 4096 ? PKI_KEY_RSA4096 : bits >= 3072 ? PKI_KEY_RSA3072 : PKI_KEY_RSA2048;
    }
    return EVP_PKEY_get_bits(key) >= 384 ? PKI_KEY_EC_P384 : PKI_KEY_EC_P256;
}

struct current {
    X509 *cert;
    STACK_OF(X509) * chain; /* the rest of the certificate file, kept as it was */
    EVP_PKEY *key;
    int64_t not_before, not_after;
    int64_t written; /* mtime of the certificate file */
};

static void current_clear(struct current *c)
{
    X509_free(c->cert);
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    memset(c, 0, sizeof(*c));
}

static int load_current(const struct renew_args *a, struct current *c, struct tw_err *err)
{
    memset(c, 0, sizeof(*c));
    const char *note = "";
    TW_GUARD(renew_swap_recover(a->tls.cert, a->tls.key, &note, err));
    if (note[0] != '\0')
        fprintf(stderr, "twoway renew: %s: %s\n", a->tls.cert, note);
    TW_GUARD(tlsx_cert_chain_load(a->tls.cert, &c->cert, &c->chain, err));
    if ((c->key = pki_key_load(a->tls.key, NULL, err)) == NULL)
        return -1;
    TW_ENSURE(pki_key_matches_cert(c->key, c->cert), err, TW_ERR_PKI, "%s does not belong to %s",
              a->tls.key, a->tls.cert);
    TW_GUARD(pki_time_to_unix(X509_get0_notBefore(c->cert), &c->not_before, err));
    TW_GUARD(pki_time_to_unix(X509_get0_notAfter(c->cert), &c->not_after, err));
    struct stat st;
    c->written = stat(a->tls.cert, &st) == 0 ? (int64_t)st.st_mtime : c->not_before;
    return 0;
}

/* The message for a certificate that can no longer renew itself. */
static int expired_error(const struct renew_args *a, const struct current *c, struct tw_err *err)
{
    char when[32], name[STORE_SUBJECT_MAX] = "NAME";
    X509_NAME_get_text_by_NID(X509_get_subject_name(c->cert), NID_commonName, name, sizeof(name));
    return tw_err_set(err, TW_ERR_VERIFY,
                      "%s expired at %s and cannot renew itself; it needs a new token: run "
                      "'twoway ca token %s' on the CA, then 'twoway enroll %s --name %s --token "
                      "TOKEN --ca %s'",
                      a->tls.cert, clock_iso8601((time_t)c->not_after, when, sizeof(when)), name,
                      a->server, name, a->tls.ca);
}

/* The current certificate authenticates the re-enrollment (RFC 7030 §3.3.2). */
static void client_tls(const struct renew_args *a, const struct current *c,
                       struct tlsx_client_opts *o)
{
    tlsx_client_opts_init(o);
    o->ca_file = a->tls.ca;
    o->cert = c->cert;
    o->chain = c->chain;
    o->key = c->key;
}

/* The new certificate file: the new leaf followed by the chain the old file carried. */
static int cert_file(X509 *cert, STACK_OF(X509) * chain, struct tw_buf *out, struct tw_err *err)
{
    for (int i = -1; i < sk_X509_num(chain); i++) {
        size_t len = 0;
        char *pem = pki_cert_to_pem(i < 0 ? cert : sk_X509_value(chain, i), &len, err);
        if (pem == NULL)
            return -1;
        int rc = tw_buf_append(out, pem, len, err);
        free(pem);
        TW_GUARD(rc);
    }
    return 0;
}

/* The chain file: the new certificate, then the CA certificates it held after the old one.
 * Derived data, written after the pair: if a crash leaves it stale, the next renewal fixes it. */
static int update_chain(const char *path, X509 *cert, struct tw_err *err)
{
    TW_AUTO(X509) *old = NULL;
    TW_AUTO(X509_STACK) *rest = NULL;
    TW_GUARD(tlsx_cert_chain_load(path, &old, &rest, err));
    struct tw_buf out;
    tw_buf_init(&out, 1u << 20);
    int rc = cert_file(cert, rest, &out, err);
    if (rc == 0)
        rc = fs_write_atomic(path, out.data, out.len, 0644, err);
    tw_buf_free(&out);
    return rc;
}

/* kfile: the new key file (NULL: the key stays). */
static int install(const struct renew_args *a, const struct current *c, X509 *cert,
                   const char *kfile, size_t klen, struct tw_err *err)
{
    struct tw_buf crt;
    tw_buf_init(&crt, 1u << 20);
    int rc = cert_file(cert, c->chain, &crt, err);
    if (rc == 0)
        rc = renew_swap(a->tls.cert, a->tls.key, (const char *)crt.data, crt.len, kfile, klen, err);
    tw_buf_free(&crt);
    TW_GUARD(rc);
    return a->chain[0] != '\0' ? update_chain(a->chain, cert, err) : 0;
}

/* A key retired by --rekey: after a successful swap the previous key (old, its key file's
 * text), after a failure before the swap the key just made; destroyed where it lives, so no
 * unused private key stays in a token. A failure leaves the key there, with a warning. */
static void retire_key(const char *why, const char *text, size_t len)
{
    char what[2 * KEYSTORE_REF_MAX], left[KEYSTORE_REF_MAX];
    struct tw_err err = {0};
    if (keystore_destroy(text, len, what, sizeof(what), left, sizeof(left), &err) != 0)
        fprintf(stderr, "twoway renew: warning: the %s key stays in the token: %s\n", why,
                err.msg);
    else if (what[0] != '\0')
        fprintf(stderr, "twoway renew: destroyed the %s %s\n", why, what);
    else if (left[0] != '\0')
        fprintf(stderr, "twoway renew: the %s key %s stays in the TPM: evict it with "
                        "'tpm2_evictcontrol -C o -c %s' once nothing uses it\n",
                why, left, left + strlen("tpm2:handle:"));
}

/* One re-enrollment with c; installs the result. *new_not_after gets its expiry. */
static int renew_once(const struct renew_args *a, const struct current *c, char *serial,
                      int64_t *new_not_after, struct tw_err *err)
{
    struct est_url u;
    TW_GUARD(est_url_parse(a->server, &u, err));
    if ((int64_t)time(NULL) >= c->not_after)
        return expired_error(a, c, err);
    /* --rekey: the new key is made where the current one lives (a file, the same token, the
     * TPM), and its key file replaces the current one in the swap. */
    TW_AUTO(EVP_PKEY) *new_key = NULL;
    char store[KEYSTORE_REF_MAX], name[STORE_SUBJECT_MAX] = "renewed";
    X509_NAME_get_text_by_NID(X509_get_subject_name(c->cert), NID_commonName, name, sizeof(name));
    char *kfile = NULL, *old = NULL;
    size_t klen = 0, old_len = 0;
    if (a->rekey) {
        TW_GUARD(keystore_store_of(a->tls.key, store, sizeof(store), err));
        if (store[0] != '\0') /* a key in hardware: its key file names it, retired below */
            TW_GUARD(fs_read_file(a->tls.key, 64u * 1024, &old, &old_len, err));
        new_key = ca_key_make(store, name, a->key_type.given ? a->key_type.type : key_type_of(c->key),
                              &kfile, &klen, err);
        if (new_key == NULL) {
            free(old);
            return -1;
        }
    }
    EVP_PKEY *key = new_key != NULL ? new_key : c->key;
    unsigned char *csr = NULL;
    size_t csr_len = 0;
    int rc = pki_csr_make(key, NULL, NULL, c->cert, &csr, &csr_len, err);
    struct tlsx_client_opts tls;
    client_tls(a, c, &tls);
    TW_AUTO(X509) *cert = NULL;
    if (rc == 0)
        rc = est_client_enroll(&tls, &u, 1, NULL, NULL, csr, csr_len, &cert, NULL, err);
    OPENSSL_free(csr);
    if (rc == 0 && !pki_key_matches_cert(key, cert))
        rc = tw_err_set(err, TW_ERR_PKI, "%s returned a certificate for another key", u.origin);
    if (rc == 0)
        rc = pki_time_to_unix(X509_get0_notAfter(cert), new_not_after, err);
    if (rc == 0)
        rc = pki_cert_serial_hex(cert, serial, STORE_SERIAL_MAX, err);
    int installing = rc == 0;
    if (rc == 0)
        rc = install(a, c, cert, kfile, klen, err);
    if (rc == 0 && old != NULL)
        retire_key("previous", old, old_len);
    else if (rc != 0 && !installing && kfile != NULL)
        retire_key("new", kfile, klen); /* the swap never started: the old key stays */
    pki_pem_free(kfile, klen);
    free(old);
    return rc;
}

/* --exec: the user's command through /bin/sh -c (fork + execl, no shell-out helper). */
static int run_exec(const char *command, struct tw_err *err)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot start --exec command");
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (stop_requested)
            break;
    TW_ENSURE(WIFEXITED(status) && WEXITSTATUS(status) == 0, err, TW_ERR_IO,
              "--exec command '%s' failed (status %d)", command,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

static int renew_and_report(const struct renew_args *a, const struct current *c, struct tw_err *err)
{
    char serial[STORE_SERIAL_MAX] = "?", when[32];
    int64_t not_after = 0;
    TW_GUARD(renew_once(a, c, serial, &not_after, err));
    printf("Renewed %s\nserial: %s\nnot_after: %s\n", a->tls.cert, serial,
           clock_iso8601((time_t)not_after, when, sizeof(when)));
    fflush(stdout);
    if (a->daemon) /* stdout may not be watched in daemon mode: log it too */
        fprintf(stderr, "twoway renew: %s renewed: serial %s, valid until %s\n", a->tls.cert,
                serial, when);
    if (a->exec == NULL || run_exec(a->exec, err) == 0)
        return 0;
    if (!a->daemon)
        return -1;
    fprintf(stderr, "twoway renew: warning: %s\n", err->msg); /* the renewal itself stands */
    return 0;
}

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Sleep secs seconds in short steps so SIGTERM stops it promptly; 0 when stopped. */
static int nap(int64_t secs)
{
    struct timespec step = {0, 100 * 1000 * 1000};
    for (int64_t i = 0; i < secs * 10 && !stop_requested; i++)
        nanosleep(&step, NULL);
    return !stop_requested;
}

/* About two thirds into the certificate's life, counted from when it was written (the
 * notBefore of a CA that backdates is earlier than issuance), with jitter of +-1/30 of the
 * life so a fleet issued together does not renew together. */
static int64_t renew_at(const struct current *c, int64_t now)
{
    int64_t start = c->written < now ? c->written : now;
    if (start < c->not_before)
        start = c->not_before;
    int64_t life = c->not_after - start;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = 0;
    int64_t span = life / 15; /* jitter spans -life/30 .. +life/30 */
    int64_t jitter = span > 0 ? (int64_t)(r % (uint64_t)(span + 1)) - span / 2 : 0;
    int64_t at = start + life * 2 / 3 + jitter;
    if (at > c->not_after - 1)
        at = c->not_after - 1;
    return at;
}

/* Failures that waiting will not fix: refused (revoked, mismatch), expired, untrusted. */
static int fatal(const struct tw_err *err)
{
    return err->code == TW_ERR_POLICY || err->code == TW_ERR_VERIFY || err->code == TW_ERR_USAGE ||
           err->code == TW_ERR_PKI;
}

static int daemon_loop(const struct renew_args *a, struct tw_err *err)
{
    int64_t backoff = 1;
    while (!stop_requested) {
        struct current c;
        TW_GUARD(load_current(a, &c, err));
        int64_t now = (int64_t)time(NULL), at = renew_at(&c, now);
        int rc = 0;
        if (now >= c.not_after) {
            rc = expired_error(a, &c, err);
        } else if (at > now) {
            char when[32];
            fprintf(stderr, "twoway renew: %s: next renewal at %s (in %lld s)\n", a->tls.cert,
                    clock_iso8601((time_t)at, when, sizeof(when)), (long long)(at - now));
            nap(at - now);
        } else if (renew_and_report(a, &c, err) == 0) {
            backoff = 1;
        } else if (!fatal(err)) {
            int64_t wait = backoff < a->retry_max ? backoff : a->retry_max;
            if (wait > c.not_after - now)
                wait = c.not_after - now > 0 ? c.not_after - now : 1;
            fprintf(stderr, "twoway renew: renewal failed: %s; retrying in %lld s\n", err->msg,
                    (long long)wait);
            nap(wait);
            backoff = backoff * 2 > a->retry_max ? a->retry_max : backoff * 2;
        } else {
            rc = -1;
        }
        current_clear(&c);
        TW_GUARD(rc);
    }
    fprintf(stderr, "twoway renew: stopping\n");
    return 0;
}

int cli_renew(int argc, char **argv)
{
    struct renew_args a;
    memset(&a, 0, sizeof(a));
    int rc = parse(argc, argv, &a);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct tw_err err;
    tw_err_clear(&err);
    signal(SIGPIPE, SIG_IGN);
    if (a.daemon) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        rc = daemon_loop(&a, &err);
    } else {
        struct current c;
        rc = load_current(&a, &c, &err);
        if (rc == 0)
            rc = renew_and_report(&a, &c, &err);
        current_clear(&c);
    }
    if (rc != 0)
        return err.code == TW_ERR_USAGE ? cli_usage_error(cmd, "%s", err.msg) : cli_fail(&err);
    return 0;
}
