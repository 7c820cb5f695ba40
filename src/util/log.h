/* Logging: one shared sink, lines written whole. Secrets are never passed here. */
#ifndef TW_UTIL_LOG_H
#define TW_UTIL_LOG_H

#include <stdio.h>

#include "util/err.h"

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

/* Direct log lines to fp (default stderr) at or above min. Not thread-safe: call at start-up. */
void log_init(FILE *fp, enum log_level min);

/* Parse "debug|info|warn|error". Returns -1 on an unknown name. */
int log_level_parse(const char *name, enum log_level *out);

void log_debug(const char *fmt, ...) TW_PRINTF(1, 2);
void log_info(const char *fmt, ...) TW_PRINTF(1, 2);
/* log_warn appends strerror(errno); log_warnx does not. */
void log_warn(const char *fmt, ...) TW_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) TW_PRINTF(1, 2);
void log_errx(const char *fmt, ...) TW_PRINTF(1, 2);

/* Write a preformatted line (e.g. a JSON access-log record) to fp under the sink's lock. */
void log_line(FILE *fp, const char *line);

#endif
