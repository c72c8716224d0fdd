"""The identification stage's core: feature subsets and time selection, held-out splits, grouped search,
d', the conv1d estimator, the performance-matched control, saved models and `lrid identify`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from lrid.errors import LridError
from lrid.identify import classify, identify, load_fitted
from lrid.identify import classifiers, evaluate
from lrid.identify.classifiers import ClassifierEntry
from lrid.identify.features import OBSERVABLE_SUBSETS, build_features, select_points, subset_columns
from lrid.identify.scores import load_scores
from lrid.identify.splits import balanced_run_splits, run_metadata, select_runs
from lrid.observables import OBSERVABLES
from lrid.schema import Scores
from lrid.store import Store

LRID = shutil.which("lrid") or str(Path(sys.executable).parent / "lrid")


@pytest.fixture(scope="module")
def observables(tiny_store):
    return Store(tiny_store).read_observables()


@pytest.fixture(scope="module")
def linear_results(tiny_store, tmp_path_factory):
    """One small classify run shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("results")
    scores = classify(tiny_store, out, classifiers=("linear",), n_splits=3, progress=False, observables="all;weight")
    return out, scores


def test_subsets_select_exactly_their_columns(observables):
    assert len(OBSERVABLE_SUBSETS["weight"]) == 21 and len(OBSERVABLE_SUBSETS["act"]) == 21
    assert OBSERVABLE_SUBSETS["actchange"] == ("actchange_raw_mean", "actchange_abs_mean", "actchange_sq_mean")
    admissible = set(OBSERVABLE_SUBSETS["admissible"])
    assert len(admissible) == 24
    assert not any(s in name for name in admissible for s in ("skew", "kurtosis", "act_sq_", "act_raw_var", "act_abs_var"))
    assert "weight_sq_norm" not in admissible and "weight_sq_var" not in admissible and "weight_sq_median" in admissible
    assert subset_columns("actchange,weight") == [c for c in OBSERVABLES if c.startswith(("weight_", "actchange_"))]
    features = build_features(observables, subset="admissible")
    expected = [f"{c}@t{k}" for c in OBSERVABLES if c in admissible for k in range(6)] + ["depth_early", "depth_middle", "depth_deep"]
    assert features.feature_names == expected and features.X.shape == (72, 24 * 6 + 3)
    with pytest.raises(LridError, match="unknown observable subset grads"):
        subset_columns("weight,grads")


def test_time_selection_picks_the_right_points(observables):
    assert select_points(21, points=5) == [0, 5, 10, 15, 20]
    assert select_points(21, window=6) == [0, 1, 2, 3, 4, 5]
    assert select_points(21, stride=5) == [0, 5, 10, 15, 20]
    assert select_points(21, window=10, stride=3) == [0, 3, 6, 9]
    assert select_points(21, window=11, points=3) == [0, 5, 10]
    with pytest.raises(LridError, match="window=30 asks for more points than the 21 recorded"):
        select_points(21, window=30)
    features = build_features(observables, subset="act", window=4, stride=2)
    assert [n for n in features.feature_names if n.startswith("act_raw_mean@")] == ["act_raw_mean@t0", "act_raw_mean@t2"]
    sample = features.samples.iloc[5]
    rows = observables[(observables.run_id == sample.run_id) & (observables.layer_index == sample.layer_index)]
    expected = rows.sort_values("step")["act_abs_q3"].to_numpy()[2]
    assert features.X[5, features.feature_names.index("act_abs_q3@t2")] == expected


def test_run_unit_averages_layers_within_depth_groups(observables):
    features = build_features(observables, subset="weight", unit="run", points=3)
    assert features.X.shape == (24, 3 * 21 * 3) and features.n_static == 0
    assert sorted(features.groups) == sorted(observables.run_id.unique())
    run = features.groups[4]
    rows = observables[observables.run_id == run]
    deep = rows[rows.depth_group == "deep"].groupby("step")["weight_abs_norm"].mean().sort_index().to_numpy()
    assert features.X[4, features.feature_names.index("weight_abs_norm@t5@deep")] == pytest.approx(deep[5])


