#!/usr/bin/env python3
"""Measure how many append + fdatasync cycles per second this filesystem does.

Usage: fdatasync_rate.py DIR SECONDS. Appends 2 KiB (one bench body) to a file
in DIR and fdatasyncs after each append, like a journal that commits every
event on its own. A journal with group commit can accept more events per
second than this, but every request still waits for at least one sync, so it
is the disk's ceiling for one-at-a-time durable writes.

Prints one line: syncs/s, then the p50 and p99 of one write+fdatasync in ms
(a slow p99 here explains a slow p99 in the relay's ingest rows).
"""
import os
import sys
import time

directory, seconds = sys.argv[1], float(sys.argv[2])
path = os.path.join(directory, "fdatasync-probe")
block = b"x" * 2048
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
try:
    latencies = []
    start = now = time.monotonic()
    deadline = start + seconds
    while now < deadline:
        before = now
        os.write(fd, block)
        os.fdatasync(fd)
        now = time.monotonic()
        latencies.append((now - before) * 1000.0)
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))]

    print(f"{len(latencies) / (now - start):.1f} {pct(50):.4f} {pct(99):.4f}")
finally:
    os.close(fd)
    os.unlink(path)
