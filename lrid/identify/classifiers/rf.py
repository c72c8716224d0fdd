"""``rf``: a random forest of 300 trees (NaN handled natively). Search: max_features in {sqrt, log2} x
n_estimators in {100, 300}, 4 configurations. Its importance: impurity decrease."""

from __future__ import annotations

from typing import Any

from lrid.identify.classifiers import ClassifierEntry, feature_importances, register_classifier


def make(n_jobs: int = 1, random_state: int = 0, **layout: Any) -> Any:
    """A fresh forest; ``n_jobs`` goes to its trees."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=300, n_jobs=n_jobs, random_state=random_state)


def grid() -> dict[str, list]:
    """max_features x n_estimators."""
    return {"max_features": ["sqrt", "log2"], "n_estimators": [100, 300]}


register_classifier(ClassifierEntry("rf", make, grid, native_importance=feature_importances, order=1))
