"""Prediction sets: the split-conformal threshold, the sets it makes, and cross-fitting that never leaks a run."""

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier

from lrid.errors import LridError
from lrid.identify.prediction_sets import (
    calibrate,
    conformal_threshold,
    coverage_and_size,
    cross_fitted_calibration,
    cross_fitted_probabilities,
    prediction_sets,
    thresholds_for,
)
from lrid.identify.schedules import AS_RECORDED
from lrid.schema import SetCalibration


def test_threshold_is_the_finite_sample_conformal_quantile():
    # Scores 1 - p are 0.0, 0.1, ..., 0.9; at 0.8 the rank is ceil(11 * 0.8) = 9, the score 0.8.
    probabilities = np.linspace(1.0, 0.1, 10)
    assert conformal_threshold(probabilities, 0.8) == pytest.approx(0.2)
    assert conformal_threshold(probabilities, 0.5) == pytest.approx(0.5)  # rank ceil(5.5) = 6: score 0.5
    # Too few runs to reach the rank: no rule can be ruled out.
    assert conformal_threshold(probabilities[:5], 0.9) == 0.0
    # The threshold is a calibration run's own probability, so that run stays in its set: 1 - (1 - 0.3)
    # would round to 0.30000000000000004 and drop it.
    assert conformal_threshold([0.3] * 20, 0.9) == 0.3


@pytest.mark.parametrize("coverage", [0.0, 1.0, 1.5, -0.1])
def test_coverage_outside_zero_one_is_a_one_line_error(coverage):
    with pytest.raises(LridError, match="strictly between 0 and 1"):
        conformal_threshold([0.5, 0.6], coverage)


def test_no_or_non_finite_probabilities_are_refused():
    for bad in ([], [0.5, np.nan]):
        with pytest.raises(LridError, match="finite probabilities"):
            conformal_threshold(bad, 0.9)


def test_sets_reach_the_asked_coverage_on_new_exchangeable_runs():
    # A calibrated model of 5 rules: each run's rule is drawn from the probabilities the model gives it.
    rng = np.random.default_rng(0)
    rules = list("abcde")

    def draw(n):
        probabilities = rng.dirichlet(np.full(5, 0.7), size=n)
        truth = [rules[rng.choice(5, p=p)] for p in probabilities]
        return pd.DataFrame(probabilities, columns=rules), truth

    calibration, calibration_truth = draw(3000)
    true_probabilities = [calibration.loc[i, rule] for i, rule in enumerate(calibration_truth)]
    for coverage in (0.8, 0.9):
        threshold = conformal_threshold(true_probabilities, coverage)
        test, test_truth = draw(3000)
        held, size = coverage_and_size(prediction_sets(test, threshold), test_truth)
        assert coverage - 0.025 <= held <= coverage + 0.025
        assert 1.0 < size < 5.0  # neither the top rule alone nor every rule


def test_sets_list_rules_most_probable_first_and_are_never_empty():
    probabilities = pd.DataFrame({"fa": [0.5, 0.05], "ia": [0.4, 0.05], "sgd": [0.1, 0.9]})
    assert prediction_sets(probabilities, 0.3) == [["fa", "ia"], ["sgd"]]
    assert prediction_sets(probabilities, 0.95) == [["fa"], ["sgd"]]  # the most probable always stays
    assert prediction_sets(probabilities, 0.0) == [["fa", "ia", "sgd"], ["sgd", "fa", "ia"]]
    assert coverage_and_size([["fa", "ia"], ["sgd"]], ["ia", "fa"]) == (0.5, 1.5)


def _copies_dataset(n_runs=60, copies=3, n_classes=3, seed=0):
    """Runs whose copies share one point and whose rules are unrelated to it: only a leak can name them."""
    rng = np.random.default_rng(seed)
    run_labels = np.arange(n_runs) % n_classes
    rng.shuffle(run_labels)
    points = rng.normal(size=(n_runs, 4))
    X = np.repeat(points, copies, axis=0)
    labels = np.repeat(run_labels, copies)
    runs = np.repeat([f"run{i}" for i in range(n_runs)], copies)
    scored = np.tile([True] + [False] * (copies - 1), n_runs)
    return X, labels, runs, scored


