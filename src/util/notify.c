/* sd_notify's wire format (sd_notify(3), "Notes"): one AF_UNIX datagram of newline-separated
 * VAR=value lines to the socket in $NOTIFY_SOCKET, a path or, with a leading '@', a name in
 * the abstract namespace. */
#include "util/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

bool notify_enabled(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    return path != NULL && (path[0] == '/' || path[0] == '@') && path[1] != '\0';
}

static int send_datagram(const char *path, const char *msg, size_t len)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if (plen >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    ssize_t n = sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

int notify_send(const char *fmt, ...)
{
    if (!notify_enabled())
        return 0;
    char msg[NOTIFY_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    size_t len = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    return send_datagram(getenv("NOTIFY_SOCKET"), msg, len);
}

int notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec =
        (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
    return notify_send("RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

uint64_t notify_watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    if (usec == NULL || usec[0] == '\0')
        return 0;
    const char *pid = getenv("WATCHDOG_PID");
    if (pid != NULL && pid[0] != '\0') {
        char *end = NULL;
        long long p = strtoll(pid, &end, 10);
        if (end == NULL || *end != '\0' || p != (long long)getpid())
            return 0;
    }
    char *end = NULL;
    unsigned long long v = strtoull(usec, &end, 10);
    if (end == NULL || *end != '\0' || v == 0)
        return 0;
    return (uint64_t)v;
}
