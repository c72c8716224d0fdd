"""Trajectories to feature matrices.

Two units of classification:

* ``layer`` (Nayebi et al.'s unit, the default): one sample per measured layer of one run, holding each
  selected observable's trajectory and a one-hot of the layer's depth group (early/middle/deep thirds).
* ``run``: one sample per run. The run's layers are averaged within each depth group and the three group
  trajectories are concatenated. Averaging within groups, rather than concatenating every layer, gives the
  same columns for every architecture (a KNet has 4 measured layers, a ResNet-18 22), so a run-level
  classifier can be trained on one architecture and tested on another; keeping the groups apart keeps the
  depth information that the layer unit carries in its one-hot. An architecture with fewer than three
  measured layers has empty groups, stored as NaN (every classifier here handles NaN).

Observable subsets (:data:`OBSERVABLE_SUBSETS`), combined with commas (``"weight,actchange"``):

* ``weight``, ``act``, ``actchange``: every statistic of one measure (21, 21 and 3 columns);
* ``admissible``: Nayebi et al.'s 24 statistics that stayed finite across all their models and tasks
  (``ADMISSIBLE_OBS`` in their code; /work/shared/research/papers.md 1.4): weight raw/abs {norm, mean,
  median, q3, var} and sq {mean, median, q3}; act raw/abs {norm, mean, median, q3}; actchange raw/abs/sq
  mean. All skews and kurtoses, activation variances, activation squares and weight sq norm/var are out;
* ``all``: the 45 observables;
* ``reach``: update reach (:mod:`lrid.observables.update_reach`), the one cross-layer observable: whether a
  layer's updates point where the layer above reads, as backprop's do and feedback alignment's and node
  perturbation's do not. It is summarised rather than kept as a trajectory: its mean over each quarter of
  training (each recorded interval weighted by its overlap with the quarter, so any schedule gives the four
  values), ``reach@q1`` .. ``reach@q4`` for the layer unit, and for the run unit those of the layer under
  the readout (``reach@top@q1`` ..) and the mean of the layers below it (``reach@lower@q1`` ..), after the
  other static columns. ``all`` leaves it out, so models saved before it existed still match their inputs.

Time selection models limited access to the trajectory. Indices refer to the recorded points (0..T-1) and
apply in this order: ``window`` keeps the first k points, ``stride`` every s-th point from the first, and
``points`` an evenly spaced subset of what remains (first and last included). Feature names keep the
original point index (``act_abs_mean@t20``), so a model trained on a selection can only be applied to
trajectories with the same points.

Three transforms aim at transfer, at identifying the rule of networks trained unlike the training sweep:

* ``time="fraction"`` places each run's recordings on its own training span (step / last recorded step)
  and resamples every trajectory onto ``points`` (default 21) evenly spaced fractions of training, by
  linear interpolation. Runs recorded at different numbers of points or steps (another budget, another
  lab's schedule) then give the same columns; point ``k`` of ``n`` is the fraction ``k / (n - 1)``.
* ``baseline="relative"`` measures each trajectory from its initial value: scale observables (norms,
  variances, absolute and squared statistics, kurtoses: :data:`SCALE_OBSERVABLES`) as log ratios
  ``log(x(t) / x(0))``, signed ones (raw means, medians and quartiles, skews, the raw activity change) as
  differences ``x(t) - x(0)``. The initial point, zero by construction, is dropped. This removes what the
  initialisation and the layer's size set (a wider layer has a larger weight norm under every rule) and
  keeps what learning did.
* ``time="progress"`` goes one step further and measures time by the run's own clock, so that how fast a
  run learned (its learning rate, batch size or budget) does not move its features. After the fraction
  resampling (and the baseline), each trajectory is divided by its largest absolute value over training;
  the run's progress at each point is the cumulative mean absolute change of these normalised
  trajectories (over all its layers and observables), from 0 at the start to 1 at the end, and every
  normalised trajectory is resampled at ``points`` evenly spaced progress levels (point ``k`` is the
  level ``k / (n - 1)``). What the normalisation and the clock removed is kept apart, as static
  columns: each trajectory's log scale (``{observable}@scale``) and the progress reached at each
  fraction of training (``progress@t{k}``). A trajectory multiplied by a constant, or played faster or
  slower, gives the same trajectory columns.

``depth_contrasts`` (run unit, progress time) adds the differences of those log scales between adjacent
depth groups, ``{column}@scale@deep-middle`` and ``{column}@scale@middle-early``: how much more a rule
changed the layers nearer the output than those further in, which a width, a learning rate or a budget
shifts for every group alike. A tree reads a difference of two columns only through several splits, so it
is given directly. Differences of the trajectories themselves, measured beside them, added nothing more.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lrid.errors import LridError
from lrid.observables import OBSERVABLES
from lrid.schema import CROSS_LAYER_OBSERVABLES, DEPTH_GROUPS, STORED_OBSERVABLES

_ADMISSIBLE = (
    [f"weight_{f}_{s}" for f in ("raw", "abs") for s in ("norm", "mean", "median", "q3", "var")]
    + [f"weight_sq_{s}" for s in ("mean", "median", "q3")]
    + [f"act_{f}_{s}" for f in ("raw", "abs") for s in ("norm", "mean", "median", "q3")]
    + [f"actchange_{f}_mean" for f in ("raw", "abs", "sq")]
)
OBSERVABLE_SUBSETS: dict[str, tuple[str, ...]] = {
    "weight": tuple(name for name in OBSERVABLES if name.startswith("weight_")),
    "act": tuple(name for name in OBSERVABLES if name.startswith("act_")),
    "actchange": tuple(name for name in OBSERVABLES if name.startswith("actchange_")),
    "admissible": tuple(name for name in OBSERVABLES if name in _ADMISSIBLE),
    "all": tuple(OBSERVABLES),
    "reach": ("reach",),
}
REACH_QUARTERS = 4
# The run unit's reach parts: the layer under the readout, and the mean of the layers below it.
REACH_PARTS = ("top", "lower")
UNITS = ("layer", "run")
TIMES = ("index", "fraction", "progress")
BASELINES = ("none", "relative")
DEFAULT_FRACTION_POINTS = 21
# Observables that are positive by construction and scale with the layer: compared to their start as log ratios.
SCALE_OBSERVABLES = frozenset(
    name
    for name in OBSERVABLES
    if name.endswith(("_norm", "_var", "_kurtosis"))
    or any(
        name.startswith(f"{m}_{f}_") and not name.endswith("_skew")
        for m in ("weight", "act", "actchange")
        for f in ("abs", "sq")
    )
)
_LOG_FLOOR = 1e-12
SAMPLE_COLUMNS = ["run_id", "layer", "layer_index", "depth_group", "rule", "task", "arch"]


@dataclass
class FeatureSet:
    """Samples ready for scikit-learn.

    Attributes:
        X: [n_samples, n_channels * n_points + n_static]: each channel's trajectory over the selected points
            (channel-major), then the static columns (the depth one-hot for the layer unit, none for runs).
        y: the rule that trained each sample's network (None where the input does not say).
        groups: each sample's run id; splits never put one run on both sides.
        feature_names: ``{observable}@t{k}`` for recorded point k (with ``@{group}`` for the run unit), then
            ``depth_{group}``.
        samples: per-sample metadata (run_id, layer, layer_index, depth_group, rule, task, arch).
        n_points: the number of selected time points (the length of each trajectory).
        n_static: the number of trailing columns that are not trajectories.
        options: the keyword arguments that rebuild exactly these columns with :func:`build_features`.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    feature_names: list[str]
    samples: pd.DataFrame
    n_points: int = 0
    n_static: int = 3
    options: dict = field(default_factory=dict)


