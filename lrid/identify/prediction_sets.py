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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lrid.errors import LridError
from lrid.identify.schedules import AS_RECORDED, copy_origins
from lrid.schema import SetCalibration

# The coverage lrid calibrates its sets at, and names them by ("at 90 %").
DEFAULT_COVERAGE = 0.9
CALIBRATION_FOLDS = 5
# The columns lrid.identify.inference.identify adds for a model with calibrated sets.
SET_COLUMNS = ("prediction_set", "set_coverage")


def calibrate(probabilities: pd.DataFrame, true_rules: Sequence[str], coverage: float, method: str) -> SetCalibration:
    """The :class:`~lrid.schema.SetCalibration` at ``coverage`` of held-out runs: ``probabilities`` (one row
    per run, one column per rule) from models that did not train on them, ``true_rules`` their rules."""
    columns = pd.Index(probabilities.columns)
    true_probabilities = probabilities.to_numpy(dtype=float)[
        np.arange(len(probabilities)), columns.get_indexer(true_rules)
    ]
    threshold = conformal_threshold(true_probabilities, coverage)
    held, mean_size = coverage_and_size(prediction_sets(probabilities, threshold), list(true_rules))
    return SetCalibration(
        coverage=coverage, threshold=threshold, runs=len(probabilities), method=method, held=held, mean_size=mean_size
    )


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
    rank = math.ceil((probabilities.size + 1) * coverage)
    if rank > probabilities.size:
        return 0.0
    # The rank-th smallest score 1 - p is the rank-th largest p, taken as it is: 1 - (1 - p) can round above
    # p and drop the very run that sets the threshold.
    return float(np.sort(probabilities)[::-1][rank - 1])


def prediction_sets(probabilities: pd.DataFrame, threshold: float) -> list[list[str]]:
    """Per row of ``probabilities`` (one column per rule): the rules with probability at least ``threshold``,
    most probable first. The most probable rule is always in, so no set is empty (which only widens them)."""
    values = probabilities.to_numpy(dtype=float)
    rules = np.asarray(probabilities.columns)
    sets = []
    for row in values:
        order = np.argsort(-row, kind="stable")
        sets.append([str(rules[i]) for k, i in enumerate(order) if k == 0 or row[i] >= threshold])
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
) -> pd.DataFrame:
    """Each run's class probabilities from an estimator that did not train on it: one row per run (indexed by
    run, in the order of its first scored sample), one column per class index.

    ``X`` and ``labels`` (class indices) are samples; ``runs`` names each sample's run, the groups kept whole
    on one side of a fold (a run's layers, and its re-recorded copies, which must not name the run they
    copy); ``scored`` marks the samples whose probabilities count (the runs as recorded, not their copies).
    Folds are stratified by rule; a run's probabilities are the mean over its scored samples, as
    :func:`lrid.identify.inference.identify` averages a run's layers.
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
    return pd.DataFrame(probabilities[scored]).groupby(runs[scored], sort=False).mean()


def cross_fitted_calibration(
    features: Any,
    classes: Sequence[str],
    schedules: Sequence[str],
    make_estimator: Callable[[], Any],
    coverage: float = DEFAULT_COVERAGE,
    folds: int = CALIBRATION_FOLDS,
) -> SetCalibration:
    """The :class:`SetCalibration` at ``coverage`` of an identifier trained as ``make_estimator`` on ``features``
    (:class:`lrid.identify.features.FeatureSet` of runs and their copies re-recorded at ``schedules``): each
    run as recorded named by the fold's fit without it or its copies."""
    labels = np.array([list(classes).index(rule) for rule in features.y])
    origins, copies = copy_origins(features.groups, schedules)
    held_out = cross_fitted_probabilities(features.X, labels, origins, copies == AS_RECORDED, make_estimator, folds)
    rule_of_run = pd.Series(np.asarray(features.y), index=origins).groupby(level=0).first()
    held_out.columns = list(classes)
    method = f"each training run as recorded, named by a fit in {folds} folds without it"
    return calibrate(held_out, rule_of_run.loc[held_out.index].tolist(), coverage, method)
