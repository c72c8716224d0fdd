"""Estimate a sweep's cost before running it, from a few real training steps on this machine.

For every distinct (task, architecture, rule, hyperparameters other than the learning rate) of the
sweep, the model is built, its train step compiled and timed on random inputs of the task's shape, and
one observable recording timed. A worker compiles a configuration once and reuses it for every run that
shares it, so the estimate is ``compile + runs x (steps x step time + recordings x record time)`` per
batch size. Steps are timed once per configuration, at its smallest batch size capped at
``max_timing_batch``, and scaled linearly to the other batch sizes, so that estimating an ImageNet sweep
on a laptop takes minutes, not hours (linear scaling over-estimates small, latency-bound networks).
Nothing is written to any store.
"""

from __future__ import annotations

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
    steps_per_run: int
    compile_s: float
    step_s: float
    record_s: float

    @property
    def seconds_per_run(self) -> float:
        """Estimated wall time of one run once the configuration is compiled."""
        return self.steps_per_run * self.step_s + self.record_s

    @property
    def total_seconds(self) -> float:
        """Estimated wall time of all these runs, one after another in one worker."""
        return self.compile_s + self.runs * self.seconds_per_run


def estimate_sweep(sweep: SweepSpec, timing_seconds: float = 0.3, max_timing_batch: int = 64) -> list[CostEstimate]:
    """Time a few real steps of each distinct configuration of ``sweep`` and extrapolate to its runs.

    Runs that differ only in seeds, learning rate or batch size share one timing (at the smallest of their
    batch sizes, capped at ``max_timing_batch``); the step time is scaled linearly to each batch size.
    """
    groups: dict[tuple, list[RunSpec]] = {}
    for run in sweep.expand():
        hparams = tuple(sorted((k, v) for k, v in run.rule.hparams.items() if k != "lr"))
        key = (run.task.name, run.task.image_size, run.model.model_dump_json(), run.rule.name, hparams)
        groups.setdefault(key, []).append(run)
    estimates = []
    for runs in groups.values():
        timing_batch = min(max_timing_batch, min(run.train.batch_size for run in runs))
        compile_s, step_s, record_s, n_train = time_configuration(runs[0], timing_batch, timing_seconds)
        for batch_size in sorted({run.train.batch_size for run in runs}):
            same_batch = [run for run in runs if run.train.batch_size == batch_size]
            spec = same_batch[0]
            estimates.append(CostEstimate(
                spec.task.name, spec.model.arch, spec.rule.name, batch_size, len(same_batch),
                spec.train.epochs * (n_train // batch_size), compile_s,
                step_s * batch_size / timing_batch, record_s,
            ))
    return estimates


def time_configuration(spec: RunSpec, batch: int, timing_seconds: float) -> tuple[float, float, float, int]:
    """(compile s, s per step at ``batch``, s for all of a run's recordings, training examples)."""
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
    recorder = Recorder(model, x.numpy()[: min(batch, spec.observe.probe_size)])
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
    record_s = (time.perf_counter() - started) * spec.observe.points
    return compile_s, step_s, record_s, n_train
