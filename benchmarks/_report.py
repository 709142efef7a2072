"""The report: terminal tables with ratios, the targets, a JSON file and a PNG chart."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from ._runner import WORKLOADS, Sizes, describe

__all__ = ("chart", "render", "targets", "write_json")

ORDER = ("ours", "ours-adk", "ours-adk-cache", "adk-db", "adk-sqlite", "floor")
# This library's contenders (rows of the ratio table) and the yardsticks (its columns).
OURS = {
    "ours": "core API",
    "ours-adk": "AdkSessionService",
    "ours-adk-cache": "AdkSessionService, event cache on",
}
YARDSTICKS = ("adk-db", "adk-sqlite", "floor")
TURN_ORDER = ("null", "ours-adk", "ours-adk-cache", "adk-db", "adk-sqlite")


def _ops(backend: dict[str, Any], workload: str, key: str) -> float | None:
    stats = backend["results"].get(workload, {}).get(key)
    if not stats or "error" in stats:
        return None
    return float(stats["ops_per_s"])


def _ratio(
    backend: dict[str, Any],
    workload: str,
    num: str,
    den: str,
    *,
    den_workload: str | None = None,
    den_backend: dict[str, Any] | None = None,
) -> float | None:
    """ops/s of ``num`` over ops/s of ``den`` (on another workload or backend when given)."""
    a = _ops(backend, workload, num)
    b = _ops(den_backend or backend, den_workload or workload, den)
    return None if a is None or b is None or b == 0 else a / b


def _fmt_ops(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def render(run: dict[str, Any]) -> str:
    """Return the terminal report.

    Args:
        run: The whole result document.

    Returns:
        Text: per backend a throughput table with ratios, a latency table, the growth
        numbers, errors; then the targets.
    """
    sizes = Sizes(**run["meta"]["sizes"])
    lines: list[str] = []
    meta = run["meta"]
    lines.append(
        f"adk_sessions benchmark ({meta['mode']}), {meta['cpus']} CPUs, Python {meta['python']}, "
        f"event ~{meta['event_bytes']} bytes JSON, median of {sizes.rounds} rounds"
    )
    for backend, data in run["backends"].items():
        keys = [k for k in ORDER if k in data["contenders"]]
        lines.append("")
        lines.append(f"== {backend} ==")
        for k, v in meta["durability"].get(backend, {}).items():
            lines.append(f"  {k}: {v}")
        for k in keys:
            info = data["contenders"][k]
            settings = "; ".join(f"{a}={b}" for a, b in info["settings"].items())
            lines.append(f"  {k:<10} {info['title']}  [{settings}]")
        lines.append("")
        rows = [["ops/s", *keys]]
        for w in WORKLOADS:
            rows.append([describe(w, sizes), *[_fmt_ops(_ops(data, w, k)) for k in keys]])
        lines.append(_table(rows))
        lines.append("")
        lines.append(_ratio_table(data, keys, sizes))
        lines.append("")
        rows = [["latency ms p50 / p99", *keys]]
        for w in ("append_seq", "append_conc", "get_full", "get_recent"):
            row = [describe(w, sizes)]
            for k in keys:
                s = data["results"][w].get(k, {})
                row.append(f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}" if "p50_ms" in s else "-")
            rows.append(row)
        lines.append(_table(rows))
        growth = data.get("growth") or {}
        if "error" in growth:
            lines.append(f"\n  growth: ERROR {growth['error']}")
        elif growth:
            lines.append("")
            rows = [
                [
                    f"growth {sizes.small:,} vs {sizes.big:,} events",
                    "append ms",
                    "ratio",
                    "last-20 read ms",
                    "ratio",
                    "tracemalloc peak",
                    "ratio",
                ]
            ]
            for k, g in growth.items():
                a, rd, al = g["append_ms"], g["read_recent20_ms"], g["alloc_peak_bytes"]
                rows.append(
                    [
                        k,
                        f"{a['small']:.3f} / {a['big']:.3f}",
                        f"{g['append_ratio']:.2f}x",
                        f"{rd['small']:.3f} / {rd['big']:.3f}",
                        f"{g['read_ratio']:.2f}x",
                        f"{al['small'] / 1024:.1f} / {al['big'] / 1024:.1f} KiB",
                        f"{g['alloc_ratio']:.2f}x",
                    ]
                )
            lines.append(_table(rows))
        scope_rows = [
            [
                f"{k}: append time with the key / without",
                *[
                    "-"
                    if (r := _ratio(data, "append_plain", k, k, den_workload=w)) is None
                    else f"{r:.2f}x"
                    for w in ("append_user", "append_app")
                ],
            ]
            for k in keys
            if _ops(data, "append_plain", k) is not None
        ]
        if scope_rows:
            lines.append("")
            lines.append(_table([["scope keys", "user: key", "app: key"], *scope_rows]))
        lines.extend(_turn_lines(data.get("turns") or {}))
        lines.extend(_memory_lines(data.get("cache_memory") or {}))
        errors = [
            f"  {k} {w}: {s['error']}"
            for w, per in data["results"].items()
            for k, s in per.items()
            if "error" in s
        ]
        if errors:
            lines.append("\nerrors:")
            lines.extend(errors)
    pg, citus = run["backends"].get("postgres"), run["backends"].get("citus")
    if pg and citus:
        lines.append("")
        lines.append("== citus vs postgres (ours) ==")
        meta_citus = meta["durability"].get("citus", {})
        lines.append(
            f"  Citus {meta_citus.get('citus', '?')}, {meta_citus.get('workers', '?')} workers, "
            f"PostgreSQL {meta_citus.get('server_version', '?')}"
        )
        rows = [["ops/s", "postgres", "citus", "citus/postgres"]]
        for w in WORKLOADS:
            on_pg, on_citus = _ops(pg, w, "ours"), _ops(citus, w, "ours")
            r = _ratio(citus, w, "ours", "ours", den_backend=pg)
            if on_pg is None and on_citus is None:
                continue
            rows.append(
                [
                    describe(w, sizes),
                    _fmt_ops(on_pg),
                    _fmt_ops(on_citus),
                    "-" if r is None else f"{r:.2f}x",
                ]
            )
        lines.append(_table(rows))
    lines.append("")
    lines.append("== targets ==")
    rows = [["target", "measured", "wanted", "result"]]
    for t in run["targets"]:
        m = "-" if t["measured"] is None else f"{t['measured']:.2f}x"
        rows.append([t["name"], m, f"{t['op']} {t['threshold']}x", t["status"]])
    lines.append(_table(rows))
    return "\n".join(lines)


def _ratio_table(data: dict[str, Any], keys: list[str], sizes: Sizes) -> str:
    """This library's contenders, one row each per workload, against every yardstick."""
    ours = [k for k in OURS if k in keys]
    dens = [k for k in YARDSTICKS if k in keys]
    rows = [["ratio (higher is better)", "", *[f"vs {d}" for d in dens]]]
    for w in WORKLOADS:
        for n, k in enumerate(ours):
            row = [describe(w, sizes) if n == 0 else "", OURS[k]]
            for d in dens:
                r = _ratio(data, w, k, d)
                row.append("-" if r is None else f"{r:.2f}x")
            rows.append(row)
    return _table(rows)


