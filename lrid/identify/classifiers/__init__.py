"""The classifiers that identify a rule from trajectory features: a table of entries, one module each.

Each module of this package registers one :class:`ClassifierEntry` with :func:`register_classifier`: its
name, a factory for a fresh scikit-learn estimator, the hyperparameter grid that ``--search`` explores,
the estimator's own per-column importance (or none), and what it needs installed. ``lrid classify``,
:mod:`lrid.identify.evaluate` and :mod:`lrid.identify.importance` read only this table, so a new
classifier is one new module here (every module of the package is imported when the table is first
read), or one module of your own package that calls :func:`register_classifier`, imported before use
or exposed in the ``lrid.classifiers`` entry-point group (see README, "Extending lrid").

Defaults (used with ``--no-search``, the default) are fixed, sensible settings for a few hundred samples
with ~1,000 features on a small machine; search grids (``--search``; inner cross-validation grouped by
run, see :func:`lrid.identify.splits.inner_cv`) are small cuts of the paper's (15 RF, 84 SVM, 720 Conv1D
configurations), sized for a 2-core machine: 10 splits x up to 5 inner folds x the grid's size fits per
classifier. Each module's docstring gives its settings and grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrid.registry import Registry


@dataclass(frozen=True)
class ClassifierEntry:
    """One classifier of the table.

    Attributes:
        name: what ``--classifiers`` and ``scores.json`` call it.
        factory: ``factory(n_jobs=, random_state=, n_points=, n_static=)`` -> a fresh, unfitted scikit-learn
            classifier whose labels are integers 0..n_classes-1. ``n_points``/``n_static`` describe the
            feature layout (:class:`lrid.identify.features.FeatureSet`); ``n_points`` is None for features
            that are not trajectories (the performance-matched control's curve features).
        grid: ``grid()`` -> the hyperparameter grid ``--search`` explores (parameter name -> values).
        native_importance: ``native_importance(fitted, n_features)`` -> the estimator's own importance per
            column, or None when it has none (only the permutation kind is then reported).
        requires: modules from lrid's install extras it needs (checked before a command starts).
        needs_tensorflow: it trains on TensorFlow (its fits run on TensorFlow's threads, not ``n_jobs``).
        parallel_search: the inner search may run its folds in ``n_jobs`` processes (False where the
            estimator parallelises itself, or cannot be copied into workers).
        any_features: it fits any flat feature table, so it also scores the control's curve features.
        trusted_types: the ``module.Class`` names its fitted estimator is made of beyond those of lrid's
            built-in classifiers (:data:`lrid.identify.model_files.TRUSTED_TYPES`), so that its saved skops
            files load.
        order: where it sits in listings (smaller first).
    """

    name: str
    factory: Callable[..., Any]
    grid: Callable[[], dict[str, list]]
    native_importance: Callable[[Any, int], np.ndarray] | None = None
    requires: tuple[str, ...] = ()
    needs_tensorflow: bool = False
    parallel_search: bool = False
    any_features: bool = True
    trusted_types: tuple[str, ...] = ()
    order: int = 100


#: the table: every registered classifier by name, the built-ins first
CLASSIFIERS: Registry[ClassifierEntry] = Registry(
    __name__, "lrid.classifiers", "classifier", order=lambda entry: entry.order
)


def register_classifier(entry: ClassifierEntry) -> ClassifierEntry:
    """Add ``entry`` to the table; a second, different entry under a taken name is an error."""
    return CLASSIFIERS.add(entry.name, entry, replace=False)


def get_classifier(name: str) -> ClassifierEntry:
    """The entry registered as ``name``; an unknown name is a one-line error listing the known ones."""
    return CLASSIFIERS.get_entry(name)


def make_classifier(
    name: str, n_jobs: int = 1, random_state: int = 0, *, n_points: int | None = None, n_static: int = 3
) -> Any:
    """A fresh, unfitted classifier ``name`` (its entry's factory); labels must be integers 0..n_classes-1."""
    return get_classifier(name).factory(n_jobs=n_jobs, random_state=random_state, n_points=n_points, n_static=n_static)


def search_grid(name: str) -> dict[str, list]:
    """The hyperparameter grid searched for ``name`` with ``--search``."""
    return get_classifier(name).grid()


def feature_importances(model: Any, n_features: int) -> np.ndarray:
    """A tree ensemble's ``feature_importances_`` (impurity decrease, or XGBoost's gain) as a share of the total."""
    return _shares(np.asarray(_last_step(model).feature_importances_, dtype=float), n_features)


def coefficient_importance(model: Any, n_features: int) -> np.ndarray:
    """A linear model's mean absolute coefficient over classes, as a share of the total (NaN after PCA, whose
    components are not the columns). Comparable only when the inputs were standardised."""
    return _shares(np.abs(np.asarray(_last_step(model).coef_, dtype=float)).mean(axis=0), n_features)


def _last_step(model: Any) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model


def _shares(values: np.ndarray, n_features: int) -> np.ndarray:
    if values.shape != (n_features,):
        return np.full(n_features, np.nan)
    total = values.sum()
    return values / total if total > 0 else values
