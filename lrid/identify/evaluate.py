"""Score classifiers on repeated balanced splits and save the fitted models.

Outputs, under the results directory:

* ``scores.json``: the settings; per classifier, accuracy per split with its mean and standard error,
  balanced accuracy, confusion matrices (counts per split, and the row-normalised mean), d' per class and,
  with search, the chosen hyperparameters per split; ``by_subset`` (one summary per observable subset);
  ``control`` (the performance-matched control, :mod:`lrid.identify.control`);
* ``predictions.parquet``: every test prediction of every split for the first observable subset, with a
  ``proba_{rule}`` column per class;
* ``models/{classifier}.json`` and its model file(s): each classifier refitted on all (training-eligible)
  samples of the first subset, saved in a format that loads without running code (skops for linear and
  rf, XGBoost's UBJSON for xgb, a ``.keras`` network for conv1d; :mod:`lrid.identify.model_files`), read
  back by :func:`lrid.identify.inference.load_fitted`.

d' per class is one-vs-rest from the confusion counts pooled over splits: hit rate H = P(predicted c |
true c), false-alarm rate F = P(predicted c | true not c), d' = z(H) - z(F) with z the standard normal
quantile. Rates are clipped to [1/(2N), 1 - 1/(2N)] (N the number of signal or noise trials), the usual
correction that keeps a perfect classifier's d' finite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtri
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from sklearn.model_selection import GridSearchCV
from tqdm.auto import tqdm

import lrid
from lrid.errors import LridError
from lrid.identify.classifiers import make_classifier, search_grid
from lrid.identify.control import curve_features, matched_bins
from lrid.identify.features import build_features, subset_columns
from lrid.identify.model_files import save_model
from lrid.identify.splits import balanced_run_splits, inner_cv, run_metadata, select_runs
from lrid.schema import TRAINED_STATUSES
from lrid.store import Store


def classified_statuses(keep_collapsed: bool = False) -> tuple[str, ...]:
    """The run statuses whose observables are classified: complete runs, and collapsed ones if asked."""
    return TRAINED_STATUSES if keep_collapsed else ("complete",)


def parse_subsets(observables: str | list[str] | tuple[str, ...]) -> list[str]:
    """Observable subsets to score one after another: ``;`` separates subsets, ``,`` combines within one."""
    texts = [observables] if isinstance(observables, str) else list(observables)
    subsets = [part.strip().replace(" ", "") for text in texts for part in text.split(";") if part.strip()]
    if not subsets:
        raise LridError("no observable subset given; use e.g. --observables all or --observables 'weight;act'")
    for subset in subsets:
        subset_columns(subset)  # validates
    return list(dict.fromkeys(subsets))


def fit_classifier(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    search: bool = False,
    n_jobs: int = 1,
    random_state: int = 0,
    n_points: int | None = None,
    n_static: int = 3,
):
    """Fit one classifier on training samples; with ``search``, choose its hyperparameters by grouped inner CV.

    Returns (fitted estimator, chosen hyperparameters or None). Only the samples given are ever seen: the
    inner folds split ``groups`` (run ids), so validation runs are never in the fold they validate.
    """
    estimator = make_classifier(name, n_jobs=n_jobs, random_state=random_state, n_points=n_points, n_static=n_static)
    if not search:
        return estimator.fit(X, y), None
    searcher = GridSearchCV(
        estimator,
        search_grid(name),
        cv=inner_cv(y, groups, seed=random_state),
        n_jobs=n_jobs if name == "linear" else 1,  # the trees parallelise themselves; conv1d is TensorFlow
        refit=True,
    )
    searcher.fit(X, y, groups=groups)
    return searcher.best_estimator_, _json_safe(searcher.best_params_)


def d_prime(confusion: np.ndarray, classes: list[str]) -> dict[str, float]:
    """One-vs-rest d' per class from confusion counts (rows true, columns predicted); see the module docstring."""
    counts = np.asarray(confusion, dtype=float)
    total = counts.sum()
    result = {}
    for index, name in enumerate(classes):
        n_signal = counts[index].sum()
        n_noise = total - n_signal
        if n_signal == 0 or n_noise == 0:
            result[name] = float("nan")
            continue
        hit = np.clip(counts[index, index] / n_signal, 1 / (2 * n_signal), 1 - 1 / (2 * n_signal))
        false_alarm = np.clip((counts[:, index].sum() - counts[index, index]) / n_noise, 1 / (2 * n_noise), 1 - 1 / (2 * n_noise))
        result[name] = float(ndtri(hit) - ndtri(false_alarm))
    return result


