#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

static FILE *sink;
static enum log_level min_level = LOG_LVL_INFO;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(FILE *fp, enum log_level min)
{
    sink = fp;
    min_level = min;
}

int log_level_parse(const char *name, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } levels[] = {
        {"debug", LOG_LVL_DEBUG}, {"info", LOG_LVL_INFO}, {"warn", LOG_LVL_WARN},
        {"error", LOG_LVL_ERR},
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(name, levels[i].name) == 0) {
            *out = levels[i].level;
            return 0;
        }
    }
    return -1;
}

TW_PRINTF(3, 0)
static void vlog(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    int saved = errno;
    if (level < min_level)
        return;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    char stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);

    FILE *fp = sink != NULL ? sink : stderr;
    pthread_mutex_lock(&sink_lock);
    if (with_errno)
        fprintf(fp, "%s %s %s: %s\n", stamp, tags[level], msg, strerror(saved));
    else
        fprintf(fp, "%s %s %s\n", stamp, tags[level], msg);
    fflush(fp);
    pthread_mutex_unlock(&sink_lock);
}

#define LOG_FN(name, level, with_errno)                                                            \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vlog(level, with_errno, fmt, ap);                                                          \
        va_end(ap);                                                                                \
    }

LOG_FN(log_debug, LOG_LVL_DEBUG, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_errx, LOG_LVL_ERR, 0)

void log_line(FILE *fp, const char *line)
{
    pthread_mutex_lock(&sink_lock);
    fputs(line, fp);
    fputc('\n', fp);
    fflush(fp);
    pthread_mutex_unlock(&sink_lock);
}
