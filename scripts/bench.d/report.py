#!/usr/bin/env python3
"""Turn scripts/bench's raw results into one table and the target line.

Usage: report.py RUNS_TSV EXTRAS_TSV

RUNS_TSV has one line per wrk run, in the order rows should appear:
    key <TAB> label <TAB> baseline_key <TAB> conns <TAB> wrk_output_file
The ratio column is this row's req/s divided by the req/s of the row with
key == baseline_key at the same connection count ("-" for no baseline).

EXTRAS_TSV has other measurements, one per line:
    fdatasync <TAB> batch <TAB> syncs_per_second <TAB> records_per_second <TAB> p50_ms <TAB> p99_ms
    rss <TAB> label <TAB> conns <TAB> VmHWM_kB
    replay <TAB> events <TAB> seconds_to_plan <TAB> seconds_to_finish <TAB> succeeded
    restart <TAB> events <TAB> pending <TAB> cold_seconds <TAB> ready_seconds <TAB> rss_kB <TAB> peak_kB [<TAB> first_start_rss_kB <TAB> first_start_peak_kB]
    replay_live <TAB> live_events_sent <TAB> `relay journal latency --live-only` line
    retention <TAB> events <TAB> journal_kB_before <TAB> journal_kB_after <TAB> ready_keeping_all <TAB> ready_after_pruning <TAB> rss_kB_keeping_all <TAB> rss_kB_after_pruning
    cpu <TAB> run_key <TAB> conns <TAB> cpu_ticks <TAB> wrk_output_file <TAB> ticks_per_second
    e2e_before <TAB> (as e2e, for the BENCH_BEFORE build)

Exit status: 0 when every run produced numbers (whatever they are), 1 when a
run's output could not be parsed or it completed no requests at all.
"""
import re
import sys

# Durable ingest against the reference server (raw NIO + group commit) of the same run.
TARGET_KEY, TARGET_BASELINE, TARGET_CONNS, TARGET_RATIO = "relay", "reference", (64, 256), 0.8

# wrk prints times with these units (see format_time in wrk's units.c).
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unknown wrk time {text!r}")
    return float(match.group(1)) * UNIT_MS[match.group(2)]


