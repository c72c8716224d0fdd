"""Sweep throughput: runs per minute of a sweep with the sequential backend and 1 or 2 pool workers.

Benchmark 4. Each configuration is timed as the command a user runs (``lrid generate ... --backend B --workers N``
into a fresh store), so process start-up, TensorFlow import and tracing are included. Prints a table and
writes ``benchmarks/results/sweep_throughput.json``.

    python benchmarks/sweep_throughput.py [--quick] [--spec pipelines/demo.yaml] [--runs N] [--rounds 2] [--sequential]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from harness import REPO, load_average, print_table, verdict, write_result


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
    """Wall seconds of ``lrid generate`` of ``spec`` into a fresh store under ``directory``."""
    store = directory / f"store-{backend}-{workers}"
    command = [sys.executable, "-m", "lrid.cli", "generate", str(spec), "--store", str(store), "--backend", backend,
               "--workers", str(workers)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "pipelines" / "demo.yaml")
    parser.add_argument("--runs", type=int, default=None, help="cut the sweep's grid to about this many runs (default: all of them)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds of every configuration")
    parser.add_argument("--quick", action="store_true", help="16 runs, one round, pool only (smoke run)")
    parser.add_argument("--sequential", action="store_true", help="also time the sequential backend")
    args = parser.parse_args()
    runs = args.runs or (16 if args.quick else None)  # the whole sweep: the target is the demo's runs/minute
    rounds = args.rounds or (1 if args.quick else 2)
    load_before = load_average()

    configurations = [("process", 1), ("process", 2)] + ([("sequential", 1)] if args.sequential else [])
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        spec, n_runs = subset_sweep(args.spec, runs, directory)
        # Alternating rounds into fresh stores: drift in the machine's load hits every configuration alike.
        seconds = {configuration: [] for configuration in configurations}
        for round_index in range(rounds):
            for backend, workers in configurations:
                seconds[(backend, workers)].append(
                    time_generate(spec, backend, workers, directory / f"round{round_index}"))
    rows = []
    for (backend, workers), values in seconds.items():
        wall = statistics.median(values)
        rows.append({"backend": backend, "workers": workers, "runs": n_runs, "wall_s": round(wall, 1),
                     "runs_per_minute": round(60 * n_runs / wall, 1), "rounds_s": [round(v, 2) for v in values]})
    one_worker = next(r for r in rows if r["backend"] == "process" and r["workers"] == 1)
    for row in rows:
        row["speedup_vs_1_worker"] = round(row["runs_per_minute"] / one_worker["runs_per_minute"], 2)
    two = next(r for r in rows if r["backend"] == "process" and r["workers"] == 2)
    two.update(target=">= 1.8x", met=verdict(two["speedup_vs_1_worker"] >= 1.8, args.quick))
    print_table(rows, ["backend", "workers", "runs", "wall_s", "runs_per_minute", "speedup_vs_1_worker", "target", "met"],
                f"Sweep throughput of {args.spec.name} ({n_runs} runs, medians of {rounds} alternating rounds; "
                "includes process start-up and TensorFlow import)")
    write_result("sweep_throughput", {"spec": str(args.spec), "rounds": rounds, "rows": rows}, load_before, quick=args.quick)


if __name__ == "__main__":
    main()
