/* ex_data plumbing: the server state hangs off each SSL_CTX, the note off each SSL. Indices
 * are allocated once per process; the data itself is per object, never global. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tlsx/internal.h"

static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
static int ctx_index = -1;
static int ssl_index = -1;

static void free_state(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    tlsx_server_state_free(ptr);
}

static void free_note(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    struct tlsx_ssl_note *note = ptr;
    if (note != NULL)
        tlsx_identity_free(note->identity);
    free(note);
}

/* SSL_dup must not share the note (it would be freed twice): the copy starts without one. */
static int dup_note(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx,
                    long argl, void *argp)
{
    (void)to, (void)from, (void)idx, (void)argl, (void)argp;
    *from_d = NULL;
    return 1;
}

static void init_indices(void)
{
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_state);
    ssl_index = SSL_get_ex_new_index(0, NULL, NULL, dup_note, free_note);
}

static int ready(void)
{
    return CRYPTO_THREAD_run_once(&once, init_indices) == 1 && ctx_index >= 0 && ssl_index >= 0;
}

void tlsx_server_state_free(struct tlsx_server_state *st)
{
    if (st == NULL)
        return;
    tlsx_crl_set_free(st->crls);
    tlsx_policy_free(st->policy);
    tlsx_ticket_keys_free(st->tickets);
    sk_X509_pop_free(st->client_cas, X509_free);
    free(st);
}

struct tlsx_server_state *tlsx_server_state_get(const SSL_CTX *ctx)
{
    if (ctx == NULL || !ready())
        return NULL;
    return SSL_CTX_get_ex_data(ctx, ctx_index);
}

int tlsx_server_state_attach(SSL_CTX *ctx, struct tlsx_server_state *st, struct tw_err *err)
{
    if (!ready() || SSL_CTX_set_ex_data(ctx, ctx_index, st) != 1) {
        tlsx_server_state_free(st);
        return tw_err_ossl(err, TW_ERR_INTERNAL, "cannot attach state to the TLS context");
    }
    return 0;
}

struct tlsx_ssl_note *tlsx_ssl_note_get(const SSL *ssl, bool create)
{
    if (ssl == NULL || !ready())
        return NULL;
    struct tlsx_ssl_note *note = SSL_get_ex_data(ssl, ssl_index);
    if (note != NULL || !create)
        return note;
    note = calloc(1, sizeof(*note));
    if (note == NULL)
        return NULL;
    note->alert_received = -1;
    note->alert_sent = -1;
    if (SSL_set_ex_data((SSL *)ssl, ssl_index, note) != 1) {
        free(note);
        return NULL;
    }
    return note;
}

void tlsx_ssl_note_verdict(SSL *ssl, enum tlsx_reason r, const char *detail)
{
    struct tlsx_ssl_note *note = tlsx_ssl_note_get(ssl, true);
    if (note == NULL)
        return;
    note->verdict = r;
    snprintf(note->detail, sizeof(note->detail), "%s", detail != NULL ? detail : "");
}
