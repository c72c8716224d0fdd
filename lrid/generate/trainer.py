"""One training run: build the task, model and rule; train; record observables at scheduled steps."""

from __future__ import annotations

import json
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import lrid
from lrid.config import RunSpec
from lrid.lazy_import import tf
from lrid.schema import STORED_OBSERVABLES, depth_groups


@dataclass
class RunResult:
    """What a run produced: its observable rows (None if it failed before recording) and its manifest."""

    observables: pd.DataFrame | None
    manifest: dict


# A run that trained to the end but learned nothing useful is "collapsed": kept in the store, shown by
# `lrid status`, and left out of classification by default (its trajectory says nothing about its rule).
COLLAPSE_GAP_FRACTION = 0.1  # of the way from chance to perfect accuracy a run must close to count as learning


def collapse_reason(
    metric: str, n_classes: int, test_metric: float, initial_loss: float, last_loss: float
) -> str | None:
    """Why a run that trained to the end counts as collapsed, or None if it learned.

    A run collapsed when its mean training loss over the last recording interval is no lower than the loss
    on its first batch, or (classification) its final test accuracy closes less than
    :data:`COLLAPSE_GAP_FRACTION` of the gap from chance (1 / classes) to 1.
    """
    if not np.isfinite(last_loss) or last_loss >= initial_loss:
        return f"training loss did not fall (first batch {initial_loss:.4g}, last interval {last_loss:.4g})"
    if metric == "accuracy":
        chance = 1.0 / n_classes
        threshold = chance + COLLAPSE_GAP_FRACTION * (1.0 - chance)
        if test_metric < threshold:
            return (
                f"final test accuracy {test_metric:.3f} is below {threshold:.3f} "
                f"(chance {chance:.3f} + {COLLAPSE_GAP_FRACTION:g} of the gap to 1)"
            )
    return None


def rule_seed(spec: RunSpec) -> int:
    """The seed of a run's rule (its own randomness, e.g. perturbation noise), from the model and data seeds."""
    return int(np.random.SeedSequence([spec.train.model_seed, spec.train.data_seed]).generate_state(1)[0])


def recording_steps(total_steps: int, points: int) -> list[int]:
    """``points`` evenly spaced steps from 0 to ``total_steps`` inclusive (fewer if steps are scarce)."""
    return sorted(set(np.round(np.linspace(0, total_steps, points)).astype(int).tolist()))


def train_run(spec: RunSpec, on_record: Callable[[int, Any, np.ndarray], object] | None = None) -> RunResult:
    """Train one network as ``spec`` says and record its observables.

    ``on_record(step, model, probe)``, if given, is called after each recording (e.g. to capture the raw
    arrays, as :func:`lrid.generate.export.export_recording` does); it must leave the model unchanged.

    A non-finite loss or observable stops the run with status ``diverged``; the rows recorded up to the
    last finite point are kept. Any exception is caught and reported as status ``failed`` with its
    message, so one bad run never stops a sweep.
    """
    started = time.perf_counter()
    manifest: dict[str, Any] = {"run_id": spec.run_id, "spec": spec.model_dump(mode="json"), "versions": _versions()}
    try:
        observables, outcome = _train_and_record(spec, on_record)
    except Exception as error:  # noqa: BLE001 - a failed run is recorded, not raised
        manifest.update(
            status="failed",
            error=f"{type(error).__name__}: {error}",
            traceback=traceback.format_exc(limit=5),
            wall_time_s=time.perf_counter() - started,
        )
        return RunResult(None, manifest)
    manifest.update(outcome, wall_time_s=time.perf_counter() - started)
    return RunResult(observables, manifest)


