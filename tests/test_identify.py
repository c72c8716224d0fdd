"""Features, splits and classification on the tiny store."""

import json

import numpy as np
import pytest

from lrid.errors import LridError
from lrid.identify import classify
from lrid.identify.features import build_features
from lrid.identify.splits import balanced_run_splits
from lrid.observables import OBSERVABLES
from lrid.store import Store


def test_features_hold_each_layer_trajectory_in_order(tiny_store):
    observables = Store(tiny_store).read_observables()
    features = build_features(observables)
    n_points = 6
    assert features.X.shape == (24 * 3, len(OBSERVABLES) * n_points + 3)
    assert len(features.feature_names) == features.X.shape[1]
    # Spot-check one feature against the long table it came from.
    sample = features.samples.iloc[7]
    column = features.feature_names.index("act_abs_median@t4")
    rows = observables[(observables.run_id == sample.run_id) & (observables.layer_index == sample.layer_index)]
    expected = rows.sort_values("step")["act_abs_median"].to_numpy()[4]
    assert features.X[7, column] == expected
    one_hot = features.X[:, -3:]
    assert (one_hot.sum(axis=1) == 1).all()
    assert one_hot[7, ["early", "middle", "deep"].index(sample.depth_group)] == 1


def test_splits_are_balanced_per_rule_and_never_share_a_run():
    run_rules = {f"{rule}{i}": rule for rule in "abcd" for i in range(10 + "abcd".index(rule))}
    splits = balanced_run_splits(run_rules, n_splits=10, seed=0)
    assert len(splits) == 10
    for train, test in splits:
        assert not set(train) & set(test)
        test_counts = {rule: sum(run_rules[r] == rule for r in test) for rule in "abcd"}
        train_counts = {rule: sum(run_rules[r] == rule for r in train) for rule in "abcd"}
        assert set(test_counts.values()) == {2}  # round(0.25 * 10), the rarest rule's count
        assert set(train_counts.values()) == {8}
    assert splits != balanced_run_splits(run_rules, n_splits=10, seed=1)
    assert splits == balanced_run_splits(run_rules, n_splits=10, seed=0)


def test_too_few_runs_for_a_split_is_a_clear_error():
    with pytest.raises(LridError, match="rule 'b' has only 1 complete run"):
        balanced_run_splits({"a1": "a", "a2": "a", "b1": "b"})
    with pytest.raises(LridError, match="at least two rules"):
        balanced_run_splits({"a1": "a", "a2": "a"})


def test_classify_beats_chance_and_never_tests_on_training_runs(tiny_store, tmp_path):
    scores = classify(tiny_store, tmp_path, classifiers=("linear", "rf"), n_splits=4, progress=False)
    assert scores.n_runs == 24 and scores.n_samples == 72
    assert set(scores.classes) == {"adam", "fa", "ia", "sgdm"}
    for result in scores.classifiers.values():
        assert len(result.accuracy_per_split) == 4
        assert result.accuracy_mean > 0.45  # chance is 0.25
        assert np.allclose(np.sum(result.confusion_normalized, axis=1), 1)
    assert json.loads((tmp_path / "scores.json").read_text())["classifiers"].keys() == {"linear", "rf"}
    assert (tmp_path / "models" / "rf.skops").stat().st_size > 0


def test_classify_on_an_empty_store_is_a_clear_error(tmp_path):
    with pytest.raises(LridError, match="no complete runs"):
        classify(tmp_path / "empty", tmp_path / "results", progress=False)
