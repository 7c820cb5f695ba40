/* A `ca init` killed at each crash point (TWOWAY_FAULT_INIT, in a child process), then what
 * pki_ca_open makes of it: the window between rename and commit is finished from the files
 * (rows, CRL counter, "init recovered" audit), once, even with several openers at once; the
 * windows before the rename stay "half-written"; files that are not a complete CA, or a store
 * that is not init's, are refused with TW_ERR_PKI and nothing written. */
#include "pki_test_util.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fs.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    tmpdir_make(dir, sizeof(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("TWOWAY_FAULT_INIT");
    unsetenv("TWOWAY_STORE");
    tmpdir_remove(dir);
    return 0;
}

static void init_opts(struct pki_ca_options *opt, const struct pki_secret *pass)
{
    memset(opt, 0, sizeof(*opt));
    opt->dir = dir;
    opt->name = "Crash CA";
    opt->key_type = PKI_KEY_EC_P256;
    opt->passphrase = pass;
}

/* Run `ca init` in a child that SIGKILLs itself at point. */
static void init_killed_at(const char *point, const struct pki_secret *pass)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("TWOWAY_FAULT_INIT", point, 1);
        struct pki_ca_options opt;
        init_opts(&opt, pass);
        struct pki_ca_created made;
        struct tw_err err;
        if (pki_ca_init(&opt, &made, &err) != 0)
            _exit(3);
        _exit(0); /* not killed: the parent fails */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

/* pki_ca_open in a child (optionally killed at point); returns its exit status. */
static int open_in_child(const char *point)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (point != NULL)
            setenv("TWOWAY_FAULT_INIT", point, 1);
        struct pki_ca *ca = NULL;
        struct tw_err err;
        int rc = pki_ca_open(dir, &ca, &err);
        pki_ca_free(ca);
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

struct seen {
    int certs, roots, ints, ocsps;
    int recovered, init_ok;
};

static int seen_cert(const struct store_cert *c, void *ctx)
{
    struct seen *s = ctx;
    s->certs++;
    s->roots += strcmp(c->profile, "root") == 0 && strcmp(c->name, "Crash CA Root") == 0;
    s->ints += strcmp(c->profile, "intermediate") == 0;
    s->ocsps += strcmp(c->profile, "ocsp") == 0 && strcmp(c->name, "Crash CA OCSP Signer") == 0;
    return 0;
}

static int seen_audit(const struct store_audit *a, void *ctx)
{
    struct seen *s = ctx;
    if (strcmp(a->action, "init") == 0) {
        s->recovered += strcmp(a->result, "recovered") == 0;
        s->init_ok += strcmp(a->result, "ok") == 0;
    }
    return 0;
}

static struct seen inventory(struct store *st)
{
    struct seen s;
    memset(&s, 0, sizeof(s));
    struct tw_err err;
    assert_int_equal(store_cert_list(st, NULL, seen_cert, &s, &err), 0);
    assert_int_equal(store_audit_list(st, seen_audit, &s, &err), 0);
    return s;
}

static struct store *open_db(void)
{
    char db[128];
    snprintf(db, sizeof(db), "%s/ca.db", dir);
    struct store *st = NULL;
    struct tw_err err;
    assert_int_equal(store_open(db, &st, &err), 0);
    return st;
}

static void assert_recovered(struct pki_ca *ca)
{
    struct seen s = inventory(pki_ca_store(ca));
    assert_int_equal(s.certs, 3);
    assert_int_equal(s.roots, 1);
    assert_int_equal(s.ints, 1);
    assert_int_equal(s.ocsps, 1);
    assert_int_equal(s.recovered, 1);
    assert_int_equal(s.init_ok, 0);
    /* The CRL init wrote has number 1: the next one must be greater. */
    int64_t n = 0;
    struct tw_err err;
    assert_int_equal(store_crl_number_next(pki_ca_store(ca), &n, &err), 0);
    assert_int_equal(n, 2);
}

