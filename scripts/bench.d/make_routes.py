#!/usr/bin/env python3
"""Write a routes.json with N routes for the routing benchmark.

Usage: make_routes.py OUT N

A realistic mix rather than N copies of one route: type globs, status lists,
product globs (prefix, suffix, infix), provider/source constraints and, on every
tenth route, a payload condition (which forces a JSON parse of the event once).
A few routes match the FastSpring fixture events; most do not, so the matcher
has to look at all of them, as it always does.
"""
import json
import sys

out, count = sys.argv[1], int(sys.argv[2])
routes = []
for i in range(count):
    match = {}
    kind = i % 5
    if kind == 0:
        match["type"] = [f"order.kind{i}.*", "subscription.*.completed"] if i % 50 else ["order.*"]
    elif kind == 1:
        match["status"] = ["FAILED", "CANCELED"] if i % 40 else "COMPLETED"
        match["provider"] = "fastspring"
    elif kind == 2:
        match["product"] = [f"sku-{i}-*", f"*-{i}", f"line-?{i}"]
    elif kind == 3:
        match["source"] = "fastspring"
        match["type"] = f"product.{i}.update"
    else:
        match["type"] = "order.completed"
        match["product"] = f"relay-*-{i}"
    if i % 10 == 9:
        match["where"] = [{"path": "/data/items/*/quantity", "op": "gte", "value": i % 7}]
    routes.append({"name": f"route-{i}", "match": match, "to": [f"dest-{i % 8}"]})

config = {
    "sources": {"fastspring": {"provider": "fastspring", "secret": "env:BENCH_UNUSED_SECRET"}},
    "destinations": {f"dest-{d}": {"url": f"http://127.0.0.1:9/{d}"} for d in range(8)},
    "routes": routes,
}
with open(out, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=1)