def _train_and_record(spec: RunSpec, on_record=None) -> tuple[pd.DataFrame, dict]:
    from lrid.observables.degrade import run_seed
    from lrid.observables.recorder import with_reach
    from lrid.observables.update_reach import ReachRecorder
    from lrid.rules import get_rule
    from lrid.tasks import get_task

    # Multithreaded reductions may otherwise sum in a different order from one run to the next.
    tf.config.experimental.enable_op_determinism()
    _seed_global_generators(spec.train.model_seed)
    task = get_task(spec.task.name, spec.task.data_dir, spec.task.image_size, **spec.task.options)
    rule = get_rule(spec.rule.name)(spec.rule.hparams, seed=rule_seed(spec), loss=task.loss)
    compiled = _compiled_run(spec, task, rule)
    model, optimizer, train_step, recorder, health = (
        compiled.model,
        compiled.optimizer,
        compiled.train_step,
        compiled.recorder,
        compiled.health,
    )

    steps_per_epoch = task.steps_per_epoch(spec.train.batch_size)
    total_steps = spec.train.epochs * steps_per_epoch
    schedule = recording_steps(total_steps, spec.observe.points)
    layer_names = [layer.name for layer in model.measured_layers]
    groups = depth_groups(len(layer_names))
    records: list[tuple[int, dict[str, np.ndarray]]] = []  # per step, each view's [layers, stored observables]
    status, diverged_at, loss = "complete", None, float("nan")
    # Training losses since the last recording, kept as tensors: reading each one would sync every step.
    interval_losses: list = []
    first_loss = None
    recorded_losses: list[float | None] = [None]  # no training step precedes step 0
    health_log: dict[str, list] = {"update_gradient_angle_deg": [], "feedback_weight_angle_deg": []}

    def log_health(x, y):
        update_angles, feedback_angles = health.measure(x, y)
        health_log["update_gradient_angle_deg"].append(update_angles)
        health_log["feedback_weight_angle_deg"].append(feedback_angles)

    # lrid's models flatten a map channels-last (TensorFlow's NHWC), so a readout over a map has a reach too.
    reach = ReachRecorder(model.measured_readers(), flatten="channels_last")

    def record(step):
        observed = recorder.record_all(step, run_seed(spec.run_id))
        kernels = [layer.kernel.numpy() for layer in model.measured_layers]
        records.append((step, with_reach(observed, reach.record(kernels))))
        if on_record is not None:
            on_record(step, model, recorder.probe)

    record(0)
    step = 0
    next_record = 1
    for epoch in range(spec.train.epochs):
        if spec.train.lr_decay_epochs:
            optimizer.learning_rate = spec.train.learning_rate(rule.hparams.lr, epoch)
        for x, y in task.epoch_batches(epoch, spec.train.batch_size, spec.train.data_seed):
            if step == 0:
                log_health(x, y)  # the initial network, on the first batch it will train on
                train_step = _direct_step(train_step, x, y)
            loss_tensor = train_step(x, y)
            if first_loss is None:
                first_loss = loss_tensor
            interval_losses.append(loss_tensor)
            step += 1
            if next_record < len(schedule) and step == schedule[next_record]:
                next_record += 1
                loss = float(loss_tensor)
                if not np.isfinite(loss) or not compiled.weights_finite():
                    status, diverged_at = "diverged", step
                    break
                record(step)
                recorded_losses.append(float(tf.add_n(interval_losses)) / len(interval_losses))
                interval_losses = []
                log_health(x, y)
        if status == "diverged":
            break

    test_metric = task.evaluate(model.predict_logits)
    collapsed = None
    last_loss = recorded_losses[-1]  # None when no interval was recorded after step 0
    if status == "complete" and first_loss is not None and last_loss is not None:
        collapsed = collapse_reason(task.metric, task.n_classes, test_metric, float(first_loss), last_loss)
        if collapsed:
            status = "collapsed"
    rows = _rows(spec.run_id, records, layer_names, groups, steps_per_epoch)
    recorded_steps = [s for s, _ in records]
    outcome = {
        "status": status,
        "diverged_at_step": diverged_at,
        "total_steps": total_steps,
        "steps_run": step,
        "recorded_steps": recorded_steps,
        "recorded_train_loss": recorded_losses,
        "final_train_loss": loss,
        f"final_test_{task.metric}": test_metric if status != "diverged" else None,
        **({"collapse_reason": collapsed} if collapsed else {}),
        "health": {
            "layers": layer_names,
            "steps": recorded_steps[: len(health_log["update_gradient_angle_deg"])],
            "update_gradient_angle_deg": health_log["update_gradient_angle_deg"],
            "feedback_weight_angle_deg": (health_log["feedback_weight_angle_deg"] if health.has_feedback else None),
        },
    }
    return rows, outcome