def subset_columns(subset: str) -> list[str]:
    """The observable columns of a subset name or a comma list of them, in storage order."""
    names = [part.strip() for part in str(subset).split(",") if part.strip()]
    unknown = [name for name in names if name not in OBSERVABLE_SUBSETS]
    if unknown or not names:
        raise LridError(
            f"unknown observable subset {', '.join(unknown) or '(empty)'!s}; choose from "
            f"{', '.join(OBSERVABLE_SUBSETS)}, or a comma list of them"
        )
    wanted = {column for name in names for column in OBSERVABLE_SUBSETS[name]}
    return [column for column in STORED_OBSERVABLES if column in wanted]


def select_points(
    n_points: int, points: int | None = None, window: int | None = None, stride: int | None = None
) -> list[int]:
    """Indices of the recorded points kept: the first ``window``, then every ``stride``-th, then ``points`` evenly spaced."""
    for name, value in (("points", points), ("window", window), ("stride", stride)):
        if value is not None and int(value) < 1:
            raise LridError(f"time selection {name}={value} must be a positive integer")
    indices = list(range(n_points))
    if window is not None:
        if window > n_points:
            raise LridError(
                f"window={window} asks for more points than the {n_points} recorded; use at most {n_points}"
            )
        indices = indices[:window]
    if stride is not None:
        indices = indices[::stride]
    if points is not None:
        if points > len(indices):
            raise LridError(
                f"points={points} asks for more points than the {len(indices)} available "
                f"(of {n_points} recorded, after window/stride); use at most {len(indices)}"
            )
        positions = np.unique(np.round(np.linspace(0, len(indices) - 1, points)).astype(int))
        indices = [indices[p] for p in positions]
    return indices


