"""Which observables identify the rule: importance aggregated by observable, measure, function, statistic,
depth or time, over the same balanced splits that scored the classifiers.

Two kinds, both per split and then summarised over splits:

* ``model``: the estimator's own importance, normalised to sum to 1 over all columns: random-forest
  impurity decrease, XGBoost gain (``feature_importances_``), or, for the linear model, the mean absolute
  coefficient over classes on standardised features. A group's value is the sum over its columns.
* ``permutation``: the drop in held-out accuracy when a whole group of columns is permuted together
  (one row permutation shared by the group's columns), so correlated columns of one group cannot stand
  in for each other. Computed on each split's test runs, never on the training data.

Feature columns are ``{measure}_{function}_{statistic}@t{k}`` (an optional ``@early|@middle|@deep`` tag
names the depth a column describes, as in run-level features) plus the depth one-hot ``depth_{group}``.
For layer-level samples a trajectory column describes each sample's own layer, so at the ``depth`` level
permutation importance is measured per depth group of the test samples (all observable columns of the
early, middle or deep layers permuted together); the model's own importance has no such split and is
left out there.

Each split's model is the one ``lrid classify`` fitted on it and saved; nothing is refitted (but for results
written before classify saved them). Importances of every level are computed in one pass and cached in
``RESULTS/importance/NAME.parquet`` (recomputed when ``scores.json`` is newer or the settings differ).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrid.errors import LridError
from lrid.identify.classifiers import CLASSIFIERS, coefficient_importance, feature_importances
from lrid.identify.evaluate import classified_statuses, fit_classifier, split_model_path
from lrid.identify.features import DEPTH_CONTRASTS, build_features
from lrid.identify.model_files import load_fitted, read_sidecar
from lrid.identify.scores import load_scores
from lrid.identify.splits import balanced_run_splits, run_metadata, select_runs
from lrid.schema import CROSS_LAYER_OBSERVABLES, DEPTH_GROUPS, MEASURES, Scores
from lrid.store import Store

LEVELS = ("observable", "measure", "function", "statistic", "depth", "time")
KINDS = ("permutation", "model")
DEPTH_ONE_HOT = "depth one-hot"
_TIME = re.compile(r"t(\d+)")


@dataclass(frozen=True)
class ColumnLevels:
    """Where one feature column belongs at each aggregation level (``None``: nowhere at that level)."""

    observable: str
    measure: str
    function: str
    statistic: str
    time: str
    depth: str | None


def column_levels(name: str) -> ColumnLevels:
    """Parse a feature column name into its observable, measure, function, statistic, time and depth.

    ``depth`` is the depth group a column itself describes: ``DEPTH_ONE_HOT`` for the one-hot columns,
    the tag of a run-level ``...@deep@t3`` column (or of a depth contrast, ``...@scale@deep-middle``), or
    ``None`` for a layer-level trajectory column.
    """
    if name.startswith("depth_") and name[len("depth_") :] in DEPTH_GROUPS:
        return ColumnLevels(*(DEPTH_ONE_HOT,) * 5, depth=DEPTH_ONE_HOT)
    observable, *tags = name.split("@")
    depth = next((tag for tag in tags if tag in DEPTH_GROUPS or tag in DEPTH_CONTRASTS), None)
    time = next((tag for tag in tags if _TIME.fullmatch(tag)), "all")
    if observable in CROSS_LAYER_OBSERVABLES:  # one value per layer: its own measure, no function or statistic
        return ColumnLevels(observable, observable, "other", "other", time, depth)
    parts = observable.split("_", 2)
    if len(parts) != 3 or parts[0] not in MEASURES:
        # A column outside the observable grid (a summary feature, say) stands alone.
        return ColumnLevels(observable, "other", "other", "other", time, depth)
    return ColumnLevels(observable, parts[0], parts[1], parts[2], time, depth)


def column_groups(feature_names: list[str], level: str) -> dict[str, np.ndarray]:
    """Column indices of each group at ``level``, groups in first-appearance order."""
    _check_level(level)
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(feature_names):
        label = getattr(column_levels(name), level)
        if label is not None:
            groups.setdefault(label, []).append(index)
    return {label: np.asarray(indices) for label, indices in groups.items()}


def model_importance(model: Any, n_features: int, classifier: str | None = None) -> np.ndarray:
    """The fitted estimator's own per-column importance, normalised to sum to 1 (NaN where it has none).

    With ``classifier``, its registered ``native_importance`` says how (none: NaN). Without, the estimator
    tells: ``feature_importances_`` (random-forest impurity, XGBoost gain), or the mean absolute coefficient
    over classes of a (pipeline ending in a) linear model; anything else gives NaN. A linear model after
    PCA gives NaN too, its coefficients being on components: use the permutation kind for it.
    """
    if classifier is not None and classifier in CLASSIFIERS:
        native = CLASSIFIERS[classifier].native_importance
        return np.full(n_features, np.nan) if native is None else native(model, n_features)
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(estimator, "feature_importances_"):
        return feature_importances(model, n_features)
    if hasattr(estimator, "coef_"):
        return coefficient_importance(model, n_features)
    return np.full(n_features, np.nan)


def grouped_permutation_importance(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    groups: dict[str, tuple[np.ndarray, np.ndarray]],
    n_repeats: int = 3,
    random_state: int = 0,
) -> dict[str, np.ndarray]:
    """Held-out accuracy drop when each group's columns are permuted together, ``n_repeats`` times.

    Args:
        model: a fitted classifier whose ``predict`` returns labels comparable with ``y``.
        X, y: the held-out samples.
        groups: name -> (column indices, boolean row mask): the columns are permuted jointly among the
            masked rows, and accuracy is measured on those rows (baseline minus permuted).
        n_repeats: permutations per group.
        random_state: seeds the permutations; the same inputs give the same importances.

    Returns:
        name -> array of ``n_repeats`` accuracy drops (NaN for a group whose row mask is empty).
    """
    rng = np.random.default_rng(random_state)
    baseline_correct = np.asarray(model.predict(X)) == y
    results, spans = {}, []
    for name, (columns, rows) in groups.items():
        row_index = np.flatnonzero(rows)
        if row_index.size == 0:
            results[name] = np.full(n_repeats, np.nan)
        else:
            spans.append((name, np.asarray(columns), row_index))
    # Every permuted copy goes into one array and one predict call: tree ensembles predict one big batch
    # far faster than many small ones.
    permuted = np.empty((sum(rows.size for _, _, rows in spans) * n_repeats, X.shape[1]), dtype=X.dtype)
    truth = np.empty(len(permuted), dtype=np.asarray(y).dtype)
    start = 0
    for _, columns, row_index in spans:
        block = X[row_index]
        for _ in range(n_repeats):
            stop = start + row_index.size
            permuted[start:stop] = block
            permuted[start:stop, columns] = block[np.ix_(rng.permutation(row_index.size), columns)]
            truth[start:stop] = y[row_index]
            start = stop
    correct = np.asarray(model.predict(permuted)) == truth if len(permuted) else np.empty(0, dtype=bool)
    start = 0
    for name, _, row_index in spans:
        baseline = baseline_correct[row_index].mean()
        drops = []
        for _ in range(n_repeats):
            drops.append(baseline - correct[start : start + row_index.size].mean())
            start += row_index.size
        results[name] = np.asarray(drops)
    return {name: results[name] for name in groups}


def split_importance(
    model: Any,
    X_test: np.ndarray,
    y_test: np.ndarray,
    feature_names: list[str],
    sample_depth: np.ndarray | None = None,
    levels: tuple[str, ...] = LEVELS,
    n_repeats: int = 3,
    random_state: int = 0,
    classifier: str | None = None,
) -> pd.DataFrame:
    """Both kinds of importance of one fitted model on one held-out set, at each level.

    Returns a long frame with columns level, group, kind, importance (permutation: mean over repeats).
    ``sample_depth`` (each test sample's depth group) enables the per-depth permutation groups for columns
    that carry no depth of their own. ``classifier`` names the model's registered classifier, whose entry
    gives the model's own importance (:func:`model_importance`).
    """
    native = model_importance(model, len(feature_names), classifier)
    rows = []
    everything = np.ones(len(y_test), dtype=bool)
    for level in levels:
        groups = column_groups(feature_names, level)
        permutation_groups = {name: (columns, everything) for name, columns in groups.items()}
        if level == "depth" and sample_depth is not None:
            untagged = np.asarray([column_levels(n).depth is None for n in feature_names])
            if untagged.any():
                for depth in DEPTH_GROUPS:
                    permutation_groups[depth] = (np.flatnonzero(untagged), np.asarray(sample_depth) == depth)
        drops = grouped_permutation_importance(model, X_test, y_test, permutation_groups, n_repeats, random_state)
        for name, values in drops.items():
            rows.append((level, name, "permutation", float(np.mean(values))))
        for name, columns in groups.items():
            rows.append((level, name, "model", float(native[columns].sum())))
    return pd.DataFrame(rows, columns=["level", "group", "kind", "importance"])


def summarize_importance(per_split: pd.DataFrame, level: str, kind: str = "permutation") -> pd.DataFrame:
    """One row per group at ``level``: mean, s.d. and s.e.m. over splits of both kinds, ranked by ``kind``.

    Columns: group, permutation_mean/_sd/_sem, model_mean/_sd/_sem, n_splits, rank (1 = most important;
    ties broken by the other kind).
    """
    _check_level(level)
    if kind not in KINDS:
        raise LridError(f"unknown importance kind {kind!r}; choose from {', '.join(KINDS)}")
    at_level = per_split[per_split["level"] == level]
    stats = at_level.groupby(["group", "kind"], sort=False)["importance"].agg(["mean", "std", "count"])
    stats["sem"] = stats["std"] / np.sqrt(stats["count"])
    wide = stats.unstack("kind")
    table = pd.DataFrame({"group": wide.index})
    for each in KINDS:
        for stat, label in (("mean", "mean"), ("std", "sd"), ("sem", "sem")):
            column = (stat, each)
            table[f"{each}_{label}"] = wide[column].to_numpy() if column in wide.columns else np.nan
    table["n_splits"] = wide["count"].max(axis=1).to_numpy().astype(int)
    # Ties (often many zero permutation drops among redundant observables) are broken by the other kind.
    other = KINDS[1 - KINDS.index(kind)]
    table = table.sort_values([f"{kind}_mean", f"{other}_mean"], ascending=False, na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def observable_importance(
    results_dir: str | Path,
    classifier: str | None = None,
    store: str | Path | None = None,
    n_repeats: int = 3,
    n_jobs: int = 1,
    use_cache: bool = True,
) -> pd.DataFrame:
    """Per-split importance of every group at every level for one classifier of a classify run.

    Each split's model is the one ``lrid classify`` fitted and saved (``split_models/NAME/``), measured on
    that split's test runs; the features are rebuilt from the store the scores came from
    (``settings.store``, or ``store``) with the saved models' feature options. Results from before lrid
    saved split models have no such models: their splits are rebuilt and each split's classifier refitted
    as ``classify`` fitted it, and the frame's ``attrs["note"]`` says so (:data:`REFIT_NOTE`). Returns
    columns classifier, split, level, group, kind, importance; cached under ``RESULTS/importance/``.
    """
    results_dir = Path(results_dir)
    scores = load_scores(results_dir)
    classifier = classifier or best_classifier(scores)
    if classifier not in scores.classifiers:
        raise LridError(
            f"classifier {classifier!r} is not in {results_dir / 'scores.json'} "
            f"(it has {', '.join(scores.classifiers) or 'none'}); pick one of those with --classifier"
        )
    cache = results_dir / "importance" / f"{classifier}.parquet"
    settings = {"n_repeats": n_repeats, "seed": scores.seed, "n_splits": scores.n_splits}
    if use_cache:
        cached = _read_cache(cache, results_dir / "scores.json", settings)
        if cached is not None:
            return cached

    features, splits = _rebuild_features_and_splits(results_dir, scores, classifier, store)
    unknown = sorted(set(features.y.astype(str)) - set(scores.classes))
    if unknown:
        raise LridError(f"the store holds rules {unknown} that the scores do not; re-run `lrid classify` on this store")
    y = np.searchsorted(scores.classes, features.y.astype(str))
    fitted = _split_models(results_dir, classifier, len(splits), features.feature_names)
    frames = []
    for split_index, (train_runs, test_runs) in enumerate(splits):
        test = np.isin(features.groups, test_runs)
        if fitted is not None:
            model = fitted(split_index)
        else:
            train = np.isin(features.groups, train_runs)
            model, _ = fit_classifier(
                classifier,
                features.X[train],
                y[train],
                features.groups[train],
                search=scores.settings.search,
                n_jobs=n_jobs,
                random_state=scores.seed + split_index,
                n_points=features.n_points,
                n_static=features.n_static,
            )
        frame = split_importance(
            model,
            features.X[test],
            y[test],
            features.feature_names,
            sample_depth=features.samples["depth_group"].to_numpy()[test],
            n_repeats=n_repeats,
            random_state=scores.seed + split_index,
            classifier=classifier,
        )
        frames.append(frame.assign(classifier=classifier, split=split_index))
    per_split = pd.concat(frames, ignore_index=True)[["classifier", "split", "level", "group", "kind", "importance"]]
    cache.parent.mkdir(parents=True, exist_ok=True)
    per_split.to_parquet(cache, index=False)
    cache.with_suffix(".json").write_text(json.dumps({**settings, "refitted": fitted is None}))
    if fitted is None:
        per_split.attrs["note"] = REFIT_NOTE
    return per_split


REFIT_NOTE = (
    "these results predate the per-split models that `lrid classify` saves, so each split's classifier was "
    "refitted as classify fitted it; re-run `lrid classify` to measure the very models it scored"
)


def best_classifier(scores: Scores) -> str:
    """The most accurate classifier in ``scores``, among those with an importance of their own when any."""
    results = scores.classifiers
    if not results:
        raise LridError("scores.json lists no classifiers; re-run `lrid classify`")
    candidates = [name for name in results if _has_native_importance(name)] or list(results)
    return max(candidates, key=lambda name: results[name].accuracy_mean)


def _has_native_importance(name: str) -> bool:
    return name in CLASSIFIERS and CLASSIFIERS[name].native_importance is not None


def _split_models(results_dir: Path, classifier: str, n_splits: int, feature_names: list[str]):
    """A loader of the model ``classify`` saved for each split, or None when any split has none (older results)."""
    paths = [split_model_path(results_dir, classifier, index) for index in range(n_splits)]
    if not all(path.with_name(f"{path.name}.json").is_file() for path in paths):
        return None

    def load(split_index: int):
        model, sidecar = load_fitted(paths[split_index])
        if sidecar["feature_names"] != feature_names:
            raise LridError(
                f"the model saved for split {split_index} in {paths[split_index].parent} was fitted on other "
                "features than the store now gives; the store changed since `lrid classify`: re-run it"
            )
        return model

    return load


def _rebuild_features_and_splits(results_dir: Path, scores: Scores, classifier: str, store: str | Path | None):
    """The features and outer splits of a classify run: the splits as ``scores.json`` lists them (rebuilt as
    ``classify`` drew them for older files), the features as ``classify`` built them."""
    settings = scores.settings
    location = store if store is not None else settings.store
    if location is None:
        raise LridError(f"{results_dir / 'scores.json'} does not say which store it came from; pass --store STORE")
    target = Store(location)
    manifests = target.manifests()
    if not manifests:
        raise LridError(f"the store {location} holds no runs; pass the store the results came from with --store")
    sidecar = results_dir / "models" / f"{classifier}.json"
    # The first observable subset is the one the main scores (and the saved models) describe.
    options = read_sidecar(sidecar).feature_options if sidecar.is_file() else settings.feature_options()
    try:
        features = build_features(target.read_observables(classified_statuses(settings.keep_collapsed)), **options)
    except TypeError as error:
        raise LridError(
            f"{sidecar} has feature options this lrid does not know ({error}); re-run `lrid classify`"
        ) from None
    if features.X.shape[1] != scores.n_features:
        raise LridError(
            f"the store {location} now gives {features.X.shape[1]} features, the scores {scores.n_features}; "
            "the store changed since `lrid classify`, or it is another store: re-run `lrid classify`"
        )
    if scores.splits is not None:
        return features, [
            (np.asarray(split.train, dtype=object), np.asarray(split.test, dtype=object)) for split in scores.splits
        ]
    run_rules = dict(zip(features.samples["run_id"], features.samples["rule"]))
    metadata = run_metadata([m for m in manifests if m["run_id"] in run_rules])
    train_where, test_where = settings.train_where, settings.test_where
    splits = balanced_run_splits(
        run_rules,
        n_splits=scores.n_splits,
        test_fraction=scores.test_fraction,
        seed=scores.seed,
        train_runs=select_runs(metadata, train_where, "--train-where") if train_where else None,
        test_runs=select_runs(metadata, test_where, "--test-where") if test_where else None,
    )
    return features, splits


def _read_cache(cache: Path, scores_path: Path, settings: dict) -> pd.DataFrame | None:
    """The cached importances when they are newer than the scores and made with ``settings``; else None."""
    sidecar = cache.with_suffix(".json")
    if not (cache.is_file() and sidecar.is_file()) or cache.stat().st_mtime < scores_path.stat().st_mtime:
        return None
    try:
        written = json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return None
    if not isinstance(written, dict) or {key: written.get(key) for key in settings} != settings:
        return None
    frame = pd.read_parquet(cache)
    if written.get("refitted"):
        frame.attrs["note"] = REFIT_NOTE
    return frame


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise LridError(f"unknown importance level {level!r}; choose from {', '.join(LEVELS)}")
