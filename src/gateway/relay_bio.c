/* The fast relay's TLS write BIO (relay_fast.c): the records SSL_write makes collect in a
 * buffer and leave in one send per chunk (four 16 KiB records) instead of one send per
 * record: fewer syscalls and fewer, larger packets. The buffer exists only while records wait
 * to be sent. OpenSSL flushes the BIO where it writes on its own (alerts such as
 * close_notify, a KeyUpdate answer); the relay flushes after its SSL_writes. The BIO and its
 * state are freed with the SSL; the socket stays the connection's. */
#include "gateway/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>

/* Four full TLS 1.3 records (16 KiB + header, type and tag) with room to spare. */
#define OUT_CAP (64u * 1024 + 4 * 256)

struct outbio {
    int fd;
    size_t off, len;
    unsigned char *buf; /* OUT_CAP bytes while records wait, else NULL */
};

static BIO_METHOD *out_method;
static pthread_once_t out_once = PTHREAD_ONCE_INIT;

int gw_outbio_send(BIO *b)
{
    struct outbio *o = b != NULL ? BIO_get_data(b) : NULL;
    if (o == NULL)
        return -1;
    while (o->off < o->len) {
        ssize_t n = send(o->fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL);
        if (n > 0) {
            o->off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            if (n == 0)
                errno = EPIPE;
            return -1;
        }
    }
    free(o->buf);
    o->buf = NULL;
    o->off = o->len = 0;
    return 1;
}

bool gw_outbio_pending(BIO *b)
{
    struct outbio *o = b != NULL ? BIO_get_data(b) : NULL;
    return o != NULL && o->len > o->off;
}

static int out_write(BIO *b, const char *data, int len)
{
    struct outbio *o = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (o == NULL || len < 0 || (size_t)len > OUT_CAP)
        return -1;
    if (OUT_CAP - o->len < (size_t)len) {
        int r = gw_outbio_send(b);
        if (r <= 0) {
            if (r == 0)
                BIO_set_retry_write(b);
            return -1;
        }
    }
    if (o->buf == NULL && (o->buf = malloc(OUT_CAP)) == NULL)
        return -1;
    memcpy(o->buf + o->len, data, (size_t)len);
    o->len += (size_t)len;
    return len;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH: {
        BIO_clear_retry_flags(b);
        int r = gw_outbio_send(b);
        if (r == 0)
            BIO_set_retry_write(b);
        return r;
    }
    case BIO_CTRL_WPENDING: {
        struct outbio *o = BIO_get_data(b);
        return o != NULL ? (long)(o->len - o->off) : 0;
    }
    case BIO_CTRL_DUP:
        return 1;
    default:
        return 0;
    }
}

static int out_destroy(BIO *b)
{
    struct outbio *o = BIO_get_data(b);
    if (o != NULL) {
        free(o->buf);
        free(o);
    }
    BIO_set_data(b, NULL);
    return 1;
}

static void out_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "twoway relay out");
    if (m != NULL && (BIO_meth_set_write(m, out_write) != 1 ||
                      BIO_meth_set_ctrl(m, out_ctrl) != 1 ||
                      BIO_meth_set_destroy(m, out_destroy) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    out_method = m;
}

BIO *gw_outbio_new(int fd)
{
    pthread_once(&out_once, out_method_init);
    struct outbio *o = calloc(1, sizeof(*o));
    BIO *b = out_method != NULL && o != NULL ? BIO_new(out_method) : NULL;
    if (b == NULL) {
        free(o);
        return NULL;
    }
    o->fd = fd;
    BIO_set_data(b, o);
    BIO_set_init(b, 1);
    return b;
}