def build_features(
    observables: pd.DataFrame,
    observable_columns: list[str] | None = None,
    *,
    subset: str | None = None,
    points: int | None = None,
    window: int | None = None,
    stride: int | None = None,
    unit: str = "layer",
    time: str = "index",
    baseline: str = "none",
    depth_contrasts: bool = False,
) -> FeatureSet:
    """Pivot long observable rows into one feature row per (run, layer), or per run with ``unit="run"``.

    Args:
        observables: the store's long format (one row per run, step and layer; see :mod:`lrid.store`).
        observable_columns: explicit observable columns (kept for older callers); overrides ``subset``.
        subset: an observable subset name or comma list (see the module docstring); default ``all``.
        points, window, stride: the time selection (see the module docstring).
        unit: ``layer`` or ``run``.
        time: ``index`` (recorded point k), ``fraction`` (resampled onto fractions of training) or
            ``progress`` (normalised trajectories resampled onto the run's own progress; module docstring).
        baseline: ``none`` (values as recorded) or ``relative`` (from the initial value; see the module docstring).
        depth_contrasts: with ``unit="run"`` and ``time="progress"``, also the log scales' differences between
            adjacent depth groups (see the module docstring).

    Every run must have been recorded at the same number of points; runs that stopped early (diverged)
    should be filtered out before, since a shorter trajectory is not comparable point by point.
    """
    if unit not in UNITS:
        raise LridError(f"unknown unit {unit!r}; choose layer (one sample per layer) or run (one per run)")
    if time not in TIMES:
        raise LridError(
            f"unknown time axis {time!r}; choose index (recorded point), fraction (of training) "
            "or progress (of the run's own change)"
        )
    if baseline not in BASELINES:
        raise LridError(f"unknown baseline {baseline!r}; choose none or relative (from each trajectory's start)")
    if depth_contrasts and (unit, time) != ("run", "progress"):
        raise LridError(
            "depth contrasts compare the log scales of a run's depth groups; use them with unit=run and "
            "time=progress (--unit run --time progress)"
        )
    if time != "index" and (window is not None or stride is not None):
        raise LridError(f"window and stride select recorded points; with time={time} choose the resolution with points")
    columns = list(observable_columns) if observable_columns else subset_columns(subset or "all")
    summarised = [column for column in columns if column in CROSS_LAYER_OBSERVABLES]
    if observables.empty:
        raise LridError("the store holds no complete runs; run `lrid generate SPEC --store DIR` first")
    missing = [column for column in ["run_id", "step", "layer_index", *columns] if column not in observables]
    if missing:
        raise LridError(
            f"the observables lack column(s) {', '.join(missing[:5])}; give data in the store's long format"
        )
    data = observables.copy()
    for column in SAMPLE_COLUMNS:
        if column not in data:
            data[column] = None
    ordered = data.sort_values(["run_id", "layer_index", "step"], kind="stable")
    points_per_sample = ordered.groupby(["run_id", "layer_index"], sort=False).size()
    if time != "index":
        values, samples = _resample_fractions(ordered, columns, points_per_sample, points or DEFAULT_FRACTION_POINTS)
        kept = list(range(values.shape[1]))
    else:
        if points_per_sample.nunique() != 1:
            counts = sorted(points_per_sample.unique().tolist())
            raise LridError(
                f"runs were recorded at different numbers of points ({counts}); classify runs from one "
                "observation schedule at a time (filter the store, re-generate with the same `observe.points`, "
                "or use time=fraction)"
            )
        n_recorded = int(points_per_sample.iloc[0])
        kept = select_points(n_recorded, points=points, window=window, stride=stride)
        values = ordered[columns].to_numpy(dtype=np.float64).reshape(len(points_per_sample), n_recorded, len(columns))
        values = values[:, kept, :]
        samples = ordered.iloc[::n_recorded][SAMPLE_COLUMNS].reset_index(drop=True)
    if summarised:  # summarised apart (module docstring), not a trajectory
        reach = _reach_quarters(ordered, points_per_sample, kept if time == "index" else None)
        trajectory_columns = [column for column in columns if column not in summarised]
        values = values[..., [columns.index(column) for column in trajectory_columns]]
        columns = trajectory_columns
    if baseline == "relative":
        values = _relative_to_start(values, columns)
    n_samples = len(samples)
    values = values.transpose(0, 2, 1)  # [samples, observables, points]
    # The relative baseline's first point is zero by construction: it is dropped, but only after the
    # progress clock has used it as the start.
    first = 1 if baseline == "relative" else 0
    options: dict[str, Any] = {
        "subset": subset or "all",
        "points": points,
        "window": window,
        "stride": stride,
        "unit": unit,
        "time": time,
        "baseline": baseline,
    }
    if depth_contrasts:  # only when on, so that the options of models saved before it existed still match
        options["depth_contrasts"] = True
    if observable_columns:
        options = {**options, "observable_columns": list(columns)}
    trajectory_names = [f"{column}@t{point}" for column in columns for point in kept[first:]]

    if unit == "layer":
        depth_one_hot = np.stack([(samples["depth_group"] == g).to_numpy(float) for g in DEPTH_GROUPS], axis=1)
        static, static_names = depth_one_hot, [f"depth_{g}" for g in DEPTH_GROUPS]
        if time == "progress":
            values, clock_static = _progress_clock(values, samples["run_id"].to_numpy(dtype=object))
            static = np.concatenate([static, clock_static], axis=1)
            static_names += [f"{column}@scale" for column in columns] + _progress_names(kept)
        if summarised:
            static = np.concatenate([static, reach], axis=1)
            static_names += reach_names("layer")
        return FeatureSet(
            X=np.concatenate([values[..., first:].reshape(n_samples, -1), static], axis=1),
            y=samples["rule"].to_numpy(dtype=object),
            groups=samples["run_id"].to_numpy(dtype=object),
            feature_names=trajectory_names + static_names,
            samples=samples,
            n_points=len(kept) - first,
            n_static=len(static_names),
            options=options,
        )

    run_ids = samples["run_id"].drop_duplicates().tolist()
    row_of_run = {run_id: row for row, run_id in enumerate(run_ids)}
    pooled: np.ndarray = np.full((len(run_ids), len(DEPTH_GROUPS), len(columns), len(kept)), np.nan)
    for (run_id, group), index in samples.groupby(["run_id", "depth_group"], sort=False).groups.items():
        if group in DEPTH_GROUPS:
            with warnings.catch_warnings():  # an all-NaN statistic stays NaN, without a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                pooled[row_of_run[run_id], DEPTH_GROUPS.index(group)] = np.nanmean(values[np.asarray(index)], axis=0)
    run_samples = (
        samples.drop_duplicates("run_id").reset_index(drop=True).assign(layer=None, layer_index=-1, depth_group="all")
    )
    pooled = pooled.reshape(len(run_ids), len(DEPTH_GROUPS) * len(columns), len(kept))
    static, static_names = np.empty((len(run_ids), 0)), []
    if time == "progress":
        pooled, static = _progress_clock(pooled, np.arange(len(run_ids)))
        static_names = [f"{column}@scale@{group}" for group in DEPTH_GROUPS for column in columns] + _progress_names(
            kept
        )
    if depth_contrasts:
        scales = static[:, : len(DEPTH_GROUPS) * len(columns)].reshape(len(run_ids), len(DEPTH_GROUPS), -1)
        static = np.concatenate([static, _depth_contrasts(scales).reshape(len(run_ids), -1)], axis=1)
        static_names += [f"{column}@scale@{pair}" for pair in DEPTH_CONTRASTS for column in columns]
    if summarised:
        static = np.concatenate([static, _run_reach(reach, samples, row_of_run)], axis=1)
        static_names += reach_names("run")
    return FeatureSet(
        X=np.concatenate([pooled[..., first:].reshape(len(run_ids), -1), static], axis=1),
        y=run_samples["rule"].to_numpy(dtype=object),
        groups=run_samples["run_id"].to_numpy(dtype=object),
        feature_names=[f"{name}@{group}" for group in DEPTH_GROUPS for name in trajectory_names] + static_names,
        samples=run_samples,
        n_points=len(kept) - first,
        n_static=len(static_names),
        options=options,
    )


