"""Sweep throughput: runs per minute of a sweep with the sequential backend and 1 or 2 pool workers.

Each configuration is timed as the command a user runs (``lrid generate ... --backend B --workers N``
into a fresh store), so process start-up, TensorFlow import and tracing are included. Prints a table and
writes ``benchmarks/results/sweep_throughput.json``.

    python benchmarks/sweep_throughput.py [--spec pipelines/demo.yaml] [--runs 48]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def subset_sweep(spec: Path, runs: int | None, directory: Path) -> tuple[Path, int]:
    """The sweep itself, or a copy whose grid axes are shortened until it has at most ``runs`` runs."""
    from lrid.config import SweepSpec

    document = yaml.safe_load(spec.read_text())
    count = len(SweepSpec(**document).expand())
    if runs is None or runs >= count:
        return spec, count
    grid = document.setdefault("grid", {})
    while count > runs and any(len(values) > 1 for values in grid.values()):
        longest = max(grid, key=lambda key: len(grid[key]))
        grid[longest] = grid[longest][:-1]
        count = len(SweepSpec(**document).expand())
    path = directory / "subset.yaml"
    path.write_text(yaml.safe_dump(document))
    return path, count


def time_generate(spec: Path, backend: str, workers: int, directory: Path) -> float:
    store = directory / f"store-{backend}-{workers}"
    command = [sys.executable, "-m", "lrid.cli", "generate", str(spec), "--store", str(store), "--backend", backend,
               "--workers", str(workers)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "pipelines" / "demo.yaml")
    parser.add_argument("--runs", type=int, default=None, help="cut the sweep's grid to about this many runs")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        spec, n_runs = subset_sweep(args.spec, args.runs, directory)
        for backend, workers in [("sequential", 1), ("process", 1), ("process", 2)]:
            seconds = time_generate(spec, backend, workers, directory)
            rows.append({"backend": backend, "workers": workers, "runs": n_runs, "wall_s": round(seconds, 1),
                         "runs_per_minute": round(60 * n_runs / seconds, 1)})
    one_worker = next(r for r in rows if r["backend"] == "process" and r["workers"] == 1)
    for row in rows:
        row["speedup_vs_1_worker"] = round(row["runs_per_minute"] / one_worker["runs_per_minute"], 2)

    print(f"{'backend':<11} {'workers':>7} {'runs':>5} {'wall s':>7} {'runs/min':>9} {'speed-up':>9}")
    for row in rows:
        print(f"{row['backend']:<11} {row['workers']:>7} {row['runs']:>5} {row['wall_s']:>7} "
              f"{row['runs_per_minute']:>9} {row['speedup_vs_1_worker']:>9}")
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    output = {"benchmark": "sweep_throughput", "spec": str(args.spec), "cpu_count": os.cpu_count(),
              "python": platform.python_version(), "rows": rows}
    (results / "sweep_throughput.json").write_text(json.dumps(output, indent=2))
    print(f"wrote {results / 'sweep_throughput.json'}")


if __name__ == "__main__":
    main()
