"""``xgb``: 100 boosted depth-3 trees (learning rate 0.2, 32 histogram bins) on 30% column samples (NaN
handled natively). Search: max_depth in {2, 3} x learning_rate in {0.1, 0.3}, 4 configurations. Its
importance: gain. Needs XGBoost (lrid's ``cpu``/``gpu`` extra)."""

from __future__ import annotations

from typing import Any

from lrid.identify.classifiers import ClassifierEntry, feature_importances, register_classifier


def make(n_jobs: int = 1, random_state: int = 0, **layout: Any) -> Any:
    """A fresh booster; ``n_jobs`` goes to its threads."""
    from xgboost import XGBClassifier

    return XGBClassifier(
        n_estimators=100,
        max_depth=3,
        learning_rate=0.2,
        max_bin=32,  # coarser than the default 256: far cheaper fits, no accuracy lost on the demo store
        subsample=0.8,
        colsample_bytree=0.3,
        tree_method="hist",
        n_jobs=n_jobs,
        random_state=random_state,
    )


def grid() -> dict[str, list]:
    """max_depth x learning_rate."""
    return {"max_depth": [2, 3], "learning_rate": [0.1, 0.3]}


register_classifier(
    ClassifierEntry(
        "xgb",
        make,
        grid,
        native_importance=feature_importances,
        requires=("xgboost",),
        order=2,
    )
)