def _resample_fractions(
    ordered: pd.DataFrame, columns: list[str], points_per_sample: pd.Series, n_points: int
) -> tuple[np.ndarray, pd.DataFrame]:
    """Each sample's trajectory at ``n_points`` evenly spaced fractions of its recorded span, [samples, points, columns]."""
    if n_points < 2:
        raise LridError(f"time=fraction needs at least 2 points, not {n_points}")
    if points_per_sample.min() < 2:
        raise LridError("a trajectory with a single recorded point has no span to resample; record at least 2 points")
    grid = np.linspace(0.0, 1.0, n_points)
    steps = ordered["step"].to_numpy(dtype=np.float64)
    raw = ordered[columns].to_numpy(dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(points_per_sample.to_numpy())])
    values = np.empty((len(points_per_sample), n_points, len(columns)))
    for sample, (start, stop) in enumerate(zip(starts[:-1], starts[1:])):
        span = steps[start:stop] - steps[start]
        if span[-1] <= 0:
            raise LridError("a trajectory's recorded steps do not increase; give each recording its training step")
        position = np.interp(grid, span / span[-1], np.arange(stop - start, dtype=np.float64))
        values[sample] = _at_positions(raw[start:stop], position)
    samples = ordered.iloc[starts[:-1]][SAMPLE_COLUMNS].reset_index(drop=True)
    return values, samples