def test_d_prime_matches_a_hand_computation():
    confusion = np.array([[8, 2], [1, 9]])
    from scipy.stats import norm

    assert evaluate.d_prime(confusion, ["a", "b"])["a"] == pytest.approx(norm.ppf(0.8) - norm.ppf(0.1))
    # A perfect class is clipped to 1 - 1/(2N) and 1/(2N), so d' stays finite.
    perfect = evaluate.d_prime(np.array([[5, 0], [0, 5]]), ["a", "b"])["a"]
    assert perfect == pytest.approx(norm.ppf(0.9) - norm.ppf(0.1))


def test_held_out_filters_keep_sides_disjoint_and_matching(tiny_store):
    metadata = run_metadata(Store(tiny_store).manifests())
    train_pool = select_runs(metadata, "model_seed=0,data_seed=0", "--train-where") | select_runs(metadata, "model_seed in [1, 2]")
    test_pool = select_runs(metadata, "train.model_seed == 0 and data_seed == 1", "--test-where")
    run_rules = dict(zip(metadata.run_id, metadata.rule))
    splits = balanced_run_splits(run_rules, n_splits=10, seed=3, train_runs=train_pool, test_runs=test_pool)
    for train, test in splits:
        assert not set(train) & set(test)
        assert set(train) <= train_pool and set(test) <= test_pool
        assert sorted(run_rules[r] for r in test) == sorted(["adam", "fa", "ia", "sgdm"])  # one test run per rule
        assert len(train) == 4 * 5
    with pytest.raises(LridError, match="unknown field 'batch'"):
        select_runs(metadata, "batch=64")
    with pytest.raises(LridError, match="matches no complete run"):
        select_runs(metadata, "batch_size=32", "--test-where")
    with pytest.raises(LridError, match="leaves no run of rule 'adam'"):
        balanced_run_splits(run_rules, train_runs=set(metadata.run_id[metadata.rule != "adam"]), test_runs=None)


