/* A worker's pool of idle HTTP/1.1 keep-alive backend connections, per service of its current
 * generation (backend-keepalive, backend-idle-timeout). Nothing client-specific lives on such a
 * connection: identity goes in each request's header lines, and a tls:// backend sees the
 * gateway's own client certificate; so one client's stream may use another's connection. */
#ifndef TW_GATEWAY_HTTP_POOL_H
#define TW_GATEWAY_HTTP_POOL_H

#include "gateway/internal.h"

/* Keep bev, an idle connection to svc's backend with nothing in flight, or close it (pool full
 * for svc, svc not of the worker's current generation, draining). */
void gw_pool_put(struct gw_worker *w, const struct gw_svc *svc, struct bufferevent *bev);
/* The most recently parked connection to svc's backend, or NULL. */
struct bufferevent *gw_pool_take(struct gw_worker *w, const struct gw_svc *svc);
/* Close every pooled connection (drain, shutdown, a new generation). */
void gw_pool_flush(struct gw_worker *w);

#endif
