/* Generations: built from flags with real files, refcounted, file watching, and each failure
 * path's error code (missing file, bad CRL, bad flag, listen address in use). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "gateway/internal.h"

static char dir[64];
static char cert_path[128], key_path[128], crl_path[128];

static void write_cert_and_key(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"unit", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(key_path, 0600);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tw-gen-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    snprintf(crl_path, sizeof(crl_path), "%s/bad.crl", dir);
    write_cert_and_key();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1; /* checksrc only scans src/ */
}

/* A server whose config source is the given extra flags after the basic service. */
static struct gw_server *server_with(const char *listen, const char *extra_key,
                                     const char *extra_val, char **argv)
{
    int n = 0;
    argv[n++] = "gateway";
    argv[n++] = "--listen";
    argv[n++] = (char *)listen;
    argv[n++] = "--backend";
    argv[n++] = "127.0.0.1:9";
    argv[n++] = "--mode";
    argv[n++] = "tcp";
    argv[n++] = "--cert";
    argv[n++] = cert_path;
    argv[n++] = "--key";
    argv[n++] = key_path;
    argv[n++] = "--client-ca";
    argv[n++] = cert_path;
    argv[n++] = "--workers";
    argv[n++] = "3";
    if (extra_key != NULL) {
        argv[n++] = (char *)extra_key;
        argv[n++] = (char *)extra_val;
    }
    argv[n] = NULL;
    struct gw_server *srv = calloc(1, sizeof(*srv));
    assert_non_null(srv);
    srv->src.argc = n;
    srv->src.argv = argv;
    return srv;
}

static void server_done(struct gw_server *srv)
{
    tlsx_ticket_keys_free(srv->tickets);
    free(srv);
}

static void builds_and_refcounts(void **state)
{
    (void)state;
    char *argv[32];
    struct gw_server *srv = server_with("127.0.0.1:18443", NULL, NULL, argv);
    struct tw_err err;
    struct gw_gen *gen = gw_gen_build(srv, &err);
    assert_non_null(gen);
    assert_int_equal(gen->id, 1);
    assert_int_equal(gen->nsvcs, 1);
    assert_int_equal(gen->nlistens, 1);
    assert_int_equal(gen->workers, 3);
    assert_non_null(gen->svcs[0].ctx);
    assert_null(gen->svcs[0].backend_ctx);
    assert_ptr_equal(gw_listen_svc_for_ctx(&gen->listens[0], gen->svcs[0].ctx), &gen->svcs[0]);
    assert_ptr_equal(gw_gen_find_svc(gen, "default"), &gen->svcs[0]);
    assert_null(gw_gen_find_svc(gen, "nope"));
    assert_ptr_equal(gen->svcs[0].slot, gw_server_slot(srv, "default"));

    struct gw_gen *again = gw_gen_build(srv, &err);
    assert_non_null(again);
    assert_int_equal(again->id, 2);
    assert_int_equal(gw_gen_probe_listens(gen, again, &err), 0);
    assert_int_equal(gw_gen_listen_index(gen, "127.0.0.1:18443"), 0);
    assert_int_equal(gw_gen_listen_index(gen, "127.0.0.1:1"), -1);
    assert_int_equal(gw_gen_listen_index(NULL, "127.0.0.1:18443"), -1);
    gw_gen_ref(again);
    gw_gen_unref(again);
    gw_gen_unref(again);
    gw_gen_unref(gen);
    gw_gen_unref(NULL);
    server_done(srv);
}

static void watches_files(void **state)
{
    (void)state;
    char *argv[32];
    struct gw_server *srv = server_with("127.0.0.1:18443", NULL, NULL, argv);
    struct tw_err err;
    struct gw_gen *gen = gw_gen_build(srv, &err);
    assert_non_null(gen);
    assert_null(gw_gen_files_changed(gen, false));
    uint64_t sig = gw_gen_watch_signature(gen);
    assert_true(sig == gw_gen_watch_signature(gen)); /* settled */
    struct stat st;
    assert_int_equal(stat(cert_path, &st), 0);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 5;
    assert_int_equal(utimensat(AT_FDCWD, cert_path, times, 0), 0);
    assert_true(sig != gw_gen_watch_signature(gen));
    const char *changed = gw_gen_files_changed(gen, false);
    assert_non_null(changed);
    assert_string_equal(changed, cert_path);
    assert_non_null(gw_gen_files_changed(gen, true)); /* reports, then remembers */
    assert_null(gw_gen_files_changed(gen, false));
    gw_gen_unref(gen);
    server_done(srv);
}

