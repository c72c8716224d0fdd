"""Estimate a sweep's cost before running it, from a few real training steps on this machine.

Runs are grouped into families: one (task input, architecture, rule). For each family one
representative run (the one of median work) is built, its train step compiled and timed on random inputs
of the task's shape, and one observable recording timed. A run's step time is the representative's,
scaled by the run's *work* (batch size x multiply-adds per example of its network; for architectures
other than the MLP, batch size x ``width`` squared) along a cost curve ``a + b x work`` fitted per
architecture from two more timings, of the least and the most work, with one reference rule; without such
a spread (under 1.5x) the step time is scaled in proportion to the work. (The reference rule's
representative is its least-work timing.) Small networks are
latency-bound, which the fitted intercept captures and a proportional scaling would not. Recordings are
scaled the same way by multiply-adds (the probe batch is fixed). Steps are timed at batches capped at
``max_timing_batch``, so that estimating an ImageNet sweep on a laptop takes minutes, not hours.

A worker compiles each distinct configuration (``configuration_key``: what differs except seeds,
learning rate and budget) once, so the estimate adds the family's compile time once per configuration.
Families differ in rule hyperparameters other than the learning rate (e.g. an optimizer) only through
the compile count: their step times are taken to be the representative's. The number of timings is
(families + 1 per architecture), whatever the number of runs, so a sampled sweep of a thousand runs is
estimated as fast as a grid of the same rules and architectures. Nothing is written to any store.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass

import numpy as np

from lrid.config import RunSpec, SweepSpec


@dataclass
class CostEstimate:
    """The estimated cost of the runs sharing one (task, arch, rule, batch size)."""

    task: str
    arch: str
    rule: str
    batch_size: int
    runs: int
    steps: int
    configurations: int
    compile_s: float
    train_s: float
    record_s: float

    @property
    def steps_per_run(self) -> float:
        """Mean training steps of one run."""
        return self.steps / self.runs

    @property
    def step_s(self) -> float:
        """Mean estimated seconds per training step, weighted by steps."""
        return self.train_s / self.steps if self.steps else 0.0

    @property
    def seconds_per_run(self) -> float:
        """Mean estimated wall time of one run once its configuration is compiled."""
        return (self.train_s + self.record_s) / self.runs

    @property
    def total_seconds(self) -> float:
        """Estimated wall time of all these runs, one after another in one worker."""
        return self.configurations * self.compile_s + self.train_s + self.record_s


@dataclass
class _Timing:
    compile_s: float
    step_s: float
    record_s: float  # one recording
    work: float  # of the timed step
    macs: float


class _Curve:
    """``a + b x`` through two timings (slope kept non-negative), or ``y0 x / x0`` through one."""

    def __init__(self, x0: float, y0: float, x1: float | None = None, y1: float | None = None):
        if x1 is None or x1 <= 1.5 * x0:
            self.a, self.b = 0.0, y0 / x0
        else:
            self.b = max(0.0, (y1 - y0) / (x1 - x0))
            self.a = max(0.0, y0 - self.b * x0)

    def __call__(self, x: float) -> float:
        return self.a + self.b * x

    def scale(self, x: float, x_ref: float) -> float:
        """How many times the cost at ``x_ref`` the cost at ``x`` is."""
        return self(x) / self(x_ref) if self(x_ref) > 0 else x / x_ref


def estimate_sweep(sweep: SweepSpec, timing_seconds: float = 0.2, max_timing_batch: int = 64) -> list[CostEstimate]:
    """Time a representative of each family of ``sweep``'s runs and extrapolate to every run (module docstring)."""
    from lrid.generate.trainer import configuration_key
    from lrid.tasks import task_geometry

    runs = sweep.expand()
    geometry: dict[str, tuple] = {}
    families: dict[tuple, list[RunSpec]] = {}
    for run in runs:
        task_key = _task_key(run)
        if task_key not in geometry:
            geometry[task_key] = task_geometry(run.task.name, run.task.image_size, **run.task.options)
        families.setdefault((task_key, run.model.arch, run.rule.name), []).append(run)

    def macs(run: RunSpec) -> float:
        input_shape, n_classes, _ = geometry[_task_key(run)]
        if run.model.arch == "mlp":
            widths = [math.prod(input_shape), *run.model.hidden, n_classes]
            return float(sum(a * b for a, b in zip(widths, widths[1:])))
        return run.model.width**2

    def timed(run: RunSpec) -> _Timing:
        batch = min(max_timing_batch, run.train.batch_size)
        compile_s, step_s, record_s, _ = time_configuration(run, batch, timing_seconds)
        return _Timing(compile_s, step_s, record_s, batch * macs(run), macs(run))

    def work(run: RunSpec) -> float:
        return run.train.batch_size * macs(run)

    curves: dict[tuple, tuple[_Curve, _Curve]] = {}
    timings: dict[tuple, _Timing] = {}  # the reference families' low timing serves as their representative
    for task_key, arch in sorted({(t, a) for t, a, _ in families}):
        rules = {r for t, a, r in families if (t, a) == (task_key, arch)}
        reference = "sgd" if "sgd" in rules else min(rules)
        members = sorted(families[(task_key, arch, reference)], key=work)
        if work(members[-1]) > 1.5 * work(members[0]):
            low, high = timed(members[0]), timed(members[-1])
            timings[(task_key, arch, reference)] = low
            curves[(task_key, arch)] = (_Curve(low.work, low.step_s, high.work, high.step_s),
                                        _Curve(low.macs, low.record_s, high.macs, high.record_s))

    rows: dict[tuple, CostEstimate] = {}
    for (task_key, arch, rule), members in families.items():
        members = sorted(members, key=work)
        rep = timings.get((task_key, arch, rule)) or timed(members[len(members) // 2])
        step_curve, record_curve = curves.get((task_key, arch), (_Curve(rep.work, rep.step_s), _Curve(rep.macs, rep.record_s)))
        n_train = geometry[task_key][2]
        configurations: dict[int, set] = {}
        for run in members:
            steps = run.train.epochs * (n_train // run.train.batch_size)
            row = rows.setdefault((task_key, arch, rule, run.train.batch_size), CostEstimate(
                run.task.name, arch, rule, run.train.batch_size, 0, 0, 0, rep.compile_s, 0.0, 0.0))
            row.runs += 1
            row.steps += steps
            row.train_s += steps * rep.step_s * step_curve.scale(work(run), rep.work)
            row.record_s += run.observe.points * rep.record_s * record_curve.scale(macs(run), rep.macs)
            configurations.setdefault(run.train.batch_size, set()).add(configuration_key(run))
        for batch_size, keys in configurations.items():
            rows[(task_key, arch, rule, batch_size)].configurations = len(keys)
    return list(rows.values())


def _task_key(run: RunSpec) -> str:
    """What fixes a run's input shape: the task, its resolution and its options."""
    return json.dumps([run.task.name, run.task.image_size, run.task.options], sort_keys=True, default=list)


def describe_spread(values: dict[str, list]) -> list[tuple[str, str]]:
    """One line per sampled key: min / median / max of numbers (integers with few distinct values excepted),
    else counts per value."""
    lines = []
    for key in sorted(values):
        drawn = values[key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in drawn)
        if numeric and (len(set(drawn)) > 8 or any(isinstance(v, float) for v in drawn)):
            lines.append((key, f"min {min(drawn):.4g}, median {statistics.median(drawn):.4g}, max {max(drawn):.4g} "
                               f"({len(drawn)} draws)"))
        else:
            counts: dict[str, int] = {}
            for value in drawn:
                counts[str(value)] = counts.get(str(value), 0) + 1
            order = sorted(counts, key=lambda v: (not numeric, float(v) if numeric else v))
            lines.append((key, ", ".join(f"{v}: {counts[v]}" for v in order)))
    return lines


def time_configuration(spec: RunSpec, batch: int, timing_seconds: float) -> tuple[float, float, float, int]:
    """(compile s, s per step at ``batch``, s for one recording, training examples)."""
    import tensorflow as tf

    from lrid.models import build_network
    from lrid.observables.recorder import Recorder
    from lrid.rules import get_rule
    from lrid.tasks import TASK_LOSSES, task_geometry

    input_shape, n_classes, n_train = task_geometry(spec.task.name, spec.task.image_size, **spec.task.options)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, *input_shape)).astype(np.float32))
    loss = TASK_LOSSES[spec.task.name]
    if loss == "mse":
        y = tf.constant(rng.normal(size=(batch, n_classes)).astype(np.float32))
    else:
        y = tf.constant(rng.integers(0, n_classes, size=batch).astype(np.int32))

    started = time.perf_counter()
    rule = get_rule(spec.rule.name)(spec.rule.hparams, seed=0, loss=loss)
    model = build_network(spec.model, input_shape, n_classes, rule.feedback, seed=0)
    step = rule.make_train_step(model, rule.make_optimizer())
    float(step(x, y))
    probe = rng.normal(size=(spec.observe.probe_size, *input_shape)).astype(np.float32)
    recorder = Recorder(model, probe)
    recorder.record()
    compile_s = time.perf_counter() - started

    for _ in range(2):  # the first calls after tracing are slower than the steady state
        float(step(x, y))
    timed, started = 0, time.perf_counter()
    while timed < 2 or (time.perf_counter() - started < timing_seconds and timed < 200):
        float(step(x, y))
        timed += 1
    step_s = (time.perf_counter() - started) / timed
    started = time.perf_counter()
    recorder.record()
    record_s = time.perf_counter() - started
    return compile_s, step_s, record_s, n_train