def test_classify_with_filters_tests_only_held_out_runs(tiny_store, tmp_path):
    scores = classify(tiny_store, tmp_path, classifiers=("linear",), n_splits=2, progress=False, control=False,
                      train_where="data_seed=0", test_where="data_seed=1")
    assert scores.settings.train_where == "data_seed=0" and scores.control is None
    assert "control" not in json.loads((tmp_path / "scores.json").read_text())
    metadata = run_metadata(Store(tiny_store).manifests())
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert set(metadata.loc[predictions.run_id.unique(), "data_seed"]) == {1}


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; remembers which runs every fit saw."""

    run_of_row: dict = {}
    log: list = []

    def __init__(self, flag=0):
        self.flag = flag

    def fit(self, X, y):
        runs = [self.run_of_row[row.tobytes()] for row in np.asarray(X)]
        RecordingClassifier.log.append(runs)
        self.classes_ = np.unique(y)
        self.majority_ = np.bincount(y).argmax()
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)

    def predict_proba(self, X):
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, list(self.classes_).index(self.majority_)] = 1
        return proba


def test_grid_search_never_sees_test_runs(tiny_store, observables, tmp_path, monkeypatch):
    features = build_features(observables)
    RecordingClassifier.run_of_row = {row.tobytes(): run for row, run in zip(features.X, features.groups)}
    RecordingClassifier.log = []
    outer_fits = []
    original = evaluate.fit_classifier

    def recording_fit(name, X, y, groups, **kwargs):
        outer_fits.append((set(groups), len(RecordingClassifier.log)))
        return original(name, X, y, groups, **kwargs)

    entry = ClassifierEntry("recording", lambda **options: RecordingClassifier(), lambda: {"flag": [0, 1]})
    monkeypatch.setitem(classifiers.CLASSIFIERS._entries, "recording", entry)
    monkeypatch.setattr(evaluate, "fit_classifier", recording_fit)
    monkeypatch.setattr(evaluate, "save_model", lambda *args, **kwargs: None)  # a test double has no safe file format
    scores = classify(tiny_store, tmp_path, classifiers=("recording",), n_splits=3, progress=False, search=True, control=False)
    assert len(scores.classifiers["recording"].best_params_per_split) == 3
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    log_ends = [start for _, start in outer_fits[1:]] + [len(RecordingClassifier.log)]
    inner_seen = 0
    for split, ((allowed, start), end) in enumerate(zip(outer_fits[:3], log_ends)):
        test_runs = set(predictions.loc[predictions.split == split, "run_id"])
        assert not allowed & test_runs
        for runs in RecordingClassifier.log[start:end]:
            assert set(runs) <= allowed
            assert all(runs.count(run) == 3 for run in set(runs))  # a run's layers are never split
            inner_seen += len(set(runs)) < len(allowed)
    assert inner_seen >= 3 * 2 * 2  # inner folds (fewer runs than the split's training set) did happen


def test_conv1d_passes_clone_and_learns_a_planted_signal():
    from lrid.identify.conv1d import Conv1DClassifier

    estimator = Conv1DClassifier(n_points=8, n_static=1, filters=4, kernel_size=3, epochs=40, batch_size=40, random_state=1)
    twin = clone(estimator)
    assert twin.get_params() == estimator.get_params()
    assert clone(estimator.set_params(kernel_size=2)).kernel_size == 2
    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 2, n)
    series = rng.normal(size=(n, 2, 8))
    series[:, 1, :] += np.where(y == 1, 1.0, -1.0)[:, None] * np.linspace(0, 2, 8)  # class shows as a trend
    X = np.concatenate([series.reshape(n, -1), np.ones((n, 1))], axis=1)
    X[3, 5] = np.nan
    fitted = clone(estimator).fit(X[:80], y[:80])
    assert (fitted.predict(X[80:]) == y[80:]).mean() > 0.9
    again = clone(estimator).fit(X[:80], y[:80])
    assert np.allclose(fitted.predict_proba(X[80:]), again.predict_proba(X[80:]))  # seeded, deterministic
    import pickle

    restored = pickle.loads(pickle.dumps(fitted))
    assert np.allclose(restored.predict_proba(X[80:]), fitted.predict_proba(X[80:]))


def test_scores_hold_settings_subsets_d_prime_and_control(linear_results, tiny_store):
    out, scores = linear_results
    assert scores.settings.model_dump() == {
        "store": str(Path(tiny_store).resolve()), "observables": "all;weight",
        "time": {"points": None, "window": None, "stride": None}, "unit": "layer",
        "train_where": None, "test_where": None, "search": False, "view": None,
        "time_axis": "index", "baseline": "none", "depth_contrasts": False, "keep_collapsed": False, "schedules": [],
        "partial_layers": [],
    }
    assert set(scores.by_subset) == {"all", "weight"}
    assert scores.by_subset["all"]["linear"].accuracy_mean == scores.classifiers["linear"].accuracy_mean
    assert set(scores.classifiers["linear"].d_prime) == {"adam", "fa", "ia", "sgdm"}
    control = scores.control
    assert set(control.curve_baseline) == {"linear"}
    bins = control.matched_bins
    assert sum(b.n_test for b in bins) == 3 * 4 * 2 * 3  # splits x rules x test runs per rule x layers
    for b in (b for b in bins if b.n_test):  # each bin against its own chance, from its own rule counts
        assert b.chance == max(b.rules.values()) / b.n_test and b.balanced_chance == 1 / len(b.rules)
        assert 0 <= b.balanced_accuracy <= 1
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert np.allclose(predictions[[f"proba_{r}" for r in scores.classes]].sum(axis=1), 1)
    # What was written reads back as the same scores.
    assert load_scores(out) == scores


def test_identify_reproduces_the_refit_model(linear_results, tiny_store, observables):
    out, scores = linear_results
    estimator, sidecar = load_fitted(out / "models" / "linear")
    assert sidecar["classifier"] == "linear" and sidecar["classes"] == scores.classes
    assert sidecar["feature_options"]["subset"] == "all"
    features = build_features(observables)
    expected = pd.DataFrame(estimator.predict_proba(features.X), columns=sidecar["classes"]).groupby(features.groups).mean()
    result = identify(out / "models" / "linear", observables).set_index("run_id")
    assert np.allclose(result[sidecar["classes"]].to_numpy(), expected.loc[result.index].to_numpy())
    assert (result["predicted"] == expected.idxmax(axis=1).loc[result.index]).all()
    assert (result["n_samples"] == 3).all() and (result["rule"] == result["predicted"]).mean() > 0.5
    shorter = observables[observables.step < observables.step.max()]
    with pytest.raises(LridError, match="features do not match the model's"):
        identify(out / "models" / "linear", shorter)  # one time point fewer than the model was fitted on
    with pytest.raises(LridError, match="lack column.*weight_abs_norm"):
        identify(out / "models" / "linear", observables.drop(columns="weight_abs_norm"))


def test_identify_among_candidate_rules_renormalises_the_models_probabilities(linear_results, observables):
    out, _ = linear_results
    full = identify(out / "models" / "linear", observables).set_index("run_id")
    among = identify(out / "models" / "linear", observables, candidates=["sgdm", "fa"]).set_index("run_id")
    extra = ("predicted", "n_samples", "rule", "prediction_set", "set_coverage")
    assert [c for c in among.columns if c not in extra] == ["fa", "sgdm"]
    # Renormalised probabilities only grow, so a candidate in a run's full prediction set stays in its set
    # among the candidates (which hold nothing else).
    for run in among.index:
        kept = set(among.loc[run, "prediction_set"].split(","))
        assert kept <= {"fa", "sgdm"} and set(full.loc[run, "prediction_set"].split(",")) & {"fa", "sgdm"} <= kept
    expected = full[["fa", "sgdm"]].div(full[["fa", "sgdm"]].sum(axis=1), axis=0)
    assert np.allclose(among[["fa", "sgdm"]].to_numpy(), expected.loc[among.index].to_numpy())
    assert (among["predicted"] == expected.idxmax(axis=1).loc[among.index]).all()
    # A run the full model names fa or sgdm keeps its answer; the others must now be one of the two.
    named = full["predicted"].isin(["fa", "sgdm"])
    assert (among.loc[named, "predicted"] == full.loc[named, "predicted"]).all() and (~named).any()
    with pytest.raises(LridError, match="candidate rule.*np.*not among the model's rules"):
        identify(out / "models" / "linear", observables, candidates=["sgdm", "np"])
    with pytest.raises(LridError, match="fewer than two rules"):
        identify(out / "models" / "linear", observables, candidates=["sgdm"])


def test_identify_command_prints_and_writes_predictions(linear_results, tiny_store, tmp_path):
    out, _ = linear_results
    result = subprocess.run([LRID, "identify", str(out / "models" / "linear"), str(tiny_store),
                             "--output", str(tmp_path / "p.csv")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "predicted rule per run (24 runs)" in result.stdout
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 24 and {"run_id", "predicted", "adam", "fa", "ia", "sgdm"} <= set(table.columns)
    bad = subprocess.run([LRID, "identify", str(out / "models" / "nothere"), str(tiny_store)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no saved model" in bad.stderr


def test_control_features_and_matched_bins():
    from lrid.identify.control import curve_features, matched_bins

    manifests = [
        {"run_id": "a", "recorded_train_loss": [None, 2.0, 1.0], "final_test_accuracy": 0.9, "final_train_loss": 1.0},
        {"run_id": "b", "recorded_train_loss": [None, 3.0, 1.5], "final_test_accuracy": 0.8, "final_train_loss": 1.5},
    ]
    X, names = curve_features(manifests, ["b", "a"])
    assert names == ["train_loss@t1", "train_loss@t2", "final_test_accuracy"]
    assert X.tolist() == [[3.0, 1.5, 0.8], [2.0, 1.0, 0.9]]
    X, names = curve_features([{**manifests[0], "recorded_train_loss": None}, manifests[1]], ["a", "b"])
    assert names == ["final_train_loss", "final_test_accuracy"] and X.tolist() == [[1.0, 0.9], [1.5, 0.8]]

    accuracy = pd.Series({"r1": 0.1, "r2": 0.2, "r3": 0.3, "r4": 0.4})
    predictions = pd.DataFrame({"run_id": ["r1", "r1", "r2", "r3", "r4"], "true": list("aabbb"), "predicted": list("abbbb")})
    bins = matched_bins(predictions, accuracy, n_bins=2)
    assert [b["bin"] for b in bins] == [[0.1, 0.25], [0.25, 0.4]]
    assert [(b["n_test"], b["accuracy"]) for b in bins] == [(3, 2 / 3), (2, 1.0)]
    assert bins[0]["rules"] == {"a": 2, "b": 1}


def test_each_matched_bin_has_its_own_chance_and_balanced_accuracy():
    """A bin holding only np (3 test samples) and np_wn (1): always answering np scores 0.75 there, which is
    that bin's chance, not 1 / (all rules); balanced accuracy is 0.5 against a chance of 1 / 2 rules."""
    from lrid.identify.control import matched_bins

    accuracy = pd.Series(dict(zip("abcdefgh", [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])))
    predictions = pd.DataFrame({
        "run_id": list("abcdefgh"),
        "true": ["np", "np", "np", "np_wn", "sgd", "adam", "fa", "fa"],
        "predicted": ["np", "np", "np", "np", "sgd", "sgd", "fa", "adam"],
    })
    low, high = matched_bins(predictions, accuracy, n_bins=2)
    assert low["rules"] == {"np": 3, "np_wn": 1}
    assert (low["accuracy"], low["chance"], low["balanced_accuracy"], low["balanced_chance"]) == (0.75, 0.75, 0.5, 0.5)
    # sgd 1/1, adam 0/1, fa 1/2 correct: balanced (1 + 0 + 0.5) / 3 against 1 / 3 rules; fa is the majority.
    assert (high["accuracy"], high["chance"], high["balanced_accuracy"], high["balanced_chance"]) == (0.5, 0.5, 0.5, 1 / 3)


