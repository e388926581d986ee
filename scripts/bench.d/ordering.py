#!/usr/bin/env python3
"""scripts/bench ordering rows: what per-key ordering costs, and what one hot key can do.

Usage: ordering.py WORK RELAY EVENTS

One `relay serve` (journal store) and one `relay sink` answering 204 after 2 ms, both on
loopback. Three destinations to that sink, max_in_flight 64 each, paused while EVENTS events
are posted to each of the first two and EVENTS/20 to the third (generic sources, one per
destination; the ordering key is the JSON Pointer "/key"):
  unordered  no ordering; keys 0…999 in the payload (ignored)
  ordered    "ordering": {"key": "/key"}; keys 0…999, so 1,000 distinct keys
  hot        "ordering": {"key": "/key"}; one key for every event
Then each destination is resumed alone and timed from the resume until GET /admin/destinations
shows all its deliveries succeeded (polled every 10 ms): deliveries per second. The ordered
rate is compared with the unordered one (target ≥ 0.8x). For the hot key: the most requests
the sink had in flight at once on its path (from the sink's log: 1 means one at a time), the
time per delivery (1 / rate) beside the sink's round trip as the relay measured it (the mean
of the journaled attempts' duration_ms) and as a one-connection client measures it.
Prints one section for scripts/bench's report. Stops only what it started, by PID.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

STARTED = []


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, timeout=5):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None, b""


def wait_until(check, seconds, step=0.05):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def spawn(args, log_path):
    process = subprocess.Popen(args, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
    STARTED.append(process)
    return process


def stop_all():
    for process in STARTED:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def post_all(port, source, bodies, clients=16):
    """Posts every body over keep-alive connections from `clients` threads; returns how many
    were acknowledged 200."""
    lock, queue, acked = threading.Lock(), list(reversed(bodies)), [0]

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            try:
                connection.request("POST", f"/webhooks/{source}", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                ok = False
            if ok:
                with lock:
                    acked[0] += 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acked[0]


def destination(admin, name):
    status, body = request("GET", f"http://127.0.0.1:{admin}/admin/destinations")
    if status != 200:
        return None
    return next((d for d in json.loads(body)["destinations"] if d["name"] == name), None)


def drain(admin, name, expected):
    """Resumes `name` and returns the seconds until all `expected` deliveries succeeded."""
    status, body = request("POST", f"http://127.0.0.1:{admin}/admin/destinations/{name}/resume")
    if status != 200:
        raise RuntimeError(f"resume {name} answered {status}: {body[:200]}")
    started = time.time()
    done = wait_until(lambda: (destination(admin, name) or {}).get("succeeded", 0) >= expected, 300, step=0.01)
    elapsed = time.time() - started
    if not done:
        raise RuntimeError(f"{name}: not all {expected} deliveries succeeded within 300 s: {destination(admin, name)}")
    return elapsed


def client_round_trip(port, count=500):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("POST", "/rtt", body=b"{}", headers={"Content-Type": "application/json"})
        connection.getresponse().read()
        times.append(time.perf_counter() - started)
    connection.close()
    times.sort()
    return sum(times) / len(times) * 1000, times[len(times) // 2] * 1000


def main():
    work, relay, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
    hot_events = max(100, events // 20)
    directory = os.path.join(work, "ordering")
    os.makedirs(directory, exist_ok=True)
    sink_port, port, admin = free_port(), free_port(), free_port()
    sink_log = os.path.join(directory, "sink.jsonl")
    sink = spawn([relay, "sink", "--listen", f"127.0.0.1:{sink_port}", "--status", "204", "--delay-ms", "2", "--log", sink_log],
                 os.path.join(directory, "sink.out"))
    if not wait_until(lambda: request("GET", f"http://127.0.0.1:{sink_port}/")[0] is not None, 30):
        raise RuntimeError("relay sink did not start")
    names = ["unordered", "ordered", "hot"]
    routes = {"sources": {name: {"provider": "generic", "fields": {"id": "/id"}} for name in names},
              "destinations": {name: {"url": f"http://127.0.0.1:{sink_port}/{name}", "max_in_flight": 64,
                                      "retry": {"initial_backoff_ms": 50, "max_backoff_ms": 500}}
                               for name in names},
              "routes": [{"name": name, "match": {"source": name}, "to": [name]} for name in names]}
    for name in ["ordered", "hot"]:
        routes["destinations"][name]["ordering"] = {"key": "/key"}
    with open(os.path.join(directory, "routes.json"), "w") as f:
        json.dump(routes, f)
    process = spawn([relay, "serve", "--config", os.path.join(directory, "routes.json"), "--data", os.path.join(directory, "data"),
                     "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}", "--log-level", "warning"],
                    os.path.join(directory, "relay.log"))
    if not wait_until(lambda: request("GET", f"http://127.0.0.1:{admin}/healthz")[0] == 200, 60):
        raise RuntimeError(f"relay serve did not start: see {directory}/relay.log")
    for name in names:
        status, body = request("POST", f"http://127.0.0.1:{admin}/admin/destinations/{name}/pause")
        if status != 200:
            raise RuntimeError(f"pause {name} answered {status}: {body[:200]}")
    counts = {}
    for name in names:
        total = hot_events if name == "hot" else events
        bodies = [json.dumps({"id": f"{name}-{i}", "key": "k-hot" if name == "hot" else f"k{i % 1000}", "amount": i}).encode() for i in range(total)]
        log(f"ordering: posting {total} events for {name} (destination paused)")
        counts[name] = post_all(port, name, bodies)
        if counts[name] != total:
            raise RuntimeError(f"{name}: only {counts[name]} of {total} posts acknowledged")
    seconds = {}
    for name in names:
        log(f"ordering: draining {name} ({counts[name]} deliveries)")
        seconds[name] = drain(admin, name, counts[name])
    # The relay's own measure of the sink's round trip: the journaled attempts of a sample.
    durations = []
    status, body = request("GET", f"http://127.0.0.1:{admin}/admin/events?source=hot&limit=200")
    if status == 200:
        for summary in json.loads(body)["events"]:
            status, detail = request("GET", f"http://127.0.0.1:{admin}/admin/events/{summary['id']}")
            if status == 200:
                durations += [a["duration_ms"] for a in json.loads(detail)["attempts"] if a["outcome"] == "succeeded"]
    client_mean, client_p50 = client_round_trip(sink_port)
    stop_all()
    concurrent = {}
    with open(sink_log) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            path = entry.get("path", "")
            concurrent[path] = max(concurrent.get(path, 0), entry.get("concurrent", 0))
    rate = {name: counts[name] / seconds[name] for name in names}
    ratio = rate["ordered"] / rate["unordered"]
    relay_rtt = sum(durations) / len(durations) if durations else float("nan")
    print("ordering: one relay, one sink answering 204 after 2 ms, max_in_flight 64; each destination paused while loaded, then drained alone")
    print(f"  {'destination':<34}{'deliveries':>11}{'seconds':>9}{'per s':>9}{'sink max concurrent':>21}")
    labels = {"unordered": "unordered", "ordered": "ordered, 1,000 distinct keys", "hot": "ordered, one hot key"}
    for name in names:
        print(f"  {labels[name]:<34}{counts[name]:>11}{seconds[name]:>9.2f}{rate[name]:>9.0f}{concurrent.get('/' + name, 0):>21}")
    print(f"  ordered with 1,000 keys / unordered: {ratio:.2f}x (target >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'})")
    print(f"  hot key: {1000 / rate['hot']:.2f} ms per delivery; the sink's round trip {relay_rtt:.2f} ms as the relay's attempts measured it "
          f"(mean duration_ms of {len(durations)}), {client_mean:.2f} ms mean / {client_p50:.2f} ms median from a one-connection client; "
          f"one request at a time: {'yes' if concurrent.get('/hot', 0) == 1 else 'NO'}")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
