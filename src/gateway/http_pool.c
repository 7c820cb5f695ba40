/* Idle backend connections shared by a worker's client connections. A pooled connection must
 * stay silent: a byte or a close from the backend retires it, and so does its idle timer. */
#include "gateway/http_pool.h"

#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>

struct gw_pool_ent {
    struct gw_pool_ent *next, *prev;
    struct gw_worker *w;
    const struct gw_svc *svc;
    struct bufferevent *bev;
    struct event *timer;
};

static void on_timer(evutil_socket_t fd, short what, void *arg);

/* An entry leaves the pool; it is kept, timer and all, for the next connection parked (an
 * exchange parks and takes one connection each: allocating them anew is waste). At most as
 * many are kept as were ever in use at once; gw_pool_flush frees them. */
static void unlink_ent(struct gw_pool_ent *e)
{
    struct gw_worker *w = e->w;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        w->pool = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    w->pool_len--;
    evtimer_del(e->timer);
    e->bev = NULL;
    e->prev = NULL;
    e->next = w->pool_spare;
    w->pool_spare = e;
}

static struct gw_pool_ent *ent_new(struct gw_worker *w)
{
    struct gw_pool_ent *e = w->pool_spare;
    if (e != NULL) {
        w->pool_spare = e->next;
        return e;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->w = w;
    e->timer = evtimer_new(w->base, on_timer, e);
    if (e->timer == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

static void retire(struct gw_pool_ent *e)
{
    bufferevent_free(e->bev);
    unlink_ent(e);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    retire(arg);
}

static void on_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    (void)events;
    ERR_clear_error();
    retire(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    retire(arg);
}

void gw_pool_put(struct gw_worker *w, const struct gw_svc *svc, struct bufferevent *bev)
{
    /* Entries of svc are counted only when the whole pool could hold its limit of them. */
    size_t n = 0;
    size_t limit = svc->cfg->limits.backend_keepalive;
    for (struct gw_pool_ent *e = w->pool_len >= limit ? w->pool : NULL; e != NULL; e = e->next)
        n += e->svc == svc;
    struct gw_pool_ent *e = NULL;
    if (w->draining || n >= limit || w->gen == NULL ||
        gw_gen_find_svc(w->gen, svc->cfg->name) != svc || (e = ent_new(w)) == NULL) {
        bufferevent_free(bev);
        return;
    }
    e->svc = svc;
    e->bev = bev;
    e->prev = NULL;
    e->next = w->pool;
    if (w->pool != NULL)
        w->pool->prev = e;
    w->pool = e;
    w->pool_len++;
    int64_t ms = svc->cfg->timeouts.backend_idle * 1000;
    struct timeval tv = {(time_t)(ms / 1000), 0};
    evtimer_add(e->timer, &tv);
    bufferevent_setcb(bev, on_read, NULL, on_event, e);
    bufferevent_enable(bev, EV_READ);
}

struct bufferevent *gw_pool_take(struct gw_worker *w, const struct gw_svc *svc)
{
    for (struct gw_pool_ent *e = w->pool; e != NULL; e = e->next) {
        if (e->svc != svc)
            continue;
        struct bufferevent *bev = e->bev;
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        unlink_ent(e);
        return bev;
    }
    return NULL;
}

void gw_pool_flush(struct gw_worker *w)
{
    while (w->pool != NULL)
        retire(w->pool);
    while (w->pool_spare != NULL) {
        struct gw_pool_ent *e = w->pool_spare;
        w->pool_spare = e->next;
        event_free(e->timer);
        free(e);
    }
}
