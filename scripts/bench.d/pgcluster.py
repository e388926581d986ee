"""A throwaway PostgreSQL cluster for scripts/chaos and scripts/bench (--store postgres)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile


class PgCluster:
    """A throwaway PostgreSQL cluster (Debian's postgresql; installed if missing): initdb and
    pg_ctl as the `postgres` user on a temp directory and a loopback port. Only this cluster's
    own postmaster is ever stopped (pg_ctl reads its PID from the data directory)."""

    def __init__(self, work):
        installed = os.path.isdir("/usr/lib/postgresql") and any(os.path.exists(f"/usr/lib/postgresql/{v}/bin/pg_ctl") for v in os.listdir("/usr/lib/postgresql"))
        if not installed:
            print("[pgcluster] installing postgresql", file=sys.stderr, flush=True)
            os.makedirs("/etc/postgresql-common", exist_ok=True)
            if not os.path.exists("/etc/postgresql-common/createcluster.conf"):
                with open("/etc/postgresql-common/createcluster.conf", "w") as f:
                    f.write("create_main_cluster = false\n")
            subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "postgresql"], check=True, stdout=subprocess.DEVNULL)
        version = max(int(v) for v in os.listdir("/usr/lib/postgresql") if v.isdigit())
        self.version = version
        self.bin = f"/usr/lib/postgresql/{version}/bin"
        # A directory of its own under /tmp: the postgres user must reach it, and the caller's
        # work directory (mkdtemp, 0700) may not be reachable. `remove()` deletes it.
        self.dir = tempfile.mkdtemp(prefix="relay-pg-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", self.dir + "/data", "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def _run(self, tool, *args):
        command = [f"{self.bin}/{tool}", *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--"] + command
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self):
        self._run("pg_ctl", "-D", self.dir + "/data", "-w", "-l", self.dir + "/postgres.log",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=200", "start")

    def stop(self, mode="fast"):
        try:
            self._run("pg_ctl", "-D", self.dir + "/data", "-m", mode, "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # not running

    def remove(self):
        """Stops the cluster and deletes its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, statement):
        """The rows of `statement` (psql, unaligned), each a list of fields; None if it failed."""
        result = subprocess.run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                                 "-At", "-F", "\t", "-c", statement], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            return None
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def cpu_seconds(self):
        """CPU seconds (user + system) used so far by this cluster: its postmaster and the
        processes it forked (every PostgreSQL backend and worker is the postmaster's child)."""
        postmaster = self.postmaster()
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(pid) == postmaster or int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def postmaster(self):
        try:
            with open(self.dir + "/data/postmaster.pid") as f:
                return int(f.readline())
        except (OSError, ValueError):
            return -1
