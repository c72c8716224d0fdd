"""scores.json and classify's settings as typed models (lrid.schema): every shape lrid has written still loads,
anything else is one line naming the problem, and what classify writes reads back unchanged. No TensorFlow."""

import json

import pytest

from lrid.errors import LridError
from lrid.identify.scores import load_scores
from lrid.schema import ClassifySpec, Scores

RESULT = {"accuracy_mean": 0.75, "accuracy_sem": 0.05, "accuracy_per_split": [0.7, 0.8], "balanced_accuracy_mean": 0.74,
          "confusion_per_split": [[[3, 1], [0, 4]], [[4, 0], [1, 3]]], "confusion_normalized": [[0.875, 0.125], [0.125, 0.875]]}
COMMON = {"classes": ["fa", "sgdm"], "n_samples": 48, "n_runs": 16, "n_features": 273, "n_splits": 2,
          "test_fraction": 0.25, "seed": 0, "lrid_version": "0.1.0"}

# The first release (6fec2cf): no settings, no by_subset, no d', no control.
FIRST_RELEASE = {**COMMON, "classifiers": {"linear": RESULT, "rf": {**RESULT, "accuracy_mean": 0.8}}}
# The identification stage (265f719): settings without keep_collapsed, time_axis or baseline; bins without chance.
IDENTIFICATION_STAGE = {
    **COMMON,
    "classifiers": {"rf": {**RESULT, "d_prime": {"fa": 1.2, "sgdm": None}, "best_params_per_split": [{"max_depth": 2}, None]}},
    "settings": {"store": "/data/store", "observables": "all;weight", "time": {"points": 6, "window": None, "stride": None},
                 "unit": "run", "train_where": "data_seed=0", "test_where": None, "search": True, "view": None},
    "by_subset": {"all": {"rf": {"accuracy_mean": 0.75, "accuracy_sem": 0.05, "balanced_accuracy_mean": 0.74}},
                  "weight": {"rf": {"accuracy_mean": 0.6, "accuracy_sem": 0.1, "balanced_accuracy_mean": 0.6}}},
    "control": {"curve_baseline": {"rf": {"accuracy_mean": 0.5, "accuracy_sem": 0.1}}, "curve_features": ["final_test_accuracy"],
                "matched_bins": [{"bin": [0.1, 0.9], "n_test": 12, "accuracy": 0.7, "classifier": "rf"}],
                "matched_bins_by_classifier": {"rf": [{"bin": [0.1, 0.9], "n_test": 12, "accuracy": 0.7}]}},
}


def write(tmp_path, document):
    (tmp_path / "scores.json").write_text(json.dumps(document))
    return tmp_path


def test_first_release_scores_load_with_the_settings_it_implied(tmp_path):
    scores = load_scores(write(tmp_path, FIRST_RELEASE))
    assert scores.classifiers["rf"].accuracy_mean == 0.8 and scores.classifiers["rf"].d_prime == {}
    assert scores.settings.store is None and scores.settings.unit == "layer" and scores.settings.time_axis == "index"
    assert scores.settings.keep_collapsed is False and scores.control is None and scores.splits is None
    # by_subset is the main results under the (implied) subset, so the report and the CLI need no other path.
    assert {name: result.accuracy_mean for name, result in scores.by_subset["all"].items()} == {"linear": 0.75, "rf": 0.8}
    assert scores.chance == 0.5


def test_identification_stage_scores_load_with_their_settings_and_older_bins(tmp_path):
    scores = load_scores(write(tmp_path, IDENTIFICATION_STAGE))
    settings = scores.settings
    assert (settings.unit, settings.time.points, settings.train_where, settings.search) == ("run", 6, "data_seed=0", True)
    assert (settings.time_axis, settings.baseline, settings.keep_collapsed) == ("index", "none", False)
    # Files from before depth contrasts read as without them.
    assert settings.feature_options() == {"subset": "all", "unit": "run", "time": "index", "baseline": "none",
                                          "depth_contrasts": False, "points": 6, "window": None, "stride": None}
    assert scores.classifiers["rf"].d_prime == {"fa": 1.2, "sgdm": None}
    assert scores.classifiers["rf"].best_params_per_split == [{"max_depth": 2}, None]
    assert set(scores.by_subset) == {"all", "weight"} and scores.by_subset["weight"]["rf"].accuracy_mean == 0.6
    (bin_,) = scores.control.matched_bins
    assert bin_.chance is None and bin_.rules is None and "chance" not in bin_.model_dump(exclude_unset=True)


def test_fields_of_a_newer_lrid_are_kept(tmp_path):
    scores = load_scores(write(tmp_path, {**FIRST_RELEASE, "calibration": {"ece": 0.1}}))
    assert json.loads(scores.to_json())["calibration"] == {"ece": 0.1}


@pytest.mark.parametrize("document, problem", [
    ([1, 2], "is not a scores file of `lrid classify` (a JSON object)"),
    ({"rows": []}, "is not a scores file lrid can read (classifiers: Field required)"),
    ({**FIRST_RELEASE, "classes": []}, "(classes: List should have at least 1 item"),
    ({**FIRST_RELEASE, "classifiers": {"rf": {**RESULT, "accuracy_mean": "high"}}}, "(classifiers.rf.accuracy_mean: "),
    ({**FIRST_RELEASE, "settings": {"train_where": {"arch": "mlp"}}}, "(settings.train_where: Input should be a valid string"),
])
def test_foreign_or_malformed_scores_are_one_line_naming_the_problem(tmp_path, document, problem):
    with pytest.raises(LridError) as caught:
        load_scores(write(tmp_path, document))
    message = str(caught.value)
    assert problem in message and "scores.json" in message and "\n" not in message


def test_written_scores_are_strict_json_and_read_back_equal(tmp_path):
    scores = Scores.model_validate({**FIRST_RELEASE, "classifiers": {"rf": {**RESULT, "d_prime": {"fa": float("nan")}}}})
    text = scores.to_json()
    assert "NaN" not in text and json.loads(text)["classifiers"]["rf"]["d_prime"] == {"fa": None}
    (tmp_path / "scores.json").write_text(text)
    again = load_scores(tmp_path)
    assert again.classifiers["rf"].d_prime == {"fa": None}
    assert again.model_dump(exclude={"classifiers"}) == scores.model_dump(exclude={"classifiers"})


def test_classify_spec_checks_its_fields_in_one_line():
    spec = ClassifySpec.build(store="file:///data/store", results_dir="out", classifiers=("rf",), n_splits=3)
    assert spec.store == "file:///data/store" and spec.n_splits == 3 and spec.control is True
    with pytest.raises(LridError, match="bad classify setting n_splits: Input should be greater than or equal to 1"):
        ClassifySpec.build(store="s", results_dir="out", n_splits=0)
    with pytest.raises(LridError, match="bad classify setting n_split: Extra inputs are not permitted"):
        ClassifySpec.build(store="s", results_dir="out", n_split=3)
