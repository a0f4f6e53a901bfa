"""The benchmark report: results.json (every measured point), results.md (tables, targets met / not met) and PNG
charts, written from the results of one run (bench/run.py) or re-made from a results.json:

    python -m bench.report bench/results/results.json

A system's figure for a workload is its *peak*: the concurrency level with the highest median throughput over the
repeats; the spread shown is the lowest and highest repeat at that level. Ratios compare systems of the same run.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYSTEM_ORDER = ("floor", "syncsvc-1w", "syncsvc-2w", "kinto", "pouchdb", "redis-alone")
WORKLOAD_TITLES = {
    "write": "1. small writes (one 100-byte record per request)",
    "delta": "2. delta pull (10 changed records)",
    "pull": "3. cold full pull (1,024 records, 1 MB)",
}
GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


def peak(points: list[dict[str, Any]], system: str, workload: str) -> dict[str, Any]:
    """The level with the highest median throughput: that median, its spread and its median latencies."""
    by_level: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        if point["system"] == system and point["workload"] == workload:
            by_level[point["connections"]].append(point)
    if not by_level:
        return {}
    best = max(by_level, key=lambda level: statistics.median(p["throughput"] for p in by_level[level]))
    return {"connections": best, **_medians(by_level[best])}


def at_level(points: list[dict[str, Any]], system: str, workload: str, connections: int) -> dict[str, Any]:
    """The medians of one level (empty when it was not measured)."""
    wanted = (system, workload, connections)
    runs = [p for p in points if (p["system"], p["workload"], p["connections"]) == wanted]
    return {"connections": connections, **_medians(runs)} if runs else {}


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "throughput": statistics.median(p["throughput"] for p in runs),
        "low": min(p["throughput"] for p in runs),
        "high": max(p["throughput"] for p in runs),
        "p50_ms": statistics.median(p["p50_ms"] for p in runs),
        "p99_ms": statistics.median(p["p99_ms"] for p in runs),
        "generator_cpu": statistics.median(p["generator_cpu"] for p in runs),
        "server_cpu": statistics.median(p["server_cpu"] for p in runs),
        "cpu_ms": statistics.median(p.get("cpu_ms", 0.0) for p in runs),
    }


def systems_of(results: dict[str, Any]) -> list[str]:
    seen = {point["system"] for point in results["points"]}
    return [name for name in SYSTEM_ORDER if name in seen] + sorted(seen - set(SYSTEM_ORDER))


def targets(results: dict[str, Any]) -> list[Target]:
    """The targets of issue #20 (and the earlier ones kept), each with the figure measured in this run."""
    points = results["points"]
    found: list[Target] = []

    def ratio_target(name: str, ours: str, theirs: str, workload: str, goal: float) -> None:
        mine, other = peak(points, ours, workload), peak(points, theirs, workload)
        if not mine or not other:
            found.append(Target(name, f">= {goal}x", "not measured", None))
            return
        ratio = mine["throughput"] / other["throughput"]
        measured = f"{ratio:.2f}x ({mine['throughput']:,.0f}/s vs {other['throughput']:,.0f}/s)"
        found.append(Target(name, f">= {goal}x", measured, ratio >= goal))

    ratio_target("writes, 1 worker vs the floor", "syncsvc-1w", "floor", "write", 0.33)
    ratio_target("writes, 2 workers vs the floor", "syncsvc-2w", "floor", "write", 0.5)
    for row in results["paced"]:
        if row["system"].startswith("syncsvc"):
            p99 = row["p99_ms"]
            measured = f"{p99:.1f} ms at {row['throughput']:,.0f}/s"
            found.append(Target(f"write p99 at half peak, {row['system']}", "<= 10 ms", measured, p99 <= 10))
    for system in ("syncsvc-1w", "syncsvc-2w"):
        top = at_level(points, system, "write", 64)
        if top:
            measured = f"{top['p99_ms']:.1f} ms at {top['throughput']:,.0f}/s"
            found.append(Target(f"write p99 at c=64, {system}", "<= 25 ms", measured, top["p99_ms"] <= 25))
    idle = at_level(points, "syncsvc-1w", "write", 1)
    if idle:
        p50 = idle["p50_ms"]
        found.append(Target("idle UpdateRecords p50 (c=1, 1 worker)", "<= 0.6 ms", f"{p50:.2f} ms", p50 <= 0.6))
    ratio_target("cold full pull, 2 workers vs Kinto", "syncsvc-2w", "kinto", "pull", 5)
    for system in ("syncsvc-1w", "syncsvc-2w"):
        pull = at_level(points, system, "pull", 16)
        if pull:
            p99 = pull["p99_ms"]
            found.append(Target(f"full pull p99 at c=16, {system}", "<= 150 ms", f"{p99:.0f} ms", p99 <= 150))
    ratio_target("delta pull, 1 worker vs the floor", "syncsvc-1w", "floor", "delta", 0.33)
    for label, push in results["push"].items():
        found.append(Target(f"push p99 ({label})", "<= 20 ms", f"{push['p99_ms']:.2f} ms", push["p99_ms"] <= 20))
    if results["stream"]:
        p99 = results["stream"]["p99_ms"]
        found.append(Target("stream p99", "<= 150 ms", f"{p99:.1f} ms", p99 <= 150))
    if results["idle"]:
        sockets = results["idle"]
        held, rss = sockets["devices_held"], sockets["rss_bytes"]
        projected = ""
        if held < 20000:  # the rest at the measured cost per device
            projected = f"; 20,000 would be {(rss + (20000 - held) * sockets['rss_per_device_bytes']) / GIB:.2f} GiB"
        found.append(
            Target(
                "idle WebSocket devices",
                "20,000 under 1 GiB RSS",
                f"{held:,} at {rss / GIB:.2f} GiB{projected}",
                held >= 20000 and rss < GIB,
            )
        )
    if results["bulk"]:
        rate = results["bulk"]["records_per_second"]
        found.append(Target("bulk publish", ">= 50,000 records/s", f"{rate:,.0f} records/s", rate >= 50000))
    return found