def test_bins_from_older_scores_get_chance_from_their_rule_counts_or_balanced_rules():
    from lrid.identify.control import bins_with_chance

    current = {"bin": [0.1, 0.5], "n_test": 4, "accuracy": 0.75, "balanced_accuracy": 0.5, "chance": 0.75,
               "balanced_chance": 0.5, "rules": {"np": 3, "np_wn": 1}}
    with_rules = {"bin": [0.1, 0.5], "n_test": 4, "accuracy": 0.75, "rules": {"np": 3, "np_wn": 1}}
    bare = {"bin": [0.5, 0.9], "n_test": 4, "accuracy": 0.5}
    malformed = {**bare, "rules": {"np": "three"}}
    filled = bins_with_chance([current, with_rules, bare, malformed], n_classes=9)
    assert filled[0] == current
    assert (filled[1]["chance"], filled[1]["balanced_chance"], filled[1]["balanced_accuracy"]) == (0.75, 0.5, None)
    for entry in filled[2:]:
        assert (entry["chance"], entry["balanced_chance"], entry["balanced_accuracy"]) == (1 / 9, 1 / 9, None)


def test_classify_command_prints_each_bin_against_its_chance(monkeypatch, tmp_path, capsys):
    import lrid.identify
    from lrid import cli

    scores = {
        "n_runs": 8, "n_samples": 8, "n_features": 3, "n_splits": 2, "test_fraction": 0.25,
        "classes": ["adam", "fa", "np", "np_wn", "sgd"],
        "classifiers": {"rf": {"accuracy_mean": 0.6, "accuracy_sem": 0.1, "balanced_accuracy_mean": 0.5,
                               "accuracy_per_split": [0.5, 0.7], "confusion_normalized": [[1.0]]}},
        "control": {
            "curve_baseline": {"rf": {"accuracy_mean": 0.3, "accuracy_sem": 0.05}},
            "curve_features": ["final_train_loss", "final_test_accuracy"],
            "matched_bins": [{"bin": [0.1, 0.5], "n_test": 4, "accuracy": 0.75, "balanced_accuracy": 0.5,
                              "chance": 0.75, "balanced_chance": 0.5, "rules": {"np": 3, "np_wn": 1}, "classifier": "rf"}],
        },
    }
    monkeypatch.setattr(lrid.identify, "classify", lambda *args, **kwargs: Scores.model_validate(scores))
    cli._classify(tmp_path / "store", tmp_path / "results", "rf", 2, 1)
    out = " ".join(capsys.readouterr().out.split())
    assert "[0.100, 0.500] 0.750 (chance 0.750), balanced 0.500 (chance 0.500), n=4" in out
