/* Privilege drop (see priv.h). */
#include "util/priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PW_BUF_MAX 16384 /* getpwnam_r's buffer: a passwd line is far shorter */

static int lookup(const char *user, uid_t *uid, gid_t *gid, struct tw_err *err)
{
    char buf[PW_BUF_MAX];
    struct passwd pw, *found = NULL;
    int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &found);
    if (rc != 0) {
        errno = rc;
        return tw_err_sys(err, TW_ERR_IO, "user '%s': cannot look it up", user);
    }
    TW_ENSURE(found != NULL, err, TW_ERR_USAGE,
              "user '%s': no such user (create it, e.g. adduser --system %s)", user, user);
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

int priv_check(const char *user, bool allow_root, struct tw_err *err)
{
    if (user != NULL) {
        uid_t uid;
        gid_t gid;
        TW_GUARD(lookup(user, &uid, &gid, err));
        TW_ENSURE(geteuid() == 0 || geteuid() == uid, err, TW_ERR_USAGE,
                  "user = %s: switching users needs root (running as uid %u)", user,
                  (unsigned)geteuid());
        return 0;
    }
    const char *env = getenv(PRIV_ALLOW_ROOT_ENV);
    if (geteuid() != 0 || allow_root || (env != NULL && strcmp(env, "1") == 0))
        return 0;
    return tw_err_set(err, TW_ERR_USAGE,
                      "refusing to serve as root: give a user to switch to once the listeners "
                      "are up (user = NAME, or --user NAME), or --allow-root");
}

int priv_drop(const char *user, struct tw_err *err)
{
    if (user == NULL)
        return 0;
    uid_t uid;
    gid_t gid;
    TW_GUARD(lookup(user, &uid, &gid, err));
    if (geteuid() == uid && getegid() == gid)
        return 0;
    if (initgroups(user, gid) != 0)
        return tw_err_sys(err, TW_ERR_IO, "user %s: cannot set its groups", user);
    if (setgid(gid) != 0)
        return tw_err_sys(err, TW_ERR_IO, "user %s: cannot set group id %u", user, (unsigned)gid);
    if (setuid(uid) != 0)
        return tw_err_sys(err, TW_ERR_IO, "user %s: cannot set user id %u", user, (unsigned)uid);
    /* setuid as root sets all three ids; if root still came back, something is badly off. */
    TW_ENSURE(uid == 0 || (setuid(0) != 0 && geteuid() == uid && getuid() == uid), err,
              TW_ERR_INTERNAL, "user %s: root privileges could be regained after the switch", user);
    return 0;
}
