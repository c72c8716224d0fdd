"""Benchmark 3: a run's overhead before training, and whether a worker reuses traced steps across runs.

For each workload and rule, runs go through ``lrid.generate.trainer.train_run`` in one process (as in a
worker): the first run of a configuration (cold: model build, tracing of the step, recorder and health
probe), then runs with other seeds (warm: the trainer re-initialises the compiled model; the learning
rate is not part of what is compiled either), then those runs again (warm, seed seen: the initial weights
of a model seed the worker has built are kept, so no model is built). Two moments are taken from the run's data stream: when the first batch is requested (set-up and
the step-0 recording done) and when the second is (the first training step done). ``steps built`` counts
calls of the rule's ``make_train_step``: 0 on a warm run means the traced step was reused. A first
throwaway run of another configuration absorbs TensorFlow's one-time start-up.

    python benchmarks/run_overhead.py [--quick] [--threads 1] [--models mlp,knet]
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness import configure_tensorflow, load_average, print_table, write_result
from workloads import DIGITS_MLP, WORKLOADS, register_cifar_shaped

RULES = {"mlp": ("sgdm", "fa", "ia", "np", "dtp"), "knet": ("sgdm", "fa", "ia")}


class RunTimeline:
    """Patches the task and rule classes to time a run's first batches and count traced steps built."""

    def __init__(self):
        from lrid.rules.base import LearningRule
        from lrid.tasks.base import ArrayTask

        self.batch_times: list[float] = []
        self.steps_built = 0
        timeline = self
        original_batches = ArrayTask.epoch_batches

        def timed_batches(task, epoch, batch_size, data_seed):
            for batch in original_batches(task, epoch, batch_size, data_seed):
                timeline.batch_times.append(time.perf_counter())
                yield batch

        ArrayTask.epoch_batches = timed_batches
        for rule_class in {base for rule in (LearningRule, *_all_rule_classes()) for base in rule.__mro__}:
            if "make_train_step" in vars(rule_class):
                rule_class.make_train_step = self._counting(vars(rule_class)["make_train_step"])

    def _counting(self, make_train_step):
        def counted(rule, model, optimizer):
            self.steps_built += 1
            return make_train_step(rule, model, optimizer)
        return counted

    def run(self, spec) -> dict:
        """Train ``spec``; return seconds to the first batch, of the first step, the run's total, steps built."""
        from lrid.generate.trainer import train_run

        self.batch_times, built_before = [], self.steps_built
        started = time.perf_counter()
        result = train_run(spec)
        total = time.perf_counter() - started
        if result.manifest["status"] == "failed":
            raise RuntimeError(f"benchmark run failed: {result.manifest.get('error')}")
        first, second = self.batch_times[0], self.batch_times[1]
        steps = len(self.batch_times)
        steady = (self.batch_times[-1] - second) / max(1, steps - 2)
        return {"to_first_batch_s": first - started, "first_step_s": second - first, "total_s": total,
                "steady_step_s": steady, "steps_built": self.steps_built - built_before}


def _all_rule_classes():
    from lrid.rules import RULES as registered

    return set(registered.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one warm run per rule (smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="mlp,knet")
    args = parser.parse_args()
    configure_tensorflow(args.threads)
    register_cifar_shaped(1024 if args.quick else 2048)
    load_before = load_average()
    warm_runs = 1 if args.quick else 3
    timeline = RunTimeline()

    from dataclasses import replace

    timeline.run(replace(DIGITS_MLP, model={**DIGITS_MLP.model, "hidden": (8,)}).run_spec(epochs=1))
    rows = []
    for model_name in args.models.split(","):
        workload = WORKLOADS[model_name]
        for rule in RULES[model_name]:
            cold = timeline.run(workload.run_spec(rule, seed=0))
            warm = [timeline.run(workload.run_spec(rule, seed=seed)) for seed in range(1, 1 + warm_runs)]
            seen = [timeline.run(workload.run_spec(rule, seed=seed)) for seed in range(1, 1 + warm_runs)]
            for kind, measured in (("cold", [cold]), ("warm", warm), ("warm, seed seen", seen)):
                rows.append({
                    "model": model_name, "rule": rule, "run": kind,
                    **{key: round(statistics.median(m[key] for m in measured), 4)
                       for key in ("to_first_batch_s", "first_step_s", "steady_step_s", "total_s")},
                    "steps_built": sum(m["steps_built"] for m in measured),
                })
            for row in rows[-2:]:
                row["overhead_s"] = round(row["to_first_batch_s"] + row["first_step_s"] - row["steady_step_s"], 4)
                row["step_reused"] = row["steps_built"] == 0
    print_table(rows, ["model", "rule", "run", "to_first_batch_s", "first_step_s", "steady_step_s", "total_s",
                       "steps_built", "overhead_s", "step_reused"],
                "Run overhead: set-up to the first batch, the first step, and reuse of traced steps (medians)")
    write_result("run_overhead", {"threads": args.threads, "warm_runs": warm_runs, "rows": rows}, load_before,
                 quick=args.quick)


if __name__ == "__main__":
    main()
