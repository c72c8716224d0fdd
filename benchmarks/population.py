"""Population training (issue #16): network-steps/s of K stacked digits MLPs against one network at a time.

The demo's digits MLP (64-128-128-10, tanh, batch 32). For each rule, the solo case is the loop ``lrid
generate`` runs for one network (the task's numpy batches into the rule's compiled step, no recording);
each K is the population loop (every member's batch, stacked, into one compiled step for K networks with
their own seeds and learning rates). Cases are timed alternately in one process (``harness.interleaved``);
network-steps/s counts every member's steps. A rule that populations do not support has its solo row
only, marked so. The end-to-end rows compare whole runs with 21 recordings (what ``lrid generate`` writes)
of K demo runs trained as one population against the same runs trained solo, and give recording's share
of a population run's wall time (the run with 21 points against the same with 2); the last row times
``lrid generate pipelines/demo.yaml`` with and without ``--population 32`` on the same workers.

    python benchmarks/population.py [--quick] [--threads 1] [--sizes 1,8,32,128] [--rules sgdm,fa,ia,np]
"""

from __future__ import annotations

import argparse
import time

from harness import configure_tensorflow, interleaved, load_average, print_table, verdict, write_result
from workloads import DIGITS_MLP

# Targets from issue #16: network-steps/s relative to the solo path, per population size.
SPEEDUP_TARGETS = {32: 4.0, 128: 5.0}
RECORDING_SHARE_TARGET = 0.10
DEMO_TARGET = 2.5
# Learning rates spread across members, so the population is a sweep's, not K copies of one run.
LR_SPREAD = (0.5, 1.0, 2.0)
SOLO_REPEATS = 16


def member_specs(rule: str, size: int, epochs: int, points: int = 21, first_seed: int = 0):
    """``size`` demo runs of ``rule`` with distinct seeds and learning rates around the rule's default."""
    from lrid.rules import get_rule

    base = get_rule(rule).Hyperparameters().lr
    return [DIGITS_MLP.run_spec(rule, points=points, seed=first_seed + k, epochs=epochs,
                                lr=base * LR_SPREAD[k % len(LR_SPREAD)]) for k in range(size)]


def solo_block(rule: str, epochs: int):
    """One network's training loop, as the trainer runs it (task batches into the compiled step), run
    :data:`SOLO_REPEATS` times: one network's epochs take a few tens of milliseconds, too short to time
    steadily against the populations' blocks."""
    from lrid.config import ModelSpec
    from lrid.models import build_model
    from lrid.rules import get_rule
    from lrid.rules.base import restrict_weight_decay
    from lrid.tasks import get_task

    task = get_task(DIGITS_MLP.task_name)
    rule_object = get_rule(rule)({}, seed=0)
    model = build_model(ModelSpec(**DIGITS_MLP.model), task, feedback=rule_object.feedback, seed=0)
    optimizer = rule_object.make_optimizer()
    restrict_weight_decay(optimizer, model)
    optimizer.build(model.trainable_variables)
    x, y = next(task.epoch_batches(0, DIGITS_MLP.batch_size, 0))
    # The trace called directly, as the trainer calls it (lrid.generate.trainer._direct_step).
    step = rule_object.make_train_step(model, optimizer).get_concrete_function(x, y)

    def block():
        loss = None
        for _ in range(SOLO_REPEATS):
            for epoch in range(epochs):
                for x, y in task.epoch_batches(epoch, DIGITS_MLP.batch_size, 0):
                    loss = step(x, y)
        float(loss)

    return block


def population_block(rule: str, size: int, epochs: int):
    """The population loop for ``size`` members (stacked batches into one compiled step)."""
    import tensorflow as tf

    from lrid.generate.population import build_population

    _, _, population, batches = build_population(member_specs(rule, size, epochs))
    x, y = next(batches.epoch(0))
    step = population.compiled("train_step", tf.constant(x), tf.constant(y))

    def block():
        loss = None
        for epoch in range(epochs):
            for x, y in batches.epoch(epoch):
                loss = step(tf.constant(x), tf.constant(y))
        loss.numpy()

    return block


def end_to_end(rule: str, size: int, epochs: int) -> dict:
    """Whole runs (21 recordings, evaluation, manifests) of ``size`` demo runs: one population against solo."""
    from lrid.generate.population import train_population
    from lrid.generate.trainer import train_run

    specs = member_specs(rule, size, epochs)
    # Traced once on other runs of the same shape, as a sweep's first population traces for the later ones.
    for points in (21, 2):
        train_population(member_specs(rule, size, epochs, points, first_seed=1000), fall_back=False)
    train_run(member_specs(rule, 1, epochs, first_seed=1000)[0])
    started = time.perf_counter()
    train_population(specs, fall_back=False)
    population_s = time.perf_counter() - started
    started = time.perf_counter()
    train_population(member_specs(rule, size, epochs, points=2), fall_back=False)
    two_points_s = time.perf_counter() - started
    started = time.perf_counter()
    for spec in specs:
        train_run(spec)
    solo_s = time.perf_counter() - started
    share = max(0.0, 1.0 - two_points_s / population_s)
    return {"rule": rule, "case": f"end to end, K={size}", "K": size, "population_s": round(population_s, 2),
            "solo_s": round(solo_s, 2), "speedup": round(solo_s / population_s, 2),
            "recording_share": round(share, 3), "target": f"recording <= {RECORDING_SHARE_TARGET:.0%} of a run"}


