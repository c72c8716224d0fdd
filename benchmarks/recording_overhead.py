"""Benchmark 2: what recording observables costs a run, and one recording broken down by measure.

For each workload (``workloads.py``), whole runs (``lrid.generate.trainer.train_run``, as a worker runs
them, compiled steps reused) recording at 21 points and at 2 points (the fewest a spec allows: step 0 and
the last) are timed alternately; 19 recordings cost the difference, so 21 cost ``(T21 - T2) * 21/19``,
reported as a share of T21. That includes the rule-health angles the trainer logs at each recorded step.
The difference is reported signed: when recording costs less than the timing noise it can come out
negative, and is shown so rather than as zero.
Then one recording on the 256-example probe is timed whole and by part, alternately: the probe's forward
pass, weight, act and actchange statistics of every measured layer, and the health probe. Two more parts
bound what a faster implementation could save: the weight and act statistics of the same tensors, already
computed, by lrid's compiled ``describe`` and by a vectorised plain-numpy version of the same definitions
(checked to agree to 1e-4), so the statistics' own cost is separated from TensorFlow's per-op overhead.
Then the host's two ways to a row's median and q3 entries (a sort, or partitions) at several row lengths:
the crossing sets ``PARTITION_MIN_ENTRIES``. Last, ``describe`` of arrays from a layer's size to a
population's with the three functions' rows stacked into one tensor or reduced apart: the crossing sets
``APART_MIN_ENTRIES``.

    python benchmarks/recording_overhead.py [--quick] [--threads 1] [--models mlp,knet]
"""

from __future__ import annotations

import argparse

import numpy as np

from harness import configure_tensorflow, interleaved, load_average, print_table, verdict, write_result
from workloads import WORKLOADS, register_cifar_shaped

TARGET_SHARE = 0.10  # issue #8: recording 21 points <= 10% of a demo run's wall time


def run_cases(workload, rule: str):
    """Two cases: a whole run recording at 21 points, and at 2."""
    from lrid.generate.trainer import train_run

    def run(points):
        def case():
            result = train_run(workload.run_spec(rule, points=points))
            # A run that trained to the end without learning (collapsed: the KNet on random CIFAR-shaped data)
            # costs what a learning one does, which is all this measures.
            if result.manifest["status"] not in ("complete", "collapsed"):
                raise RuntimeError(f"benchmark run did not complete: {result.manifest['status']}, "
                                   f"{result.manifest.get('error')}")
        return case

    return {"run, 21 points": run(21), "run, 2 points": run(2)}


def recording_cost(full_s: float, minimal_s: float, points: int = 21) -> tuple[float, float]:
    """Seconds that ``points`` recordings cost a run, and their share of its wall time, from the median wall
    times of the run recording at ``points`` points (``full_s``) and at 2 (``minimal_s``).

    Signed: a negative cost means the difference is within the timing noise, and is reported as measured.
    """
    seconds = (full_s - minimal_s) * points / (points - 2)
    return seconds, seconds / full_s


def numpy_describe(values: np.ndarray) -> np.ndarray:
    """lrid's ``describe`` (see :mod:`lrid.observables.statistics`) in plain numpy, for [rows, entries] float32."""
    from lrid.observables import FUNCTIONS, STATISTICS

    n_rows, n_entries = values.shape
    raw_and_abs = np.concatenate([values, np.abs(values)])
    ordered = np.sort(raw_and_abs, axis=-1)
    ordered = np.concatenate([ordered, np.square(ordered[n_rows:])])
    stacked = np.concatenate([raw_and_abs, np.square(values)])

    def percentile(q):
        position = q / 100.0 * (n_entries - 1)
        lower = int(position)
        upper = min(lower + 1, n_entries - 1)
        return ordered[:, lower] * (1.0 - (position - lower)) + ordered[:, upper] * (position - lower)

    mean = stacked.mean(axis=-1)
    centred = stacked - mean[:, None]
    var = np.mean(np.square(centred), axis=-1)
    median = percentile(50.0)
    by_name = {"norm": np.sqrt(np.sum(np.square(stacked), axis=-1)), "mean": mean, "median": median,
               "q3": percentile(75.0), "var": var, "skew": 3.0 * (mean - median) / np.sqrt(var),
               "kurtosis": np.mean(np.square(np.square(centred)), axis=-1) / np.square(var)}
    per_row = np.stack([by_name[name] for name in STATISTICS], axis=-1)
    return per_row.reshape(len(FUNCTIONS), n_rows, len(STATISTICS)).mean(axis=1).reshape(-1)


