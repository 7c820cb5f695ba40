/* Passphrases and passwords: read from a file's first line, kept in a wipeable buffer. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "pki/pki.h"
#include "util/fs.h"

int pki_secret_set(struct pki_secret *out, const char *text, struct tw_err *err)
{
    size_t len = strlen(text);
    TW_ENSURE(len > 0, err, TW_ERR_PKI, "empty passphrase");
    TW_ENSURE(len < sizeof(out->data), err, TW_ERR_PKI, "passphrase longer than %d bytes",
              PKI_SECRET_MAX - 1);
    memcpy(out->data, text, len);
    out->data[len] = '\0';
    out->len = len;
    return 0;
}

int pki_secret_read_file(const char *path, struct pki_secret *out, struct tw_err *err)
{
    char *data = NULL;
    size_t len = 0;
    TW_GUARD(fs_read_file(path, PKI_SECRET_MAX + 2, &data, &len, err));
    /* The secret is the first line; a trailing CR from Windows editors is not part of it. */
    size_t n = 0;
    while (n < len && data[n] != '\n')
        n++;
    if (n > 0 && data[n - 1] == '\r')
        n--;
    int rc = 0;
    if (n == 0)
        rc = tw_err_set(err, TW_ERR_PKI, "%s: the first line is empty (no passphrase)", path);
    else if (n >= sizeof(out->data))
        rc = tw_err_set(err, TW_ERR_PKI, "%s: passphrase longer than %d bytes", path,
                        PKI_SECRET_MAX - 1);
    else if (memchr(data, '\0', n) != NULL)
        rc = tw_err_set(err, TW_ERR_PKI, "%s: passphrase contains a NUL byte", path);
    if (rc == 0) {
        memcpy(out->data, data, n);
        out->data[n] = '\0';
        out->len = n;
    }
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

void pki_secret_wipe(struct pki_secret *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s->data, sizeof(s->data));
    s->len = 0;
}
