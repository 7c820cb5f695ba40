/* SNI: one listener, several services. The switch happens in the ClientHello callback, the
 * first thing OpenSSL runs for a ClientHello: before version and cipher selection and before
 * any session is resumed, so a session can only resume at the service that issued it (its
 * session id context) and verification uses that service's CAs, CRLs and policy. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/tls1.h>

#include "tlsx/internal.h"
#include "util/buf.h"

struct sni_entry {
    char *name; /* lower-case; "*.example.com" for a one-label wildcard */
    SSL_CTX *ctx;
};

struct tlsx_sni_table {
    size_t n;
    struct sni_entry *e;
    SSL_CTX *def;
    bool strict;
};

struct tlsx_sni_table *tlsx_sni_table_new(struct tw_err *err)
{
    struct tlsx_sni_table *t = calloc(1, sizeof(*t));
    TW_ENSURE_PTR(t != NULL, err, TW_ERR_INTERNAL, "out of memory");
    return t;
}

void tlsx_sni_table_free(struct tlsx_sni_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].name);
        SSL_CTX_free(t->e[i].ctx);
    }
    free(t->e);
    SSL_CTX_free(t->def);
    free(t);
}

static int valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > TLSX_MAX_HOSTNAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_' && !(c == '*' && i == 0))
            return 0;
    }
    return name[0] != '*' || (len > 2 && name[1] == '.');
}

/* The ctx configured for name, without falling back to the default. */
static SSL_CTX *match(const struct tlsx_sni_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcasecmp(t->e[i].name, name) == 0)
            return t->e[i].ctx;
    /* "*.example.com" matches exactly one label before ".example.com". */
    const char *dot = strchr(name, '.');
    if (dot != NULL && dot != name)
        for (size_t i = 0; i < t->n; i++)
            if (t->e[i].name[0] == '*' && strcasecmp(t->e[i].name + 1, dot) == 0)
                return t->e[i].ctx;
    return NULL;
}

SSL_CTX *tlsx_sni_table_lookup(const struct tlsx_sni_table *t, const char *name)
{
    if (t == NULL)
        return NULL;
    SSL_CTX *ctx = name != NULL ? match(t, name) : NULL;
    return ctx != NULL ? ctx : t->def;
}

int tlsx_sni_table_add(struct tlsx_sni_table *t, const char *name, SSL_CTX *ctx, struct tw_err *err)
{
    TW_ENSURE(name != NULL && valid_name(name), err, TW_ERR_CONFIG,
              "server name '%s' is not a valid DNS name (or *.domain)", name ? name : "");
    TW_ENSURE(t->n < TLSX_MAX_SNI_NAMES, err, TW_ERR_CONFIG, "more than %d server names",
              TLSX_MAX_SNI_NAMES);
    for (size_t i = 0; i < t->n; i++)
        TW_ENSURE(strcasecmp(t->e[i].name, name) != 0, err, TW_ERR_CONFIG,
                  "server name '%s' is used by two services", name);
    struct sni_entry *e = realloc(t->e, (t->n + 1) * sizeof(*e));
    TW_ENSURE(e != NULL, err, TW_ERR_INTERNAL, "out of memory");
    t->e = e;
    char *copy = strdup(name);
    TW_ENSURE(copy != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (char *c = copy; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    SSL_CTX_up_ref(ctx);
    t->e[t->n++] = (struct sni_entry){.name = copy, .ctx = ctx};
    return 0;
}

int tlsx_sni_table_set_default(struct tlsx_sni_table *t, SSL_CTX *ctx, bool strict,
                               struct tw_err *err)
{
    (void)err;
    if (ctx != NULL)
        SSL_CTX_up_ref(ctx);
    SSL_CTX_free(t->def);
    t->def = ctx;
    t->strict = strict;
    return 0;
}

/* RFC 6066 §3: ServerNameList = u16 length, then entries of u8 type, u16 length, name. Only
 * host_name (0) exists. Returns 1 and the name, 0 when there is none, -1 when malformed. */
static int parse_sni(const unsigned char *p, size_t len, char *out, size_t cap)
{
    struct tw_cursor c;
    uint16_t list_len;
    tw_cursor_init(&c, p, len);
    if (tw_cursor_u16be(&c, &list_len) != 0 || list_len != tw_cursor_remaining(&c))
        return -1;
    while (tw_cursor_remaining(&c) > 0) {
        uint8_t type;
        uint16_t n;
        const uint8_t *name;
        if (tw_cursor_u8(&c, &type) != 0 || tw_cursor_u16be(&c, &n) != 0 ||
            tw_cursor_bytes(&c, n, &name) != 0)
            return -1;
        if (type != TLSEXT_NAMETYPE_host_name)
            continue;
        if (n == 0 || n >= cap || memchr(name, '\0', n) != NULL)
            return -1;
        memcpy(out, name, n);
        out[n] = '\0';
        if (n > 1 && out[n - 1] == '.') /* a trailing dot names the same host */
            out[n - 1] = '\0';
        return 1;
    }
    return 0;
}

/* SSL_set_SSL_CTX swaps the certificate and session id context only; the verify settings,
 * client CA names, versions and ticket count come from the service ctx here. Cipher lists
 * stay those of the listener ctx (OpenSSL copies them at SSL_new). */
static int switch_ctx(SSL *ssl, SSL_CTX *ctx)
{
    if (SSL_set_SSL_CTX(ssl, ctx) != ctx)
        return -1;
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
    SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx));
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_clear_flags(param, X509_VERIFY_PARAM_get_flags(param));
    if (X509_VERIFY_PARAM_set1(param, SSL_CTX_get0_param(ctx)) != 1)
        return -1;
    SSL_clear_options(ssl, SSL_get_options(ssl));
    SSL_set_options(ssl, SSL_CTX_get_options(ctx));
    if (SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx)) != 1 ||
        SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(ctx)) != 1 ||
        SSL_set_num_tickets(ssl, SSL_CTX_get_num_tickets(ctx)) != 1)
        return -1;
    STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(ctx);
    STACK_OF(X509_NAME) *copy = names != NULL ? SSL_dup_CA_list(names) : NULL;
    if (names != NULL && copy == NULL)
        return -1;
    SSL_set_client_CA_list(ssl, copy);
    return 0;
}

static int hello_cb(SSL *ssl, int *al, void *arg)
{
    const struct tlsx_sni_table *t = arg;
    const unsigned char *ext = NULL;
    size_t len = 0;
    char name[TLSX_MAX_HOSTNAME + 2];
    SSL_CTX *target = NULL;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1) {
        int found = parse_sni(ext, len, name, sizeof(name));
        if (found < 0) {
            *al = SSL_AD_DECODE_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        if (found > 0)
            target = match(t, name);
    }
    if (target == NULL && !t->strict)
        target = t->def;
    if (target == NULL && t->strict) {
        *al = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (target != NULL && target != SSL_get_SSL_CTX(ssl) && switch_ctx(ssl, target) != 0) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

int tlsx_sni_table_install(struct tlsx_sni_table *t, SSL_CTX *listener_ctx, struct tw_err *err)
{
    TW_ENSURE(t != NULL && listener_ctx != NULL, err, TW_ERR_INTERNAL, "no SNI table or ctx");
    SSL_CTX_set_client_hello_cb(listener_ctx, hello_cb, t);
    return 0;
}
