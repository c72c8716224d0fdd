"""``linear``: median imputation of NaN statistics, standardisation, optional PCA (off by default), multinomial
logistic regression (C=0.1).

Logistic rather than Nayebi et al.'s LinearSVC because it gives calibrated class probabilities, which
``lrid identify`` averages over a run's layers. Search: C in {0.01, 0.1, 1} x PCA in {off, the components
holding 90% of the variance}, 6 configurations (a variance share rather than the paper's fixed counts,
which small inner folds cannot hold). Its importance: the mean absolute coefficient on the standardised
columns.
"""

from __future__ import annotations

from typing import Any

from lrid.identify.classifiers import ClassifierEntry, coefficient_importance, register_classifier


def make(n_jobs: int = 1, random_state: int = 0, **layout: Any) -> Any:
    """A fresh linear pipeline (``n_jobs`` and ``random_state`` do not apply: the solver is deterministic)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("pca", "passthrough"),
            ("logistic", LogisticRegression(C=0.1, max_iter=5000)),
        ]
    )


def grid() -> dict[str, list]:
    """C x PCA (see the module docstring)."""
    from sklearn.decomposition import PCA

    return {"logistic__C": [0.01, 0.1, 1.0], "pca": ["passthrough", PCA(n_components=0.9, svd_solver="full")]}


register_classifier(
    ClassifierEntry(
        "linear",
        make,
        grid,
        native_importance=coefficient_importance,
        parallel_search=True,
        order=0,
    )
)
