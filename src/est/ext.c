/* Extensions of the HTTPS listener (the console): a path prefix routed to a handler outside
 * src/est, which sees its request only through these accessors. */
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "est/internal.h"

const char *est_req_method(const struct est_req *r)
{
    switch (evhttp_request_get_command(r->req)) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_POST:
        return "POST";
    default:
        return "OTHER";
    }
}

const char *est_req_path(const struct est_req *r)
{
    return r->path;
}

const char *est_req_query(const struct est_req *r)
{
    return evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r->req));
}

const char *est_req_header(const struct est_req *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

unsigned char *est_req_body(struct est_req *r, size_t *len)
{
    return est_body(r, len);
}

X509 *est_req_client_cert(struct est_req *r, long *verify_error)
{
    long verr = X509_V_ERR_UNSPECIFIED;
    X509 *peer = r->plain ? NULL : est_peer_cert(r, &verr);
    if (verify_error != NULL)
        *verify_error = verr;
    return peer != NULL && verr == X509_V_OK ? peer : NULL;
}

void est_req_reply(struct est_req *r, int status, const char *content_type, const void *body,
                   size_t len, const char *const *headers, const char *detail)
{
    if (detail != NULL)
        snprintf(r->detail, sizeof(r->detail), "%s", detail);
    est_reply(r, status, content_type, body, len, headers);
}

const struct est_ext *est_ext_lookup(const struct est_server_opts *opts, const char *path)
{
    for (size_t i = 0; opts->exts != NULL && i < EST_EXT_MAX && opts->exts[i].prefix != NULL;
         i++)
        if (strncmp(path, opts->exts[i].prefix, strlen(opts->exts[i].prefix)) == 0)
            return &opts->exts[i];
    return NULL;
}