def turn_share(
    turns: dict[str, Any], size: str, key: str, metric: str = "share_ms"
) -> float | None:
    """Return a store's share of a Runner turn in ms at a history size (None if not run).

    Args:
        turns: The ``turns`` part of a backend's results.
        size: The history size, as a string key.
        key: The store.
        metric: ``share_ms`` (its turn time minus the null store's) or ``store_ms`` (the time
            spent inside its own calls).

    Returns:
        The median.
    """
    value = (turns.get(size) or {}).get(key, {}).get(metric)
    return None if value is None else float(value)


def _turn_lines(turns: dict[str, Any]) -> list[str]:
    if not turns:
        return []
    if "error" in turns:
        return ["", f"  runner turn: ERROR {turns['error']}"]
    sizes = list(turns)
    present = [k for k in TURN_ORDER if any(k in turns[s] for s in sizes)]
    out = ["", "google-adk Runner turn (1 get_session + 4 append_event), median ms per turn"]
    rows = [["history (events)", "ms", *present]]
    for s in sizes:
        per = turns[s]
        first = next(iter(per.values()))
        label = f"{int(s):,} (to {first['events'][1]:,})"
        for n, (metric, name) in enumerate(
            (("turn_ms", "turn"), ("share_ms", "store's share"), ("store_ms", "inside the store"))
        ):
            row = [label if n == 0 else "", name]
            for k in present:
                v = per.get(k, {}).get(metric)
                row.append("-" if v is None else f"{v:.2f}")
            rows.append(row)
        row = ["", "one get / append"]
        for k in present:
            calls = per.get(k, {}).get("call_ms") or {}
            get, append = calls.get("get_session"), calls.get("append_event")
            row.append("-" if get is None or append is None else f"{get:.2f} / {append:.2f}")
        rows.append(row)
    out.append(_table(rows))
    low, high = sizes[0], sizes[-1]
    ours = [k for k in ("ours-adk", "ours-adk-cache") if k in present]
    for theirs in ("adk-db", "adk-sqlite"):
        for k in ours:
            a, b = turn_share(turns, high, theirs), turn_share(turns, high, k)
            if a is not None and b:
                out.append(
                    f"  store's share at {int(high):,} events: {theirs} / {k} = {a / b:.2f}x"
                )
    for k in present:
        a, b = turn_share(turns, high, k), turn_share(turns, low, k)
        if a is not None and b:
            out.append(
                f"  {k}: share at {int(high):,} / share at {int(low):,} events = {a / b:.2f}x"
            )
    return out


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    if not memory:
        return []
    if "error" in memory:
        return ["", f"  event cache memory: ERROR {memory['error']}"]
    out = [
        "",
        f"event cache memory: event_cache={memory['capacity']:,}, sessions of "
        f"{memory['per_session']} events each, tracemalloc of what stays allocated",
    ]
    rows = [["sessions read", "events held", "KiB held"]]
    for point in memory["points"]:
        rows.append(
            [f"{point['sessions']:,}", f"{point['events_held']:,}", f"{point['bytes'] / 1024:,.1f}"]
        )
    out.append(_table(rows))
    return out


