"""Run every benchmark of issue #8, each in its own process, and write one summary of targets met.

    python benchmarks/run_all.py [--quick] [--only step_throughput,classification,...]

Order: step throughput (1), recording overhead (2), run overhead (3), sweep scaling (4), the demo pipeline
with peak memory (the demo target and 6; its store is kept for 5), classification (5). Each writes
``benchmarks/results/<name>.json``; this script adds ``benchmarks/results/summary.json`` and prints the
targets table. ``classification.py`` takes most of the time (about an hour of the whole run's ~75 minutes
on 2 cores): it generates the 960-run store of ``demo_10x.yaml`` and runs the paper's full reference grids
(a random forest with max_features=None and up to 1,000 trees: 2 minutes per outer split on the demo store,
25 on the larger one). ``--only`` skips benchmarks. ``--quick`` is a smoke run (about 8 minutes on a busy
2-core machine).
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

from harness import RESULTS, load_average, print_table

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("step_throughput", "recording_overhead", "run_overhead", "sweep_throughput", "demo_pipeline",
              "classification")


def run_benchmark(name: str, arguments: list[str], failed: list[str]) -> float:
    """Run ``benchmarks/<name>.py`` with ``arguments`` (its table goes to this terminal); return wall seconds.

    A benchmark that fails is named in ``failed`` and the others still run.
    """
    started = time.perf_counter()
    print(f"\n=== {name} {' '.join(arguments)}", flush=True)
    completed = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *arguments],
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if completed.returncode != 0:
        failed.append(name)
    return time.perf_counter() - started


def target_rows() -> list[dict]:
    """One row per target row of every result file present: what was measured and whether it met the target."""
    rows = []
    for name in BENCHMARKS:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        for row in result.get("rows", []) + result.get("runs", []):
            if "met" not in row:
                continue
            label = " ".join(str(row[key]) for key in ("model", "case", "rule", "stage", "store", "classifier",
                                                        "backend", "workers") if key in row)
            measured = {key: row[key] for key in ("vs_keras_fit", "time_vs_lrid_backprop", "share_of_run", "wall_s",
                                                   "speedup_vs_1_worker", "speedup", "accuracy") if key in row}
            rows.append({"benchmark": name, "case": label, "measured": json.dumps(measured)[1:-1],
                         "target": row.get("target", row.get("vs", "")), "met": row["met"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few rounds, small sweeps, cut grids")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma list of benchmarks to run")
    args = parser.parse_args()
    chosen = args.only.split(",")
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    quick = ["--quick"] if args.quick else []
    load_before = load_average()
    walls, failed = {}, []
    with tempfile.TemporaryDirectory() as temporary:
        demo_out = Path(temporary) / "demo"
        for name in BENCHMARKS:
            if name not in chosen:
                continue
            arguments = list(quick)
            if name == "demo_pipeline":
                arguments += ["--out", str(demo_out)]
            if name == "classification":
                if not (demo_out / "store").exists():
                    walls["demo_pipeline"] = run_benchmark("demo_pipeline", quick + ["--out", str(demo_out)], failed)
                arguments += ["--store", str(demo_out / "store")]
            if name == "classification" and not (demo_out / "store").exists():
                failed.append(name)  # no store to classify: the demo pipeline failed
                continue
            walls[name] = run_benchmark(name, arguments, failed)

    rows = target_rows()
    print_table(rows, ["benchmark", "case", "measured", "target", "met"], "Issue #8 targets")
    summary = {"quick": args.quick, "load_average_before": load_before, "load_average_after": load_average(),
               "benchmark_wall_s": {k: round(v, 1) for k, v in walls.items()}, "failed": failed, "targets": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {RESULTS / 'summary.json'}; benchmarks took {sum(walls.values()):.0f} s")
    if failed:
        raise SystemExit(f"benchmark(s) failed: {', '.join(failed)} (their tables above show why)")


if __name__ == "__main__":
    main()