def markdown(results: dict[str, Any], charts: list[str]) -> str:
    machine = results["machine"]
    lines = [
        "# syncsvc benchmark",
        "",
        f"Run {machine['date']} on {machine['cores']} cores ({machine['cpu']}), "
        f"{machine['memory_bytes'] / GIB:.0f} GiB, {machine['os']}, kernel {machine['kernel']}, "
        f"Python {machine['python']}, {machine['wrk']}. Whole run: {results['seconds'] / 60:.1f} min.",
        "",
        "Load: wrk, one thread, closed loop; levels "
        f"{', '.join(str(level) for level in results['plan']['levels'])} connections, {results['plan']['seconds']:g} s "
        f"each, {results['plan']['repeats']} repeats after a warm-up. Peak = best level's median; spread = its "
        "lowest..highest repeat. CPU shares are of the whole machine (all cores).",
        "",
        "## Targets",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
    ]
    for target in targets(results):
        verdict = "not measured" if target.met is None else ("met" if target.met else "**not met**")
        lines.append(f"| {target.name} | {target.goal} | {target.measured} | {verdict} |")
    floor_peaks = {workload: peak(results["points"], "floor", workload) for workload in WORKLOAD_TITLES}
    for workload, title in WORKLOAD_TITLES.items():
        lines += [
            "",
            f"## {title}",
            "",
            "| system | peak req/s | spread | vs floor | at conns | p50 ms | p99 ms | server CPU | CPU ms/req "
            "| wrk CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for system in systems_of(results):
            best = peak(results["points"], system, workload)
            if not best:
                continue
            floor = floor_peaks[workload]
            ratio = f"{best['throughput'] / floor['throughput']:.2f}x" if floor else "-"
            lines.append(
                f"| {system} | {best['throughput']:,.0f} | {best['low']:,.0f}..{best['high']:,.0f} | {ratio} | "
                f"{best['connections']} | {best['p50_ms']:.2f} | {best['p99_ms']:.2f} | {best['server_cpu']:.0%} | "
                f"{best['cpu_ms']:.3f} | {best['generator_cpu']:.0%} |"
            )
    lines += _paced(results) + _overload(results) + _syncsvc_only(results) + _versions(results)
    lines += ["", "## Charts", ""] + [f"![{name}]({name})" for name in charts]
    return "\n".join(lines) + "\n"


def _paced(results: dict[str, Any]) -> list[str]:
    """The paced points: each syncsvc at half its peak, and the floor paced at the same rates (a tail that the load
    method makes shows there too)."""
    if not results["paced"]:
        return []
    lines = ["", "## Workload 1 at half the peak (paced)", ""]
    lines.append("| system | asked | got | p50 ms | p99 ms | max ms | CPU ms/req |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for row in results["paced"]:
        lines.append(
            f"| {row['system']} | {row['rate']:,.0f}/s | {row['throughput']:,.0f}/s | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['max_ms']:.2f} | {row.get('cpu_ms', 0.0):.3f} |"
        )
    return lines


def _overload(results: dict[str, Any]) -> list[str]:
    """Each syncsvc offered three times its peak (bench.overload): the excess refused at once, the rest served."""
    rows = results.get("overload", [])
    if not rows:
        return []
    lines = ["", "## Workload 1 at three times the peak (overload)", ""]
    lines.append(
        "Offered open-loop-like (paced) over more connections than the server takes requests in flight "
        "(SYNCSVC_MAX_REQUESTS_IN_FLIGHT per process); refused = 429 TooManyRequestsException + Retry-After, "
        "which the SDKs retry. Answered p99 is over every answer (refusals, most of them, included); admitted p50 and "
        "p99 are of the admitted writes alone; /healthz is probed every 20 ms. Prober stall: the prober's longest "
        "oversleep (the machine itself pausing, which every latency of that run includes)."
    )
    lines += ["", "| system | run | offered | answered | answered p99 ms | admitted | shed | admitted p50 ms | "]
    lines[-1] += "admitted p99 ms | /healthz p99 ms | prober stall ms | other answers | server CPU |"
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        lines.append(
            f"| {row['system']} | {row.get('repeat', 0) + 1} | {row['offered']:,.0f}/s | {row['answered']:,.0f}/s | "
            f"{row.get('answered_p99_ms', 0.0):.1f} | {row['admitted']:,} | {row['shed_share']:.0%} | "
            f"{row['admitted_p50_ms']:.1f} | {row['admitted_p99_ms']:.1f} | {row['healthz_p99_ms']:.1f} | "
            f"{row.get('prober_stall_max_ms', 0.0):.0f} | {row['other']} | {row['server_cpu']:.0%} |"
        )
    return lines


def _syncsvc_only(results: dict[str, Any]) -> list[str]:
    lines = ["", "## syncsvc only (workloads 4-7)", ""]
    for label, push in results["push"].items():
        lines.append(
            f"* push, {label}: write acknowledged -> other device notified p50 {push['p50_ms']:.2f} ms, "
            f"p99 {push['p99_ms']:.2f} ms ({push['writes']} writes; sent -> notified p99 {push['sent_p99_ms']:.2f} ms)"
        )
    if results["stream"]:
        stream = results["stream"]
        lines.append(
            f"* stream: write acknowledged -> read_committed consumer p50 {stream['p50_ms']:.1f} ms, "
            f"p99 {stream['p99_ms']:.1f} ms ({stream['writes']} writes)"
        )
    if results["idle"]:
        idle = results["idle"]
        capped = f"; capped by {idle['capped_by']}" if "capped_by" in idle else ""
        lines.append(
            f"* idle sockets: {idle['devices_held']:,} devices held by one process, RSS "
            f"{idle['rss_bytes'] / (1 << 20):,.0f} MiB ({idle['rss_per_device_bytes'] / 1024:.1f} KiB per device; "
            f"stopped because: {idle['stopped_because']}{capped})"
        )
    if results["bulk"]:
        bulk = results["bulk"]
        lines.append(
            f"* bulk publish: {bulk['records']:,} records in {bulk['seconds']:.2f} s = "
            f"{bulk['records_per_second']:,.0f} records/s"
        )
    return lines


def _versions(results: dict[str, Any]) -> list[str]:
    lines = ["", "## Versions", ""]
    for system, versions in results["systems"].items():
        lines.append(f"* {system}: " + ", ".join(f"{name} {value}" for name, value in versions.items()))
    return lines


def charts(results: dict[str, Any], out: Path) -> list[str]:
    """throughput.png (peak per system and workload, log scale) and writes.png (throughput and p99 per level)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = systems_of(results)
    figure, axes = plt.subplots(1, len(WORKLOAD_TITLES), figsize=(15, 4.8))
    for axis, (workload, title) in zip(axes, WORKLOAD_TITLES.items(), strict=True):
        names, heights, low, high = [], [], [], []
        for system in systems:
            best = peak(results["points"], system, workload)
            if best:
                names.append(system)
                heights.append(best["throughput"])
                low.append(best["throughput"] - best["low"])
                high.append(best["high"] - best["throughput"])
        bars = axis.bar(names, heights, yerr=[low, high], capsize=3, color="#4c72b0")
        axis.bar_label(bars, labels=[f"{h:,.0f}" for h in heights], fontsize=7)
        axis.set_yscale("log")
        axis.set_title(title, fontsize=9)
        axis.set_ylabel("requests/s (peak, log)")
        axis.tick_params(axis="x", labelrotation=30, labelsize=8)
    figure.tight_layout()
    figure.savefig(out / "throughput.png", dpi=110)
    plt.close(figure)

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for system in systems:
        levels = sorted(
            {p["connections"] for p in results["points"] if p["system"] == system and p["workload"] == "write"}
        )
        if not levels:
            continue
        rows = [[p for p in results["points"] if _at(p, system, level)] for level in levels]
        left.plot(levels, [statistics.median(p["throughput"] for p in runs) for runs in rows], marker="o", label=system)
        right.plot(levels, [statistics.median(p["p99_ms"] for p in runs) for runs in rows], marker="o", label=system)
    for axis, label in ((left, "requests/s"), (right, "p99 latency, ms")):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("connections (closed loop)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    left.set_title("workload 1: throughput by concurrency", fontsize=9)
    right.set_title("workload 1: p99 by concurrency", fontsize=9)
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "writes.png", dpi=110)
    plt.close(figure)
    return ["throughput.png", "writes.png"]


def _at(point: dict[str, Any], system: str, level: int) -> bool:
    return bool(point["system"] == system and point["workload"] == "write" and point["connections"] == level)


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    names = charts(results, out)
    (out / "results.md").write_text(markdown(results, names))


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results" / "results.json"
    write(json.loads(source.read_text()), source.parent)


if __name__ == "__main__":
    main()