class _CompiledRun:
    """A model with its optimizer, compiled train step and recorder, kept to be re-initialised for later runs."""

    def __init__(self, spec: RunSpec, task, rule):
        from lrid.generate.health import HealthProbe
        from lrid.models import build_model
        from lrid.observables.recorder import Recorder

        self.model = build_model(spec.model, task, feedback=rule.feedback, seed=spec.train.model_seed)
        # Initial weights per model seed. A build is deterministic, so one per seed serves every later run
        # with that seed, which cuts a warm run's set-up (benchmarks/run_overhead.py measures it).
        self._initial_weights: dict[int, list[np.ndarray]] = {}
        self._keep_initial_weights(spec.train.model_seed, self.model)
        self.optimizer = rule.optimizer_for(self.model)
        self.train_step = rule.make_train_step(self.model, self.optimizer)
        self.rule = rule  # the step closes over this rule object: reseed() prepares it for later runs
        self.recorder = Recorder(
            self.model, task.probe_batch(spec.observe.probe_size, spec.observe.probe_seed), spec.observe.views
        )
        self.health = HealthProbe(rule, self.model)
        self._all_finite = tf.function(
            lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in self.model.trainable_variables]),
            autograph=False,
        ).get_concrete_function()

    def _keep_initial_weights(self, seed: int, model) -> list:
        """``model``'s variables, kept for ``seed`` as arrays while the kept ones stay under the size limit.

        Returns what the caller assigns from: the kept arrays, or the variables themselves (no copy of a
        network too large to keep).
        """
        size = sum(variable.shape.num_elements() for variable in model.variables)
        if size * (len(self._initial_weights) + 1) > _INITIAL_WEIGHTS_LIMIT:
            return list(model.variables)
        values = [variable.numpy() for variable in model.variables]
        self._initial_weights[seed] = values
        return values

    def weights_finite(self) -> bool:
        """Whether every trainable variable is finite (one compiled call, far cheaper than an eager check per variable)."""
        return bool(self._all_finite())

    def reinitialise(self, spec: RunSpec, task, rule) -> None:
        """Give the model the initial weights a fresh build with this run's seed would have, reset the optimizer."""
        from lrid.models import build_model

        seed = spec.train.model_seed
        initial = self._initial_weights.get(seed)
        if initial is None:
            fresh = build_model(spec.model, task, feedback=rule.feedback, seed=seed)
            initial = self._keep_initial_weights(seed, fresh)
        for variable, value in zip(self.model.variables, initial, strict=True):
            variable.assign(value)
        for variable in self.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        self.optimizer.learning_rate = rule.hparams.lr
        self.rule.reseed(rule.seed)


# Tracing a train step and the recorder costs about a second, more than training a demo network; runs
# that differ only in seeds or learning rate reuse them. Small, so a worker's memory stays bounded.
_COMPILED: dict[str, _CompiledRun] = {}
_COMPILED_LIMIT = 4
# Floats of initial weights one compiled run keeps (64 MB): all seeds of small networks, none of AlexNet's.
_INITIAL_WEIGHTS_LIMIT = 16_000_000


