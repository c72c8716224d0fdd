"""Slow crash and concurrency probes of `lrid generate`, one PASS/FAIL line per case.

Cases, each on a small sweep (digits MLP, a couple of epochs):
  kill9_resume[process|sequential]  kill -9 the whole `lrid generate` at random points N times, then resume:
                                    0 lost, 0 duplicated, 0 unreadable, 0 orphans, no claim left, and
                                    observables bit-identical to an uninterrupted run
  two_writers                       two `lrid generate` on one store at once: every run trained once in
                                    total, the store identical to an uninterrupted run
  pool_worker_killed                kill -9 one pool worker mid-sweep: at most one run fails, the pool is
                                    replaced once at full size (at most 2 x workers worker processes), and
                                    a resume completes the store identically

Usage: python scripts/probe_crashes.py [--quick] [--kills N] [--seed S] [--keep DIR]
Exits 1 if any case fails. --quick: fewer kills and runs (about two minutes on two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from lrid.store import Store

SWEEP = """
name: probe
model: {{hidden: [16, 16]}}
train: {{epochs: 2, batch_size: 128}}
observe: {{points: 3, probe_size: 32}}
rules: {{sgdm: {{lr: 0.05}}, fa: {{lr: 0.05}}}}
grid: {{model_seed: {seeds}}}
"""


def generate_command(sweep: Path, store: Path, backend: str, workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "lrid.cli", "generate", str(sweep), "--store", str(store),
            "--backend", backend, "--workers", str(workers)]


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def manifest_count(store: Path) -> int:
    return len(list((store / "runs").glob("*.json")))


def observables_by_run(store: Path) -> dict[str, pd.DataFrame]:
    frame = Store(store).read_observables(statuses=("complete", "collapsed", "diverged"))
    return {run_id: rows.reset_index(drop=True) for run_id, rows in frame.groupby("run_id")}


def check_store(store: Path, reference: dict[str, pd.DataFrame]) -> list[str]:
    """What is wrong with ``store`` against the uninterrupted ``reference`` (empty: nothing)."""
    problems = []
    manifests = {p.stem for p in (store / "runs").glob("*.json")}
    lost = set(reference) - manifests
    parquet = [p for p in (store / "observables").rglob("*.parquet") if not p.name.startswith(".")]
    duplicated = len(parquet) - len({p.stem for p in parquet})
    unreadable = 0
    for path in [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".")]:
        try:
            pq.read_table(path) if path.suffix == ".parquet" else json.loads(path.read_text())
        except Exception:  # noqa: BLE001 - any failure to read is what is counted
            unreadable += 1
    orphans = len(Store(store).orphan_observables()) if not unreadable else -1
    claims = len(list((store / "claims").glob("*.json")))
    for count, what in [(len(lost), "lost"), (duplicated, "duplicated"), (unreadable, "unreadable"),
                        (orphans, "orphans"), (claims, "claims left")]:
        if count:
            problems.append(f"{count} {what}")
    if not problems:
        runs = observables_by_run(store)
        different = [r for r in reference if r not in runs or not runs[r].equals(reference[r])]
        if different:
            problems.append(f"{len(different)} run(s) differ from the uninterrupted run")
    return problems


def counts(stdout: str) -> dict[str, int]:
    return {key: int(value) for value, key in re.findall(r"(\d+) (complete|collapsed|failed|already in)", stdout)}


def worker_pids(parent: int) -> set[int]:
    """The pool workers among ``parent``'s children (spawned processes, not the resource tracker)."""
    pids = set()
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                pids.add(int(child))
        except OSError:
            continue
    return pids


def case_kill9_resume(backend: str, sweep: Path, work: Path, reference, total: int, kills: int, rng) -> list[str]:
    store = work / f"kill9-{backend}"
    command = generate_command(sweep, store, backend)
    done_kills = 0
    for _ in range(kills):
        process = start(command)
        target = min(total - 1, manifest_count(store) + rng.randint(0, 2))
        deadline = time.monotonic() + 300
        while process.poll() is None and manifest_count(store) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.8))
        if process.poll() is not None:
            break  # finished before this kill: the sweep is complete
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        done_kills += 1
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    problems = [] if resumed.returncode == 0 else [f"resume exited {resumed.returncode}: {resumed.stderr[-300:]}"]
    problems += check_store(store, reference)
    return problems, f"{done_kills} kills, {manifest_count(store)}/{total} runs"


