#!/usr/bin/env python3
"""Measure how many append + fdatasync cycles per second this filesystem does.

Usage: fdatasync_rate.py DIR SECONDS [BATCH]. Appends BATCH (default 1) records
of 2 KiB (one bench body each) to a file in DIR in one write and fdatasyncs
after it. With BATCH 1 it is a journal that commits every event on its own: the
disk's ceiling for one-at-a-time durable writes. With a larger BATCH it is a
journal with group commit (the relay's writer appends every waiting request in
one write and one sync), and records/s is the ceiling for durable events.

Prints one line: syncs/s, records/s, then the p50 and p99 of one write+fdatasync
in ms (a slow p99 here explains a slow p99 in the relay's ingest rows).
"""
import os
import sys
import time

directory, seconds = sys.argv[1], float(sys.argv[2])
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
path = os.path.join(directory, "fdatasync-probe")
block = b"x" * 2048 * batch
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
try:
    latencies, written = [], 0
    start = now = time.monotonic()
    deadline = start + seconds
    while now < deadline:
        before = now
        if os.write(fd, block) != len(block):
            sys.exit("fdatasync_rate.py: short write")
        os.fdatasync(fd)
        written += len(block)
        if written >= 64 << 20:  # keep the file small (a tmpfs /tmp would hold it all in memory)
            os.ftruncate(fd, 0)
            written = 0
        now = time.monotonic()
        latencies.append((now - before) * 1000.0)
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))]

    syncs = len(latencies) / (now - start)
    print(f"{syncs:.1f} {syncs * batch:.1f} {pct(50):.4f} {pct(99):.4f}")
finally:
    os.close(fd)
    os.unlink(path)
