"""The classifiers that identify a rule from trajectory features, as scikit-learn estimators.

Settings are fixed, sensible defaults for a few hundred samples with ~1,000 features on a small machine:

* ``linear``: median imputation of NaN statistics, standardisation, multinomial logistic regression;
* ``rf``: a random forest of 300 trees (NaN handled natively);
* ``xgb``: 200 boosted depth-3 trees on 30% column samples (NaN handled natively).
"""

from __future__ import annotations

from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lrid.errors import LridError

CLASSIFIERS = ("linear", "rf", "xgb")


def make_classifier(name: str, n_jobs: int = 1, random_state: int = 0) -> ClassifierMixin:
    """A fresh, unfitted classifier; labels must be integers 0..n_classes-1."""
    if name == "linear":
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=0.1, max_iter=5000),
        )
    if name == "rf":
        return RandomForestClassifier(n_estimators=300, n_jobs=n_jobs, random_state=random_state)
    if name == "xgb":
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=200,
            max_depth=3,
            learning_rate=0.1,
            subsample=0.8,
            colsample_bytree=0.3,
            tree_method="hist",
            n_jobs=n_jobs,
            random_state=random_state,
        )
    raise LridError(f"unknown classifier {name!r}; choose from {', '.join(CLASSIFIERS)}")
