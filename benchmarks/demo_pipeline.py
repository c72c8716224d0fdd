"""Benchmarks 6 and the demo target: wall time and peak memory of each stage of the demo pipeline.

Runs what ``lrid run pipelines/demo.yaml --out OUT`` runs, one stage per command so each is timed and
measured alone, with ``lrid run``'s defaults (process backend, one worker per core; classify with
--jobs 1): ``lrid generate``, ``lrid classify``, ``lrid report``. Peak resident memory comes from
``getrusage``: the stage's own process, and its largest child (a pool worker during generate). The store
is kept (``--out``) for the classification benchmark.

    python benchmarks/demo_pipeline.py [--quick] [--out DIR] [--spec pipelines/demo.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, load_average, print_table, verdict, write_result

TARGETS = {"total": 180.0, "classify": 60.0}  # issue #8: demo <= 3 min on 2 cores, classification <= 60 s

# Runs the lrid CLI in this process, then prints the peak RSS (KiB on Linux) of it and of its children.
_MEASURED_CLI = """
import json, resource, sys
from lrid.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK_RSS " + json.dumps({
        "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }))
"""


def measured_stage(args: list[str]) -> dict:
    """Run ``lrid ARGS`` in a fresh process; return its wall seconds and peak RSS (MiB) of it and its children."""
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", _MEASURED_CLI, *args], capture_output=True, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"lrid {' '.join(args)} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    line = next(line for line in completed.stdout.splitlines() if line.startswith("PEAK_RSS "))
    peak = json.loads(line.removeprefix("PEAK_RSS "))
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(peak["self_kib"] / 1024),
            "peak_child_rss_mib": round(peak["children_kib"] / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "pipelines" / "demo.yaml")
    parser.add_argument("--out", type=Path, default=None, help="keep OUT/store, OUT/results here (default: temporary)")
    parser.add_argument("--quick", action="store_true", help="classify with 2 splits (smoke run)")
    args = parser.parse_args()
    load_before = load_average()

    with tempfile.TemporaryDirectory() as temporary:
        out = args.out or Path(temporary)
        if (out / "store").exists():
            raise SystemExit(f"{out / 'store'} exists: the benchmark times a generation from scratch")
        splits = "2" if args.quick else "10"
        stages = {
            "generate": ["generate", str(args.spec), "--store", str(out / "store")],
            "classify": ["classify", "--store", str(out / "store"), "--out", str(out / "results"), "--splits", splits],
            "report": ["report", str(out / "results")],
        }
        rows = [{"stage": name, **measured_stage(command)} for name, command in stages.items()]
    total = sum(row["wall_s"] for row in rows)
    rows.append({"stage": "total", "wall_s": round(total, 1),
                 "peak_rss_mib": max(row["peak_rss_mib"] for row in rows),
                 "peak_child_rss_mib": max(row["peak_child_rss_mib"] for row in rows)})
    for row in rows:
        if row["stage"] in TARGETS:
            row["target"] = f"<= {TARGETS[row['stage']]:.0f} s"
            row["met"] = verdict(row["wall_s"] <= TARGETS[row["stage"]], args.quick)
    print_table(rows, ["stage", "wall_s", "peak_rss_mib", "peak_child_rss_mib", "target", "met"],
                f"Demo pipeline ({args.spec.name}, classify with {splits} splits): wall time and peak memory; "
                "a generate stage's child is a pool worker")
    write_result("demo_pipeline", {"spec": str(args.spec), "splits": int(splits), "rows": rows}, load_before,
                 quick=args.quick)


if __name__ == "__main__":
    main()