def demo_sweep(workers: int, size: int, runs: int | None) -> dict:
    """``lrid generate pipelines/demo.yaml`` (or its first ``runs`` runs) as a user runs it, solo and with
    ``--population size``, the same ``workers`` each: wall seconds (process start-up included) and the ratio."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from sweep_throughput import subset_sweep

    from harness import REPO

    with tempfile.TemporaryDirectory() as directory:
        spec, count = subset_sweep(REPO / "pipelines" / "demo.yaml", runs, Path(directory))
        seconds = {}
        for name, extra in (("solo", []), (f"K={size}", ["--population", str(size)])):
            command = [sys.executable, "-m", "lrid.cli", "generate", str(spec), "--store", f"{directory}/{name}",
                       "--workers", str(workers), *extra]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            seconds[name] = time.perf_counter() - started
    solo_s, population_s = seconds["solo"], seconds[f"K={size}"]
    return {"rule": "demo sweep", "case": f"{count} runs, {workers} workers, --population {size}", "K": size,
            "population_s": round(population_s, 1), "solo_s": round(solo_s, 1),
            "speedup": round(solo_s / population_s, 2), "target": f">= {DEMO_TARGET}x solo"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, one epoch, K up to 32 (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (a pool worker's share)")
    parser.add_argument("--sizes", default=None, help="population sizes (default 1,8,32,128; quick: 1,8,32)")
    parser.add_argument("--rules", default="sgdm,fa,ia,np")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--end-to-end", type=int, default=None, help="K of the end-to-end comparison (0: skip)")
    parser.add_argument("--demo-workers", type=int, default=2, help="workers of the demo sweep comparison (0: skip)")
    args = parser.parse_args()
    configure_tensorflow(args.threads)
    from lrid.generate.population import POPULATION_RULES

    load_before = load_average()
    rounds = args.rounds or (2 if args.quick else 5)
    epochs = 1 if args.quick else 2
    sizes = [int(k) for k in (args.sizes or ("1,8,32" if args.quick else "1,8,32,128")).split(",")]
    steps = epochs * 42  # the digits task's 1,347 training examples at batch 32
    rows = []
    for rule in args.rules.split(","):
        cases = {"solo": solo_block(rule, epochs)}
        if rule in POPULATION_RULES:
            cases.update({f"K={k}": population_block(rule, k, epochs) for k in sizes})
        timings = interleaved(cases, rounds)
        solo_rate = SOLO_REPEATS * steps / timings["solo"]["median_s"]
        for name, timing in timings.items():
            members = 1 if name == "solo" else int(name.removeprefix("K="))
            networks = SOLO_REPEATS if name == "solo" else members
            rate = networks * steps / timing["median_s"]
            row = {"rule": rule, "case": name, "K": members, "network_steps_per_s": round(rate, 1),
                   "vs_solo": round(rate / solo_rate, 2), "rounds_s": timing["rounds_s"]}
            if members in SPEEDUP_TARGETS and name != "solo":
                row["target"] = f">= {SPEEDUP_TARGETS[members]}x solo"
                row["met"] = verdict(row["vs_solo"] >= SPEEDUP_TARGETS[members], args.quick)
            rows.append(row)
        if rule not in POPULATION_RULES:
            for k in (k for k in sizes if k in SPEEDUP_TARGETS):
                rows.append({"rule": rule, "case": f"K={k}", "K": k, "note": "trains solo (no population step)",
                             "target": f">= {SPEEDUP_TARGETS[k]}x solo", "met": verdict(False, args.quick)})
    print_table(rows, ["rule", "case", "network_steps_per_s", "vs_solo", "target", "met", "note"],
                f"Population training, digits MLP 64-128-128-10 batch 32 (medians of {rounds} interleaved rounds, "
                f"{args.threads} thread(s), {steps} steps per network)")
    runs = []
    e2e_size = args.end_to_end if args.end_to_end is not None else (8 if args.quick else 32)
    if e2e_size:
        for rule in (r for r in args.rules.split(",") if r in POPULATION_RULES):
            run = end_to_end(rule, e2e_size, 1 if args.quick else 8)
            run["met"] = verdict(run["recording_share"] <= RECORDING_SHARE_TARGET, args.quick)
            runs.append(run)
    if args.demo_workers:
        # The quick run times a quarter of the demo (24 runs), which judges nothing.
        demo = demo_sweep(args.demo_workers, 32, 24 if args.quick else None)
        demo["met"] = verdict(demo["speedup"] >= DEMO_TARGET, args.quick)
        runs.append(demo)
    if runs:
        print_table(runs, ["rule", "case", "population_s", "solo_s", "speedup", "recording_share", "target", "met"],
                    "Whole runs with 21 recordings, one population against the same runs solo; and the demo sweep")
    write_result("population", {"threads": args.threads, "rounds": rounds, "epochs": epochs, "rows": rows,
                                "runs": runs}, load_before, quick=args.quick)


if __name__ == "__main__":
    main()