static void missing_crl_is_io_error(void **state)
{
    (void)state;
    char *argv[32];
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.crl", dir);
    struct gw_server *srv = server_with("127.0.0.1:18443", "--crl", missing, argv);
    struct tw_err err;
    tw_err_clear(&err);
    assert_null(gw_gen_build(srv, &err));
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "missing.crl"));
    server_done(srv);
}

static void garbage_crl_is_config_error(void **state)
{
    (void)state;
    FILE *f = fopen(crl_path, "w");
    assert_non_null(f);
    fputs("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", f);
    fclose(f);
    char *argv[32];
    struct gw_server *srv = server_with("127.0.0.1:18443", "--crl", crl_path, argv);
    struct tw_err err;
    tw_err_clear(&err);
    assert_null(gw_gen_build(srv, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "bad.crl"));
    server_done(srv);
}

static void bad_flag_is_usage_error(void **state)
{
    (void)state;
    char *argv[32];
    struct gw_server *srv = server_with("127.0.0.1:18443", "--workers", "many", argv);
    struct tw_err err;
    tw_err_clear(&err);
    assert_null(gw_gen_build(srv, &err));
    assert_int_equal(err.code, TW_ERR_USAGE);
    server_done(srv);
}

static void new_listen_address_in_use_is_refused(void **state)
{
    (void)state;
    int busy = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(busy >= 0);
    struct sockaddr_in in = {.sin_family = AF_INET};
    in.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(bind(busy, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(busy, 1), 0);
    socklen_t len = sizeof(in);
    assert_int_equal(getsockname(busy, (struct sockaddr *)&in, &len), 0);
    char taken[32];
    snprintf(taken, sizeof(taken), "127.0.0.1:%u", (unsigned)ntohs(in.sin_port));

    char *argv1[32], *argv2[32];
    struct gw_server *a = server_with("127.0.0.1:18443", NULL, NULL, argv1);
    struct gw_server *b = server_with(taken, NULL, NULL, argv2);
    struct tw_err err;
    struct gw_gen *ga = gw_gen_build(a, &err), *gb = gw_gen_build(b, &err);
    assert_non_null(ga);
    assert_non_null(gb);
    tw_err_clear(&err);
    assert_int_equal(gw_gen_probe_listens(ga, gb, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, taken));
    assert_int_equal(gw_gen_probe_listens(gb, gb, &err), 0); /* not new: not probed */
    gw_gen_unref(ga);
    gw_gen_unref(gb);
    server_done(a);
    server_done(b);
    close(busy);
}

static void reason_codes_and_addresses(void **state)
{
    (void)state;
    assert_string_equal(gw_reason_code(TLSX_R_OK), tlsx_reason_code(TLSX_R_OK));
    assert_string_equal(gw_reason_code(TLSX_R_EXPIRED), "expired");
    assert_string_equal(gw_reason_code(GW_R_TIMEOUT), "timeout");
    assert_string_equal(gw_reason_code(GW_R_LIMIT), "max-connections");
    assert_string_equal(gw_reason_code(-1), "unknown");
    assert_string_equal(gw_reason_code(GW_R_BACKEND), "backend-error");
    assert_string_equal(gw_reason_code(GW_R_BACKEND + 1), "unknown");

    char out[64];
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8443)};
    in.sin_addr.s_addr = htonl(0x7f000001);
    assert_string_equal(gw_addr_text((struct sockaddr *)&in, sizeof(in), out, sizeof(out)),
                        "127.0.0.1:8443");
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    in6.sin6_addr.s6_addr[15] = 1;
    assert_string_equal(gw_addr_text((struct sockaddr *)&in6, sizeof(in6), out, sizeof(out)),
                        "[::1]:443");
    assert_string_equal(gw_addr_text(NULL, 0, out, sizeof(out)), "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builds_and_refcounts),
        cmocka_unit_test(watches_files),
        cmocka_unit_test(missing_crl_is_io_error),
        cmocka_unit_test(garbage_crl_is_config_error),
        cmocka_unit_test(bad_flag_is_usage_error),
        cmocka_unit_test(new_listen_address_in_use_is_refused),
        cmocka_unit_test(reason_codes_and_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
