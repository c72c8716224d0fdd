"""The classifiers that identify a rule from trajectory features, as scikit-learn estimators, with search grids.

Defaults (used with ``--no-search``, the default) are fixed, sensible settings for a few hundred samples
with ~1,000 features on a small machine:

* ``linear``: median imputation of NaN statistics, standardisation, optional PCA (off by default),
  multinomial logistic regression (C=0.1). Logistic rather than Nayebi et al.'s LinearSVC because it gives
  calibrated class probabilities, which ``lrid identify`` averages over a run's layers;
* ``rf``: a random forest of 300 trees (NaN handled natively);
* ``xgb``: 100 boosted depth-3 trees (learning rate 0.2, 32 histogram bins) on 30% column samples
  (NaN handled natively);
* ``conv1d``: Nayebi et al.'s one-layer temporal convolution + linear softmax readout
  (:class:`lrid.identify.conv1d.Conv1DClassifier`), 20 filters of width 6, average pooling.

Search grids (``--search``; inner cross-validation grouped by run, see :func:`lrid.identify.splits.inner_cv`)
are small cuts of the paper's (15 RF, 84 SVM, 720 Conv1D configurations), sized for a 2-core machine:
10 splits x up to 5 inner folds x the grid's size fits per classifier.

* ``linear``: C in {0.01, 0.1, 1} x PCA in {off, the components holding 90% of the variance}: 6
  configurations (a variance share rather than the paper's fixed counts, which small inner folds cannot hold);
* ``rf``: max_features in {sqrt, log2} x n_estimators in {100, 300}: 4;
* ``xgb``: max_depth in {2, 3} x learning_rate in {0.1, 0.3}: 4;
* ``conv1d``: kernel_size in {1, 6} (a fraction of the trajectory: pointwise, or ~quarter of 21 points)
  x pooling in {avg, flatten}: 4.

A searched classifier costs about (inner folds x grid size + 1) plain fits per split; on the demo store
``--search --splits 2`` with linear and xgb took 4.5 minutes on 2 busy cores. ``n_jobs`` goes to the
trees (rf, xgb) and to the linear search's folds; conv1d runs on TensorFlow's own thread pools.
"""

from __future__ import annotations

from sklearn.base import ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from lrid.errors import LridError

CLASSIFIERS = ("linear", "rf", "xgb", "conv1d")


def make_classifier(
    name: str, n_jobs: int = 1, random_state: int = 0, *, n_points: int | None = None, n_static: int = 3
) -> ClassifierMixin:
    """A fresh, unfitted classifier; labels must be integers 0..n_classes-1.

    ``n_points`` and ``n_static`` describe the feature layout (see :class:`lrid.identify.features.FeatureSet`);
    only ``conv1d`` needs them, to fold the columns back into [time, channel].
    """
    if name == "linear":
        from sklearn.preprocessing import StandardScaler

        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("pca", "passthrough"),
                ("logistic", LogisticRegression(C=0.1, max_iter=5000)),
            ]
        )
    if name == "rf":
        return RandomForestClassifier(n_estimators=300, n_jobs=n_jobs, random_state=random_state)
    if name == "xgb":
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=100,
            max_depth=3,
            learning_rate=0.2,
            max_bin=32,  # 8x faster than the default 256 bins at the same accuracy on the demo store
            subsample=0.8,
            colsample_bytree=0.3,
            tree_method="hist",
            n_jobs=n_jobs,
            random_state=random_state,
        )
    if name == "conv1d":
        from lrid.identify.conv1d import Conv1DClassifier

        if not n_points:
            raise LridError("the conv1d classifier needs the trajectory length (n_points) of the features")
        return Conv1DClassifier(n_points=n_points, n_static=n_static, random_state=random_state)
    raise LridError(f"unknown classifier {name!r}; choose from {', '.join(CLASSIFIERS)}")


def search_grid(name: str) -> dict[str, list]:
    """The hyperparameter grid searched for ``name`` with ``--search`` (see the module docstring)."""
    if name == "linear":
        return {"logistic__C": [0.01, 0.1, 1.0], "pca": ["passthrough", PCA(n_components=0.9, svd_solver="full")]}
    if name == "rf":
        return {"max_features": ["sqrt", "log2"], "n_estimators": [100, 300]}
    if name == "xgb":
        return {"max_depth": [2, 3], "learning_rate": [0.1, 0.3]}
    if name == "conv1d":
        return {"kernel_size": [1, 6], "pooling": ["avg", "flatten"]}
    raise LridError(f"unknown classifier {name!r}; choose from {', '.join(CLASSIFIERS)}")