static void killed_before_commit_is_finished_once(void **state)
{
    (void)state;
    init_killed_at("before-commit", NULL);
    /* Today's failure mode: the files are there, the inventory is empty. */
    struct store *st = open_db();
    struct seen before = inventory(st);
    assert_int_equal(before.certs, 0);
    store_free(st);

    struct pki_ca *ca = NULL;
    struct tw_err err;
    assert_int_equal(pki_ca_open(dir, &ca, &err), 0);
    assert_recovered(ca);
    pki_ca_free(ca);
    /* A second open finds the rows and changes nothing. */
    assert_int_equal(pki_ca_open(dir, &ca, &err), 0);
    struct seen again = inventory(pki_ca_store(ca));
    assert_int_equal(again.certs, 3);
    assert_int_equal(again.recovered, 1);
    /* And the CA works: unlock and write a CRL with a fresh number. */
    assert_int_equal(pki_ca_unlock(ca, NULL, &err), 0);
    int64_t number = 0;
    assert_int_equal(pki_ca_crl_write(ca, 0, NULL, &number, NULL, NULL, &err), 0);
    assert_int_equal(number, 3);
    pki_ca_free(ca);
}

static void concurrent_openers_recover_once(void **state)
{
    (void)state;
    init_killed_at("before-commit", NULL);
    enum { OPENERS = 4 };
    pid_t pids[OPENERS];
    fflush(NULL);
    for (int i = 0; i < OPENERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct pki_ca *ca = NULL;
            struct tw_err err;
            int rc = pki_ca_open(dir, &ca, &err);
            pki_ca_free(ca);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    for (int i = 0; i < OPENERS; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    struct pki_ca *ca = NULL;
    struct tw_err err;
    assert_int_equal(pki_ca_open(dir, &ca, &err), 0);
    assert_recovered(ca);
    pki_ca_free(ca);
}

static void killed_during_recovery_is_recovered_later(void **state)
{
    (void)state;
    init_killed_at("before-commit", NULL);
    int status = open_in_child("recover-before-commit");
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    struct store *st = open_db();
    assert_int_equal(inventory(st).certs, 0); /* rolled back */
    store_free(st);
    struct pki_ca *ca = NULL;
    struct tw_err err;
    assert_int_equal(pki_ca_open(dir, &ca, &err), 0);
    assert_recovered(ca);
    pki_ca_free(ca);
}

static void encrypted_ca_recovers_without_passphrase(void **state)
{
    (void)state;
    struct pki_secret pass;
    struct tw_err err;
    assert_int_equal(pki_secret_set(&pass, "long enough pass", &err), 0);
    init_killed_at("before-commit", &pass);
    struct pki_ca *ca = NULL;
    assert_int_equal(pki_ca_open(dir, &ca, &err), 0);
    assert_recovered(ca);
    assert_int_equal(pki_ca_unlock(ca, &pass, &err), 0);
    pki_ca_free(ca);
    pki_secret_wipe(&pass);
}

/* Before the rename nothing is a CA yet: reported half-written, and init runs again. */
static void killed_before_rename_is_half_written(void **state)
{
    (void)state;
    static const char *const points[] = {"built", "before-rename"};
    for (size_t i = 0; i < 2; i++) {
        init_killed_at(points[i], NULL);
        struct pki_ca *ca = NULL;
        struct tw_err err;
        assert_int_equal(pki_ca_open(dir, &ca, &err), -1);
        assert_int_equal(err.code, TW_ERR_PKI);
        assert_non_null(strstr(err.msg, "half-written"));
        struct store *st = open_db();
        assert_int_equal(inventory(st).certs, 0);
        store_free(st);
    }
    struct pki_ca_options opt;
    init_opts(&opt, NULL);
    struct pki_ca_created made;
    struct tw_err err;
    assert_int_equal(pki_ca_init(&opt, &made, &err), 0);
    struct pki_ca *ca = NULL;
    assert_int_equal(pki_ca_open(dir, &ca, &err), 0);
    struct seen s = inventory(pki_ca_store(ca));
    assert_int_equal(s.certs, 3);
    assert_int_equal(s.init_ok, 1);
    assert_int_equal(s.recovered, 0);
    pki_ca_free(ca);
}

/* Open must fail with TW_ERR_PKI containing want, and leave the inventory empty. */
static void assert_refused(const char *want)
{
    struct pki_ca *ca = NULL;
    struct tw_err err;
    assert_int_equal(pki_ca_open(dir, &ca, &err), -1);
    assert_null(ca);
    assert_int_equal(err.code, TW_ERR_PKI);
    if (strstr(err.msg, want) == NULL)
        fail_msg("expected '%s' in: %s", want, err.msg);
    assert_non_null(strstr(err.msg, "cannot be recovered"));
}

static void write_file(const char *name, const char *data)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/ca/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(data, f);
    fclose(f);
}

static void bad_crl_is_refused(void **state)
{
    (void)state;
    init_killed_at("before-commit", NULL);
    write_file("crl.der", "not a CRL");
    assert_refused("crl.der is not a numbered CRL signed by the intermediate");
    char path[256];
    snprintf(path, sizeof(path), "%s/ca/crl.der", dir);
    assert_int_equal(unlink(path), 0);
    assert_refused("crl.der is missing");
    struct store *st = open_db();
    assert_int_equal(inventory(st).certs, 0);
    int64_t n = 0;
    struct tw_err err;
    assert_int_equal(store_crl_number_next(st, &n, &err), 0);
    assert_int_equal(n, 1); /* counter untouched */
    store_free(st);
}

static void wrong_or_missing_key_is_refused(void **state)
{
    (void)state;
    init_killed_at("before-commit", NULL);
    char from[256], to[256];
    snprintf(from, sizeof(from), "%s/ca/intermediate.key", dir);
    snprintf(to, sizeof(to), "%s/ca/ocsp.key", dir);
    assert_int_equal(unlink(to), 0);
    assert_int_equal(link(from, to), 0);
    assert_refused("does not match its certificate");
    snprintf(to, sizeof(to), "%s/ca/root.key", dir);
    assert_int_equal(unlink(to), 0);
    assert_refused("a CA key file is missing");
}

static void other_inventory_is_refused(void **state)
{
    (void)state;
    init_killed_at("before-commit", NULL);
    /* A store that is not the one init recorded in ca.conf. */
    char other[128];
    snprintf(other, sizeof(other), "%s/other.db", dir);
    setenv("TWOWAY_STORE", other, 1);
    assert_refused("not the store 'ca init' recorded");
    unsetenv("TWOWAY_STORE");
    /* An inventory that holds certificates, none of them this CA's. */
    struct store *st = open_db();
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    snprintf(row.serial, sizeof(row.serial), "0A0B0C");
    snprintf(row.name, sizeof(row.name), "stranger");
    snprintf(row.subject, sizeof(row.subject), "CN=stranger");
    snprintf(row.profile, sizeof(row.profile), "client");
    snprintf(row.issuer, sizeof(row.issuer), "CN=Elsewhere");
    snprintf(row.sha256, sizeof(row.sha256), "%064d", 0);
    row.not_before = (int64_t)time(NULL) - 60;
    row.not_after = (int64_t)time(NULL) + 86400;
    row.pem = (char *)"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
    struct tw_err err;
    assert_int_equal(store_cert_put(st, &row, &err), 0);
    store_free(st);
    assert_refused("holds other certificates");
    st = open_db();
    struct seen s = inventory(st);
    assert_int_equal(s.certs, 1);
    assert_int_equal(s.recovered, 0);
    int64_t n = 0;
    assert_int_equal(store_crl_number_next(st, &n, &err), 0);
    assert_int_equal(n, 1); /* the refused transaction's counter raise was rolled back */
    store_free(st);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(killed_before_commit_is_finished_once),     T(concurrent_openers_recover_once),
        T(killed_during_recovery_is_recovered_later), T(encrypted_ca_recovers_without_passphrase),
        T(killed_before_rename_is_half_written),      T(bad_crl_is_refused),
        T(wrong_or_missing_key_is_refused),           T(other_inventory_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
