#include "util/clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

int clock_duration_parse(const char *text, int64_t *seconds, struct tw_err *err)
{
    static const struct {
        char suffix;
        int64_t scale;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};

    if (text == NULL || !isdigit((unsigned char)text[0]))
        return tw_err_set(err, TW_ERR_USAGE, "bad duration '%s': use e.g. 90s, 15m, 12h, 30d",
                          text != NULL ? text : "");
    errno = 0;
    char *end;
    long long n = strtoll(text, &end, 10);
    if (errno != 0)
        return tw_err_set(err, TW_ERR_USAGE, "duration '%s' is too large", text);
    int64_t scale = 1;
    if (*end != '\0') {
        scale = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (end[0] == units[i].suffix && end[1] == '\0')
                scale = units[i].scale;
        if (scale == 0)
            return tw_err_set(err, TW_ERR_USAGE,
                              "bad duration '%s': use e.g. 90s, 15m, 12h, 30d", text);
    }
    if (n > INT64_MAX / scale)
        return tw_err_set(err, TW_ERR_USAGE, "duration '%s' is too large", text);
    *seconds = (int64_t)n * scale;
    return 0;
}

char *clock_iso8601(time_t t, char *out, size_t cap)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        if (cap > 0)
            out[0] = '\0';
    }
    return out;
}

double clock_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
