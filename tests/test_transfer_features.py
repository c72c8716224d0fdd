"""Feature transforms for transfer: time as a fraction of training, values relative to the start."""

import numpy as np
import pandas as pd
import pytest

from lrid.errors import LridError
from lrid.identify.features import SCALE_OBSERVABLES, build_features
from lrid.observables import OBSERVABLES


def _long_table(run_steps: dict[str, list[int]], n_layers: int = 3, seed: int = 0) -> pd.DataFrame:
    """Observable rows whose every column is a known function of the training fraction and the layer."""
    rng = np.random.default_rng(seed)
    rows = []
    for run_id, steps in run_steps.items():
        scale = rng.uniform(0.5, 2.0, len(OBSERVABLES))
        for layer in range(n_layers):
            for step in steps:
                fraction = step / steps[-1]
                values = scale * (1.0 + layer) * (1.0 + fraction**2)  # positive, so log ratios are defined
                rows.append({"run_id": run_id, "step": step, "epoch": fraction, "layer": f"l{layer}",
                             "layer_index": layer, "depth_group": ("early", "middle", "deep")[layer],
                             "rule": "sgdm", "task": "digits", "arch": "mlp",
                             **dict(zip(OBSERVABLES, values))})
    return pd.DataFrame(rows)


def test_fraction_time_gives_the_same_columns_for_different_schedules():
    table = _long_table({"short": list(np.linspace(0, 100, 11).astype(int)), "long": list(np.linspace(0, 9000, 26).astype(int))})
    with pytest.raises(LridError, match="different numbers of points.*time=fraction"):
        build_features(table)
    features = build_features(table, time="fraction", points=5)
    assert features.n_points == 5 and features.X.shape == (6, len(OBSERVABLES) * 5 + 3)
    # The planted trajectory is 1 + f^2 times a per-run, per-layer constant: interpolation at f = 0.5 lies
    # between the neighbouring recordings, and the end points are exact.
    column = OBSERVABLES.index("weight_raw_norm")
    row = features.X[0, column * 5 : column * 5 + 5]
    assert row[4] / row[0] == pytest.approx(2.0)
    assert row[2] / row[0] == pytest.approx(1.25, rel=0.02)


def test_fraction_time_refuses_point_selection_by_index():
    table = _long_table({"a": [0, 5, 10]})
    with pytest.raises(LridError, match="with time=fraction choose the resolution with points"):
        build_features(table, time="fraction", window=2)


def test_relative_baseline_removes_initial_scale():
    table = _long_table({"a": list(range(0, 110, 10)), "b": list(range(0, 110, 10))}, seed=1)
    doubled = table.copy()
    doubled[list(OBSERVABLES)] *= 3.0  # every observable scaled, as a wider layer or larger init would
    first = build_features(table, baseline="relative")
    second = build_features(doubled, baseline="relative")
    scale_columns = [i for i, name in enumerate(first.feature_names) if name.split("@")[0] in SCALE_OBSERVABLES]
    np.testing.assert_allclose(first.X[:, scale_columns], second.X[:, scale_columns], atol=1e-12)
    assert first.n_points == 10 and all(not name.endswith("@t0") for name in first.feature_names)
    # log(x(t)/x(0)) of 1 + f^2 at the end is log 2 for every scale observable.
    last = [i for i in scale_columns if first.feature_names[i].endswith("@t10")]
    np.testing.assert_allclose(first.X[:, last], np.log(2.0))


def test_relative_baseline_takes_differences_of_signed_observables():
    table = _long_table({"a": [0, 50, 100]})
    features = build_features(table, baseline="relative", subset="weight")
    index = features.feature_names.index("weight_raw_mean@t2")
    start = table[(table.run_id == "a") & (table.layer_index == 0) & (table.step == 0)]["weight_raw_mean"].item()
    end = table[(table.run_id == "a") & (table.layer_index == 0) & (table.step == 100)]["weight_raw_mean"].item()
    assert features.X[0, index] == pytest.approx(end - start)


