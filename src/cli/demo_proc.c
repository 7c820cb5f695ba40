#include "cli/demo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/priv.h"

#define DEMO_MAX_ARGS 48

const char *demo_self(void)
{
    static char path[PATH_MAX];
    if (path[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        if (n <= 0)
            snprintf(path, sizeof(path), "twoway");
        else
            path[n] = '\0';
    }
    return path;
}

static void exec_self(char *const args[])
{
    char *argv[DEMO_MAX_ARGS + 2];
    int n = 0;
    argv[n++] = (char *)demo_self();
    while (args[n - 1] != NULL && n <= DEMO_MAX_ARGS) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    /* The demo's gateway and CA server live for a minute on loopback with a throwaway PKI in
     * a temporary directory: serving as the user who ran the demo, root included, is fine. */
    setenv(PRIV_ALLOW_ROOT_ENV, "1", 1);
    execv(argv[0], argv);
    _exit(127);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Scan the log for a line containing word; copy it to line. */
static int log_has(const char *log, const char *word, char *line, size_t cap)
{
    FILE *fp = fopen(log, "r");
    if (fp == NULL)
        return 0;
    char buf[1024];
    int found = 0;
    while (!found && fgets(buf, sizeof(buf), fp) != NULL) {
        if (strstr(buf, word) != NULL) {
            buf[strcspn(buf, "\n")] = '\0';
            snprintf(line, cap, "%s", buf);
            found = 1;
        }
    }
    fclose(fp);
    return found;
}

int demo_spawn(struct demo_proc *p, char *const args[], const char *log, const char *ready_word,
               int timeout_ms, char *line, size_t cap, struct tw_err *err)
{
    snprintf(p->log, sizeof(p->log), "%s", log);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot create %s", log);
    p->pid = fork();
    if (p->pid < 0) {
        close(fd);
        return tw_err_sys(err, TW_ERR_INTERNAL, "fork");
    }
    if (p->pid == 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        exec_self(args);
    }
    close(fd);
    /* Readiness is the child's own "ready" line; poll the log file for it, bounded. */
    int64_t deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        if (log_has(log, ready_word, line, cap))
            return 0;
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return tw_err_set(err, TW_ERR_INTERNAL, "twoway %s exited early; see %s", args[0], log);
        }
        poll(NULL, 0, 20);
    }
    return tw_err_set(err, TW_ERR_INTERNAL, "twoway %s not ready after %d ms; see %s", args[0],
                      timeout_ms, log);
}

void demo_stop(struct demo_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    for (int i = 0; i < 250; i++) {
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
        poll(NULL, 0, 20);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

int demo_run(char *const args[], char *out, size_t cap)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], STDOUT_FILENO);
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[1]);
        exec_self(args);
    }
    close(pipefd[1]);
    size_t used = 0;
    char sink[512];
    for (;;) {
        char *dst = used + 1 < cap ? out + used : sink;
        size_t room = used + 1 < cap ? cap - used - 1 : sizeof(sink);
        ssize_t n = read(pipefd[0], dst, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (dst == out + used)
            used += (size_t)n;
    }
    close(pipefd[0]);
    if (cap > 0)
        out[used] = '\0';
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
