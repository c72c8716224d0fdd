"""Prediction sets: the rules an identifier cannot rule out for a run, at a stated coverage.

One predicted rule hides what a scientist most needs to know when the answer is uncertain: which other rules
are still in play (sgd or sgdm, fa or ia). A prediction set keeps every rule whose probability reaches a
threshold, and the threshold is calibrated by split conformal prediction (the least-ambiguous set-valued
classifier of Sadinle, Lei and Wasserman, 2019): on runs the identifier was not trained on, the set held the
true rule for at least ``coverage`` of them. The guarantee holds for runs drawn like the calibration runs;
on networks from elsewhere it is a measurement, which ``benchmarks/transfer.py`` makes on the foreign sets.

No separate runs are spent on calibration: ``lrid classify`` calibrates a saved model on its splits' test
runs, and the default identifier is calibrated on its zoo by cross-fitting (:func:`cross_fitted_calibration`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lrid.errors import LridError
from lrid.identify.partial_layers import nearest_partial
from lrid.identify.schedules import AS_RECORDED, copy_origins, parse_schedule
from lrid.schema import LayersCalibration, PointsCalibration, SetCalibration

# The coverage lrid calibrates its sets at, and names them by ("at 90 %").
DEFAULT_COVERAGE = 0.9
CALIBRATION_FOLDS = 5
# The columns lrid.identify.inference.identify adds for a model with calibrated sets.
SET_COLUMNS = ("prediction_set", "set_coverage")


def calibrate(
    probabilities: pd.DataFrame,
    true_rules: Sequence[str],
    coverage: float,
    method: str,
    *,
    schedule_of: Sequence[str] | None = None,
    points: int | None = None,
    points_of: Sequence[int] | None = None,
    layers: Sequence[str] = (),
) -> SetCalibration:
    """The :class:`~lrid.schema.SetCalibration` at ``coverage`` of held-out runs: ``probabilities`` (one row
    per run, one column per rule) from models that did not train on them, ``true_rules`` their rules.

    ``schedule_of`` says, per row, which checkpoint schedule the run was re-recorded at
    (:data:`~lrid.identify.schedules.AS_RECORDED` for the runs themselves): the runs as recorded (at
    ``points`` checkpoints) calibrate ``threshold``, and the copies at each number of points calibrate one
    threshold of ``by_points``, so a run recorded at few checkpoints gets a threshold measured on runs like
    it (a Mondrian calibration, by number of points). A number of points with too few copies to rule out any
    rule at ``coverage`` (fewer than 9 at 90 %) gets no threshold, and its runs that of fewer points.
    ``points_of`` gives each row's number of points as re-recorded (``log11`` keeps 10 of 21 points, as
    :func:`thresholds_for` will count an input's); without it, a schedule's name says it (``even6`` and
    ``log6``: 6).

    Rows whose ``schedule_of`` is one of ``layers`` (partial-layer choices, :mod:`lrid.identify.partial_layers`)
    are runs seen at some of their layers: each choice calibrates one threshold of ``by_layers``, and none of
    them a threshold by points.
    """
    rules = np.asarray(true_rules).astype(str)
    labels = np.full(len(rules), AS_RECORDED, dtype=object) if schedule_of is None else np.asarray(schedule_of)
    partial = np.isin(labels, list(layers))
    if points_of is not None:
        n_points = np.asarray(points_of, dtype=int)
    else:
        n_points = np.array(
            [0 if label == AS_RECORDED or seen else parse_schedule(label)[1] for label, seen in zip(labels, partial)]
        )

    def calibrated(rows: np.ndarray) -> dict[str, Any]:
        chosen = probabilities[rows]
        columns = pd.Index(chosen.columns)
        true_probabilities = chosen.to_numpy(dtype=float)[np.arange(len(chosen)), columns.get_indexer(rules[rows])]
        threshold = conformal_threshold(true_probabilities, coverage)
        held, mean_size = coverage_and_size(prediction_sets(chosen, threshold), list(rules[rows]))
        return {"threshold": threshold, "runs": int(rows.sum()), "held": held, "mean_size": mean_size}

    recorded = labels == AS_RECORDED
    rerecorded = ~recorded & ~partial
    # A number of points (or a choice of layers) with too few copies to rule anything out is left out: its runs
    # are better served by another calibration than by a threshold of 0, which keeps every rule.
    by_points = [
        PointsCalibration(points=int(k), **calibrated(rerecorded & (n_points == k)))
        for k in sorted(set(n_points[rerecorded]))
        if _enough_runs(int(np.sum(rerecorded & (n_points == k))), coverage)
    ]
    by_layers = [
        LayersCalibration(layers=name, **calibrated(labels == name))
        for name in dict.fromkeys(layers)
        if _enough_runs(int(np.sum(labels == name)), coverage)
    ]
    return SetCalibration(
        coverage=coverage,
        method=method,
        points=points,
        by_points=by_points,
        by_layers=by_layers,
        **calibrated(recorded),
    )


def _enough_runs(n_runs: int, coverage: float) -> bool:
    """Whether ``n_runs`` calibration runs reach the rank :func:`conformal_threshold` takes at ``coverage``."""
    return math.ceil((n_runs + 1) * coverage) <= n_runs


def thresholds_for(
    calibration: SetCalibration,
    points_per_run: Sequence[int] | np.ndarray,
    layers_per_run: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Each run's threshold, by the number of checkpoints it was recorded at, and for a run recorded at some
    of its network's layers, by how many.

    A run recorded at as many points as the calibration runs (or more) gets ``calibration.threshold``; one
    recorded at fewer gets the threshold calibrated at the largest number of points in ``by_points`` that it
    reaches, whose runs were read no more surely than it is; one below them all gets the fewest points' (the
    nearest measured, though it may then hold the true rule less often than asked). Without ``by_points``
    (or without ``points``) every run gets ``calibration.threshold``.

    ``layers_per_run`` gives, per run, how many layers it was recorded at when it holds some of its network's
    layers, and 0 for a whole network. Such a run gets the threshold of ``by_layers`` calibrated on runs seen
    most like it (:func:`lrid.identify.partial_layers.nearest_partial`: one layer alone, or several), or
    the lowest of the others where that one is missing; without ``by_layers``, the threshold its points give.
    """
    counts = np.asarray(points_per_run, dtype=int)
    thresholds = np.full(len(counts), calibration.threshold, dtype=float)
    if calibration.by_points and calibration.points is not None:
        ascending = sorted(calibration.by_points, key=lambda entry: entry.points)
        for index, count in enumerate(counts):
            if count >= calibration.points:
                continue
            reached = [entry for entry in ascending if entry.points <= count]
            thresholds[index] = (reached[-1] if reached else ascending[0]).threshold
    if layers_per_run is not None and calibration.by_layers:
        by_name = {entry.layers: entry.threshold for entry in calibration.by_layers}
        for index, recorded in enumerate(np.asarray(layers_per_run, dtype=int)):
            if recorded > 0:
                thresholds[index] = by_name.get(nearest_partial(int(recorded)), min(by_name.values()))
    return thresholds