def test_unknown_time_and_baseline_are_one_line_errors():
    table = _long_table({"a": [0, 5, 10]})
    with pytest.raises(LridError, match="unknown time axis"):
        build_features(table, time="epoch")
    with pytest.raises(LridError, match="unknown baseline"):
        build_features(table, baseline="init")


def test_classify_and_identify_carry_the_transforms(tiny_store, tmp_path):
    from lrid.identify import classify, identify
    from lrid.store import Store

    scores = classify(tiny_store, tmp_path / "r", classifiers=("linear",), n_splits=2, control=False, progress=False,
                      unit="run", time="fraction", baseline="relative", points=5)
    assert scores.settings.time_axis == "fraction" and scores.settings.baseline == "relative"
    assert scores.n_features == 3 * len(OBSERVABLES) * 4
    predictions = identify(tmp_path / "r" / "models" / "linear", Store(tiny_store).read_observables())
    assert len(predictions) == scores.n_runs


def _affine_table(run_clocks: dict, scales: dict, steps: list[int], n_layers: int = 2, seed: int = 0) -> pd.DataFrame:
    """Rows where every observable is ``scale * (a + b * clock(fraction))``: the same states, reached at the
    pace of each run's clock and multiplied by each run's per-observable scale."""
    rng = np.random.default_rng(seed)
    offset, slope = rng.uniform(0.5, 2.0, len(OBSERVABLES)), rng.uniform(-1.0, 1.0, len(OBSERVABLES))
    rows = []
    for run_id, clock in run_clocks.items():
        for layer in range(n_layers):
            for step in steps:
                values = scales[run_id] * (offset * (1.0 + layer) + slope * clock(step / steps[-1]))
                rows.append({"run_id": run_id, "step": step, "layer": f"l{layer}", "layer_index": layer,
                             "depth_group": ("early", "deep")[layer], "rule": "fa", "task": "digits", "arch": "mlp",
                             **dict(zip(OBSERVABLES, values))})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("unit", ["layer", "run"])
def test_progress_time_is_free_of_each_trajectorys_scale_and_the_runs_pace(unit):
    steps = list(range(0, 101, 10))
    factor = np.random.default_rng(1).uniform(0.1, 10.0, len(OBSERVABLES))
    table = _affine_table({"steady": lambda f: f, "quick": np.sqrt}, {"steady": np.ones(len(OBSERVABLES)), "quick": factor}, steps)
    features = build_features(table, unit=unit, time="progress", points=11)
    steady, quick = features.X[features.groups == "steady"], features.X[features.groups == "quick"]
    trajectory = slice(0, features.X.shape[1] - features.n_static)
    # Same states at another pace and scale: the trajectory columns agree; only the static columns differ.
    np.testing.assert_allclose(steady[:, trajectory], quick[:, trajectory], atol=1e-6)
    scale_columns = [i for i, name in enumerate(features.feature_names) if "@scale" in name]
    np.testing.assert_allclose((quick - steady)[:, scale_columns][0, : len(OBSERVABLES)], np.log(factor), rtol=1e-6)
    progress = [i for i, name in enumerate(features.feature_names) if name.startswith("progress@")]
    np.testing.assert_allclose(steady[0, progress], np.linspace(0, 1, 11)[1:-1], atol=1e-6)
    np.testing.assert_allclose(quick[0, progress], np.sqrt(np.linspace(0, 1, 11)[1:-1]), atol=1e-6)
    # On the fraction axis the quick run's trajectories are not the steady one's: the test can fail.
    fraction = build_features(table, unit=unit, time="fraction", points=11)
    assert not np.allclose(fraction.X[fraction.groups == "steady"], fraction.X[fraction.groups == "quick"], atol=1e-3)