def _memory_ratio(memory: dict[str, Any]) -> float | None:
    """Held bytes after the most reads over held bytes once the cache first filled up."""
    points = [p for p in (memory or {}).get("points", []) if p["events_held"]]
    full = [p for p in points if p["sessions"] * memory["per_session"] >= memory["capacity"]]
    if len(full) < 2 or not full[0]["bytes"]:
        return None
    return float(full[-1]["bytes"] / full[0]["bytes"])


def targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate the project's performance targets on a run.

    Args:
        run: The result document (``backends`` filled in).

    Returns:
        One dict per target: ``name``, ``measured``, ``op``, ``threshold``, ``status``
        (``PASS``, ``MISS`` or ``n/a`` when a side did not run).
    """
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, threshold: float, op: str = ">=") -> None:
        if value is None:
            status = "n/a"
        elif op == ">=":
            status = "PASS" if value >= threshold else "MISS"
        else:
            status = "PASS" if value <= threshold else "MISS"
        out.append(
            {"name": name, "measured": value, "op": op, "threshold": threshold, "status": status}
        )

    b = run["backends"]
    pg, sl = b.get("postgres"), b.get("sqlite")
    if pg:
        add(
            "postgres append sequential: ours / adk-db",
            _ratio(pg, "append_seq", "ours", "adk-db"),
            4,
        )
        add(
            "postgres append 32 tasks: ours / adk-db",
            _ratio(pg, "append_conc", "ours", "adk-db"),
            6,
        )
        add(
            "postgres append sequential: ours / floor",
            _ratio(pg, "append_seq", "ours", "floor"),
            0.9,
        )
        add(
            "postgres append 32 tasks: ours / floor",
            _ratio(pg, "append_conc", "ours", "floor"),
            0.9,
        )
    for name, data in (("postgres", pg), ("sqlite", sl)):
        if not data:
            continue
        add(f"{name} get_session all: ours / adk-db", _ratio(data, "get_full", "ours", "adk-db"), 4)
        add(
            f"{name} get_session all: ours-adk / adk-db",
            _ratio(data, "get_full", "ours-adk", "adk-db"),
            2,
        )
        add(
            f"{name} get_session last 20: ours / adk-db",
            _ratio(data, "get_recent", "ours", "adk-db"),
            6,
        )
        add(f"{name} list_sessions: ours / adk-db", _ratio(data, "list", "ours", "adk-db"), 15)
    citus = b.get("citus")
    if citus:
        # Time per append with an app:/user: key over time per append without (ops ratio
        # inverted): the cost of the scope's shard on a cluster.
        add(
            "citus append with an app: key / without (time)",
            _ratio(citus, "append_plain", "ours", "ours", den_workload="append_app"),
            1.3,
            "<=",
        )
        add(
            "citus append with a user: key / without (time)",
            _ratio(citus, "append_plain", "ours", "ours", den_workload="append_user"),
            1.3,
            "<=",
        )
    if sl:
        add(
            "sqlite append sequential: ours / adk-sqlite",
            _ratio(sl, "append_seq", "ours", "adk-sqlite"),
            3,
        )
        add(
            "sqlite append 32 tasks: ours / adk-sqlite",
            _ratio(sl, "append_conc", "ours", "adk-sqlite"),
            3,
        )
    for name, data in (("postgres", pg), ("sqlite", sl)):
        g = ((data or {}).get("growth") or {}).get("ours")
        if not data:
            continue
        label = f"{run['meta']['sizes']['big']:,} vs {run['meta']['sizes']['small']:,}"
        add(f"{name} append at {label} events (time)", g and g["append_ratio"], 1.2, "<=")
        add(f"{name} last-20 read at {label} events (time)", g and g["read_ratio"], 1.2, "<=")
        add(f"{name} last-20 read at {label} (tracemalloc peak)", g and g["alloc_ratio"], 1.2, "<=")
    # What google-adk users get, through AdkSessionService.
    for name, data in (("postgres", pg), ("sqlite", sl)):
        if not data:
            continue
        yardsticks = ["adk-db"] + (["adk-sqlite"] if name == "sqlite" else [])
        for den in yardsticks:
            add(
                f"{name} adk get all, cache off: ours-adk / {den}",
                _ratio(data, "get_full", "ours-adk", den),
                1.5,
            )
        add(
            f"{name} adk get all, cache on: ours-adk-cache / adk-db",
            _ratio(data, "get_full", "ours-adk-cache", "adk-db"),
            20,
        )
        for den in yardsticks:
            add(
                f"{name} adk get last 20: ours-adk / {den}",
                _ratio(data, "get_recent", "ours-adk", den),
                6,
            )
        add(f"{name} adk list: ours-adk / adk-db", _ratio(data, "list", "ours-adk", "adk-db"), 15)
        if name == "sqlite":
            add(
                "sqlite adk list: ours-adk / adk-sqlite",
                _ratio(data, "list", "ours-adk", "adk-sqlite"),
                5,
            )
        if name == "postgres":
            add(
                "postgres adk create_session: ours-adk / floor",
                _ratio(data, "create", "ours-adk", "floor"),
                0.8,
            )
        turns = data.get("turns") or {}
        sizes = [s for s in turns if s != "error"]
        if sizes:
            low, high = sizes[0], sizes[-1]
            for metric, label in (("share_ms", "store's share"), ("store_ms", "inside the store")):
                theirs = turn_share(turns, high, "adk-db", metric)
                ours = turn_share(turns, high, "ours-adk-cache", metric)
                add(
                    f"{name} Runner turn at {int(high):,} events, {label}: adk-db / ours-adk-cache",
                    None if theirs is None or not ours else theirs / ours,
                    10,
                )
                low_value = turn_share(turns, low, "ours-adk-cache", metric)
                add(
                    f"{name} Runner turn, ours-adk-cache {label} at {int(high):,} / "
                    f"{int(low):,} events",
                    None if ours is None or not low_value else ours / low_value,
                    1.5,
                    "<=",
                )
        add(
            f"{name} event cache memory after most reads / once full (tracemalloc)",
            _memory_ratio(data.get("cache_memory") or {}),
            1.2,
            "<=",
        )
    return out


def write_json(run: dict[str, Any], path: pathlib.Path) -> None:
    """Write the result document.

    Args:
        run: The result document.
        path: Where.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def chart(run: dict[str, Any], path: pathlib.Path) -> bool:
    """Draw throughput per workload, one panel per backend (log scale).

    Args:
        run: The result document.
        path: The PNG to write.

    Returns:
        ``False`` when matplotlib is not installed (the chart is skipped).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = Sizes(**run["meta"]["sizes"])
    backends = list(run["backends"].items())
    fig, axes = plt.subplots(1, len(backends), figsize=(7.5 * len(backends), 6.5), squeeze=False)
    colors = {
        "ours": "#1f77b4",
        "ours-adk": "#6baed6",
        "ours-adk-cache": "#9ecae1",
        "adk-db": "#d62728",
        "adk-sqlite": "#ff9896",
        "floor": "#7f7f7f",
    }
    for ax, (backend, data) in zip(axes[0], backends, strict=True):
        keys = [k for k in ORDER if k in data["contenders"]]
        workloads = list(WORKLOADS)
        height = 0.8 / max(len(keys), 1)
        for i, k in enumerate(keys):
            ys = [n + i * height for n in range(len(workloads))]
            xs = [_ops(data, w, k) or 0 for w in workloads]
            ax.barh(
                ys, xs, height=height, label=data["contenders"][k]["title"], color=colors.get(k)
            )
        ax.set_yticks([n + 0.4 - height / 2 for n in range(len(workloads))])
        ax.set_yticklabels([describe(w, sizes) for w in workloads], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("operations per second (log scale, higher is better)")
        ax.set_title(f"{backend}: median of {sizes.rounds} rounds")
        ax.grid(axis="x", which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