def conformal_threshold(true_class_probabilities: Sequence[float] | np.ndarray, coverage: float) -> float:
    """The probability a rule needs to stay in a run's set so that sets hold the true rule at ``coverage``.

    ``true_class_probabilities`` are what the identifier gave the true rule of each calibration run, on runs
    it was not trained on. With n of them, the threshold is one minus the ceil((n + 1) coverage)-th smallest
    nonconformity score ``1 - p(true rule)``: the finite-sample split-conformal quantile, so that a new run
    exchangeable with the calibration runs has its true rule in its set with probability at least
    ``coverage``. Too few runs for that rank give 0: every rule stays in every set.
    """
    if not 0.0 < coverage < 1.0:
        raise LridError(f"coverage {coverage} must lie strictly between 0 and 1 (e.g. 0.9)")
    probabilities = np.asarray(true_class_probabilities, dtype=float)
    if probabilities.size == 0 or not np.isfinite(probabilities).all():
        raise LridError("calibrating prediction sets needs finite probabilities of at least one held-out run")
    if not _enough_runs(probabilities.size, coverage):
        return 0.0
    rank = math.ceil((probabilities.size + 1) * coverage)
    # The rank-th smallest score 1 - p is the rank-th largest p, taken as it is: 1 - (1 - p) can round above
    # p and drop the very run that sets the threshold.
    return float(np.sort(probabilities)[::-1][rank - 1])


def prediction_sets(probabilities: pd.DataFrame, threshold: float | Sequence[float] | np.ndarray) -> list[list[str]]:
    """Per row of ``probabilities`` (one column per rule): the rules with probability at least ``threshold``
    (one for all rows, or one per row), most probable first. The most probable rule is always in, so no set
    is empty (which only widens them)."""
    values = probabilities.to_numpy(dtype=float)
    rules = np.asarray(probabilities.columns)
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=float), (len(values),))
    sets = []
    for row, row_threshold in zip(values, thresholds):
        order = np.argsort(-row, kind="stable")
        sets.append([str(rules[i]) for k, i in enumerate(order) if k == 0 or row[i] >= row_threshold])
    return sets


