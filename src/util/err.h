/* One error type for the whole program, filled where the failure happened. */
#ifndef TW_UTIL_ERR_H
#define TW_UTIL_ERR_H

#include <stddef.h>

enum tw_errc {
    TW_OK = 0,
    TW_ERR_USAGE,    /* bad command line: exit 2 */
    TW_ERR_IO,       /* file or socket */
    TW_ERR_CONFIG,   /* configuration value */
    TW_ERR_TLS,      /* handshake or TLS setup */
    TW_ERR_VERIFY,   /* certificate verification */
    TW_ERR_POLICY,   /* allow-policy denial */
    TW_ERR_PKI,      /* CA operation: bad CSR, wrong passphrase, ... */
    TW_ERR_STORE,    /* inventory database */
    TW_ERR_NOTFOUND, /* unknown serial or name */
    TW_ERR_EXISTS,   /* refusing to overwrite, already revoked */
    TW_ERR_INTERNAL,
};

#define TW_ERR_MSG_MAX 256

struct tw_err {
    enum tw_errc code;
    char msg[TW_ERR_MSG_MAX];
    unsigned long ossl; /* first OpenSSL error code, 0 if none */
    int sys_errno;      /* errno at the failure, 0 if none */
};

#define TW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define TW_MUST_CHECK __attribute__((warn_unused_result))

/* Reset an error to TW_OK. Accepts NULL. */
void tw_err_clear(struct tw_err *err);

/* Fill err with code and a formatted message. Accepts err == NULL. Always returns -1. */
int tw_err_set(struct tw_err *err, enum tw_errc code, const char *fmt, ...) TW_PRINTF(3, 4);

/* Like tw_err_set, then appends ": strerror(errno)" and records errno. */
int tw_err_sys(struct tw_err *err, enum tw_errc code, const char *fmt, ...) TW_PRINTF(3, 4);

/* Like tw_err_set, then appends the OpenSSL error queue's first reason in plain words and
 * drains the queue so the next operation starts clean. */
int tw_err_ossl(struct tw_err *err, enum tw_errc code, const char *fmt, ...) TW_PRINTF(3, 4);

/* Short lower-case name of a code ("usage", "io", ...), for logs and JSON. */
const char *tw_errc_name(enum tw_errc code);

/* Process exit code for an error: 2 for usage, 1 otherwise, 0 for TW_OK. */
int tw_err_exit_code(const struct tw_err *err);

/* Guards: happy path straight down the page. Each returns from the calling function. */
#define TW_ENSURE(cond, err, code, ...)                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return tw_err_set((err), (code), __VA_ARGS__);                                         \
    } while (0)

#define TW_ENSURE_PTR(cond, err, code, ...)                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tw_err_set((err), (code), __VA_ARGS__);                                                \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)

/* A call returning 0 on success, -1 with err already filled. */
#define TW_GUARD(call)                                                                             \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return -1;                                                                             \
    } while (0)

#define TW_GUARD_PTR(call)                                                                         \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return NULL;                                                                           \
    } while (0)

/* An OpenSSL call where only 1 means success; drains the error queue on failure. */
#define TW_GUARD_OSSL(call, err, code, ...)                                                        \
    do {                                                                                           \
        if ((call) != 1)                                                                           \
            return tw_err_ossl((err), (code), __VA_ARGS__);                                        \
    } while (0)

/* An OpenSSL call returning a pointer, NULL on failure. */
#define TW_ENSURE_OSSL(cond, err, code, ...)                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return tw_err_ossl((err), (code), __VA_ARGS__);                                        \
    } while (0)

#endif
