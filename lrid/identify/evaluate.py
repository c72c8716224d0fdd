"""Score classifiers on repeated balanced splits and save the fitted models.

Outputs, under the results directory:

* ``scores.json``: per classifier, accuracy per split with its mean and standard error, balanced accuracy,
  and confusion matrices (counts per split, and the row-normalised mean);
* ``predictions.parquet``: every test prediction of every split;
* ``models/{classifier}.joblib``: each classifier refitted on all samples. joblib files are pickles:
  load them only from sources you trust.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from tqdm.auto import tqdm

import lrid
from lrid.identify.classifiers import make_classifier
from lrid.identify.features import build_features
from lrid.identify.splits import balanced_run_splits
from lrid.store import Store


def classify(
    store: Store | str,
    results_dir: str | Path,
    classifiers: tuple[str, ...] = ("linear", "rf", "xgb"),
    n_splits: int = 10,
    test_fraction: float = 0.25,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool | None = None,
) -> dict:
    """Score each classifier on ``n_splits`` balanced splits of the store's complete runs; return the scores."""
    store = store if isinstance(store, Store) else Store(store)
    results_dir = Path(results_dir)
    features = build_features(store.read_observables(("complete",)))
    classes = sorted(set(features.y))
    y = np.searchsorted(classes, features.y.astype(str))
    run_rules = dict(zip(features.samples["run_id"], features.samples["rule"]))
    splits = balanced_run_splits(run_rules, n_splits=n_splits, test_fraction=test_fraction, seed=seed)

    scores = {
        "classifiers": {},
        "classes": classes,
        "n_samples": int(len(y)),
        "n_runs": len(run_rules),
        "n_features": int(features.X.shape[1]),
        "n_splits": n_splits,
        "test_fraction": test_fraction,
        "seed": seed,
        "lrid_version": lrid.__version__,
    }
    predictions = []
    bar = tqdm(total=len(classifiers) * len(splits), desc="classify", unit="fit", disable=None if progress is None else not progress)
    for name in classifiers:
        accuracies, balanced, confusions = [], [], []
        for split_index, (train_runs, test_runs) in enumerate(splits):
            train = np.isin(features.groups, train_runs)
            test = np.isin(features.groups, test_runs)
            model = make_classifier(name, n_jobs=n_jobs, random_state=seed + split_index)
            model.fit(features.X[train], y[train])
            predicted = np.asarray(model.predict(features.X[test])).astype(int)
            accuracies.append(float(np.mean(predicted == y[test])))
            balanced.append(float(balanced_accuracy_score(y[test], predicted)))
            confusions.append(confusion_matrix(y[test], predicted, labels=range(len(classes))).tolist())
            predictions.append(
                features.samples.loc[test, ["run_id", "layer", "depth_group"]].assign(
                    classifier=name, split=split_index, true=features.y[test], predicted=np.asarray(classes)[predicted]
                )
            )
            bar.update()
        scores["classifiers"][name] = _summary(accuracies, balanced, confusions)
        final = make_classifier(name, n_jobs=n_jobs, random_state=seed).fit(features.X, y)
        (results_dir / "models").mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {"model": final, "classes": classes, "feature_names": features.feature_names, "lrid_version": lrid.__version__},
            results_dir / "models" / f"{name}.joblib",
        )
    bar.close()

    results_dir.mkdir(parents=True, exist_ok=True)
    pd.concat(predictions, ignore_index=True).to_parquet(results_dir / "predictions.parquet", index=False)
    (results_dir / "scores.json").write_text(json.dumps(scores, indent=2))
    return scores


def _summary(accuracies: list[float], balanced: list[float], confusions: list) -> dict:
    accuracy = np.asarray(accuracies)
    counts = np.asarray(confusions, dtype=float).sum(axis=0)
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return {
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_sem": float(accuracy.std(ddof=1) / np.sqrt(len(accuracy))) if len(accuracy) > 1 else 0.0,
        "accuracy_per_split": accuracies,
        "balanced_accuracy_mean": float(np.mean(balanced)),
        "confusion_per_split": confusions,
        "confusion_normalized": normalised.tolist(),
    }