def coverage_and_size(sets: Sequence[Sequence[str]], true_rules: Sequence[str]) -> tuple[float, float]:
    """The share of sets that hold their run's true rule, and the sets' mean size."""
    if len(sets) != len(true_rules) or not sets:
        raise ValueError("one set per true rule, and at least one, are needed")
    held = [rule in rules for rules, rule in zip(sets, true_rules)]
    return float(np.mean(held)), float(np.mean([len(rules) for rules in sets]))


def cross_fitted_probabilities(
    X: np.ndarray,
    labels: np.ndarray,
    runs: np.ndarray,
    scored: np.ndarray,
    make_estimator: Callable[[], Any],
    folds: int = CALIBRATION_FOLDS,
    seed: int = 0,
    named_by: np.ndarray | None = None,
) -> pd.DataFrame:
    """Each run's class probabilities from an estimator that did not train on it: one row per run (indexed by
    run, in the order of its first scored sample), one column per class index.

    ``X`` and ``labels`` (class indices) are samples; ``runs`` names each sample's run, the groups kept whole
    on one side of a fold (a run's layers, and its re-recorded copies, which must not name the run they
    copy); ``scored`` marks the samples whose probabilities count. Folds are stratified by rule; a run's
    probabilities are the mean over its scored samples, as :func:`lrid.identify.inference.identify` averages
    a run's layers. ``named_by``, when given, names the rows instead of ``runs`` (each copy of a run apart).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels)
    runs = np.asarray(runs).astype(str)
    scored = np.asarray(scored, dtype=bool)
    n_classes = int(labels.max()) + 1
    smallest = min(len(set(runs[labels == label])) for label in range(n_classes))
    if smallest < folds:
        raise LridError(
            f"calibrating prediction sets in {folds} folds needs at least {folds} runs of every rule "
            f"(the rarest has {smallest}); generate more runs or ask for fewer folds"
        )
    probabilities = np.full((len(labels), n_classes), np.nan)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(X, labels, groups=runs):
        test = test[scored[test]]
        estimator = make_estimator().fit(X[train], labels[train])
        probabilities[test] = 0.0
        probabilities[np.ix_(test, np.asarray(estimator.classes_).astype(int))] = estimator.predict_proba(X[test])
    names = runs if named_by is None else np.asarray(named_by).astype(str)
    return pd.DataFrame(probabilities[scored]).groupby(names[scored], sort=False).mean()


def cross_fitted_calibration(
    features: Any,
    classes: Sequence[str],
    schedules: Sequence[str],
    make_estimator: Callable[[], Any],
    coverage: float = DEFAULT_COVERAGE,
    folds: int = CALIBRATION_FOLDS,
    points: int | None = None,
    points_of: Mapping[str, int] | None = None,
    layers: Sequence[str] = (),
) -> SetCalibration:
    """The :class:`SetCalibration` at ``coverage`` of an identifier trained as ``make_estimator`` on ``features``
    (:class:`lrid.identify.features.FeatureSet` of runs, recorded at ``points`` checkpoints, and their copies
    re-recorded at ``schedules``): each run and each copy named by the fold's fit without the run or any of
    its copies. The runs as recorded calibrate the threshold, the copies one per number of points, as
    ``points_of`` (a copy's id to its recorded points) counts them, else as their schedules name them.

    ``layers``, copy names among ``schedules`` that are choices of partial layers
    (:mod:`lrid.identify.partial_layers`), calibrate one threshold each (``by_layers``), for networks recorded
    at some of their layers."""
    labels = np.array([list(classes).index(rule) for rule in features.y])
    origins, copies = copy_origins(features.groups, schedules)
    everything = np.ones(len(labels), dtype=bool)
    held_out = cross_fitted_probabilities(
        features.X, labels, origins, everything, make_estimator, folds, named_by=features.groups
    )
    held_out.columns = list(classes)
    by_copy = pd.DataFrame({"rule": np.asarray(features.y), "schedule": copies}, index=np.asarray(features.groups))
    by_copy = by_copy.groupby(level=0).first().loc[held_out.index]
    return calibrate(
        held_out,
        by_copy["rule"].tolist(),
        coverage,
        f"each training run, as recorded and re-recorded, named by a fit in {folds} folds without it",
        schedule_of=by_copy["schedule"].tolist(),
        points=points,
        points_of=None if points_of is None else [points_of[copy] for copy in held_out.index],
        layers=layers,
    )