def test_cross_fitting_keeps_every_run_and_its_copies_out_of_the_fit_that_names_it():
    X, labels, runs, scored = _copies_dataset()
    held_out = cross_fitted_probabilities(X, labels, runs, scored, lambda: KNeighborsClassifier(1), folds=5)
    assert held_out.shape == (60, 3) and list(held_out.index[:2]) == ["run0", "run1"]
    assert np.allclose(held_out.sum(axis=1), 1.0)
    true_probability = held_out.to_numpy()[np.arange(60), labels[scored]]
    # A copy in the fit would be its run's nearest neighbour and name it with probability 1 every time.
    assert true_probability.mean() < 0.6
    # Grouped by sample instead, the copies leak, which the same estimator shows at once.
    leaked = cross_fitted_probabilities(X, labels, np.arange(len(X)).astype(str), scored,
                                        lambda: KNeighborsClassifier(1), folds=5)
    assert leaked.to_numpy()[np.arange(60), labels[scored]].mean() > 0.9


def test_too_few_runs_of_a_rule_for_the_folds_is_a_one_line_error():
    X, labels, runs, scored = _copies_dataset(n_runs=9)  # 3 runs of each rule
    with pytest.raises(LridError, match="at least 5 runs of every rule"):
        cross_fitted_probabilities(X, labels, runs, scored, lambda: KNeighborsClassifier(1), folds=5)


def test_cross_fitted_calibration_groups_re_recorded_copies_with_their_run():
    class Features:  # what calibrated_threshold reads of a FeatureSet
        def __init__(self, X, y, groups):
            self.X, self.y, self.groups = X, y, groups

    X, labels, runs, _ = _copies_dataset()
    suffixes = np.tile(["", "@even4", "@log6"], 60)
    features = Features(X, np.array(list("xyz"))[labels], np.char.add(runs.astype(str), suffixes))
    grouped = cross_fitted_calibration(
        features, list("xyz"), ["even4", "log6"], lambda: KNeighborsClassifier(1), 0.9, points=21
    )
    assert grouped.runs == 60 and grouped.coverage == 0.9 and "5 folds" in grouped.method
    assert grouped.held == 1.0 and grouped.mean_size == 3.0
    # Each copy is named apart from its run, by the same fold's fit, and calibrates its number of points.
    assert grouped.points == 21
    assert [(entry.points, entry.runs, entry.threshold) for entry in grouped.by_points] == [(4, 60, 0.0), (6, 60, 0.0)]
    # Counted as each copy was re-recorded (here log6 kept 5 points), not as its schedule's name says.
    kept = {copy: 21 if "@" not in copy else 4 if copy.endswith("even4") else 5 for copy in features.groups}
    counted = cross_fitted_calibration(
        features, list("xyz"), ["even4", "log6"], lambda: KNeighborsClassifier(1), 0.9, points=21, points_of=kept
    )
    assert [(entry.points, entry.runs) for entry in counted.by_points] == [(4, 60), (5, 60)]
    # Named without their copies, runs are named at chance (the nearest neighbour's rule, probability 0 or 1),
    # so a 90 % set must keep every rule; had a copy leaked into a fit, every run would be named with 1.
    assert grouped.threshold == 0.0


