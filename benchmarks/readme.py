"""Print the README's benchmark tables from a result file: ``python -m benchmarks.readme RUN.json``.

The README shows what users get through each API: the core rows and the ``AdkSessionService``
rows (cache off and on) side by side, with the same ratios the terminal report prints, and the
google-adk Runner turn. Regenerate the tables after a run instead of copying numbers by hand.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

from ._report import turn_share
from ._runner import Sizes, describe

ROWS = (
    ("create", ("ours", "ours-adk")),
    ("append_seq", ("ours", "ours-adk")),
    ("append_conc", ("ours", "ours-adk")),
    ("get_full", ("ours", "ours-adk", "ours-adk-cache")),
    ("get_recent", ("ours", "ours-adk", "ours-adk-cache")),
    ("list", ("ours", "ours-adk")),
)
API = {
    "ours": "core",
    "ours-adk": "`AdkSessionService`",
    "ours-adk-cache": "`AdkSessionService`, `event_cache` on",
}
STORES = {
    "ours-adk": "`AdkSessionService`",
    "ours-adk-cache": "`AdkSessionService`, `event_cache` on",
    "adk-db": "`DatabaseSessionService`",
    "adk-sqlite": "`SqliteSessionService`",
}


def _ops(data: dict[str, Any], workload: str, key: str) -> float | None:
    stats = data["results"].get(workload, {}).get(key)
    return None if not stats or "error" in stats else float(stats["ops_per_s"])


def _cell(data: dict[str, Any] | None, workload: str, key: str, yardsticks: tuple[str, ...]) -> str:
    if data is None:
        return "-"
    ops = _ops(data, workload, key)
    if ops is None:
        return "-"
    parts = [f"{ops:,.0f}/s" if ops >= 100 else f"{ops:,.1f}/s"]
    ratios = []
    for den in yardsticks:
        theirs = _ops(data, workload, den)
        if theirs:
            ratios.append(f"{ops / theirs:.2f}x")
    if ratios:
        parts.append(" / ".join(ratios))
    return ": ".join(parts)


def tables(run: dict[str, Any]) -> str:
    """Return the README's Markdown tables for a run.

    Args:
        run: The result document ``python -m benchmarks`` wrote.

    Returns:
        Markdown: throughput with ratios per API, then the Runner turn.
    """
    sizes = Sizes(**run["meta"]["sizes"])
    pg, sl = run["backends"].get("postgres"), run["backends"].get("sqlite")
    out = [
        "| workload | API | PostgreSQL: vs `DatabaseSessionService` | SQLite: vs "
        "`DatabaseSessionService` / `SqliteSessionService` |",
        "| --- | --- | --- | --- |",
    ]
    for workload, keys in ROWS:
        for n, key in enumerate(keys):
            label = describe(workload, sizes) if n == 0 else ""
            out.append(
                f"| {label} | {API[key]} | {_cell(pg, workload, key, ('adk-db',))} | "
                f"{_cell(sl, workload, key, ('adk-db', 'adk-sqlite'))} |"
            )
    for name, data in (("PostgreSQL", pg), ("SQLite", sl)):
        turns = (data or {}).get("turns") or {}
        if not turns or "error" in turns:
            continue
        sizes_run = list(turns)
        stores = [k for k in STORES if any(k in turns[s] for s in sizes_run)]
        out += [
            "",
            f"google-adk `Runner` turn on {name}: the store's share of a turn in ms (turn time "
            "minus a store that does nothing; in brackets the time inside the store's calls)",
            "",
            "| history | " + " | ".join(STORES[k] for k in stores) + " |",
            "| --- |" + " --- |" * len(stores),
        ]
        for size in sizes_run:
            cells = []
            for k in stores:
                share = turn_share(turns, size, k)
                inside = turn_share(turns, size, k, "store_ms")
                cells.append(
                    "-" if share is None or inside is None else f"{share:.1f} ({inside:.1f})"
                )
            out.append(f"| {int(size):,} events | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    """Print the tables of the given result file."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.readme")
    p.add_argument("result", type=pathlib.Path, help="the .json a run wrote")
    args = p.parse_args()
    print(tables(json.loads(args.result.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
