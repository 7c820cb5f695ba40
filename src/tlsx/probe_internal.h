/* Private to the doctor probe files of src/tlsx/ (probe.c, probe_cert.c). */
#ifndef TW_TLSX_PROBE_INTERNAL_H
#define TW_TLSX_PROBE_INTERNAL_H

#include <stddef.h>

#include <openssl/x509.h>

/* A distinguished name in RFC 2253 form, truncated to cap ("" when it cannot be printed). */
void tlsx_probe_name_text(const X509_NAME *name, char *out, size_t cap);

#endif
