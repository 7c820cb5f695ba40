/* The demo's backend: a plain HTTP service that knows nothing about TLS. It trusts the gateway
 * in front of it and greets the client named in the RFC 9440 Client-Cert header. */
#include "cli/demo.h"
#include "cli/flags.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cli/cli.h"
#include "util/cleanup.h"

#define CLIENT_CERT_MAX 16384 /* header value; a client certificate is a few kB */

/* RFC 9440 §2.1: Client-Cert is an sf-binary, ":" base64(DER) ":". */
static X509 *cert_from_header(const char *value)
{
    size_t len = value != NULL ? strlen(value) : 0;
    if (len < 3 || len > CLIENT_CERT_MAX || value[0] != ':' || value[len - 1] != ':')
        return NULL;
    unsigned char *der = malloc(len);
    if (der == NULL)
        return NULL;
    int n = EVP_DecodeBlock(der, (const unsigned char *)value + 1, (int)(len - 2));
    X509 *cert = NULL;
    if (n > 0) {
        /* EVP_DecodeBlock counts '=' padding as zero bytes; DER carries its own length. */
        const unsigned char *p = der;
        cert = d2i_X509(NULL, &p, n);
    }
    free(der);
    return cert;
}

static void greet(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
    TW_AUTO(X509) *cert = cert_from_header(evhttp_find_header(headers, "Client-Cert"));
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    char cn[256] = "";
    if (cert != NULL)
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    if (cert == NULL || cn[0] == '\0') {
        evbuffer_add_printf(body, "Hello, stranger: no verified client certificate reached me.\n");
        evhttp_send_reply(req, 403, "Forbidden", body);
    } else {
        char *serial = NULL;
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
        if (bn != NULL)
            serial = BN_bn2hex(bn);
        BN_free(bn);
        evbuffer_add_printf(body,
                            "Hello, %s! The gateway verified your certificate (serial %s) and "
                            "told me who you are.\n",
                            cn, serial != NULL ? serial : "?");
        OPENSSL_free(serial);
        evhttp_send_reply(req, 200, "OK", body);
    }
    evbuffer_free(body);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static const char usage[] = "usage: twoway demo backend --listen 127.0.0.1:PORT\n"
                            "\n"
                            "The demo's plain HTTP backend: greets the client the gateway names.\n";

static const struct flag flags[] = {
    {.name = "listen", .kind = FLAG_STRING, .off = 0},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = "demo backend", .usage = usage, .flags = flags};

int demo_backend_main(int argc, char **argv)
{
    const char *listen = NULL;
    int rc = flags_parse(&flag_set, &listen, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    const char *colon = listen != NULL ? strrchr(listen, ':') : NULL;
    if (colon == NULL)
        return cli_usage_error("demo backend", "--listen 127.0.0.1:PORT is required");
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    int port = (int)strtol(colon + 1, NULL, 10);

    struct event_base *base = event_base_new();
    struct evhttp *http = base != NULL ? evhttp_new(base) : NULL;
    if (http == NULL || evhttp_bind_socket(http, host, (ev_uint16_t)port) != 0) {
        fprintf(stderr, "twoway demo backend: cannot listen on %s\n", listen);
        if (http != NULL)
            evhttp_free(http);
        if (base != NULL)
            event_base_free(base);
        return 1;
    }
    evhttp_set_gencb(http, greet, NULL);
    struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, base);
    event_add(term, NULL);
    event_add(intr, NULL);
    fprintf(stderr, "twoway demo backend: ready, listening on http://%s\n", listen);
    event_base_dispatch(base);
    event_free(term);
    event_free(intr);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
