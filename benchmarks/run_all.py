"""Run every benchmark of issue #8, each in its own process, and write one summary of targets met.

    python benchmarks/run_all.py [--quick] [--only step_throughput,classification,...]

Order: step throughput (1), recording overhead (2), run overhead (3), sweep scaling (4), the demo pipeline
with peak memory (the demo target and 6; its store is kept for 5), classification (5), then identify speed
(issue #14) and population training (issue #16). Each writes
``benchmarks/results/<name>.json`` (``<name>_quick.json`` with ``--quick``) stamped with this invocation's
run stamp, handed to them in ``LRID_BENCH_RUN``; this script adds ``benchmarks/results/summary.json``
(``summary_quick.json``) and prints the targets table, from this invocation's results only: a result file
left by an earlier run, or a benchmark that wrote none, is listed as having no result. Each target shows the
measured value next to it; a quick run judges none ("not judged"). ``classification.py`` takes most of
the time (about an hour of the whole run's ~75 minutes on 2 cores): it generates the 960-run store of
``demo_10x.yaml`` and runs the paper's full reference grids (a random forest with max_features=None and up to 1,000 trees: 2 minutes per outer split on the demo store,
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
import uuid
from pathlib import Path

from harness import NOT_JUDGED, STAMP_VARIABLE, load_average, print_table, result_path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("step_throughput", "recording_overhead", "run_overhead", "sweep_throughput", "demo_pipeline",
              "classification", "identify_speed", "population")
LABEL_KEYS = ("model", "case", "rule", "stage", "store", "classifier", "backend", "workers")
# The values each benchmark compares with its target, in the order they are printed.
MEASURED_KEYS = ("cpu_seconds", "vs_solo", "speedup", "recording_share", "vs_keras_fit", "time_vs_lrid_backprop", "share_of_run", "wall_s", "speedup_vs_1_worker",
                 "speedup_per_split", "speedup_per_fit", "accuracy_shared", "reference_accuracy_shared", "note")


def run_benchmark(name: str, arguments: list[str], failed: list[str], stamp: str) -> float:
    """Run ``benchmarks/<name>.py`` with ``arguments`` (its table goes to this terminal); return wall seconds.

    A benchmark that fails is named in ``failed`` and the others still run. ``stamp`` marks its results
    as this invocation's.
    """
    started = time.perf_counter()
    print(f"\n=== {name} {' '.join(arguments)}", flush=True)
    completed = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *arguments],
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", STAMP_VARIABLE: stamp})
    if completed.returncode != 0:
        failed.append(name)
    return time.perf_counter() - started


def target_rows(names: list[str], stamp: str, quick: bool) -> list[dict]:
    """One row per target of benchmarks ``names`` in the results this invocation (``stamp``) wrote: the
    measured values next to the target, and whether it is met (``None``: not judged, always for ``quick``).

    A benchmark without such a result (none written, or a file left by another run) gets one row saying so.
    """
    rows = []
    for name in names:
        path = result_path(name, quick)
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            result = None
        if not isinstance(result, dict) or result.get("run_stamp") != stamp:
            rows.append({"benchmark": name, "case": "", "measured": "no result from this run", "target": "", "met": None})
            continue
        for row in result.get("rows", []) + result.get("runs", []):
            if "met" not in row:
                continue
            measured = ", ".join(f"{key}={row[key]}" for key in MEASURED_KEYS if row.get(key) not in (None, ""))
            rows.append({"benchmark": name, "case": " ".join(str(row[key]) for key in LABEL_KEYS if key in row),
                         "measured": measured, "target": row.get("target", row.get("vs", "")),
                         "met": None if quick else row["met"]})
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
    stamp = uuid.uuid4().hex
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
                    walls["demo_pipeline"] = run_benchmark("demo_pipeline", quick + ["--out", str(demo_out)], failed, stamp)
                arguments += ["--store", str(demo_out / "store")]
            if name == "classification" and not (demo_out / "store").exists():
                failed.append(name)  # no store to classify: the demo pipeline failed
                continue
            walls[name] = run_benchmark(name, arguments, failed, stamp)

    rows = target_rows([name for name in BENCHMARKS if name in chosen or name in walls], stamp, args.quick)
    print_table(rows, ["benchmark", "case", "measured", "target", "met"],
                "Issue #8 targets" + (f" (quick run: {NOT_JUDGED})" if args.quick else ""))
    summary = {"run_stamp": stamp, "quick": args.quick, "load_average_before": load_before, "load_average_after": load_average(),
               "benchmark_wall_s": {k: round(v, 1) for k, v in walls.items()}, "failed": failed, "targets": rows}
    path = result_path("summary", args.quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    print(f"wrote {path}; benchmarks took {sum(walls.values()):.0f} s")
    if failed:
        raise SystemExit(f"benchmark(s) failed: {', '.join(failed)} (their tables above show why)")


if __name__ == "__main__":
    main()
