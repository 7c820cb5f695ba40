#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_read_file(const char *path, size_t limit, char **data, size_t *len, struct tw_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return tw_err_sys(err, TW_ERR_IO, "cannot stat %s", path);
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > limit) {
        close(fd);
        return tw_err_set(err, TW_ERR_IO, "%s: not a regular file of at most %zu bytes", path,
                          limit);
    }
    size_t cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory reading %s", path);
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            tw_err_sys(err, TW_ERR_IO, "cannot read %s", path);
            free(buf);
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got == cap) { /* grew while we read: refuse rather than truncate */
            free(buf);
            close(fd);
            return tw_err_set(err, TW_ERR_IO, "%s changed while being read", path);
        }
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fault_injected(const char *path)
{
    const char *pattern = getenv("TWOWAY_FAULT_WRITE");
    if (pattern == NULL || pattern[0] == '\0' || strstr(path, pattern) == NULL)
        return 0;
    errno = ENOSPC;
    return 1;
}

static int dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return snprintf(dir, cap, ".") >= (int)cap ? -1 : 0;
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/file" lives in "/" */
    if (n >= cap)
        return -1;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return 0;
}

static int fsync_dir(const char *path)
{
    char dir[PATH_MAX];
    if (dir_of(path, dir, sizeof(dir)) != 0)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_temp(const char *path, const void *data, size_t len, mode_t mode, char *tmp,
                      size_t tmpcap, struct tw_err *err)
{
    if (snprintf(tmp, tmpcap, "%s.tmp.XXXXXX", path) >= (int)tmpcap)
        return tw_err_set(err, TW_ERR_USAGE, "path too long: %s", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot create a file next to %s", path);
    if (fchmod(fd, mode) != 0 || fault_injected(path) || write_all(fd, data, len) != 0 ||
        fsync(fd) != 0) {
        tw_err_sys(err, TW_ERR_IO, "cannot write %s", path);
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) != 0) {
        tw_err_sys(err, TW_ERR_IO, "cannot write %s", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    struct tw_err *err)
{
    char tmp[PATH_MAX];
    TW_GUARD(write_temp(path, data, len, mode, tmp, sizeof(tmp), err));
    if (rename(tmp, path) != 0) {
        tw_err_sys(err, TW_ERR_IO, "cannot replace %s", path);
        unlink(tmp);
        return -1;
    }
    if (fsync_dir(path) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot sync the directory of %s", path);
    return 0;
}

int fs_write_new(const char *path, const void *data, size_t len, mode_t mode,
                 struct tw_err *err)
{
    char tmp[PATH_MAX];
    TW_GUARD(write_temp(path, data, len, mode, tmp, sizeof(tmp), err));
    /* link() fails with EEXIST instead of replacing: no window where path is overwritten. */
    if (link(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        if (saved == EEXIST)
            return tw_err_set(err, TW_ERR_EXISTS, "%s already exists; refusing to overwrite it",
                              path);
        return tw_err_sys(err, TW_ERR_IO, "cannot create %s", path);
    }
    unlink(tmp);
    if (fsync_dir(path) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot sync the directory of %s", path);
    return 0;
}

int fs_mkdir_private(const char *path, struct tw_err *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return tw_err_set(err, TW_ERR_USAGE, "path too long: %s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return tw_err_sys(err, TW_ERR_IO, "cannot create directory %s", buf);
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return tw_err_sys(err, TW_ERR_IO, "cannot create directory %s", buf);
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return tw_err_set(err, TW_ERR_IO, "%s exists and is not a directory", buf);
    return 0;
}

int fs_check_key_perms(const char *path, struct tw_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot open key %s", path);
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        return tw_err_set(err, TW_ERR_IO,
                          "key %s is accessible by group or others (mode %04o); "
                          "run: chmod 600 %s",
                          path, (unsigned)(st.st_mode & 07777), path);
    return 0;
}

int fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int fs_path_join(char *out, size_t cap, const char *dir, const char *name, struct tw_err *err)
{
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap)
        return tw_err_set(err, TW_ERR_USAGE, "path too long: %s/%s", dir, name);
    return 0;
}