def parse_wrk(path):
    """Return a dict of the numbers we need from one wrk --latency output."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    result = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        result["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if m:
        result["requests"] = int(m.group(1))
    # Percentiles live in the "Latency Distribution" block, e.g. "     99%    1.23ms".
    block = text.split("Latency Distribution", 1)
    if len(block) == 2:
        for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", block[1], re.M):
            result[f"p{pct}"] = to_ms(value)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    # Our Lua counter (any status outside 2xx); fall back to wrk's own (>= 400 only).
    m = re.search(r"^bench non-2xx: (\d+)", text, re.M)
    if m:
        result["non2xx"] = int(m.group(1))
    else:
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        result["non2xx"] = int(m.group(1)) if m else 0
    return result


def fmt_ms(value):
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def main():
    runs_path, extras_path = sys.argv[1], sys.argv[2]
    runs, problems = [], []
    with open(runs_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            key, label, baseline, conns, path = line.rstrip("\n").split("\t")
            try:
                numbers = parse_wrk(path)
            except (OSError, ValueError) as error:
                numbers = {}
                problems.append(f"{label} c={conns}: cannot read wrk output ({error})")
            if "rps" not in numbers or not numbers.get("requests"):
                problems.append(f"{label} c={conns}: wrk completed no requests (see {path})")
            runs.append({"key": key, "label": label, "baseline": baseline, "conns": int(conns), **numbers})

    fdatasync, rss, routing, e2e, replay, restart, retention, replay_live = [], [], None, None, None, None, None, None
    e2e_before, cpu = None, {}
    with open(extras_path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == "fdatasync":
                fdatasync.append((int(fields[1]), *map(float, fields[2:6])))
            elif fields[0] in ("e2e", "e2e_before"):
                figures = (int(fields[1] or 0), dict(kv.split("=", 1) for kv in fields[2].split()))
                if fields[0] == "e2e":
                    e2e = figures
                else:
                    e2e_before = figures
            elif fields[0] == "cpu":
                # Relay CPU per request of one wrk run (µs), from its CPU ticks and wrk's count.
                try:
                    requests = parse_wrk(fields[4]).get("requests") or 0
                except (OSError, ValueError):
                    requests = 0
                if requests:
                    cpu[(fields[1], int(fields[2]))] = int(fields[3]) / int(fields[5]) * 1e6 / requests
            elif fields[0] == "routing":
                routing = (int(fields[1]), float(fields[2]), float(fields[3]))
            elif fields[0] == "restart":
                restart = (int(fields[1]), int(fields[2]), float(fields[3]), float(fields[4]), int(fields[5] or 0), int(fields[6] or 0),
                           int(fields[7] or 0) if len(fields) > 7 else 0, int(fields[8] or 0) if len(fields) > 8 else 0)
            elif fields[0] == "replay_live":
                replay_live = (int(fields[1] or 0), dict(kv.split("=", 1) for kv in fields[2].split()) if len(fields) > 2 else {})
            elif fields[0] == "retention":
                retention = (int(fields[1]), int(fields[2]), int(fields[3]), float(fields[4]), float(fields[5]), int(fields[6] or 0), int(fields[7] or 0))
            elif fields[0] == "replay":
                replay = (int(fields[1]), float(fields[2]), float(fields[3]), int(fields[4]))
            elif fields[0] == "rss":
                rss.append((fields[1], int(fields[2]), int(fields[3])))

    rps_by = {(r["key"], r["conns"]): r.get("rps") for r in runs}

    def ratio(run):
        base = rps_by.get((run["baseline"], run["conns"]))
        if run["baseline"] == "-" or not base or run.get("rps") is None:
            return None
        return run["rps"] / base

    header = ["scenario", "conns", "req/s", "p50 ms", "p99 ms", "non-2xx", "ratio"]
    rows = []
    for run in runs:
        errors = str(run.get("non2xx", "-"))
        sock = sum(run.get("socket_errors", {}).values())
        if sock:
            errors += f" (+{sock} sock)"
        r = ratio(run)
        rows.append([
            run["label"], str(run["conns"]),
            f"{run['rps']:.0f}" if "rps" in run else "-",
            fmt_ms(run.get("p50")), fmt_ms(run.get("p99")), errors,
            f"{r:.2f}×" if r is not None else "-",
        ])
    for batch, syncs, records, p50, p99 in fdatasync:
        if batch == 1:
            rows.append(["disk append 2 KiB + fdatasync (syncs/s)", "1", f"{syncs:.0f}", fmt_ms(p50), fmt_ms(p99), "-", "-"])
        else:
            rows.append([f"disk append {batch}×2 KiB + fdatasync (records/s; {syncs:.0f} syncs/s)", "1", f"{records:.0f}", fmt_ms(p50), fmt_ms(p99), "-", "-"])

    e2e_ratio = None
    for which, measured in (("", e2e), (", BENCH_BEFORE build", e2e_before)):
        if measured is None:
            continue
        accepted, figures = measured
        rate = float(figures.get("delivered_per_s", 0))
        proxy = rps_by.get(("nginxproxy", 64))
        this_ratio = rate / proxy if proxy else None
        if not which:
            e2e_ratio = this_ratio
        rows.append([
            f"end to end: delivered to sink ({figures.get('delivered', 0)}/{accepted}){which}", "64", f"{rate:.0f}",
            fmt_ms(float(figures["p50_ms"])) if "p50_ms" in figures else "-",
            fmt_ms(float(figures["p99_ms"])) if "p99_ms" in figures else "-", "-",
            f"{this_ratio:.2f}× proxy" if this_ratio is not None else "-",
        ])
        if int(figures.get("delivered", 0)) < accepted:
            problems.append(f"end to end{which}: only {figures.get('delivered', 0)} of {accepted} accepted events were delivered")

    if routing is not None:
        count, rate, us = routing
        ingest = rps_by.get((TARGET_KEY, 64))
        # Share of one durable ingest request's cost (at 64 conns) spent routing one event.
        share = f"{us / (1e6 / ingest):.2f}× ingest" if ingest else "-"
        rows.append([f"routing, {count} routes (events/s; {us:.1f} µs/event)", "1", f"{rate:.0f}", "-", "-", "-", share])

    replay_read = None
    if replay is not None:
        events, plan_s, finish_s, succeeded = replay
        replay_read = events / plan_s if plan_s > 0 else None
        rows.append([f"replay {events} stored events: read and scheduled from the journal (events/s)", "1",
                     f"{replay_read:.0f}" if replay_read else "-", "-", "-", "-", "-"])
        rows.append([f"replay {events} stored events: delivered to sink ({succeeded}/{events}, events/s)", "64",
                     f"{events / finish_s:.0f}" if finish_s > 0 else "-", "-", "-", "-", "-"])
        if succeeded < events:
            problems.append(f"replay: only {succeeded} of {events} deliveries succeeded")

    if replay_live is not None:
        sent, figures = replay_live
        rows.append([f"live events during the replay, same destination ({figures.get('delivered', 0)}/{sent} delivered; receive → 2xx)", "-", "-",
                     figures.get("p50_ms", "-"), figures.get("p99_ms", "-"), "-", "-"])

    if restart is not None:
        events, pending, cold, ready, rss_kb, peak_kb, first_rss_kb, first_peak_kb = restart
        rows.append([f"start, {events} journaled events, no checkpoint (full read; seconds to ready)", "-", f"{cold:.2f} s", "-", "-", "-", "-"])
        if first_peak_kb:
            rows.append([f"relay RSS after that first start and its first checkpoint (peak)", "-",
                         f"{first_rss_kb / 1024:.0f} MiB ({first_peak_kb / 1024:.0f})", "-", "-", "-", "-"])
        rows.append([f"restart, {events} journaled events, from checkpoint (seconds to ready)", "-", f"{ready:.2f} s", "-", "-", "-", "-"])
        rows.append([f"relay RSS after restart, {events} events, {pending} pending (peak)", "-",
                     f"{rss_kb / 1024:.0f} MiB ({peak_kb / 1024:.0f})", "-", "-", "-", "-"])

    if retention is not None:
        events, before_kb, after_kb, keep_ready, prune_ready, keep_rss, prune_rss = retention
        rows.append([f"retention 30d, {events} events over 60 days: journal on disk before → after (ratio)", "-",
                     f"{before_kb / 1024:.0f} → {after_kb / 1024:.0f} MiB", f"{after_kb / before_kb:.2f}" if before_kb else "-", "-", "-", "-"])
        rows.append([f"restart from checkpoint, keeping everything → after pruning (seconds to ready)", "-",
                     f"{keep_ready:.2f} → {prune_ready:.2f} s", "-", "-", "-", "-"])
        rows.append([f"relay RSS, keeping everything → after pruning", "-",
                     f"{keep_rss / 1024:.0f} → {prune_rss / 1024:.0f} MiB", "-", "-", "-", "-"])

    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]  # rows may be empty (BENCH_ONLY)
    left = {0}  # scenario left-aligned, numbers right-aligned

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    print(line(header))
    print("|" + "|".join(("-" * (w + 2)) if i in left else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|")
    for row in rows:
        print(line(row))
    print()
    print("ratio: relay ingest rows = relay ÷ the reference (raw NIO + group commit + fdatasync), reference and sink")
    print("       rows = ÷ nginx return 204, at the same connection count;")
    print("       end-to-end row = events/s from first receive to last sink 2xx ÷ nginx proxy_pass req/s;")
    print("         its latencies are receive → sink 2xx per event, from the journal's own records;")
    print("       routing row = time to route one event ÷ time per durable ingest request at 64 connections.")

    socket_notes = [
        f"  {r['label']} c={r['conns']}: " + ", ".join(f"{k} {v}" for k, v in r["socket_errors"].items() if v)
        for r in runs if sum(r.get("socket_errors", {}).values())
    ]
    if socket_notes:
        print("socket errors:")
        print("\n".join(socket_notes))
    if rss:
        by_label = {}
        for label, conns, kb in rss:
            by_label.setdefault(label, []).append(f"c={conns} {kb / 1024:.1f} MiB")
        for label, parts in by_label.items():
            print(f"peak RSS (VmHWM) {label}: " + ", ".join(parts))
    if cpu:
        for key, label in (("relay", "this build"), ("before", "BENCH_BEFORE build"), ("reference", "reference server")):
            parts = [f"c={conns} {us:.1f} µs" for (k, conns), us in sorted(cpu.items()) if k == key]
            if parts:
                print(f"CPU per durable ingest request, {label}: " + ", ".join(parts))
        for key, ingest_key, label in (("e2e", "relay", "this build"), ("e2e_before", "before", "BENCH_BEFORE build")):
            total, ingest = cpu.get((key, 64)), cpu.get((ingest_key, 64))
            if total is not None and ingest is not None:
                print(f"CPU per delivery, {label}: {total - ingest:.1f} µs (end to end {total:.1f} µs per event, less the ingest row's {ingest:.1f} µs at 64 connections)")
    relay_non2xx = sum(r.get("non2xx", 0) for r in runs if r["key"] == TARGET_KEY)
    if relay_non2xx:
        print(f"WARNING: the relay answered {relay_non2xx} requests outside 2xx")
    for problem in problems:
        print(f"ERROR: {problem}")
    print()

    for conns in TARGET_CONNS:
        target = next((r for r in runs if r["key"] == TARGET_KEY and r["conns"] == conns), None)
        measured = ratio(target) if target else None
        if measured is None:
            print(f"target: relay ingest ≥ {TARGET_RATIO}× the reference at {conns} connections — not measured")
        else:
            verdict = "met" if measured >= TARGET_RATIO else "NOT met"
            nginx = rps_by.get(("nginx", conns))
            of_nginx = f", {target['rps'] / nginx:.2f}× nginx" if nginx else ""
            print(f"target: relay ingest ≥ {TARGET_RATIO}× the reference at {conns} connections — measured {measured:.2f}×{of_nginx} ({verdict})")
        before = next((r for r in runs if r["key"] == "before" and r["conns"] == conns), None)
        if target and before and target.get("p99") is not None and before.get("p99") is not None:
            worse = target["p99"] > before["p99"] * 1.1
            print(f"target: p99 at {conns} connections no worse than the BENCH_BEFORE build — {target['p99']:.2f} ms against {before['p99']:.2f} ms "
                  f"({'NOT met' if worse else 'met'}, 10% allowed for noise)")
    if e2e_ratio is not None:
        print(f"target: end to end ≥ 0.5× nginx proxy_pass at 64 connections — measured {e2e_ratio:.2f}× ({'met' if e2e_ratio >= 0.5 else 'NOT met'})")
    if restart is not None:
        events, pending, cold, ready, rss_kb, peak_kb, _, _ = restart
        print(f"target: restart-to-ready < 2 s with {events} journaled events — measured {ready:.2f} s ({'met' if ready < 2 else 'NOT met'})")
        print(f"target: relay RSS < 150 MB with {events} journaled events and {pending} pending deliveries — measured {rss_kb * 1024 / 1e6:.0f} MB, peak {peak_kb * 1024 / 1e6:.0f} MB ({'met' if peak_kb * 1024 < 150e6 else 'NOT met'})")
    if retention is not None:
        events, before_kb, after_kb, keep_ready, prune_ready, keep_rss, prune_rss = retention
        share = after_kb / before_kb if before_kb else 1
        print(f"target: retention 30d of 60 days leaves about half the journal — measured {share:.2f} ({'met' if 0.35 <= share <= 0.65 else 'NOT met'}); "
              f"ready {keep_ready:.2f} → {prune_ready:.2f} s, RSS {keep_rss / 1024:.0f} → {prune_rss / 1024:.0f} MiB "
              f"({'not higher' if prune_ready <= keep_ready * 1.2 + 0.05 and prune_rss <= keep_rss * 1.1 else 'HIGHER'} with retention, 50 ms and 10% allowed for noise)")
    if replay_read is not None:
        print(f"target: replay ≥ 50000 events/s read from the journal — measured {replay_read:.0f} ({'met' if replay_read >= 50000 else 'NOT met'})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
