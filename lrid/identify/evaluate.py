"""Score classifiers on repeated balanced splits and save the fitted models.

Outputs, under the results directory:

* ``scores.json``: the settings; per classifier, accuracy per split with its mean and standard error,
  balanced accuracy, confusion matrices (counts per split, and the row-normalised mean), d' per class and,
  with search, the chosen hyperparameters per split; ``by_subset`` (one summary per observable subset);
  ``control`` (the performance-matched control, :mod:`lrid.identify.control`); ``splits``, the run ids of
  each outer split. Its shape is :class:`lrid.schema.Scores`;
* ``predictions.parquet``: every test prediction of every split for the first observable subset, with a
  ``proba_{rule}`` column per class;
* ``models/{classifier}.json`` and its model file(s): each classifier refitted on all (training-eligible)
  samples of the first subset, saved in a format that loads without running code (skops for linear and
  rf, XGBoost's UBJSON for xgb, a ``.keras`` network for conv1d; :mod:`lrid.identify.model_files`), read
  back by :func:`lrid.identify.inference.load_fitted`;
* ``split_models/{classifier}/split{k}.*``: the model fitted on each outer split (first subset), in the
  same formats, so that :mod:`lrid.identify.importance` measures what was scored without refitting.

d' per class is one-vs-rest from the confusion counts pooled over splits: hit rate H = P(predicted c |
true c), false-alarm rate F = P(predicted c | true not c), d' = z(H) - z(F) with z the standard normal
quantile. Rates are clipped to [1/(2N), 1 - 1/(2N)] (N the number of signal or noise trials), the usual
correction that keeps a perfect classifier's d' finite.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from sklearn.model_selection import GridSearchCV
from tqdm.auto import tqdm

import lrid
from lrid.errors import LridError
from lrid.identify.classifiers import get_classifier
from lrid.identify.control import curve_features, matched_bins
from lrid.identify.features import FeatureSet, build_features, subset_columns
from lrid.identify.model_files import save_model
from lrid.identify.partial_layers import check_partial, with_copies
from lrid.identify.prediction_sets import DEFAULT_COVERAGE, calibrate
from lrid.identify.schedules import (
    AS_RECORDED,
    copy_origins,
    parse_schedule,
    points_per_run,
    recorded_points,
)
from lrid.identify.splits import balanced_run_splits, inner_cv, run_metadata, select_runs
from lrid.schema import (
    TRAINED_STATUSES,
    ClassifierScores,
    ClassifySpec,
    ControlScores,
    MatchedBin,
    RunSplit,
    Scores,
    ScoreSettings,
    SetCalibration,
    SubsetScores,
    TimeSettings,
)
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
) -> tuple[Any, dict[str, Any] | None]:
    """Fit one classifier on training samples; with ``search``, choose its hyperparameters by grouped inner CV.

    Returns (fitted estimator, chosen hyperparameters or None). Only the samples given are ever seen: the
    inner folds split ``groups`` (run ids), so validation runs are never in the fold they validate.
    """
    entry = get_classifier(name)
    estimator = entry.factory(n_jobs=n_jobs, random_state=random_state, n_points=n_points, n_static=n_static)
    if not search:
        return estimator.fit(X, y), None
    searcher = GridSearchCV(
        estimator,
        entry.grid(),
        cv=inner_cv(y, groups, seed=random_state),
        n_jobs=n_jobs if entry.parallel_search else 1,
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
        false_alarm = np.clip(
            (counts[:, index].sum() - counts[index, index]) / n_noise, 1 / (2 * n_noise), 1 - 1 / (2 * n_noise)
        )
        result[name] = float(ndtri(hit) - ndtri(false_alarm))
    return result


def classify(
    spec: ClassifySpec | Store | str | Path,
    results_dir: str | Path | None = None,
    *,
    progress: bool | None = None,
    **options: Any,
) -> Scores:
    """Score each classifier on ``n_splits`` balanced splits of the store's complete runs; write and return
    the scores.

    ``spec`` says everything (:class:`lrid.schema.ClassifySpec`). For convenience, a store (a
    :class:`~lrid.store.Store`, a directory or a URI) with ``results_dir`` and the spec's other fields as
    keywords builds the spec here: ``classify("store", "results", classifiers=("rf",), n_splits=3)``.
    ``progress`` shows a progress bar (None: only on a terminal).
    """
    if not isinstance(spec, ClassifySpec):
        if results_dir is None:
            raise LridError("classify needs a results directory: classify(store, results_dir, ...) or a ClassifySpec")
        where = {"store": spec.location, "view": spec.view} if isinstance(spec, Store) else {"store": spec}
        spec = ClassifySpec.build(**where, results_dir=results_dir, **options)
    elif results_dir is not None or options:
        raise LridError("classify takes either a ClassifySpec or a store with keywords, not both")
    entries = [get_classifier(name) for name in spec.classifiers]
    store = Store(spec.store, view=spec.view)
    results_dir = Path(spec.results_dir)
    subsets = parse_subsets(spec.observables)
    feature_options: dict[str, Any] = {
        "points": spec.points,
        "window": spec.window,
        "stride": spec.stride,
        "unit": spec.unit,
        "time": spec.time,
        "baseline": spec.baseline,
        "depth_contrasts": spec.depth_contrasts,
    }
    schedules = _checked_schedules(spec)
    partial = _checked_partial(spec)
    recorded_table = store.read_observables(classified_statuses(spec.keep_collapsed))
    points = round(recorded_points(recorded_table)) if not recorded_table.empty else None
    long_table = with_copies(recorded_table, schedules, partial)

    points_of = points_per_run(long_table)
    copies = schedules + partial

    def features_of(subset: str):
        return _with_origins(build_features(long_table, subset=subset, **feature_options), copies, points_of)

    first = features_of(subsets[0])
    classes = sorted(set(first.y))
    as_recorded = (first.samples["schedule"] == AS_RECORDED).to_numpy()
    run_rules = dict(zip(first.samples["run_id"][as_recorded], first.samples["rule"][as_recorded]))
    manifests = [m for m in store.manifests() if m["run_id"] in run_rules]
    metadata = run_metadata(manifests)
    train_runs = select_runs(metadata, spec.train_where, "--train-where") if spec.train_where else None
    test_runs = select_runs(metadata, spec.test_where, "--test-where") if spec.test_where else None
    splits = balanced_run_splits(
        run_rules,
        n_splits=spec.n_splits,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
        train_runs=train_runs,
        test_runs=test_runs,
    )

    n_fits = len(subsets) * len(entries) * (spec.n_splits + 1)
    bar = tqdm(total=n_fits, desc="classify", unit="fit", disable=None if progress is None else not progress)
    by_subset, main, predictions = {}, {}, None
    for subset_index, subset in enumerate(subsets):
        features = first if subset_index == 0 else features_of(subset)
        summaries, subset_predictions = _score_subset(
            spec,
            features,
            classes,
            entries,
            splits,
            train_runs,
            results_dir,
            save_models=subset_index == 0,
            bar=bar,
            recorded=points,
        )
        by_subset[subset] = {name: summary.summary() for name, summary in summaries.items()}
        if subset_index == 0:
            main, predictions = summaries, subset_predictions
    bar.close()

    location = store.location if "://" in store.location else os.path.abspath(store.location)
    scores = Scores(
        classifiers=main,
        classes=classes,
        n_samples=int(as_recorded.sum()),
        n_runs=len(run_rules),
        n_features=int(first.X.shape[1]),
        n_splits=spec.n_splits,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
        lrid_version=lrid.__version__,
        settings=ScoreSettings(
            store=location,
            observables=";".join(subsets),
            time=TimeSettings(points=spec.points, window=spec.window, stride=spec.stride),
            unit=spec.unit,
            time_axis=spec.time,
            baseline=spec.baseline,
            depth_contrasts=spec.depth_contrasts,
            train_where=spec.train_where,
            test_where=spec.test_where,
            search=spec.search,
            view=store.view,
            keep_collapsed=spec.keep_collapsed,
            schedules=list(schedules),
            partial_layers=list(partial),
        ),
        by_subset=by_subset,
        splits=[RunSplit(train=sorted(map(str, train)), test=sorted(map(str, test))) for train, test in splits],
    )
    if spec.control:
        scores.control = _control(spec, manifests, metadata, run_rules, classes, entries, splits, predictions)
    results_dir.mkdir(parents=True, exist_ok=True)
    assert predictions is not None  # set by the first subset, and there is always one
    predictions.to_parquet(results_dir / "predictions.parquet", index=False)
    (results_dir / "scores.json").write_text(scores.to_json())
    return scores


def _checked_partial(spec: ClassifySpec) -> tuple[str, ...]:
    """The spec's partial layers, each a valid name, once each; they need the run unit, where a run's
    layers make one sample (with the layer unit every layer is its own sample already)."""
    partial = check_partial(spec.partial_layers)
    if partial and spec.unit != "run":
        raise LridError("--partial-layers trains on runs seen at some of their layers, which needs --unit run")
    return partial


def _checked_schedules(spec: ClassifySpec) -> tuple[str, ...]:
    """The spec's checkpoint schedules, each a valid name, once each; they need a time axis whose columns do
    not depend on how many points a run has."""
    schedules = tuple(dict.fromkeys(spec.schedules))
    for name in schedules:
        parse_schedule(name)
    if schedules and spec.time == "index":
        raise LridError(
            "--schedules re-records runs at fewer points, which time=index cannot compare; "
            "add --time fraction or --time progress"
        )
    return schedules


def _with_origins(features: FeatureSet, schedules: tuple[str, ...], points_of: pd.Series) -> FeatureSet:
    """``features`` of :func:`rerecorded` observables with every copy grouped with its original run, so that
    splits and inner folds keep a run and its copies on one side, ``samples["schedule"]`` saying which
    schedule each sample was re-recorded at (:data:`AS_RECORDED` for the runs themselves) and
    ``samples["points"]`` how many points it then has (``points_of``, by the copy's own run id)."""
    origins, labels = copy_origins(features.samples["run_id"], schedules)
    points = points_of.reindex(features.samples["run_id"]).to_numpy()
    samples = features.samples.assign(run_id=origins, schedule=labels, points=points)
    return replace(features, groups=origins, samples=samples)


def _score_subset(
    spec: ClassifySpec,
    features,
    classes,
    entries,
    splits,
    train_runs,
    results_dir: Path,
    save_models,
    bar,
    recorded: int | None = None,
):
    """Each classifier's scores on one observable subset; with ``save_models``, each split's fitted model is
    saved too (:func:`split_model_path`, read back by importance instead of refitting) and the final model,
    with its prediction sets calibrated on the splits' test runs (recorded at ``recorded`` points)."""
    y = np.searchsorted(classes, features.y.astype(str))
    layout = {"n_points": features.n_points, "n_static": features.n_static}
    fit_options = {"search": spec.search, "n_jobs": spec.n_jobs, **layout}
    schedule_of = features.samples["schedule"].to_numpy()
    schedules = [AS_RECORDED, *dict.fromkeys(spec.schedules), *dict.fromkeys(spec.partial_layers)]
    as_recorded = schedule_of == AS_RECORDED
    summaries, frames = {}, []
    for entry in entries:
        name = entry.name
        if save_models:  # a model of an earlier classify into this folder must not pass for one of this run's splits
            shutil.rmtree(split_model_path(results_dir, name, 0).parent, ignore_errors=True)
        accuracies, balanced, confusions, chosen, tested_frames, calibration_frames = [], [], [], [], [], []
        by_schedule: dict[str, list[float]] = {schedule: [] for schedule in schedules}
        for split_index, (split_train, split_test) in enumerate(splits):
            train = np.isin(features.groups, split_train)
            tested = np.isin(features.groups, split_test)
            test = tested & as_recorded
            model, best = fit_classifier(
                name,
                features.X[train],
                y[train],
                features.groups[train],
                random_state=spec.seed + split_index,
                **fit_options,
            )
            if save_models:
                split_path = split_model_path(results_dir, name, split_index)
                save_model(model, split_path.parent, split_path.name, classes, features, spec.partial_layers)
            tested_probabilities = _probabilities(model, features.X[tested], len(classes))
            tested_predicted = np.argmax(tested_probabilities, axis=1)
            for schedule in schedules:
                at = schedule_of[tested] == schedule
                by_schedule[schedule].append(float(np.mean(tested_predicted[at] == y[tested][at])))
            probabilities = tested_probabilities[as_recorded[tested]]
            predicted = tested_predicted[as_recorded[tested]]
            accuracies.append(float(np.mean(predicted == y[test])))
            balanced.append(float(balanced_accuracy_score(y[test], predicted)))
            confusions.append(confusion_matrix(y[test], predicted, labels=range(len(classes))).tolist())
            chosen.append(best)
            frame = features.samples.loc[test, ["run_id", "layer", "depth_group"]].assign(
                classifier=name, split=split_index, true=features.y[test], predicted=np.asarray(classes)[predicted]
            )
            for index, rule in enumerate(classes):
                frame[f"proba_{rule}"] = probabilities[:, index]
            tested_frames.append(frame)
            calibration_frames.append(
                pd.DataFrame(tested_probabilities, columns=classes).assign(
                    split=split_index,
                    run_id=features.groups[tested],
                    schedule=schedule_of[tested],
                    points=features.samples["points"].to_numpy()[tested],
                    true=features.y[tested],
                )
            )
            bar.update()
        frames += tested_frames
        summary = _summary(accuracies, balanced, confusions, classes)
        if spec.search:
            summary["best_params_per_split"] = chosen
        if len(schedules) > 1:
            summary["accuracy_by_schedule"] = by_schedule
        if save_models:
            eligible = np.ones(len(y), bool) if train_runs is None else np.isin(features.groups, list(train_runs))
            final, best = fit_classifier(
                name,
                features.X[eligible],
                y[eligible],
                features.groups[eligible],
                random_state=spec.seed,
                **fit_options,
            )
            if spec.search:
                summary["best_params_final"] = best
            calibration = _split_calibration(
                pd.concat(calibration_frames, ignore_index=True), classes, len(splits), recorded, spec.partial_layers
            )
            summary["prediction_sets"] = calibration
            save_model(
                final, results_dir / "models", name, classes, features, spec.partial_layers, prediction_sets=calibration
            )
        summaries[name] = ClassifierScores(**summary)
        bar.update()
    return summaries, pd.concat(frames, ignore_index=True)


def _split_calibration(
    tested: pd.DataFrame, classes, n_splits: int, points: int | None, partial_layers=()
) -> SetCalibration:
    """The saved model's prediction sets, calibrated on the splits' test runs (``tested``: one row per test
    sample, as recorded or re-recorded, with its split, run, schedule, true rule and a probability column per
    class): each run's class probabilities averaged over its layers and over the splits that tested it, each
    from a model that never trained on it (the splits overlap, so this is cross-conformal rather than exact
    split-conformal). The runs as recorded calibrate the threshold; their copies at each number of points
    (``tested["points"]``), one threshold each, and their copies at each of ``partial_layers``, one each."""
    classes = list(classes)
    per_split = tested.groupby(["split", "run_id", "schedule"], sort=False)[classes].mean()
    per_run = per_split.groupby(level=["run_id", "schedule"], sort=False).mean()
    first = tested.groupby(["run_id", "schedule"], sort=False)[["true", "points"]].first().loc[per_run.index]
    true_rules = first["true"]
    method = f"the test runs of {n_splits} balanced splits, each named by its split's model"
    return calibrate(
        per_run,
        true_rules.astype(str).tolist(),
        DEFAULT_COVERAGE,
        method,
        schedule_of=per_run.index.get_level_values("schedule").tolist(),
        points=points,
        points_of=first["points"].astype(int).tolist(),
        layers=partial_layers,
    )


def split_model_path(results_dir: Path, classifier: str, split_index: int) -> Path:
    """Where ``classify`` saves the model it fitted on one outer split (a model name without suffix)."""
    return Path(results_dir) / "split_models" / classifier / f"split{split_index}"


def _probabilities(model, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities over all classes, even if the model saw only some of them."""
    known = np.asarray(model.classes_).astype(int)
    full = np.zeros((len(X), n_classes))
    full[:, known] = model.predict_proba(X)
    return full


def _control(
    spec: ClassifySpec, manifests, metadata, run_rules, classes, entries, splits, predictions
) -> ControlScores:
    run_ids = sorted(run_rules)
    X, names = curve_features(manifests, run_ids)
    groups = np.asarray(run_ids, dtype=object)
    y = np.searchsorted(classes, [run_rules[r] for r in run_ids])
    baseline_classifiers = [entry.name for entry in entries if entry.any_features] or ["linear"]
    baseline = {}
    for name in baseline_classifiers:
        accuracies = []
        for split_index, (split_train, split_test) in enumerate(splits):
            train, test = np.isin(groups, split_train), np.isin(groups, split_test)
            model, _ = fit_classifier(
                name, X[train], y[train], groups[train], n_jobs=spec.n_jobs, random_state=spec.seed + split_index
            )
            predicted = np.argmax(_probabilities(model, X[test], len(classes)), axis=1)
            accuracies.append(float(np.mean(predicted == y[test])))
        baseline[name] = SubsetScores(accuracy_mean=float(np.mean(accuracies)), accuracy_sem=_sem(accuracies))
    final_accuracy = metadata["final_test_accuracy"]
    by_classifier = {
        name: [
            MatchedBin(**entry)
            for entry in matched_bins(predictions[predictions["classifier"] == name], final_accuracy, spec.n_bins)
        ]
        for name in predictions["classifier"].unique()
    }
    main = next(iter(by_classifier))
    return ControlScores(
        curve_baseline=baseline,
        curve_features=names,
        matched_bins=[bin_.model_copy(update={"classifier": main}) for bin_ in by_classifier[main]],
        matched_bins_by_classifier=by_classifier,
    )


def _sem(values: list[float]) -> float:
    array = np.asarray(values, dtype=float)
    return float(array.std(ddof=1) / np.sqrt(len(array))) if len(array) > 1 else 0.0


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
    return {
        key: value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        for key, value in params.items()
    }