def configuration_key(spec: RunSpec) -> str:
    """What a run's compiled step and recorder depend on: runs with equal keys (differing only in seeds or
    learning rate) can reuse them, so executors send such runs to the same worker."""
    hparams = {k: v for k, v in spec.rule.hparams.items() if k != "lr"}
    return json.dumps(
        [
            spec.task.model_dump(mode="json"),
            spec.model.model_dump(mode="json"),
            spec.rule.name,
            hparams,
            spec.train.batch_size,
            spec.observe.model_dump(mode="json"),
        ],
        sort_keys=True,
    )


def _compiled_run(spec: RunSpec, task, rule) -> _CompiledRun:
    """The model, optimizer, train step, recorder and health probe for ``spec``, reused when the rule allows it."""
    reusable = type(rule).reuses_compiled_step()
    key = configuration_key(spec)
    compiled = _COMPILED.pop(key, None) if reusable else None
    if compiled is None:
        compiled = _CompiledRun(spec, task, rule)
    else:
        compiled.reinitialise(spec, task, rule)
    if reusable:
        _COMPILED[key] = compiled  # most recently used last
        while len(_COMPILED) > _COMPILED_LIMIT:
            _COMPILED.pop(next(iter(_COMPILED)))
    return compiled


def _direct_step(train_step, x, y):
    """The compiled step's trace for batches like (x, y), called without tf.function's per-call dispatch.

    A task's batches all have one shape, so one trace serves the whole run; the dispatch (canonicalising
    the arguments, looking the trace up) is a large part of a small network's step. A step that is
    not a tf.function is returned as it is.
    """
    if not hasattr(train_step, "get_concrete_function"):
        return train_step
    return train_step.get_concrete_function(x, y)


def _seed_global_generators(seed: int) -> None:
    """Seed Python's and NumPy's global generators for a run, and TensorFlow's once per process.

    Not ``keras.utils.set_random_seed``: its ``tf.random.set_seed`` clears every compiled function's
    kernels, so the next call of each reused step, recorder and probe is traced again, which can cost more
    than a small run's training. Nothing a run executes draws from TensorFlow's global seed: initialisers
    take explicit seeds, rules and tasks use seeded generators or stateless ops.
    """
    import random

    global _TF_SEEDED
    random.seed(seed)
    np.random.seed(seed)
    if not _TF_SEEDED:
        tf.random.set_seed(0)
        _TF_SEEDED = True


_TF_SEEDED = False


def _rows(run_id, records, layer_names, groups, steps_per_epoch) -> pd.DataFrame:
    """One row per (recorded step, view, layer): the identifiers, then the observables (then the view, if several).

    Built column-wise in one go: a frame per recording with inserted columns is many times slower.
    """
    blocks = [(step, view, values) for step, views in records for view, values in views.items()]
    n_layers = len(layer_names)
    steps = np.repeat(np.array([step for step, _, _ in blocks], dtype=np.int64), n_layers)
    identifiers = pd.DataFrame(
        {
            "run_id": np.full(len(steps), run_id, dtype=object),
            "step": steps,
            "epoch": steps / steps_per_epoch,
            "layer": np.array(list(layer_names) * len(blocks), dtype=object),
            "layer_index": np.tile(np.arange(n_layers, dtype=np.int32), len(blocks)),
            "depth_group": np.array(list(groups) * len(blocks), dtype=object),
        }
    )
    values = np.concatenate([values for _, _, values in blocks])  # a run always has its step-0 recording
    frame = pd.concat([identifiers, pd.DataFrame(values, columns=list(STORED_OBSERVABLES))], axis=1)
    if len(records[0][1]) > 1:  # degraded views: Store.write_run files them apart from the full rows
        frame["view"] = np.repeat(np.array([view for _, view, _ in blocks], dtype=object), n_layers)
    return frame


def _versions() -> dict:
    import tensorflow

    return {"lrid": lrid.__version__, "tensorflow": tensorflow.__version__, "python": platform.python_version()}