def classify(
    store: Store | str,
    results_dir: str | Path,
    classifiers: tuple[str, ...] = ("linear", "rf", "xgb"),
    n_splits: int = 10,
    test_fraction: float = 0.25,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool | None = None,
    *,
    observables: str | list[str] = "all",
    points: int | None = None,
    window: int | None = None,
    stride: int | None = None,
    unit: str = "layer",
    time: str = "index",
    baseline: str = "none",
    train_where: str | None = None,
    test_where: str | None = None,
    search: bool = False,
    control: bool = True,
    n_bins: int = 4,
    keep_collapsed: bool = False,
) -> dict:
    """Score each classifier on ``n_splits`` balanced splits of the store's complete runs; return the scores.

    Args:
        store, results_dir: where the runs are and where the results go.
        classifiers: names from :data:`lrid.identify.classifiers.CLASSIFIERS`.
        n_splits, test_fraction, seed: the outer splits (:func:`lrid.identify.splits.balanced_run_splits`).
        n_jobs: parallel jobs for the classifiers and the search.
        observables: observable subsets (:func:`parse_subsets`); the first one's models are saved.
        points, window, stride, unit, time, baseline: the features (:func:`lrid.identify.features.build_features`).
        train_where, test_where: held-out filters over run metadata (:func:`lrid.identify.splits.select_runs`).
        search: choose hyperparameters per split by grouped inner cross-validation.
        control: also compute the performance-matched control (:mod:`lrid.identify.control`).
        n_bins: quantile bins of final test accuracy for the control.
        keep_collapsed: also use runs with status ``collapsed`` (trained to the end, learned nothing).
    """
    store = store if isinstance(store, Store) else Store(store)
    results_dir = Path(results_dir)
    subsets = parse_subsets(observables)
    feature_options = {"points": points, "window": window, "stride": stride, "unit": unit, "time": time, "baseline": baseline}
    long_table = store.read_observables(classified_statuses(keep_collapsed))
    first = build_features(long_table, subset=subsets[0], **feature_options)
    classes = sorted(set(first.y))
    run_rules = dict(zip(first.samples["run_id"], first.samples["rule"]))
    manifests = [m for m in store.manifests() if m["run_id"] in run_rules]
    metadata = run_metadata(manifests)
    train_runs = select_runs(metadata, train_where, "--train-where") if train_where else None
    test_runs = select_runs(metadata, test_where, "--test-where") if test_where else None
    splits = balanced_run_splits(
        run_rules, n_splits=n_splits, test_fraction=test_fraction, seed=seed, train_runs=train_runs, test_runs=test_runs
    )

    location = store.location if "://" in store.location else os.path.abspath(store.location)
    scores = {
        "classifiers": {},
        "classes": classes,
        "n_samples": int(len(first.y)),
        "n_runs": len(run_rules),
        "n_features": int(first.X.shape[1]),
        "n_splits": n_splits,
        "test_fraction": test_fraction,
        "seed": seed,
        "lrid_version": lrid.__version__,
        "settings": {
            "store": location,
            "observables": ";".join(subsets),
            "time": {"points": points, "window": window, "stride": stride},
            "unit": unit,
            "time_axis": time,
            "baseline": baseline,
            "train_where": train_where,
            "test_where": test_where,
            "search": bool(search),
            "view": getattr(store, "view", None),
            "keep_collapsed": bool(keep_collapsed),
        },
        "by_subset": {},
    }
    n_fits = len(subsets) * len(classifiers) * (n_splits + 1)
    bar = tqdm(total=n_fits, desc="classify", unit="fit", disable=None if progress is None else not progress)
    predictions = None
    for subset_index, subset in enumerate(subsets):
        features = first if subset_index == 0 else build_features(long_table, subset=subset, **feature_options)
        summaries, subset_predictions = _score_subset(
            features, classes, classifiers, splits, train_runs, search, n_jobs, seed, results_dir,
            save_models=subset_index == 0, bar=bar,
        )
        scores["by_subset"][subset] = {
            name: {key: summary[key] for key in ("accuracy_mean", "accuracy_sem", "balanced_accuracy_mean")}
            for name, summary in summaries.items()
        }
        if subset_index == 0:
            scores["classifiers"] = summaries
            predictions = subset_predictions
    bar.close()

    if control:
        scores["control"] = _control(manifests, metadata, run_rules, classes, classifiers, splits, predictions, seed, n_jobs, n_bins)
    results_dir.mkdir(parents=True, exist_ok=True)
    predictions.to_parquet(results_dir / "predictions.parquet", index=False)
    (results_dir / "scores.json").write_text(json.dumps(scores, indent=2))
    return scores