def recording_part_cases(workload, rule: str):
    """One recording, whole and by part, on a freshly built model of the workload."""
    from lrid.lazy_import import tf
    from lrid.generate.health import HealthProbe
    from lrid.models import build_model
    from lrid.observables.measures import activation_statistics, activity_change, activity_change_statistics, weight_statistics
    from lrid.observables.recorder import Recorder
    from lrid.rules import get_rule
    from lrid.tasks import get_task

    spec = workload.run_spec(rule)
    task = get_task(workload.task_name)
    rule_object = get_rule(rule)({}, seed=0)
    model = build_model(spec.model, task, feedback=rule_object.feedback, seed=0)
    probe = tf.constant(task.probe_batch(spec.observe.probe_size, spec.observe.probe_seed))
    recorder = Recorder(model, probe.numpy())
    health = HealthProbe(rule_object, model)
    x, y = next(iter(task.epoch_batches(0, workload.batch_size, 0)))
    layers = model.measured_layers

    @tf.function
    def forward():
        return model.forward_with_activity(probe, exact_gradient=True)[0]

    @tf.function
    def weights():
        return tf.stack([weight_statistics(tf.convert_to_tensor(layer.kernel)[None])[0] for layer in layers])

    @tf.function
    def acts():
        _, _, outputs = model.forward_with_activity(probe, exact_gradient=True)
        return tf.stack([activation_statistics(output[None])[0] for output in outputs])

    @tf.function
    def actchanges():
        _, inputs, _ = model.forward_with_activity(probe, exact_gradient=True)
        return tf.stack([activity_change_statistics(activity_change(layer, layer_input)[None])[0]
                         for layer, layer_input in zip(layers, inputs)])

    def fetch(function):
        return lambda: function().numpy()

    # The weight and act statistics alone, of tensors already computed: lrid's compiled describe and numpy.
    from lrid.observables.statistics import describe

    _, _, outputs = model.forward_with_activity(probe, exact_gradient=True)
    tensors = [tf.reshape(layer.kernel, [1, -1]) for layer in layers]
    tensors += [tf.reshape(output, [output.shape[0], -1]) for output in outputs]
    arrays = [tensor.numpy().astype(np.float32) for tensor in tensors]
    compiled_describe = tf.function(lambda *values: [describe(value) for value in values])
    for ours, reference in zip(compiled_describe(*tensors), map(numpy_describe, arrays), strict=True):
        np.testing.assert_allclose(reference, ours.numpy(), rtol=1e-4, atol=1e-6)

    return {
        "whole recording": recorder.record,
        "probe forward": fetch(forward),
        "weight (all layers)": fetch(weights),
        "act (incl. forward)": fetch(acts),
        "actchange (incl. forward)": fetch(actchanges),
        "health angles": lambda: health.measure(x, y),
        "weight + act statistics alone: lrid": lambda: [v.numpy() for v in compiled_describe(*tensors)],
        "weight + act statistics alone: plain numpy": lambda: [numpy_describe(a) for a in arrays],
    }


SELECTION_LENGTHS = (128, 1024, 2048, 3072, 4096, 16384)  # an activation row ... a 128x128 kernel


def selection_rows(rounds: int) -> list[dict]:
    """The host's two ways to the entries a row's median and q3 need, on 64 rows of each length: a full numpy
    sort, or the partitions :func:`lrid.observables.host_statistics.select_ranks` makes past
    ``PARTITION_MIN_ENTRIES`` (forced here at every length)."""
    from lrid.observables import host_statistics

    rows = []
    for n_entries in SELECTION_LENGTHS:
        values = np.random.default_rng(n_entries).standard_normal((64, n_entries)).astype(np.float32)
        ranks = host_statistics.rank_list(host_statistics.QUANTILES, n_entries)
        sort = lambda: np.sort(values, axis=-1)[:, ranks]  # noqa: E731

        def partition():
            limit = host_statistics.PARTITION_MIN_ENTRIES
            host_statistics.PARTITION_MIN_ENTRIES = 0
            try:
                return host_statistics.select_ranks(values, host_statistics.QUANTILES)
            finally:
                host_statistics.PARTITION_MIN_ENTRIES = limit

        if not np.array_equal(sort(), partition()):
            raise AssertionError(f"partition and sort select different entries at length {n_entries}")
        timings = interleaved({"sort": sort, "partition": partition}, rounds * 5)
        rows.append({"entries": n_entries, "sort_ms": round(1000 * timings["sort"]["median_s"], 3),
                     "partition_ms": round(1000 * timings["partition"]["median_s"], 3),
                     "used": "partition" if n_entries >= host_statistics.PARTITION_MIN_ENTRIES else "sort"})
    return rows


