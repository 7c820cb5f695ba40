/* Time: durations as users type them, timestamps as logs and JSON print them. */
#ifndef TW_UTIL_CLOCK_H
#define TW_UTIL_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/err.h"

/* Parse "90", "90s", "15m", "12h", "30d", "2w" into seconds. Bare numbers are seconds.
 * Fails with TW_ERR_USAGE naming the text for anything else, negatives or overflow. */
int clock_duration_parse(const char *text, int64_t *seconds, struct tw_err *err) TW_MUST_CHECK;

/* Format t as "2026-11-27T20:43:43Z" into out (at least 21 bytes). Returns out. */
char *clock_iso8601(time_t t, char *out, size_t cap);

/* Wall-clock seconds since the epoch with microseconds, for trace lines that are compared
 * across processes (a CA and its gateways on one machine). */
double clock_wall_now(void);

#endif
