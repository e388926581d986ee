#!/usr/bin/env python3
"""scripts/bench --store postgres: the PostgreSQL store, measured beside the journal in the same run.

Usage: postgres.py WORK RELAY BODY DURATION RUNS_TSV

On a throwaway cluster (scripts/bench.d/pgcluster.py), with the same body, wrk script and
duration as the journal's rows (read back from RUNS_TSV for the ratios):
  - durable ingest at 1, 16 and 64 connections, one instance, straight to it;
  - ingest at 64 connections through nginx round-robin (scripts/bench.d/nginx-upstream.conf.template)
    to 1 and to 3 instances on the same database (the 3 with --event-loops set to their share
    of the cores, and once more with the default);
  - end to end at 64 connections (ingest -> PostgreSQL -> libcurl -> relay sink) for 1 and
    3 instances (their share of the cores each): the acknowledgement rate, and deliveries per
    second until every accepted event was delivered;
  - kill-to-rescue: an instance holding claims (to a sink answering after 5 s) killed with
    kill -9, and the seconds until its claims are pending again for the others.
For each ingest run: PostgreSQL commits per acknowledged request (group commit at work when
well below 1) and the cluster's CPU seconds per 1,000 events.
Prints one section for scripts/bench's report. Only processes started here are stopped, by
PID; traffic stays on 127.0.0.1.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pgcluster import PgCluster  # noqa: E402
from report import parse_wrk  # noqa: E402

STARTED = []
# Event loops per instance when 3 share this machine: their share of its cores.
SHARE = max(1, (os.cpu_count() or 1) // 3)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def http_ok(url, timeout=1):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def spawn(args, log_path):
    process = subprocess.Popen(args, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
    STARTED.append(process)
    return process


def stop(process, sig=signal.SIGTERM):
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process in STARTED:
        STARTED.remove(process)


def wait_until(check, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


class Bench:
    def __init__(self, work, relay, body, duration, runs):
        self.work, self.relay, self.body, self.duration = work, relay, body, duration
        self.journal = {}
        with open(runs) as f:
            for line in f:
                key, _label, _baseline, conns, out = line.rstrip("\n").split("\t")
                self.journal[(key, int(conns))] = parse_wrk(out)
        self.cluster = PgCluster(os.path.join(work, "postgres"))
        self.rows, self.notes = [], []

    def instances(self, name, count, routes, extra=()):
        """`count` relays on schema `name`, each with its own ports and data directory (and
        `extra` arguments to `relay serve`)."""
        directory = os.path.join(self.work, name)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "routes.json"), "w") as f:
            json.dump(routes, f)
        relays = []
        for i in range(count):
            port, admin = free_port(), free_port()
            process = spawn([self.relay, "serve", "--config", os.path.join(directory, "routes.json"), "--data", os.path.join(directory, f"data{i}"),
                             "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}", "--log-level", "warning",
                             "--store", self.cluster.url, "--store-schema", name, *extra], os.path.join(directory, f"relay{i}.log"))
            if not wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz") == 200, 60):
                raise RuntimeError(f"relay {name}/{i} did not start: see {directory}/relay{i}.log")
            relays.append((process, port, admin))
        return relays

    def nginx(self, name, ports):
        directory = os.path.join(self.work, f"nginx-{name}")
        os.makedirs(directory, exist_ok=True)
        port = free_port()
        with open(os.path.join(HERE, "nginx-upstream.conf.template")) as f:
            text = f.read()
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in ports)
        text = text.replace("@PREFIX@", directory).replace("@PORT@", str(port)).replace("@SERVERS@", servers)
        with open(os.path.join(directory, "nginx.conf"), "w") as f:
            f.write(text)
        process = spawn(["nginx", "-c", os.path.join(directory, "nginx.conf"), "-p", directory + "/", "-e", os.path.join(directory, "error.log")],
                        os.path.join(directory, "stdout.log"))
        if not wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz") is not None, 30):
            raise RuntimeError(f"nginx did not start: see {directory}")
        return process, port

    def commits(self):
        rows = self.cluster.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'")
        return int(rows[0][0]) if rows else 0

    def wrk(self, name, conns, url):
        out = os.path.join(self.work, f"wrk-{name}-c{conns}.txt")
        threads = min(conns, 2)
        log(f"postgres: {name}, {conns} conns: wrk -t {threads} -c {conns} -d {self.duration}")
        os.sync()  # nothing of an earlier run waiting to be written back (as scripts/bench's run_wrk)
        # Nor in the database: a checkpoint now writes out what earlier rows dirtied and restarts
        # the checkpoint clock (5 minutes), so no row pays for an earlier row's checkpoint.
        self.cluster.sql("CHECKPOINT")
        commits, cpu = self.commits(), self.cluster.cpu_seconds()
        with open(out, "w") as f:
            subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", self.duration, "--latency", "-s", os.path.join(HERE, "post.lua"), url],
                           stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "BENCH_BODY": self.body}, check=True)
        cpu = self.cluster.cpu_seconds() - cpu
        time.sleep(1.5)  # the statistics collector flushes about once a second
        commits = self.commits() - commits
        result = parse_wrk(out)
        requests = result.get("requests", 0)
        acked = requests - result.get("non2xx", 0)
        result["commits_per_ack"] = commits / acked if acked else float("nan")
        result["db_cpu_per_1k"] = cpu / acked * 1000 if acked else float("nan")
        result["acked"] = acked
        return result

    def row(self, label, conns, result, reference=None, reference_label=""):
        ratio = f"{result['rps'] / reference['rps']:.2f}x {reference_label}" if reference and reference.get("rps") else "-"
        self.rows.append((label, conns, result.get("rps", 0), result.get("p99", 0), ratio, result.get("commits_per_ack"), result.get("db_cpu_per_1k"),
                          result.get("non2xx", 0)))

    # --- scenarios ---

    def ingest(self):
        routes = {"sources": {"bench": {"provider": "generic"}}}
        for conns in (1, 16, 64):
            relays = self.instances(f"ingest_c{conns}", 1, routes)
            result = self.wrk("ingest", conns, f"http://127.0.0.1:{relays[0][1]}/webhooks/bench")
            self.row("PostgreSQL ingest, 1 instance", conns, result, self.journal.get(("relay", conns)), "journal")
            for process, _, _ in relays:
                stop(process)
            if conns == 64:
                self.ingest64 = result

    def behind_nginx(self):
        """1 and 3 instances behind nginx. Three instances on one machine each get their share
        of its cores (`--event-loops`, as the README says to run several on one host); the
        same three with the default (an event loop per core each) are printed beside them."""
        routes = {"sources": {"bench": {"provider": "generic"}}}
        runs = [(1, "nginx -> 1 instance", ()), (3, f"nginx -> 3 instances, --event-loops {SHARE}", ("--event-loops", str(SHARE))),
                (3, "nginx -> 3 instances, default event loops", ())]
        results = []
        for index, (count, label, extra) in enumerate(runs):
            relays = self.instances(f"lb{index}", count, routes, extra)
            nginx, port = self.nginx(f"lb{index}", [r[1] for r in relays])
            results.append(self.wrk(f"nginx-{index}", 64, f"http://127.0.0.1:{port}/webhooks/bench"))
            stop(nginx)
            for process, _, _ in relays:
                stop(process)
        self.row("PostgreSQL ingest, " + runs[0][1], 64, results[0], self.journal.get(("relay", 64)), "journal")
        for (_, label, _), result in zip(runs[1:], results[1:]):
            self.row("PostgreSQL ingest, " + label, 64, result, results[0], "1 instance")
        self.scaling = results[1]["rps"] / results[0]["rps"] if results[0].get("rps") else 0

    def end_to_end(self):
        sink_port = free_port()
        sink = spawn([self.relay, "sink", "--listen", f"127.0.0.1:{sink_port}", "--status", "204"], os.path.join(self.work, "e2e-sink.log"))
        wait_until(lambda: http_ok(f"http://127.0.0.1:{sink_port}/") is not None, 30)
        routes = {"sources": {"bench": {"provider": "generic"}},
                  "destinations": {"sink": {"url": f"http://127.0.0.1:{sink_port}/hooks", "max_in_flight": 64}},
                  "routes": [{"name": "all", "to": ["sink"]}]}
        self.e2e = {}
        for count in (1, 3):
            schema = f"e2e{count}"
            relays = self.instances(schema, count, routes, ("--event-loops", str(SHARE)) if count > 1 else ())
            nginx, port = self.nginx(schema, [r[1] for r in relays])
            started = time.time()
            result = self.wrk(f"e2e-{count}", 64, f"http://127.0.0.1:{port}/webhooks/bench")
            acked = result["acked"]

            def delivered():
                rows = self.cluster.sql(f"SELECT count(*) FROM {schema}.relay_delivery WHERE state = 'succeeded'")
                return int(rows[0][0]) if rows else 0
            done = wait_until(lambda: delivered() >= acked, 120)
            finished = time.time()
            self.e2e[count] = (result, acked / (finished - started) if done else 0.0, done)
            if count == 1:
                # Disk per event: its row, its delivery, its attempt and its de-duplication key, indexes included.
                size = self.cluster.sql(f"SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                        f"WHERE n.nspname = '{schema}' AND c.relkind = 'r'")
                events = self.cluster.sql(f"SELECT count(*) FROM {schema}.relay_event")
                self.bytes_per_event = int(size[0][0]) / int(events[0][0]) if size and events and int(events[0][0]) else None
            self.row(f"PostgreSQL end to end (ack), nginx -> {count}", 64, result, self.journal.get(("e2e", 64)), "journal")
            stop(nginx)
            for process, _, _ in relays:
                stop(process)
        stop(sink)

    def rescue(self):
        sink_port = free_port()
        sink = spawn([self.relay, "sink", "--listen", f"127.0.0.1:{sink_port}", "--delay-ms", "5000"], os.path.join(self.work, "rescue-sink.log"))
        wait_until(lambda: http_ok(f"http://127.0.0.1:{sink_port}/", timeout=10) is not None, 30)
        routes = {"sources": {"bench": {"provider": "generic", "fields": {"id": "/id"}}},
                  "destinations": {"slow": {"url": f"http://127.0.0.1:{sink_port}/hooks", "max_in_flight": 8, "timeout_ms": 30000}},
                  "routes": [{"name": "all", "to": ["slow"]}]}
        relays = self.instances("rescue", 2, routes)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for i in range(16):
            request = urllib.request.Request(f"http://127.0.0.1:{relays[0][1]}/webhooks/bench", data=json.dumps({"id": f"r{i}"}).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            opener.open(request, timeout=10).read()
        victim = relays[0][0]
        owner = self.cluster.sql(f"SELECT id FROM rescue.relay_instance WHERE pid = {victim.pid}")
        owner = owner[0][0] if owner else ""

        def held():
            rows = self.cluster.sql(f"SELECT count(*) FROM rescue.relay_delivery WHERE state = 'in_flight' AND lease_owner = '{owner}'")
            return int(rows[0][0]) if rows else 0
        self.rescue_seconds, self.rescue_held = None, 0
        if wait_until(lambda: held() > 0, 20):
            self.rescue_held = held()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            STARTED.remove(victim)
            killed = time.time()
            if wait_until(lambda: held() == 0, 60):
                self.rescue_seconds = time.time() - killed
        for process, _, _ in relays[1:]:
            stop(process)
        stop(sink)

    def report(self):
        print()
        print(f"PostgreSQL store (--store postgres; PostgreSQL {self.cluster.version} on a throwaway cluster, defaults, fsync and synchronous_commit on)")
        print(f"{'':62} {'conns':>5} {'req/s':>9} {'p99 ms':>8}  {'ratio':<18} {'commits/ack':>11} {'db CPU s/1k':>11} {'non-2xx':>7}")
        for label, conns, rps, p99, ratio, commits, cpu, non2xx in self.rows:
            print(f"{label:62} {conns:>5} {rps:>9.0f} {p99:>8.2f}  {ratio:<18} {commits:>11.3f} {cpu:>11.3f} {non2xx:>7}")
        for count, (result, rate, done) in sorted(self.e2e.items()):
            journal = self.journal.get(("e2e", 64))
            print(f"end to end, {count} instance(s): acknowledged {result['acked']}, delivered {rate:.0f}/s from the first request to the last delivery"
                  + ("" if done else " (NOT all delivered within 120 s)"))
        if getattr(self, "bytes_per_event", None):
            print(f"disk: {self.bytes_per_event:.0f} bytes per event with one destination (the event with its {os.path.getsize(self.body)}-byte body, "
                  "its delivery, its attempt and its de-duplication key, indexes included)")
        if self.rescue_seconds is not None:
            print(f"kill-to-rescue: {self.rescue_seconds:.1f} s for the {self.rescue_held} claims of an instance killed with kill -9 (heartbeat timeout 15 s)")
        else:
            print("kill-to-rescue: not measured (no claims held, or not rescued within 60 s)")
        journal64 = self.journal.get(("relay", 64), {}).get("rps")
        ratio = self.ingest64["rps"] / journal64 if journal64 else None
        verdict = lambda ok: "met" if ok else "NOT met"
        print("targets: " + "; ".join([
            f"PostgreSQL ingest @64 >= 0.3x journal: {ratio:.2f}x {verdict(ratio >= 0.3)}" if ratio is not None else "PostgreSQL ingest @64 vs journal: journal row not run",
            f"3 instances (--event-loops {SHARE}) >= 0.8x one: {self.scaling:.2f}x {verdict(self.scaling >= 0.8)}",
            f"kill-to-rescue <= 30 s: " + (f"{self.rescue_seconds:.1f} s {verdict(self.rescue_seconds <= 30)}" if self.rescue_seconds is not None else "NOT met"),
        ]))


def main():
    work, relay, body, duration, runs = sys.argv[1:6]
    bench = Bench(work, relay, body, duration, runs)
    try:
        bench.ingest()
        bench.behind_nginx()
        bench.end_to_end()
        bench.rescue()
    finally:
        for process in list(STARTED):
            stop(process, signal.SIGKILL)
        bench.cluster.remove()
    bench.report()


if __name__ == "__main__":
    main()
