"""Observable importance: grouping, both kinds against the estimators, the classify round trip, the CLI."""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance

from lrid.errors import LridError
from lrid.schema import Scores
from lrid.identify.classifiers import make_classifier
from lrid.identify.importance import (
    DEPTH_ONE_HOT,
    best_classifier,
    column_groups,
    column_levels,
    grouped_permutation_importance,
    observable_importance,
    split_importance,
    summarize_importance,
)

LRID = shutil.which("lrid") or str(Path(sys.executable).parent / "lrid")
OBSERVABLES = ["weight_abs_median", "weight_raw_norm", "act_abs_median", "act_sq_var", "actchange_raw_mean"]
PLANTED = "act_sq_var"
N_POINTS = 4


def planted_data(n_samples, seed):
    """Four classes that only ``PLANTED`` (at every time point) tells apart; every other column is noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % 4
    names = [f"{name}@t{k}" for name in OBSERVABLES for k in range(N_POINTS)] + ["depth_early", "depth_middle", "depth_deep"]
    X = rng.normal(size=(n_samples, len(names)))
    for k in range(N_POINTS):
        X[:, names.index(f"{PLANTED}@t{k}")] = y + rng.normal(scale=0.3, size=n_samples)
    depth = np.array(["early", "middle", "deep"])[np.arange(n_samples) % 3]
    X[:, -3:] = (depth[:, None] == np.array(["early", "middle", "deep"])).astype(float)
    return X, y, names, depth


def test_column_names_parse_into_every_level():
    levels = column_levels("weight_abs_kurtosis@t12")
    assert (levels.observable, levels.measure, levels.function, levels.statistic, levels.time, levels.depth) == (
        "weight_abs_kurtosis", "weight", "abs", "kurtosis", "t12", None)
    assert column_levels("act_raw_norm@t0@deep").depth == "deep"  # run-level columns name their depth
    assert column_levels("act_raw_norm@t0@deep").time == "t0"
    contrast = column_levels("act_raw_norm@scale@deep-middle")  # a depth contrast is its own depth label
    assert (contrast.observable, contrast.time, contrast.depth) == ("act_raw_norm", "all", "deep-middle")
    assert column_levels("depth_middle").measure == DEPTH_ONE_HOT
    assert column_levels("loss_curve_slope").measure == "other"
    groups = column_groups(["weight_abs_mean@t0", "act_raw_norm@t0", "weight_sq_var@t1", "depth_early"], "measure")
    assert {name: list(columns) for name, columns in groups.items()} == {"weight": [0, 2], "act": [1], DEPTH_ONE_HOT: [3]}
    result = {"accuracy_per_split": [0.8], "confusion_normalized": [[1.0]]}
    scores = Scores.model_validate({
        "classifiers": {"rf": {**result, "accuracy_mean": 0.8}, "conv1d": {**result, "accuracy_mean": 0.9}},
        "classes": ["a", "b"], "n_samples": 4, "n_runs": 4, "n_features": 2, "n_splits": 1, "test_fraction": 0.5,
    })
    assert best_classifier(scores) == "rf"  # conv1d has no importance of its own
    with pytest.raises(LridError, match="unknown importance level 'layer'"):
        column_groups(["weight_abs_mean@t0"], "layer")


@pytest.mark.parametrize("name", ["rf", "xgb", "linear"])
def test_a_planted_informative_observable_ranks_first_in_both_kinds(name):
    X, y, names, depth = planted_data(240, seed=0)
    train = np.arange(len(y)) < 180
    model = make_classifier(name, random_state=0).fit(X[train], y[train])
    frame = split_importance(model, X[~train], y[~train], names, sample_depth=depth[~train], n_repeats=3)
    for kind in ("permutation", "model"):
        ranked = frame[(frame.level == "observable") & (frame.kind == kind)].sort_values("importance", ascending=False)
        assert ranked.group.iloc[0] == PLANTED, (kind, ranked.head(3))
        by_measure = frame[(frame.level == "measure") & (frame.kind == kind)].sort_values("importance", ascending=False)
        assert by_measure.group.iloc[0] == "act"
    model_rows = frame[frame.kind == "model"]
    # The model's own importance sums to 1 over the columns at every level that partitions them.
    for level in ("observable", "measure", "function", "statistic", "time"):
        assert model_rows[model_rows.level == level].importance.sum() == pytest.approx(1.0)
    if name != "linear":
        native = model.feature_importances_ / model.feature_importances_.sum()
        planted_columns = [i for i, n in enumerate(names) if n.startswith(PLANTED)]
        value = model_rows[(model_rows.level == "observable") & (model_rows.group == PLANTED)].importance.item()
        assert value == pytest.approx(native[planted_columns].sum())
        # The planted columns' rank order by the model's kind is the estimator's own at column level.
        assert np.argmax(native) in planted_columns


def test_grouped_permutation_agrees_with_scikit_learn_on_single_columns():
    X, y, names, _ = planted_data(200, seed=1)
    keep = [names.index(f"{PLANTED}@t0"), names.index(f"{PLANTED}@t1"), names.index("weight_abs_median@t0")]
    X = X[:, keep]
    model = make_classifier("rf", random_state=0).fit(X[:150], y[:150])
    X_test, y_test = X[150:], y[150:]
    everyone = np.ones(len(y_test), bool)
    ours = grouped_permutation_importance(
        model, X_test, y_test, {column: (np.array([column]), everyone) for column in range(3)}, n_repeats=20)
    reference = permutation_importance(model, X_test, y_test, scoring="accuracy", n_repeats=20, random_state=0)
    for column in range(3):
        assert ours[column].mean() == pytest.approx(reference.importances_mean[column], abs=0.05)


def test_permuting_a_group_together_beats_its_columns_one_by_one():
    # Four copies of one informative signal: each alone is redundant, the group together is not.
    X, y, names, _ = planted_data(240, seed=2)
    model = make_classifier("rf", random_state=0).fit(X[:180], y[:180])
    planted = np.array([i for i, n in enumerate(names) if n.startswith(PLANTED)])
    everyone = np.ones(60, bool)
    groups = {"together": (planted, everyone), **{f"alone{c}": (np.array([c]), everyone) for c in planted}}
    drops = grouped_permutation_importance(model, X[180:], y[180:], groups, n_repeats=5)
    assert drops["together"].mean() > 0.5
    assert drops["together"].mean() > max(drops[f"alone{c}"].mean() for c in planted) + 0.2


def test_summary_gives_mean_spread_and_rank_over_splits():
    per_split = pd.DataFrame(
        [(s, "measure", group, kind, value + s * 0.01)
         for s in range(4) for group, value in (("weight", 0.3), ("act", 0.5)) for kind in ("permutation", "model")],
        columns=["split", "level", "group", "kind", "importance"])
    table = summarize_importance(per_split, "measure")
    assert list(table.group) == ["act", "weight"] and list(table["rank"]) == [1, 2]
    assert table.permutation_mean.iloc[0] == pytest.approx(0.515)
    assert table.permutation_sd.iloc[0] == pytest.approx(np.std([0.5, 0.51, 0.52, 0.53], ddof=1))
    assert table.permutation_sem.iloc[0] == pytest.approx(table.permutation_sd.iloc[0] / 2)
    assert (table.n_splits == 4).all()
    with pytest.raises(LridError, match="unknown importance kind"):
        summarize_importance(per_split, "measure", kind="shap")


@pytest.fixture(scope="module")
def tiny_results(tiny_store, tmp_path_factory):
    from lrid.identify import classify

    results = tmp_path_factory.mktemp("importance") / "results"
    classify(tiny_store, results, classifiers=("rf",), n_splits=3, progress=False, control=False)
    return results


def test_importance_of_a_classify_run_is_deterministic_and_cached(tiny_store, tiny_results, tmp_path):
    scores = json.loads((tiny_results / "scores.json").read_text())
    del scores["settings"]["store"]  # results that do not name their store need --store
    (tmp_path / "scores.json").write_text(json.dumps(scores))
    with pytest.raises(LridError, match="does not say which store it came from; pass --store"):
        observable_importance(tmp_path, "rf")
    first = observable_importance(tiny_results, "rf", store=tiny_store)
    assert sorted(first.split.unique()) == [0, 1, 2]
    assert set(first.level) == {"observable", "measure", "function", "statistic", "depth", "time"}
    assert (tiny_results / "importance" / "rf.parquet").is_file()
    # Without --store, the store named in the scores' settings is read, and gives the same importances.
    recomputed = observable_importance(tiny_results, "rf", use_cache=False)
    pd.testing.assert_frame_equal(first, recomputed)
    by_time = summarize_importance(first, "time")
    assert {f"t{k}" for k in range(6)} <= set(by_time.group)
    with pytest.raises(LridError, match="classifier 'xgb' is not in"):
        observable_importance(tiny_results, "xgb", store=tiny_store)


def test_cli_prints_table_csv_and_json(tiny_store, tiny_results, tmp_path):
    from typer.testing import CliRunner

    from lrid.cli import app

    runner = CliRunner()
    common = ["report", "importance", str(tiny_results), "--store", str(tiny_store), "--classifier", "rf"]
    table = runner.invoke(app, [*common, "--by", "measure"], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "Importance by measure" in table.output and "weight" in table.output
    csv = runner.invoke(app, [*common, "--by", "statistic", "--format", "csv", "--top", "3"])
    frame = pd.read_csv(io.StringIO(csv.output))
    assert list(frame["rank"]) == [1, 2, 3] and "statistic" in frame and frame.permutation_mean.is_monotonic_decreasing
    output = tmp_path / "depth.json"
    written = runner.invoke(app, [*common, "--by", "depth", "--format", "json", "--output", str(output)])
    assert written.exit_code == 0, written.output
    rows = json.loads(output.read_text())
    assert {"early", "middle", "deep"} <= {row["depth"] for row in rows}
    # Through the console script, bad input is one line on stderr, without a traceback.
    bad = subprocess.run([LRID, *common, "--by", "layer"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown --by 'layer'" in bad.stderr and "Traceback" not in bad.stderr


def test_run_level_columns_group_by_the_depth_they_name():
    rng = np.random.default_rng(3)
    y = np.arange(160) % 4
    names = [f"{name}@t{k}@{depth}" for depth in ("early", "middle", "deep") for name in OBSERVABLES[:2] for k in range(2)]
    X = rng.normal(size=(160, len(names)))
    X[:, names.index("weight_raw_norm@t1@deep")] = y + rng.normal(scale=0.2, size=160)
    model = make_classifier("rf", random_state=0).fit(X[:120], y[:120])
    frame = split_importance(model, X[120:], y[120:], names, sample_depth=np.full(40, "all"), n_repeats=3)
    depth = frame[frame.level == "depth"]
    assert set(depth.group) == {"early", "middle", "deep"}
    for kind in ("permutation", "model"):
        assert depth[depth.kind == kind].sort_values("importance").group.iloc[-1] == "deep"


@pytest.fixture
def counted_fits(monkeypatch):
    """Every rf the classifier table makes from now on, counted (a fit always starts from the factory)."""
    import dataclasses

    from lrid.identify import classifiers

    made = []
    rf = classifiers.CLASSIFIERS["rf"]

    def factory(**options):
        made.append(options)
        return rf.factory(**options)

    monkeypatch.setitem(classifiers.CLASSIFIERS._entries, "rf", dataclasses.replace(rf, factory=factory))
    return made


def test_importance_measures_the_models_classify_saved_without_fitting(tiny_store, tiny_results, counted_fits):
    from lrid.identify.evaluate import split_model_path
    from lrid.identify.features import build_features
    from lrid.identify.model_files import load_fitted
    from lrid.store import Store

    per_split = observable_importance(tiny_results, "rf", use_cache=False)
    assert counted_fits == [] and "note" not in per_split.attrs
    assert sorted(per_split.split.unique()) == [0, 1, 2]
    # The saved split models are the very ones scored: they predict what predictions.parquet holds.
    predictions = pd.read_parquet(tiny_results / "predictions.parquet")
    features = build_features(Store(tiny_store).read_observables(("complete",)))
    for split in range(3):
        model, sidecar = load_fitted(split_model_path(tiny_results, "rf", split))
        scored = predictions[predictions.split == split]
        rows = features.samples.reset_index(drop=True).merge(scored[["run_id", "layer", "predicted"]], on=["run_id", "layer"])
        test = np.isin(features.groups, scored.run_id.unique())
        assert len(rows) == test.sum() > 0
        assert list(np.asarray(sidecar["classes"])[model.predict(features.X[test])]) == list(rows.predicted)


def test_results_from_before_split_models_are_refitted_once_per_split_with_a_note(tiny_store, tiny_results, tmp_path,
                                                                                  counted_fits):
    from lrid.identify.importance import REFIT_NOTE

    saved = observable_importance(tiny_results, "rf", use_cache=False)
    assert counted_fits == []
    old = tmp_path / "old"
    shutil.copytree(tiny_results, old, ignore=shutil.ignore_patterns("split_models", "importance"))
    scores = json.loads((old / "scores.json").read_text())
    del scores["splits"]  # as lrid wrote them before it saved split models
    (old / "scores.json").write_text(json.dumps(scores))
    refitted = observable_importance(old, "rf")
    assert len(counted_fits) == 3 and refitted.attrs["note"] == REFIT_NOTE
    pd.testing.assert_frame_equal(refitted, saved)  # the same splits and seeds refit the same models
    assert observable_importance(old, "rf").attrs["note"] == REFIT_NOTE  # read from the cache, still noted
    assert len(counted_fits) == 3
    from lrid.report import write_report

    text = write_report(old, tmp_path / "report").read_text()
    assert f"Note: {REFIT_NOTE}." in text and len(counted_fits) == 3