def _score_subset(features, classes, classifiers, splits, train_runs, search, n_jobs, seed, results_dir, save_models, bar):
    y = np.searchsorted(classes, features.y.astype(str))
    layout = {"n_points": features.n_points, "n_static": features.n_static}
    summaries, frames = {}, []
    for name in classifiers:
        accuracies, balanced, confusions, chosen = [], [], [], []
        for split_index, (split_train, split_test) in enumerate(splits):
            train = np.isin(features.groups, split_train)
            test = np.isin(features.groups, split_test)
            model, best = fit_classifier(
                name, features.X[train], y[train], features.groups[train],
                search=search, n_jobs=n_jobs, random_state=seed + split_index, **layout,
            )
            probabilities = _probabilities(model, features.X[test], len(classes))
            predicted = np.argmax(probabilities, axis=1)
            accuracies.append(float(np.mean(predicted == y[test])))
            balanced.append(float(balanced_accuracy_score(y[test], predicted)))
            confusions.append(confusion_matrix(y[test], predicted, labels=range(len(classes))).tolist())
            chosen.append(best)
            frame = features.samples.loc[test, ["run_id", "layer", "depth_group"]].assign(
                classifier=name, split=split_index, true=features.y[test], predicted=np.asarray(classes)[predicted]
            )
            for index, rule in enumerate(classes):
                frame[f"proba_{rule}"] = probabilities[:, index]
            frames.append(frame)
            bar.update()
        summaries[name] = _summary(accuracies, balanced, confusions, classes)
        if search:
            summaries[name]["best_params_per_split"] = chosen
        if save_models:
            eligible = np.ones(len(y), bool) if train_runs is None else np.isin(features.groups, list(train_runs))
            final, best = fit_classifier(
                name, features.X[eligible], y[eligible], features.groups[eligible],
                search=search, n_jobs=n_jobs, random_state=seed, **layout,
            )
            if search:
                summaries[name]["best_params_final"] = best
            save_model(final, results_dir / "models", name, classes, features)
        bar.update()
    return summaries, pd.concat(frames, ignore_index=True)


def _probabilities(model, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities over all classes, even if the model saw only some of them."""
    known = np.asarray(model.classes_).astype(int)
    full = np.zeros((len(X), n_classes))
    full[:, known] = model.predict_proba(X)
    return full


def _control(manifests, metadata, run_rules, classes, classifiers, splits, predictions, seed, n_jobs, n_bins) -> dict:
    run_ids = sorted(run_rules)
    X, names = curve_features(manifests, run_ids)
    groups = np.asarray(run_ids, dtype=object)
    y = np.searchsorted(classes, [run_rules[r] for r in run_ids])
    baseline_classifiers = [name for name in classifiers if name != "conv1d"] or ["linear"]
    baseline = {}
    for name in baseline_classifiers:
        accuracies = []
        for split_index, (split_train, split_test) in enumerate(splits):
            train, test = np.isin(groups, split_train), np.isin(groups, split_test)
            model, _ = fit_classifier(name, X[train], y[train], groups[train], n_jobs=n_jobs, random_state=seed + split_index)
            predicted = np.argmax(_probabilities(model, X[test], len(classes)), axis=1)
            accuracies.append(float(np.mean(predicted == y[test])))
        baseline[name] = {"accuracy_mean": float(np.mean(accuracies)), "accuracy_sem": _sem(accuracies)}
    final_accuracy = metadata["final_test_accuracy"]
    by_classifier = {
        name: matched_bins(predictions[predictions["classifier"] == name], final_accuracy, n_bins)
        for name in predictions["classifier"].unique()
    }
    main = next(iter(by_classifier))
    return {
        "curve_baseline": baseline,
        "curve_features": names,
        "matched_bins": [{**entry, "classifier": main} for entry in by_classifier[main]],
        "matched_bins_by_classifier": by_classifier,
    }


def _sem(values: list[float]) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _summary(accuracies: list[float], balanced: list[float], confusions: list, classes: list[str]) -> dict:
    accuracy = np.asarray(accuracies)
    counts = np.asarray(confusions, dtype=float).sum(axis=0)
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return {
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_sem": _sem(accuracies),
        "accuracy_per_split": accuracies,
        "balanced_accuracy_mean": float(np.mean(balanced)),
        "confusion_per_split": confusions,
        "confusion_normalized": normalised.tolist(),
        "d_prime": d_prime(counts, classes),
    }


def _json_safe(params: dict) -> dict:
    return {key: value if isinstance(value, (str, int, float, bool, type(None))) else repr(value) for key, value in params.items()}
