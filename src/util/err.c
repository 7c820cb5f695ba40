#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

void tw_err_clear(struct tw_err *err)
{
    if (err == NULL)
        return;
    err->code = TW_OK;
    err->msg[0] = '\0';
    err->ossl = 0;
    err->sys_errno = 0;
}

TW_PRINTF(3, 0)
static void vset(struct tw_err *err, enum tw_errc code, const char *fmt, va_list ap)
{
    err->code = code;
    err->ossl = 0;
    err->sys_errno = 0;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

static void append(struct tw_err *err, const char *suffix)
{
    size_t used = strlen(err->msg);
    if (used + 2 < sizeof(err->msg))
        snprintf(err->msg + used, sizeof(err->msg) - used, ": %s", suffix);
}

int tw_err_set(struct tw_err *err, enum tw_errc code, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, fmt, ap);
    va_end(ap);
    return -1;
}

int tw_err_sys(struct tw_err *err, enum tw_errc code, const char *fmt, ...)
{
    int saved = errno;
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, fmt, ap);
    va_end(ap);
    err->sys_errno = saved;
    append(err, strerror(saved));
    return -1;
}

int tw_err_ossl(struct tw_err *err, enum tw_errc code, const char *fmt, ...)
{
    unsigned long first = ERR_peek_error();
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vset(err, code, fmt, ap);
        va_end(ap);
        err->ossl = first;
        if (first != 0) {
            const char *reason = ERR_reason_error_string(first);
            if (reason != NULL)
                append(err, reason);
        }
    }
    ERR_clear_error();
    return -1;
}

static const char *const names[] = {
    [TW_OK] = "ok",           [TW_ERR_USAGE] = "usage",       [TW_ERR_IO] = "io",
    [TW_ERR_CONFIG] = "config", [TW_ERR_TLS] = "tls",         [TW_ERR_VERIFY] = "verify",
    [TW_ERR_POLICY] = "policy", [TW_ERR_PKI] = "pki",         [TW_ERR_STORE] = "store",
    [TW_ERR_NOTFOUND] = "not-found", [TW_ERR_EXISTS] = "exists", [TW_ERR_INTERNAL] = "internal",
};

const char *tw_errc_name(enum tw_errc code)
{
    if ((size_t)code >= sizeof(names) / sizeof(names[0]) || names[code] == NULL)
        return "unknown";
    return names[code];
}

int tw_err_exit_code(const struct tw_err *err)
{
    if (err == NULL || err->code == TW_OK)
        return 0;
    return err->code == TW_ERR_USAGE ? 2 : 1;
}
