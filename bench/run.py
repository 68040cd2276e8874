"""`make bench`: every component's benchmark, printed as one table.

Each `bench/<component>_bench.py` exposes `run(quick: bool) -> list[dict]`
with rows `{"group", "name", "value", "unit", "goal", "note"}`. Values are
ratios measured side by side in the same run wherever a goal is stated, so
the table compares like with like on whatever machine runs it. The table is
also written to `runs/bench/results.json`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path

BENCH_MODULES = ("bench.judge_bench", "bench.trainer_bench", "bench.chat_bench")
COLUMNS = ("group", "name", "value", "unit", "goal", "note")

logger = logging.getLogger("bench")


def collect(quick: bool, only: list[str] | None) -> list[dict]:
    rows: list[dict] = []
    for name in BENCH_MODULES:
        if only and not any(part in name for part in only):
            continue
        started = time.perf_counter()
        logger.info("running %s", name)
        try:
            rows.extend(importlib.import_module(name).run(quick=quick))
        except Exception as exc:  # one failed benchmark must not hide the rest
            logger.exception("%s failed", name)
            rows.append(
                {
                    "group": name,
                    "name": "FAILED",
                    "value": None,
                    "unit": "",
                    "goal": "",
                    "note": f"{type(exc).__name__}: {exc}",
                }
            )
        logger.info("%s took %.1fs", name, time.perf_counter() - started)
    return rows


def render(rows: list[dict]) -> str:
    def cell(row: dict, key: str) -> str:
        value = row.get(key)
        if isinstance(value, float):
            return f"{value:.3g}"
        return "" if value is None else str(value)

    table = [COLUMNS] + [tuple(cell(row, key) for key in COLUMNS) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--only", nargs="*", help="run benches whose name matches")
    parser.add_argument("--out", default="runs/bench/results.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    rows = collect(args.quick, args.only)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    sys.stdout.write(render(rows) + "\n")
    return 1 if any(row["name"] == "FAILED" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
