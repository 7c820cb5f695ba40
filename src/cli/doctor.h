/* twoway doctor, private to src/cli/doctor*.c: the facts a probe and the file checks
 * gathered, the diagnosis table that turns them into plain words with a fix, and output. */
#ifndef TW_CLI_DOCTOR_H
#define TW_CLI_DOCTOR_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "tlsx/tlsx.h"

/* Everything the diagnosis looks at. Pointers may be NULL when that part did not run. */
struct doctor_facts {
    bool online;                        /* HOST:PORT was probed */
    const char *target;                 /* "HOST:PORT" as given */
    const struct tlsx_probe *probe;     /* online only */
    const struct tlsx_file_check *mine; /* --cert given */
    const char *cert_file, *key_file, *ca_file, *crl_file;
    bool key_unusable; /* the key did not match: the probe ran without a certificate */
    char key_where[320]; /* keystore_describe of the key: "" for a key file */
    int64_t now;
};

#define DOCTOR_MAX_FINDINGS 16
#define DOCTOR_TEXT_MAX 768

struct doctor_finding {
    const char *code; /* stable, for scripts: "no-client-cert" */
    bool fatal;       /* makes the exit code 1 */
    char problem[DOCTOR_TEXT_MAX];
    char fix[DOCTOR_TEXT_MAX];
};

struct doctor_diagnosis {
    struct doctor_finding f[DOCTOR_MAX_FINDINGS];
    size_t n;
    bool ok; /* no fatal finding */
};

/* Run the diagnosis table over facts (doctor_diag.c). */
void doctor_diagnose(const struct doctor_facts *facts, struct doctor_diagnosis *out);

/* Human output (doctor_out.c). */
void doctor_print_step(FILE *out, enum tlsx_probe_step step, const struct tlsx_probe *p,
                       const struct doctor_facts *facts);
void doctor_print_files(FILE *out, const struct doctor_facts *facts);
void doctor_print_diagnosis(FILE *out, const struct doctor_facts *facts,
                            const struct doctor_diagnosis *d);

/* JSON (doctor_out.c): the whole report as one object (new reference). */
json_t *doctor_json(const struct doctor_facts *facts, const struct doctor_diagnosis *d);

/* "2026-11-27T20:43:43Z" */
const char *doctor_time(int64_t t, char *buf, size_t cap);

#endif