def test_classify_calibrates_on_each_test_runs_layers_then_splits():
    from lrid.identify.evaluate import _split_calibration

    # Run a: tested in two splits (two layers each), run b: in one.
    tested = pd.DataFrame({
        "run_id": ["a", "a", "a", "a", "b"],
        "schedule": AS_RECORDED,
        "points": 21,
        "split": [0, 0, 1, 1, 1],
        "true": ["fa", "fa", "fa", "fa", "ia"],
        "fa": [0.6, 0.8, 0.2, 0.4, 0.9],
        "ia": [0.4, 0.2, 0.8, 0.6, 0.1],
    })
    calibration = _split_calibration(tested, ["fa", "ia"], 2, 21)
    # Two runs are too few to rule anything out at 90 %: both sets hold both rules.
    assert calibration.runs == 2 and calibration.threshold == 0.0 and "2 balanced splits" in calibration.method
    assert calibration.held == 1.0 and calibration.mean_size == 2.0
    assert calibration.points == 21 and calibration.by_points == []
    # a: fa 0.7 then 0.3 over its layers, 0.5 over its splits; b: fa 0.9. Twenty of each make the threshold
    # the conformal quantile of those runs' p(true) 0.5 and 0.1.
    many = pd.concat([tested.assign(run_id=tested["run_id"] + str(k)) for k in range(20)], ignore_index=True)
    per_run = pd.DataFrame({"fa": [0.5, 0.9] * 20, "ia": [0.5, 0.1] * 20})
    assert _split_calibration(many, ["fa", "ia"], 2, 21).threshold == calibrate(
        per_run, ["fa", "ia"] * 20, 0.9, "x"
    ).threshold == 0.1
    # The same runs re-recorded at 6 points (even6 and log6 pooled), read otherwise: their own threshold,
    # while the runs as recorded keep theirs.
    sparse = [many.assign(schedule=name, points=6, fa=many["fa"] - shift, ia=many["ia"] + shift)
              for name, shift in (("even6", 0.05), ("log6", 0.1))]
    calibration = _split_calibration(pd.concat([many, *sparse], ignore_index=True), ["fa", "ia"], 2, 21)
    assert calibration.threshold == 0.1 and calibration.runs == 40
    [six] = calibration.by_points
    assert six.points == 6 and six.runs == 80
    # p(true): a's fa 0.5 less the shift, b's ia 0.1 plus it.
    true_probabilities = [0.45, 0.15] * 20 + [0.4, 0.2] * 20
    assert six.threshold == pytest.approx(conformal_threshold(true_probabilities, 0.9)) and six.threshold > 0.1


def test_calibration_by_points_gives_each_number_of_points_its_threshold():
    rng = np.random.default_rng(1)
    truth = ["fa"] * 300
    # p(fa) drops as fewer points are recorded, so the 90 % threshold drops with them.
    rows, schedules = [], []
    for schedule, centre in ((AS_RECORDED, 0.8), ("even11", 0.6), ("log11", 0.6), ("even4", 0.4)):
        p = np.clip(rng.normal(centre, 0.1, 300), 0.0, 1.0)
        rows.append(pd.DataFrame({"fa": p, "ia": 1.0 - p}))
        schedules += [schedule] * 300
    probabilities = pd.concat(rows, ignore_index=True)
    calibration = calibrate(probabilities, truth * 4, 0.9, "x", schedule_of=schedules, points=21)
    assert calibration.runs == 300 and [entry.points for entry in calibration.by_points] == [4, 11]
    four, eleven = calibration.by_points
    assert four.runs == 300 and eleven.runs == 600
    assert four.threshold < eleven.threshold < calibration.threshold
    for entry in (four, eleven):
        assert entry.held >= 0.9
    # Each calibration alone is what calibrate gives its rows.
    at_four = np.array(schedules) == "even4"
    assert four.threshold == calibrate(probabilities[at_four], truth, 0.9, "x").threshold
    # A run gets the threshold of the most points it reaches; below every calibration, the fewest points'.
    assert list(thresholds_for(calibration, [21, 40, 20, 11, 6, 4, 2])) == [
        calibration.threshold,
        calibration.threshold,
        eleven.threshold,
        eleven.threshold,
        four.threshold,
        four.threshold,
        four.threshold,
    ]
    # Counted by the points each copy kept (log11 keeps 10 of 21), the copies at 10 and 11 points calibrate
    # apart, so an input at 10 points is read with the threshold of copies like it.
    kept = [0 if schedule == AS_RECORDED else {"even11": 11, "log11": 10, "even4": 4}[schedule] for schedule in schedules]
    counted = calibrate(probabilities, truth * 4, 0.9, "x", schedule_of=schedules, points=21, points_of=kept)
    assert [(entry.points, entry.runs) for entry in counted.by_points] == [(4, 300), (10, 300), (11, 300)]
    at_ten = np.array(schedules) == "log11"
    assert counted.by_points[1].threshold == calibrate(probabilities[at_ten], truth, 0.9, "x").threshold
    assert list(thresholds_for(counted, [10])) == [counted.by_points[1].threshold]
    # A number of points with too few copies to rule out any rule (8 at 90 %) gets no threshold of its own:
    # its runs are read with that of fewer points rather than with 0, which would keep every rule.
    few = np.array(schedules) != "log11"
    few[np.flatnonzero(np.array(schedules) == "log11")[:8]] = True
    thin = calibrate(probabilities[few], list(np.array(truth * 4)[few]), 0.9, "x",
                     schedule_of=list(np.array(schedules)[few]), points=21, points_of=list(np.array(kept)[few]))
    assert [entry.points for entry in thin.by_points] == [4, 11]
    assert list(thresholds_for(thin, [10])) == [thin.by_points[0].threshold]
    few[np.flatnonzero(np.array(schedules) == "log11")[8]] = True  # 9 copies are enough
    assert [entry.points for entry in calibrate(
        probabilities[few], list(np.array(truth * 4)[few]), 0.9, "x", schedule_of=list(np.array(schedules)[few]),
        points=21, points_of=list(np.array(kept)[few])).by_points] == [4, 10, 11]
    # A calibration without points (a model calibrated before them) uses one threshold for every run.
    older = SetCalibration(**calibration.model_dump(exclude={"points", "by_points"}))
    assert list(thresholds_for(older, [21, 4])) == [calibration.threshold] * 2