def reach_names(unit: str) -> list[str]:
    """The columns the ``reach`` subset adds, after the other static columns, for ``unit`` (module docstring)."""
    parts = [""] if unit == "layer" else [f"@{part}" for part in REACH_PARTS]
    return [f"reach{part}@q{quarter}" for part in parts for quarter in range(1, REACH_QUARTERS + 1)]


def _reach_quarters(ordered: pd.DataFrame, points_per_sample: pd.Series, kept: list[int] | None) -> np.ndarray:
    """[samples, REACH_QUARTERS]: each sample's reach averaged over each quarter of its recorded span (of the
    ``kept`` points, if given), each interval weighted by its overlap with the quarter; NaN where no interval
    of a quarter has a value.

    A recorded point's reach is that of the update since the point recorded before it; where a time selection
    dropped that point, the value stands for the whole interval since the last point kept.
    """
    steps = ordered["step"].to_numpy(dtype=np.float64)
    reach = ordered["reach"].to_numpy(dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(points_per_sample.to_numpy())])
    bounds = np.linspace(0.0, 1.0, REACH_QUARTERS + 1)
    quarters = np.full((len(points_per_sample), REACH_QUARTERS), np.nan)
    for sample, (start, stop) in enumerate(zip(starts[:-1], starts[1:])):
        sample_steps, sample_reach = steps[start:stop], reach[start:stop]
        if kept is not None:
            sample_steps, sample_reach = sample_steps[kept], sample_reach[kept]
        if len(sample_steps) < 2 or sample_steps[-1] <= sample_steps[0]:
            continue
        fraction = (sample_steps - sample_steps[0]) / (sample_steps[-1] - sample_steps[0])
        overlap = np.minimum(fraction[1:, None], bounds[None, 1:]) - np.maximum(fraction[:-1, None], bounds[None, :-1])
        weight = np.clip(overlap, 0.0, None) * np.isfinite(sample_reach[1:, None])
        total = weight.sum(axis=0)
        weighted = (weight * np.nan_to_num(sample_reach[1:, None])).sum(axis=0)
        quarters[sample] = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), np.nan)
    return quarters