@pytest.mark.parametrize("unit", ["layer", "run"])
def test_progress_time_layout_matches_n_points_and_n_static(unit):
    table = _long_table({"a": list(range(0, 110, 10)), "b": list(range(0, 220, 20))})
    features = build_features(table, unit=unit, time="progress", baseline="relative", points=6)
    n_channels = len(OBSERVABLES) * (1 if unit == "layer" else 3)
    n_static = (3 if unit == "layer" else 0) + n_channels + 4  # one-hot, log scales, progress at t1..t4
    assert (features.n_points, features.n_static) == (5, n_static)
    assert features.X.shape[1] == n_channels * 5 + n_static == len(features.feature_names)
    assert features.feature_names[n_channels * 5 - 1].startswith("actchange_sq_mean@t5")
    assert features.feature_names[-1] == "progress@t4" and features.options["time"] == "progress"
    # Rebuilding from the recorded options gives the same columns, as a saved model does.
    again = build_features(table, **features.options)
    np.testing.assert_array_equal(again.X, features.X)


def test_progress_time_refuses_point_selection_by_index():
    with pytest.raises(LridError, match="with time=progress choose the resolution with points"):
        build_features(_long_table({"a": [0, 5, 10]}), time="progress", stride=2)


def test_classify_and_identify_carry_the_progress_clock(tiny_store, tmp_path):
    from lrid.identify import classify, identify
    from lrid.store import Store

    scores = classify(tiny_store, tmp_path / "r", classifiers=("rf",), n_splits=2, control=False, progress=False,
                      unit="layer", time="progress", baseline="relative", points=5)
    assert scores.settings.time_axis == "progress"
    # Per layer: 4 progress levels per observable, the depth one-hot, a log scale per observable, progress at t1..t3.
    assert scores.n_features == len(OBSERVABLES) * 4 + 3 + len(OBSERVABLES) + 3
    predictions = identify(tmp_path / "r" / "models" / "rf", Store(tiny_store).read_observables())
    assert len(predictions) == scores.n_runs


def test_checkpoint_schedules_keep_the_points_a_lab_would_have_recorded():
    from lrid.identify.schedules import schedule_points

    steps = list(range(0, 2001, 100))  # 21 evenly spaced points, as lrid records
    assert list(schedule_points(steps, "even6")) == [0, 4, 8, 12, 16, 20]
    assert list(schedule_points(steps, "even2")) == [0, 20]
    # geometric in steps from the second point (100) to the last (2000): 100, 211, 447, 946, 2000
    assert list(schedule_points(steps, "log6")) == [0, 1, 2, 4, 9, 20]
    # a run recorded at fewer points than asked keeps them all; targets that meet are kept once
    assert list(schedule_points([0, 5, 10], "even6")) == [0, 1, 2]
    assert list(schedule_points(list(range(8)), "log7")) == [0, 1, 2, 3, 5, 7]


@pytest.mark.parametrize("name", ["even1", "odd6", "log", "even6x", "6"])
def test_an_unknown_checkpoint_schedule_is_a_one_line_error(name):
    from lrid.identify.schedules import schedule_points

    with pytest.raises(LridError, match=r"unknown checkpoint schedule .*even<k>.*log<k>") as error:
        schedule_points([0, 1, 2], name)
    assert "\n" not in str(error.value)


