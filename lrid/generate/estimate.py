"""Estimate a sweep's cost before running it, from a few real training steps on this machine.

Compiling a train step costs seconds to tens of seconds per configuration whatever its size, so the
estimate compiles as few as it can and derives the rest from multiply-adds:

1. Each network's size is counted, not timed: its multiply-adds per example (``macs``, summed over the
   measured layers from their kernels and output shapes; for the MLP from its widths) and its number of
   measured layers. A step's *work* is batch size x macs.
2. One calibration architecture, the sweep's cheapest (fewest macs per example), is timed with a
   reference rule (``sgd`` if it trains that architecture in the sweep, else the first such rule by name)
   at the least and the most work among its runs; a cost curve ``a + b x work`` through the two timings gives the
   reference rule's seconds per step at any work (without a spread in the timed work, under 1.5x, the
   curve is proportional to work through the one timing). Small networks are latency-bound, which the
   fitted intercept captures and a proportional scaling would not. Recordings are scaled the same way by
   macs (the probe batch is fixed).
3. Every other rule is timed once on the calibration architecture (on its own cheapest run where the
   sweep does not pair it with that architecture), without a recording, which does not depend on the
   rule: its step time over the reference curve's at the same work is the rule's cost ratio, applied to
   every architecture; its compile time is scaled to other architectures by their number of measured
   layers.

Steps are timed at batches capped at ``max_timing_batch`` and image inputs downsampled to at most
``max_timing_image_size`` pixels a side (for tasks that resize), so the number of timings is (number of
rules + 1) whatever the number of runs or architectures: an ImageNet grid of ResNets at 224 px is
estimated from a handful of small compiled steps. A worker compiles each distinct configuration
(``configuration_key``: what differs except seeds, learning rate and budget) once, so the estimate adds
the compile time once per configuration. Each row says how it was estimated (``CostEstimate.how``).
Nothing is written to any store.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from lrid.config import RunSpec, SweepSpec

if TYPE_CHECKING:
    from lrid.models.base import MeasuredModel
    from lrid.rules.base import LearningRule


@dataclass
class CostEstimate:
    """The estimated cost of the runs sharing one (task, arch, rule, batch size), and how it was estimated."""

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
    how: str = ""

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
    measured: ConfigurationTiming
    work: float  # of the timed step: batch x macs
    macs: float


@dataclass(frozen=True)
class _Network:
    macs: float  # multiply-adds per example over the measured layers
    layers: int  # measured layers: what a compiled step's graph grows with


class _Curve:
    """``a + b x`` through two points (slope kept non-negative), or ``y0 x / x0`` through one."""

    def __init__(self, x0: float, y0: float, x1: float | None = None, y1: float | None = None):
        if x1 is None or y1 is None or x1 <= 1.5 * x0:
            self.a, self.b = 0.0, y0 / x0
        else:
            self.b = max(0.0, (y1 - y0) / (x1 - x0))
            self.a = max(0.0, y0 - self.b * x0)

    def __call__(self, x: float) -> float:
        return self.a + self.b * x


def estimate_sweep(
    sweep: SweepSpec, timing_seconds: float = 0.2, max_timing_batch: int = 64, max_timing_image_size: int = 32
) -> list[CostEstimate]:
    """Time a few small configurations of ``sweep`` and extrapolate to every run (module docstring)."""
    from lrid.generate.trainer import configuration_key
    from lrid.tasks import task_geometry

    runs = sweep.expand()
    geometry: dict[str, tuple] = {}
    networks: dict[tuple[str, str], _Network] = {}

    def shape_of(task) -> tuple:
        key = _task_key(task)
        if key not in geometry:
            geometry[key] = task_geometry(task.name, task.image_size, **task.options)
        return geometry[key]

    def network(run: RunSpec) -> _Network:
        key = (_task_key(run.task), run.model.model_dump_json())
        if key not in networks:
            input_shape, n_classes, _ = shape_of(run.task)
            networks[key] = count_network(run, input_shape, n_classes)
        return networks[key]

    def for_timing(run: RunSpec) -> RunSpec:
        """``run`` with its images downsampled to ``max_timing_image_size`` where its task resizes."""
        input_shape = shape_of(run.task)[0]
        if len(input_shape) == 3 and input_shape[0] > max_timing_image_size:
            small = run.task.model_copy(update={"image_size": max_timing_image_size})
            if shape_of(small)[0][0] == max_timing_image_size:
                return run.model_copy(update={"task": small})
        return run

    def timed_work(run: RunSpec) -> float:
        return min(max_timing_batch, run.train.batch_size) * network(for_timing(run)).macs

    def timed(run: RunSpec, record: bool) -> _Timing:
        small = for_timing(run)
        batch = min(max_timing_batch, run.train.batch_size)
        timing = time_configuration(small, batch, timing_seconds, record=record)
        return _Timing(timing, batch * network(small).macs, network(small).macs)

    by_arch: dict[tuple[str, str], list[RunSpec]] = {}
    for run in runs:
        by_arch.setdefault((_task_key(run.task), run.model.arch), []).append(run)
    calibration = min(by_arch, key=lambda k: (min(network(r).macs for r in by_arch[k]), k))
    members = sorted(by_arch[calibration], key=timed_work)
    calibrated_rules = {run.rule.name for run in members}
    reference = "sgd" if "sgd" in calibrated_rules else min(calibrated_rules)

    # The reference rule's cost curve, from its least and most work on the calibration architecture.
    own = [run for run in members if run.rule.name == reference]
    low = timed(own[0], record=True)
    high = timed(own[-1], record=True) if timed_work(own[-1]) > 1.5 * timed_work(own[0]) else None
    step_curve = _Curve(low.work, low.measured.step_s, *((high.work, high.measured.step_s) if high else ()))
    record_curve = _Curve(low.macs, low.measured.record_s, *((high.macs, high.measured.record_s) if high else ()))
    calibration_layers = network(for_timing(own[0])).layers
    # Recording does not depend on the rule: the other rules are timed without it, and their compile time
    # gets the reference's recording compile.
    ratio, compile_s = {reference: 1.0}, {reference: low.measured.compile_s}
    for rule in sorted({run.rule.name for run in runs} - {reference}):
        own_rule = [run for run in members if run.rule.name == rule]
        if own_rule:
            timing = timed(own_rule[len(own_rule) // 2], record=False)
        else:
            timing = timed(min((run for run in runs if run.rule.name == rule), key=timed_work), record=False)
        ratio[rule] = timing.measured.step_s / step_curve(timing.work)
        compile_s[rule] = timing.measured.compile_s + low.measured.record_compile_s

    small_task = for_timing(members[0]).task
    timed_at = f"batch <= {max_timing_batch}" + (f", {small_task.image_size} px" if small_task.image_size else "")

    def how(run: RunSpec) -> str:
        source = (
            "timed"
            if (_task_key(run.task), run.model.arch) == calibration
            else f"scaled by multiply-adds from {calibration[1]}"
        )
        rule = run.rule.name
        cost = "" if rule == reference else f"; {rule} {ratio[rule]:.2f}x {reference}"
        return f"{source} ({timed_at}){cost}"

    rows: dict[tuple, CostEstimate] = {}
    configurations: dict[tuple, set] = {}
    for run in runs:
        net, rule = network(run), run.rule.name
        key = (_task_key(run.task), run.model.arch, rule, run.train.batch_size)
        steps = run.train.epochs * (shape_of(run.task)[2] // run.train.batch_size)
        row = rows.setdefault(
            key,
            CostEstimate(
                run.task.name,
                run.model.arch,
                rule,
                run.train.batch_size,
                0,
                0,
                0,
                compile_s[rule] * net.layers / calibration_layers,
                0.0,
                0.0,
                how(run),
            ),
        )
        row.runs += 1
        row.steps += steps
        row.train_s += steps * ratio[rule] * step_curve(run.train.batch_size * net.macs)
        row.record_s += run.observe.points * record_curve(net.macs)
        configurations.setdefault(key, set()).add(configuration_key(run))
    for key, keys in configurations.items():
        rows[key].configurations = len(keys)
    return list(rows.values())


def count_network(run: RunSpec, input_shape: tuple[int, ...], n_classes: int) -> _Network:
    """Multiply-adds per example and number of measured layers of ``run``'s network on ``input_shape``.

    The MLP's come from its widths; other architectures are built once and their measured layers' kernels
    and output shapes counted (each output element of a dense or convolutional layer costs the kernel's
    fan-in), which needs no compiled step.
    """
    if run.model.arch == "mlp":
        widths = [math.prod(input_shape), *run.model.hidden, n_classes]
        return _Network(float(sum(a * b for a, b in zip(widths, widths[1:]))), len(widths) - 1)
    import tensorflow as tf

    from lrid.models import build_network

    model = build_network(run.model, input_shape, n_classes, None, seed=0)
    _, _, outputs = model.forward_with_activity(tf.zeros((1, *input_shape)))
    macs = sum(
        math.prod(output.shape[1:]) * math.prod(layer.kernel.shape[:-1])
        for layer, output in zip(model.measured_layers, outputs)
    )
    return _Network(float(macs), len(model.measured_layers))


def _task_key(task) -> str:
    """What fixes a run's input shape: the task, its resolution and its options."""
    return json.dumps([task.name, task.image_size, task.options], sort_keys=True, default=list)


