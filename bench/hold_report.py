#!/usr/bin/env python3
"""Reports a held-load run (`bench/run --hold SECONDS`): a table on stderr, the figures as
JSON, and docs/HELD-LOAD.md. Goals (issue 8): no 5xx, resident memory growing at most 10%
after the warm-up, and the read side caught up soon after the load stops (30 s, the fault
campaign's bound)."""

import argparse
import json
import os
import sys

GOAL_RSS_GROWTH_PCT = 10.0
STEAL_PCT = 5.0
GOAL_LAG_SECONDS = 30.0


def load(path):
    with open(path) as f:
        return json.load(f)


def wal(w):
    """A window's WAL figures, or '-' for a run that did not record them."""
    return "-" if not w else f"{w['syncs_per_sec']:.0f} fsyncs/s, {w['mb_per_sec']:.1f} MB/s"


def server(w):
    """A window's group commits and admission figures, or '-' for a run that did not record them."""
    if not w:
        return "-"
    parts = [f"{w['groups_per_sec']:.0f}/s × {w['commands_per_group']:.1f}, busy {w['committer_busy_pct']:.0f}%"]
    if w["waited"] or w["shed"]:
        parts.append(f"waited {w['waited']:.0f}, shed {w['shed']:.0f}")
    return "; ".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    run = load(os.path.join(args.out, "run.json"))
    hold = load(os.path.join(args.out, "hold.json"))
    after = load(os.path.join(args.out, "lag.json"))
    lag = after["lag_zero_seconds"]
    rss_after = after.get("rss_kb_after_load")
    slow_disk = None
    if os.path.exists(os.path.join(args.out, "slow-disk.json")):
        slow_disk = load(os.path.join(args.out, "slow-disk.json"))
    peak = None
    if os.path.exists(os.path.join(args.out, "commands.json")):
        peak = load(os.path.join(args.out, "commands.json"))["commands_per_sec"]

    growth = hold["rss_growth_pct_after_warmup"]
    checks = [
        ("5xx answers", str(hold["server_errors"]), "0", hold["server_errors"] == 0),
        ("RSS growth after warm-up",
         "n/a" if growth is None else f"{growth:+.1f}% ({kb(hold['rss_kb_after_warmup'])} → {kb(hold['rss_kb_end'])})",
         f"≤ {GOAL_RSS_GROWTH_PCT:.0f}%", growth is not None and growth <= GOAL_RSS_GROWTH_PCT),
        ("lag back to zero after the load", f"{lag:.1f} s", f"≤ {GOAL_LAG_SECONDS:.0f} s",
         lag <= GOAL_LAG_SECONDS),
    ]
    # Not a goal of its own: the end-of-load figure includes whatever was in flight at that
    # moment (the RSS follows the requests in flight); this one is what stays once they are done.
    if rss_after is not None and hold["rss_kb_after_warmup"]:
        kept = 100.0 * (rss_after - hold["rss_kb_after_warmup"]) / hold["rss_kb_after_warmup"]
        info = [("RSS 12 s after the load (informational)",
                 f"{kept:+.1f}% ({kb(hold['rss_kb_after_warmup'])} → {kb(rss_after)})")]
    else:
        info = []
    # The 5xx that fell in windows where the host stole a noticeable share of a core: the
    # machine had less CPU than the run was sized for (see the per-window table).
    stolen = [w for w in hold["windows"] if (w.get("cpu_pct") or {}).get("steal", 0) >= STEAL_PCT]
    lat = hold["latency_ms"]
    summary = {
        "server_errors_in_stolen_windows": sum(w["server_errors"] for w in stolen),
        "stolen_windows": len(stolen),
        "commit": run.get("commit"),
        "started_utc": run.get("started_utc"),
        "peak_commands_per_sec": peak,
        "rate_target": hold["rate_target"],
        "rate_achieved": hold["rate_achieved"],
        "seconds": hold["seconds"],
        "subscribers": hold["subscribers"],
        "sse_messages": hold["sse_messages"],
        "sse_reconnects": hold["sse_reconnects"],
        "sent": hold["sent"],
        "ok": hold["ok"],
        "failed": hold["failed"],
        "server_errors": hold["server_errors"],
        "latency_ms": lat,
        "worst_window_p99_ms_after_warmup": hold["worst_window_p99_ms_after_warmup"],
        "rss_kb_after_warmup": hold["rss_kb_after_warmup"],
        "rss_kb_end": hold["rss_kb_end"],
        "rss_kb_max": hold["rss_kb_max"],
        "rss_growth_pct_after_warmup": growth,
        "lag_zero_seconds": lag,
        "rss_kb_after_load": rss_after,
        "slow_disk": slow_disk,
        "goals_met": all(c[3] for c in checks),
        "windows": hold["windows"],
    }

    lines = [
        f"held load: {hold['rate_achieved']:.1f} of {hold['rate_target']:.1f} commands/s"
        + (f" (70% of a {peak:.0f}/s peak)" if peak else "")
        + f" for {hold['seconds']:.0f} s, {hold['subscribers']} SSE clients",
        f"  sent {hold['sent']}, ok {hold['ok']}, failed {hold['failed']}",
        f"  latency p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms;"
        f" worst window p99 after warm-up {hold['worst_window_p99_ms_after_warmup']:.1f} ms",
    ]
    if slow_disk:
        lines.append("  " + slow_disk_text(slow_disk))
    for name, got, goal, met in checks:
        lines.append(f"  {name}: {got} (goal {goal}): {'meets' if met else 'MISSES'}")
    for name, got in info:
        lines.append(f"  {name}: {got}")
    print("\n".join("bench: " + l for l in lines), file=sys.stderr)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(summary, checks, info))