def _run_reach(reach: np.ndarray, samples: pd.DataFrame, row_of_run: dict) -> np.ndarray:
    """[runs, parts * quarters]: the reach quarters of each run's layer under its readout, then the mean of
    those of the layers below it (:data:`REACH_PARTS`; NaN where a run has no such layer)."""
    pooled = np.full((len(row_of_run), len(REACH_PARTS), REACH_QUARTERS), np.nan)
    positions = samples["layer_index"].to_numpy(dtype=np.int64)
    for run_id, index in samples.groupby("run_id", sort=False).groups.items():
        rows = np.asarray(index)
        below_readout = positions[rows].max() - 1
        with warnings.catch_warnings():  # a part without values stays NaN, without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            for part, chosen in enumerate((positions[rows] == below_readout, positions[rows] < below_readout)):
                if chosen.any():
                    pooled[row_of_run[run_id], part] = np.nanmean(reach[rows[chosen]], axis=0)
    return pooled.reshape(len(row_of_run), -1)


def _at_positions(rows: np.ndarray, position: np.ndarray) -> np.ndarray:
    """``rows`` [points, ...] linearly interpolated at fractional row positions (0..points-1)."""
    lower = np.minimum(np.floor(position).astype(int), len(rows) - 2)
    weight = (position - lower).reshape(-1, *([1] * (rows.ndim - 1)))
    return rows[lower] * (1 - weight) + rows[lower + 1] * weight


def _relative_to_start(values: np.ndarray, columns: list[str]) -> np.ndarray:
    """Trajectories [samples, points, columns] from their first point on: log ratios for scale observables,
    differences for signed ones (the first point is zero by construction; the caller drops it)."""
    scale = np.array([column in SCALE_OBSERVABLES for column in columns])
    start = values[:, :1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(np.maximum(values, _LOG_FLOOR) / np.maximum(start, _LOG_FLOOR))
    return np.where(scale, ratio, values - start)


#: The depth-group differences ``depth_contrasts`` adds, deeper group first.
DEPTH_CONTRASTS = ("deep-middle", "middle-early")


def _depth_contrasts(grouped: np.ndarray) -> np.ndarray:
    """[runs, 2, channels] from [runs, 3 depth groups, channels]: deep - middle and middle - early (NaN where
    a group is empty, as the early group of a network with fewer than three layers is)."""
    early, middle, deep = (grouped[:, DEPTH_GROUPS.index(group)] for group in ("early", "middle", "deep"))
    return np.stack([deep - middle, middle - early], axis=1)


def _progress_names(kept: list[int]) -> list[str]:
    # The progress is 0 at the start and 1 at the end by construction: only the points between carry anything.
    return [f"progress@t{point}" for point in kept[1:-1]]


def _progress_clock(trajectories: np.ndarray, run_of_sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trajectories [samples, channels, points] normalised and resampled onto their run's progress.

    Returns the resampled trajectories (same shape) and the static columns: each channel's log scale, then
    the run's progress at every point but the first and the last (see the module docstring).
    """
    n_points = trajectories.shape[-1]
    with warnings.catch_warnings():  # all-NaN channels (empty depth groups) stay NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        scale = np.nanmax(np.abs(trajectories), axis=-1)
        normalised = trajectories / np.where(scale > 0, scale, 1.0)[..., None]
        change = np.nanmean(np.abs(np.diff(normalised, axis=-1)), axis=1)  # [samples, points - 1]
    change = np.nan_to_num(change)
    run_ids, run_index = np.unique(run_of_sample.astype(str), return_inverse=True)
    run_change = np.zeros((len(run_ids), n_points - 1))
    np.add.at(run_change, run_index, change)
    progress = np.concatenate([np.zeros((len(run_ids), 1)), np.cumsum(run_change, axis=1)], axis=1)
    total = progress[:, -1:]
    fraction = np.linspace(0.0, 1.0, n_points)
    # A run that did not change at all keeps the fraction of training as its clock; a tiny ramp keeps a
    # clock that stood still for a while strictly increasing, so interpolation is defined.
    progress = np.where(total > 0, progress / np.where(total > 0, total, 1.0), fraction)
    progress = (progress + 1e-9 * fraction) / (1 + 1e-9)
    resampled = np.empty_like(normalised)
    for sample, run in enumerate(run_index):
        position = np.interp(fraction, progress[run], np.arange(n_points, dtype=np.float64))
        resampled[sample] = _at_positions(normalised[sample].T, position).T
    log_scale = np.log(np.maximum(scale, _LOG_FLOOR))
    return resampled, np.concatenate([log_scale, progress[run_index, 1:-1]], axis=1)