def case_two_writers(sweep: Path, work: Path, reference, total: int) -> tuple[list[str], str]:
    store = work / "two-writers"
    processes = [start(generate_command(sweep, store, "process", workers=1)) for _ in range(2)]
    outputs = [process.communicate(timeout=900) for process in processes]
    problems = [f"writer exited {p.returncode}: {err[-300:]}" for p, (_, err) in zip(processes, outputs) if p.returncode]
    trained = [sum(counts(out).get(status, 0) for status in ("complete", "collapsed", "failed")) for out, _ in outputs]
    if sum(trained) != total:
        problems.append(f"runs trained {trained[0]} + {trained[1]} times in all, for {total} runs")
    problems += check_store(store, reference)
    return problems, f"runs trained by each writer: {trained[0]} + {trained[1]}"


def case_pool_worker_killed(sweep: Path, work: Path, reference, total: int, rng) -> tuple[list[str], str]:
    store = work / "worker-killed"
    workers = 2
    process = start(generate_command(sweep, store, "process", workers=workers))
    seen, killed = set(), None
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        current = worker_pids(process.pid)
        seen |= current
        if killed is None and manifest_count(store) >= 1 and current:
            time.sleep(rng.uniform(0, 0.3))
            killed = rng.choice(sorted(current))
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    stdout, stderr = process.communicate(timeout=60)
    outcome = counts(stdout)
    problems = []
    if killed is None:
        problems.append("no worker was killed (the sweep ended first)")
    if process.returncode not in (0, 2) or "Traceback" in stderr:
        problems.append(f"generate exited {process.returncode}: {stderr[-300:]}")
    if outcome.get("failed", 0) > 1:
        problems.append(f"{outcome['failed']} runs failed for one killed worker")
    finished = {status: outcome.get(status, 0) for status in ("complete", "collapsed", "failed")}
    if sum(finished.values()) != total:
        problems.append(" + ".join(f"{n} {status}" for status, n in finished.items()) + f" of {total}")
    if len(seen) > 2 * workers:
        problems.append(f"{len(seen)} worker processes started for {workers} workers and one kill")
    resumed = subprocess.run(generate_command(sweep, store, "process", workers), capture_output=True, text=True,
                             timeout=900)
    if resumed.returncode != 0:
        problems.append(f"resume exited {resumed.returncode}: {resumed.stderr[-300:]}")
    problems += check_store(store, reference)
    return problems, (f"{len(seen)} worker processes seen, {outcome.get('failed', 0)} failed "
                      f"before resuming")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer kills and runs")
    parser.add_argument("--kills", type=int, help="kills per backend (default 10, --quick 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill points")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    kills = args.kills or (3 if args.quick else 10)
    seeds = list(range(4 if args.quick else 8))
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="lrid-probe-") as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        sweep = work / "probe.yaml"
        sweep.write_text(SWEEP.format(seeds=seeds))
        total = 2 * len(seeds)
        reference_store = work / "reference"
        subprocess.run(generate_command(sweep, reference_store, "sequential"), check=True, capture_output=True,
                       timeout=900)
        reference = observables_by_run(reference_store)

        cases = [
            *[(f"kill9_resume[{backend}]", lambda b=backend: case_kill9_resume(b, sweep, work, reference, total, kills, rng))
              for backend in ("process", "sequential")],
            ("two_writers", lambda: case_two_writers(sweep, work, reference, total)),
            ("pool_worker_killed", lambda: case_pool_worker_killed(sweep, work, reference, total, rng)),
        ]
        failed = 0
        for name, case in cases:
            started = time.perf_counter()
            problems, detail = case()
            failed += bool(problems)
            verdict = "FAIL" if problems else "PASS"
            print(f"{verdict} {name}: {detail}; {'; '.join(problems) or 'store complete and identical'} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        print(f"{len(cases) - failed} of {len(cases)} cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