def slow_disk_text(d):
    return (f"slow disk from {d['from_s']} s for {d['seconds']} s: every WAL flush delayed "
            f"{d['commit_delay_us'] / 1000:.1f} ms (commit_delay), twice a durable commit's "
            f"{d['flush_ms']:.2f} ms")


def kb(value):
    return "n/a" if value is None else f"{value / 1024:.1f} MiB"


def markdown(s, checks, info):
    out = [
        "# Held load",
        "",
        "Written by `bench/run --hold SECONDS` (issue 8, part 3): the benchmark's command mix",
        "(tasks, signed deposits, bounties) sent open loop at 70% of the peak the same run",
        "measured, with SSE clients attached to the tasks, bounties and stats streams, then the",
        "time until every checkpoint reaches the store's head. Latency counts from when each",
        "command was due. Not a CI test: figures from one run on this 2-core machine.",
        "",
        f"Run {s['started_utc']} at commit `{s['commit']}`: "
        f"{s['rate_achieved']:.1f} of {s['rate_target']:.1f} commands/s"
        + (f" (peak {s['peak_commands_per_sec']:.0f}/s)" if s["peak_commands_per_sec"] else "")
        + f" for {s['seconds']:.0f} s, {s['subscribers']} SSE clients "
        f"({s['sse_messages']} messages, {s['sse_reconnects']} reconnects)."
        + (f" With a {slow_disk_text(s['slow_disk'])} (`--slow-disk`)." if s.get("slow_disk") else ""),
        "",
        "| figure | measured | goal | |",
        "| --- | --- | --- | --- |",
    ]
    for name, got, goal, met in checks:
        out.append(f"| {name} | {got} | {goal} | {'meets' if met else '**misses**'} |")
    for name, got in info:
        out.append(f"| {name} | {got} | | |")
    if s["server_errors"]:
        out.append(
            f"| of them, in the {s['stolen_windows']} windows where the host stole "
            f"≥ {STEAL_PCT:.0f}% of a core | {s['server_errors_in_stolen_windows']} | | |")
    lat = s["latency_ms"]
    out += [
        f"| latency over the run | p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, "
        f"max {lat['max_ms']:.1f} ms | | |",
        "",
        "## Per window",
        "",
        "CPU is each process tree's share of one core in the window (200% is the whole",
        "machine); `steal` is CPU time the host gave to other guests while this machine",
        "wanted it (load the run did not cause); lag is the store's head minus the lowest",
        "checkpoint at the window's end; WAL is Postgres's fsyncs and megabytes written per",
        "second (commits wait on those fsyncs: fewer of them at the same load is a slower disk);",
        "group commits are the API's committer in the window: groups per second × commands per",
        "group, and the share of the window it spent committing (from its `/metrics`), with the",
        "requests that waited for a place or were shed; sockets are the API process's open ones",
        "(client connections mostly) at the window's end.",
        "",
        "| ends at | sent | ok | 5xx | other failures | p50 ms | p99 ms | RSS | sockets | SSE messages | lag (events) | WAL | group commits | CPU % |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for w in s["windows"]:
        others = {k: v for k, v in w["failed"].items() if not k.startswith("5")}
        label = f"{w['end_seconds']:.0f} s" + (" (warm-up)" if w["warmup"] else "")
        out.append(
            f"| {label} | {w['sent']} | {w['ok']} | {w['server_errors']} | "
            f"{', '.join(f'{k}: {v}' for k, v in others.items()) or '-'} | "
            f"{w['p50_ms']:.1f} | {w['p99_ms']:.1f} | {kb(w['rss_kb'])} | "
            f"{(w.get('server') or {}).get('sockets') or '-'} | {w['sse_messages']} | "
            f"{'-' if w.get('lag_events') is None else w['lag_events']} | "
            f"{wal(w.get('wal'))} | {server(w.get('server'))} | "
            f"{' '.join(f'{k} {v:.0f}' for k, v in (w.get('cpu_pct') or {}).items()) or '-'} |"
        )
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