def test_sets_take_one_threshold_per_row():
    probabilities = pd.DataFrame({"fa": [0.6, 0.6], "ia": [0.3, 0.3], "sgd": [0.1, 0.1]})
    assert prediction_sets(probabilities, [0.5, 0.2]) == [["fa"], ["fa", "ia"]]


def test_calibration_by_layers_gives_runs_seen_at_some_layers_their_own_threshold():
    rng = np.random.default_rng(2)
    # p(fa) drops as fewer layers are seen: whole runs, their hidden layers, one hidden layer.
    rows, labels = [], []
    for label, centre in ((AS_RECORDED, 0.8), ("even6", 0.6), ("hidden", 0.55), ("single", 0.35)):
        p = np.clip(rng.normal(centre, 0.1, 200), 0.0, 1.0)
        rows.append(pd.DataFrame({"fa": p, "ia": 1.0 - p}))
        labels += [label] * 200
    probabilities = pd.concat(rows, ignore_index=True)
    truth = ["fa"] * len(labels)
    calibration = calibrate(probabilities, truth, 0.9, "x", schedule_of=labels, points=21, layers=("hidden", "single"))
    # the partial copies calibrate by_layers alone: not the runs' threshold, nor one of points
    assert calibration.runs == 200 and [entry.points for entry in calibration.by_points] == [6]
    assert [(entry.layers, entry.runs) for entry in calibration.by_layers] == [("hidden", 200), ("single", 200)]
    hidden, single = calibration.by_layers
    assert hidden.threshold == calibrate(probabilities[np.array(labels) == "hidden"], truth[:200], 0.9, "x").threshold
    assert single.threshold < hidden.threshold < calibration.threshold and min(hidden.held, single.held) >= 0.9
    # a run of one recorded layer gets single's threshold, of several hidden's, whatever its points; a whole
    # network (0) the threshold of its points
    assert list(thresholds_for(calibration, [21, 6, 21, 6, 21], [0, 0, 1, 1, 3])) == [
        calibration.threshold, calibration.by_points[0].threshold, single.threshold, single.threshold, hidden.threshold
    ]
    # with one choice calibrated, a partial run gets it; without layers_per_run, partial runs are not told apart
    only_hidden = calibration.model_copy(update={"by_layers": [hidden]})
    assert list(thresholds_for(only_hidden, [21], [1])) == [hidden.threshold]
    assert list(thresholds_for(calibration, [21])) == [calibration.threshold]
    # too few copies of a choice to rule anything out: no threshold of its own
    few = np.array(labels) != "single"
    few[np.flatnonzero(np.array(labels) == "single")[:8]] = True
    thin = calibrate(probabilities[few], list(np.array(truth)[few]), 0.9, "x", schedule_of=list(np.array(labels)[few]),
                     points=21, layers=("hidden", "single"))
    assert [entry.layers for entry in thin.by_layers] == ["hidden"]