def test_rerecorded_runs_are_copies_at_each_schedule_that_identify_as_their_run():
    from lrid.identify.schedules import rerecorded

    table = _long_table({"a": list(range(0, 2001, 100)), "b": list(range(0, 601, 30))})
    copies = rerecorded(table, ["even6", "log6"])
    assert list(copies.columns) == list(table.columns)
    pd.testing.assert_frame_equal(copies.iloc[: len(table)], table)
    by_run = copies.groupby("run_id")["step"].unique().map(sorted)
    assert by_run["a@even6"] == [0, 400, 800, 1200, 1600, 2000] and by_run["b@even6"] == [0, 120, 240, 360, 480, 600]
    assert by_run["a@log6"] == [0, 100, 200, 400, 900, 2000]
    # every layer of a kept point is kept, with its values
    kept = copies[copies["run_id"] == "a@log6"].drop(columns="run_id").reset_index(drop=True)
    original = table[(table["run_id"] == "a") & table["step"].isin(by_run["a@log6"])].drop(columns="run_id")
    pd.testing.assert_frame_equal(kept, original.reset_index(drop=True))
    # the progress features give each copy the layout of a fully recorded run
    features = build_features(copies, unit="run", time="progress", baseline="relative")
    assert sorted(features.groups) == sorted(by_run.index) and not np.isnan(features.X).any()


def test_copy_origins_reads_only_the_suffixes_of_the_schedules_given():
    from lrid.identify.schedules import AS_RECORDED, copy_origins

    origins, labels = copy_origins(["a", "a@even6", "b@log3", "lab@run7", "c@log3@even6"], ["even6", "log3"])
    assert list(origins) == ["a", "a", "b", "lab@run7", "c@log3"]
    assert list(labels) == [AS_RECORDED, "even6", "log3", AS_RECORDED, "even6"]


def test_classify_trains_on_rerecorded_copies_kept_on_their_runs_side(tiny_store, tmp_path, monkeypatch):
    import lrid.identify.evaluate as evaluate
    from lrid.identify import classify
    from lrid.identify.schedules import AS_RECORDED

    fitted_groups = []
    fit = evaluate.fit_classifier

    def recording_fit(name, X, y, groups, **options):
        fitted_groups.append(list(groups))
        return fit(name, X, y, groups, **options)

    monkeypatch.setattr(evaluate, "fit_classifier", recording_fit)
    scores = classify(tiny_store, tmp_path / "r", classifiers=("rf",), n_splits=2, control=False, progress=False,
                      unit="run", time="progress", baseline="relative", points=5, schedules=("log3", "even3"))
    # the runs, their splits and their predictions are the store's own; the copies only add training samples
    assert scores.n_runs == 24 and scores.n_samples == 24 and scores.settings.schedules == ["log3", "even3"]
    predictions = pd.read_parquet(tmp_path / "r" / "predictions.parquet")
    assert "@" not in "".join(predictions["run_id"]) and len(predictions) == sum(len(s.test) for s in scores.splits)
    for split, groups in zip(scores.splits, fitted_groups):
        # every training run three times (as recorded, log3, even3), no test run at any schedule
        assert sorted(groups) == sorted(split.train * 3)
        assert not set(groups) & set(split.test)
    every_run = scores.splits[0].train + scores.splits[0].test
    assert len(fitted_groups) == 3 and sorted(fitted_groups[-1]) == sorted(every_run * 3)  # the final model: all runs
    result = scores.classifiers["rf"]
    assert list(result.accuracy_by_schedule) == [AS_RECORDED, "log3", "even3"]  # in the order asked
    assert result.accuracy_by_schedule[AS_RECORDED] == result.accuracy_per_split
    assert all(len(values) == 2 and all(0 <= v <= 1 for v in values) for values in result.accuracy_by_schedule.values())


@pytest.mark.parametrize("options, message", [
    ({"schedules": ("even3",)}, r"--schedules re-records .* add --time fraction or --time progress"),
    ({"schedules": ("every3",), "time": "fraction"}, r"unknown checkpoint schedule 'every3'"),
])
def test_classify_refuses_schedules_it_cannot_use_in_one_line(tiny_store, tmp_path, options, message):
    from lrid.identify import classify

    with pytest.raises(LridError, match=message) as error:
        classify(tiny_store, tmp_path / "r", classifiers=("rf",), n_splits=2, control=False, progress=False, **options)
    assert "\n" not in str(error.value) and not (tmp_path / "r").exists()


