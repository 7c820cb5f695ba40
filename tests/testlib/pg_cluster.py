"""A throwaway PostgreSQL cluster for tests and benchmarks.

initdb in a temporary directory, listening on a unix socket in that directory and on a random
free port on 127.0.0.1, trust authentication for the user "twoway", database "twoway". As root
(CI) the server runs as the unprivileged user "twoway-pg" (created with useradd when missing),
because postgres refuses to run as root.

    with PgCluster() as pg:
        pg.uri                      # postgresql://twoway@127.0.0.1:PORT/twoway
        pg.create_database("other") # -> its URI
        pg.stop(); pg.start()       # a database restart

Command line (for unit tests and bench/est_pg by hand):
    /usr/bin/python3 tests/testlib/pg_cluster.py start DIR   # prints the URI; DIR must not exist
    /usr/bin/python3 tests/testlib/pg_cluster.py stop DIR
"""
import fcntl
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

PG_USER = "twoway-pg"


def bin_dir():
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    path = shutil.which("initdb")
    return os.path.dirname(path) if path else None


def missing_reason():
    if bin_dir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_user():
    # Test modules start clusters side by side (ctest -j). Two concurrent useradd runs do not
    # both succeed: the loser fails on the passwd lock while the winner has not written the
    # user yet, and its getpwnam then fails too. So check and create under one lock.
    with open("/tmp/twoway-pg-useradd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(PG_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", PG_USER], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            return pwd.getpwnam(PG_USER)


class PgCluster:
    def __init__(self, root=None, durable=False):
        self.bindir = bin_dir()
        if self.bindir is None:
            raise RuntimeError(missing_reason())
        self.root = root or tempfile.mkdtemp(prefix="tw-pg-")
        os.makedirs(self.root, exist_ok=True)
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "postgres.log")
        self.port = free_port()
        self.durable = durable
        self.as_user = None
        if os.geteuid() == 0:
            pw = ensure_user()
            self.as_user = PG_USER
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o755)
        self.uri = "postgresql://twoway@127.0.0.1:%d/twoway" % self.port
        self.running = False

    def _run(self, args, **kw):
        cmd = [os.path.join(self.bindir, args[0])] + list(args[1:])
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--"] + cmd
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60, **kw)

    def _check(self, args):
        r = self._run(args)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (args[0], r.stdout.decode(errors="replace")))
        return r

    def init(self):
        self._check(["initdb", "-D", self.data, "-U", "twoway", "--auth=trust", "-E", "UTF8",
                     "--no-sync", "--no-instructions"])
        opts = ["listen_addresses = '127.0.0.1'", "port = %d" % self.port,
                "unix_socket_directories = '%s'" % self.root, "max_connections = 200",
                "log_min_messages = warning"]
        if not self.durable:
            opts += ["fsync = off", "full_page_writes = off"]
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n".join(opts) + "\n")
        return self

    def start(self):
        # The port was free when chosen, seconds ago (initdb): a test beside this one may
        # have taken it since. Then postgres cannot bind: take another port, a few times.
        for attempt in range(3):
            r = self._run(["pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start"])
            if r.returncode == 0:
                self.running = True
                return self
            log = open(self.log, errors="replace").read() if os.path.exists(self.log) else ""
            if "could not bind" not in log or attempt == 2:
                raise RuntimeError("pg_ctl failed: %s%s" % (r.stdout.decode(errors="replace"),
                                                            log[-2000:]))
            self._set_port(free_port())
        return self

    def _set_port(self, port):
        self.port = port
        self.uri = "postgresql://twoway@127.0.0.1:%d/twoway" % port
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("port = %d\n" % port)
        if os.path.exists(self.log):
            os.truncate(self.log, 0)

    def stop(self, mode="fast"):
        if self.running:
            self._run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"])
            self.running = False

    def psql(self, sql, db="twoway"):
        r = self._check(["psql", "-h", self.root, "-p", str(self.port), "-U", "twoway", "-d", db,
                         "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        return r.stdout.decode().strip()

    def create_database(self, name):
        self.psql('CREATE DATABASE "%s"' % name, db="postgres")
        return "postgresql://twoway@127.0.0.1:%d/%s" % (self.port, name)

    def __enter__(self):
        self.init().start()
        self.psql("CREATE DATABASE twoway", db="postgres")
        return self

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __exit__(self, *exc):
        self.cleanup()


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        sys.stderr.write("usage: pg_cluster.py start|stop DIR\n")
        return 2
    root = os.path.abspath(argv[2])
    if argv[1] == "start":
        if os.path.exists(root):
            sys.stderr.write("pg_cluster.py: %s exists\n" % root)
            return 1
        pg = PgCluster(root=root).__enter__()
        with open(os.path.join(root, "uri"), "w") as f:
            f.write(pg.uri + "\n")
        print(pg.uri)
        return 0
    pg = PgCluster.__new__(PgCluster)
    pg.bindir, pg.root, pg.data, pg.running = bin_dir(), root, os.path.join(root, "data"), True
    pg.as_user = PG_USER if os.geteuid() == 0 else None
    pg.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