# [rows, entries] of the stacking table: a single network's layers (a probe batch of 256 examples of 10-512
# units, a kernel of up to 16,384 entries) up to a population's (32 networks' probe activations).
STACKING_SHAPES = ((256, 10), (256, 64), (256, 128), (1, 16384), (256, 256), (256, 512), (1024, 128), (8192, 128))


def stacking_rows(rounds: int) -> list[dict]:
    """:func:`lrid.observables.statistics.describe` of [rows, entries] arrays with the raw, abs and sq rows
    stacked into one tensor, or reduced apart (forced here at every size): the crossing sets
    ``APART_MIN_ENTRIES``."""
    import tensorflow as tf

    from lrid.observables import statistics

    def traced(threshold):
        def describe(values):
            limit = statistics.APART_MIN_ENTRIES
            statistics.APART_MIN_ENTRIES = threshold
            try:
                return statistics.describe(values)
            finally:
                statistics.APART_MIN_ENTRIES = limit

        return tf.function(describe, autograph=False)

    rows = []
    for shape in STACKING_SHAPES:
        values = tf.constant(np.tanh(np.random.default_rng(shape[1]).standard_normal(shape)).astype(np.float32))
        stacked, apart = traced(2**62), traced(0)
        np.testing.assert_allclose(stacked(values).numpy(), apart(values).numpy(), rtol=1e-4, atol=1e-6)
        timings = interleaved({"stacked": lambda: stacked(values).numpy(), "apart": lambda: apart(values).numpy()},
                              rounds * 5)
        entries = shape[0] * shape[1]
        rows.append({"shape": f"{shape[0]}x{shape[1]}", "entries": entries,
                     "stacked_ms": round(1000 * timings["stacked"]["median_s"], 3),
                     "apart_ms": round(1000 * timings["apart"]["median_s"], 3),
                     "used": "apart" if entries >= statistics.APART_MIN_ENTRIES else "stacked"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="mlp,knet")
    parser.add_argument("--rule", default="sgdm")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    configure_tensorflow(args.threads)
    register_cifar_shaped(1024 if args.quick else 2048)
    load_before = load_average()
    rounds = args.rounds or (2 if args.quick else 7)

    run_rows, part_rows = [], []
    for model_name in args.models.split(","):
        workload = WORKLOADS[model_name]
        runs = interleaved(run_cases(workload, args.rule), rounds)
        full, minimal = runs["run, 21 points"]["median_s"], runs["run, 2 points"]["median_s"]
        recordings_s, share = recording_cost(full, minimal)
        run_rows.append({"model": model_name, "rule": args.rule, "batch": workload.batch_size,
                         "epochs": workload.epochs, "run_21_points_s": round(full, 3),
                         "run_2_points_s": round(minimal, 3), "21_recordings_s": round(recordings_s, 3),
                         "share_of_run": round(share, 3), "target": f"<= {TARGET_SHARE:.0%}",
                         "met": verdict(share <= TARGET_SHARE, args.quick), "rounds_s": {k: v["rounds_s"] for k, v in runs.items()}})
        parts = interleaved(recording_part_cases(workload, args.rule), rounds * 3)
        for name, timing in parts.items():
            part_rows.append({"model": model_name, "part": name, "ms": round(1000 * timing["median_s"], 2)})
    print_table(run_rows, ["model", "rule", "batch", "epochs", "run_21_points_s", "run_2_points_s", "21_recordings_s",
                           "share_of_run", "target", "met"],
                f"Recording overhead per run (medians of {rounds} interleaved rounds)")
    print_table(part_rows, ["model", "part", "ms"], "One recording on the 256-example probe, by part (medians)")
    selection = selection_rows(rounds)
    print_table(selection, ["entries", "sort_ms", "partition_ms", "used"],
                "Median and q3 entries of 64 rows on the host: sort or partition (medians)")
    stacking = stacking_rows(rounds)
    print_table(stacking, ["shape", "entries", "stacked_ms", "apart_ms", "used"],
                "describe() of one array: raw, abs and sq rows stacked into one tensor, or reduced apart (medians)")
    write_result("recording_overhead", {"threads": args.threads, "rounds": rounds, "runs": run_rows,
                                        "recording_parts": part_rows, "selection": selection,
                                        "stacking": stacking}, load_before,
                 quick=args.quick)


if __name__ == "__main__":
    main()
