#!/usr/bin/env python3
"""Measure how many append + fdatasync cycles per second this filesystem does.

Usage: fdatasync_rate.py DIR SECONDS. Appends 2 KiB (one bench body) to a file
in DIR and fdatasyncs after each append, like a journal that commits every
event on its own. A journal with group commit can accept more events per
second than this, but every request still waits for at least one sync, so it
is the disk's ceiling for one-at-a-time durable writes. Prints syncs/s.
"""
import os
import sys
import time

directory, seconds = sys.argv[1], float(sys.argv[2])
path = os.path.join(directory, "fdatasync-probe")
block = b"x" * 2048
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
try:
    count = 0
    start = time.monotonic()
    deadline = start + seconds
    while True:
        os.write(fd, block)
        os.fdatasync(fd)
        count += 1
        now = time.monotonic()
        if now >= deadline:
            break
    print(f"{count / (now - start):.1f}")
finally:
    os.close(fd)
    os.unlink(path)