def _grouped(features, name: str, group: str) -> np.ndarray:
    return features.X[:, features.feature_names.index(f"{name}@{group}")]


def test_depth_contrasts_are_the_log_scale_differences_between_adjacent_depth_groups():
    # Three-layer runs have every group; a two-layer one (middle, deep) has no early group.
    table = pd.concat([_long_table({"a": list(range(0, 110, 10)), "b": list(range(0, 220, 20))}),
                       _long_table({"c": list(range(0, 110, 10))}, n_layers=2, seed=3).assign(
                           depth_group=lambda rows: rows["layer_index"].map({0: "middle", 1: "deep"}))])
    # Deeper layers change more, so the groups' scales differ.
    fraction = table["step"] / table.groupby("run_id")["step"].transform("max")
    table[list(OBSERVABLES)] = table[list(OBSERVABLES)].mul(1.0 + table["layer_index"] * fraction**3, axis=0)
    options = {"unit": "run", "time": "progress", "baseline": "relative", "points": 6}
    plain = build_features(table, **options)
    features = build_features(table, **options, depth_contrasts=True)
    n_channels = len(OBSERVABLES)
    # Static columns only: the trajectories, the layout conv1d reads, are the plain ones.
    assert (features.n_points, features.n_static) == (plain.n_points, plain.n_static + 2 * n_channels)
    assert features.X.shape[1] == plain.X.shape[1] + 2 * n_channels == len(features.feature_names)
    np.testing.assert_array_equal(features.X[:, : plain.X.shape[1]], plain.X)
    assert features.feature_names[: plain.X.shape[1]] == plain.feature_names
    c = list(features.groups).index("c")
    for column in ("weight_raw_norm", "act_abs_kurtosis", "actchange_raw_mean", "weight_sq_var"):
        name = f"{column}@scale"
        deep_middle = _grouped(features, name, "deep-middle")
        np.testing.assert_allclose(deep_middle, _grouped(plain, name, "deep") - _grouped(plain, name, "middle"))
        np.testing.assert_allclose(_grouped(features, name, "middle-early"),
                                   _grouped(plain, name, "middle") - _grouped(plain, name, "early"))
        assert np.isnan(_grouped(features, name, "middle-early")[c])  # no early group: no contrast
        assert np.isfinite(deep_middle[c]) and np.abs(deep_middle).min() > 0.01  # the planted layers differ
    # A saved model rebuilds its columns from the options; models saved before the option keep theirs.
    assert features.options["depth_contrasts"] is True and "depth_contrasts" not in plain.options
    np.testing.assert_array_equal(build_features(table, **features.options).X, features.X)


@pytest.mark.parametrize("unit, time", [("layer", "progress"), ("run", "fraction"), ("run", "index")])
def test_depth_contrasts_need_the_run_unit_and_the_progress_clock(unit, time):
    with pytest.raises(LridError, match="depth contrasts compare the log scales.*--unit run --time progress"):
        build_features(_long_table({"a": [0, 5, 10]}), unit=unit, time=time, depth_contrasts=True)


def test_classify_and_identify_carry_the_depth_contrasts(tiny_store, tmp_path):
    from lrid.identify import classify, identify
    from lrid.store import Store

    scores = classify(tiny_store, tmp_path / "r", classifiers=("linear",), n_splits=2, control=False, progress=False,
                      unit="run", time="progress", baseline="relative", points=5, depth_contrasts=True)
    assert scores.settings.depth_contrasts and scores.settings.feature_options()["depth_contrasts"]
    # Per run: 3 depth groups x 4 progress levels per observable, 3 + 2 log scales per observable, progress at t1..t3.
    assert scores.n_features == 3 * len(OBSERVABLES) * 4 + 5 * len(OBSERVABLES) + 3
    predictions = identify(tmp_path / "r" / "models" / "linear", Store(tiny_store).read_observables())
    assert len(predictions) == scores.n_runs
