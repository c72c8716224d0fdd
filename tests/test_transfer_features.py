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
    assert scores["settings"]["time_axis"] == "fraction" and scores["settings"]["baseline"] == "relative"
    assert scores["n_features"] == 3 * len(OBSERVABLES) * 4
    predictions = identify(tmp_path / "r" / "models" / "linear", Store(tiny_store).read_observables())
    assert len(predictions) == scores["n_runs"]