def describe_spread(values: dict[str, list]) -> list[tuple[str, str]]:
    """One line per sampled key: min / median / max of numbers (integers with few distinct values excepted),
    else counts per value."""
    lines = []
    for key in sorted(values):
        drawn = values[key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in drawn)
        if numeric and (len(set(drawn)) > 8 or any(isinstance(v, float) for v in drawn)):
            lines.append(
                (
                    key,
                    f"min {min(drawn):.4g}, median {statistics.median(drawn):.4g}, max {max(drawn):.4g} "
                    f"({len(drawn)} draws)",
                )
            )
        else:
            counts: dict[str, int] = {}
            for value in drawn:
                counts[str(value)] = counts.get(str(value), 0) + 1
            order = sorted(counts, key=lambda v: (not numeric, float(v) if numeric else v))
            lines.append((key, ", ".join(f"{v}: {counts[v]}" for v in order)))
    return lines


class ConfigurationTiming(NamedTuple):
    """Seconds measured on one configuration; ``compile_s`` includes ``record_compile_s``."""

    compile_s: float
    step_s: float  # per training step at the timed batch
    record_s: float  # one recording of the probe; 0 when not recorded
    record_compile_s: float


def time_configuration(spec: RunSpec, batch: int, timing_seconds: float, record: bool = True) -> ConfigurationTiming:
    """Compile and time ``spec``'s train step at ``batch`` on random inputs (and one recording, if ``record``)."""
    import tensorflow as tf

    from lrid.models import build_network
    from lrid.observables.recorder import Recorder
    from lrid.rules import get_rule
    from lrid.tasks import TASK_LOSSES, task_geometry

    input_shape, n_classes, _ = task_geometry(spec.task.name, spec.task.image_size, **spec.task.options)
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
    step = compiled_step(rule, model)
    float(step(x, y))
    step_compile_s = time.perf_counter() - started
    record_compile_s, record_s = 0.0, 0.0
    if record:
        started = time.perf_counter()
        recorder = Recorder(model, rng.normal(size=(spec.observe.probe_size, *input_shape)).astype(np.float32))
        recorder.record()
        record_compile_s = time.perf_counter() - started
        started = time.perf_counter()
        recorder.record()
        record_s = time.perf_counter() - started

    for _ in range(2):  # the first calls after tracing are slower than the steady state
        float(step(x, y))
    timed, started = 0, time.perf_counter()
    while timed < 2 or (time.perf_counter() - started < timing_seconds and timed < 200):
        float(step(x, y))
        timed += 1
    step_s = (time.perf_counter() - started) / timed
    return ConfigurationTiming(step_compile_s + record_compile_s, step_s, record_s, record_compile_s)


def compiled_step(rule: LearningRule, model: MeasuredModel) -> Any:
    """The rule's train step for ``model``, set up as the trainer sets it up: every step the estimate
    executes goes through it."""
    return rule.make_train_step(model, rule.optimizer_for(model))
