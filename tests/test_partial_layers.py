"""Networks recorded at some of their layers: the copies an identifier learns them from, and what identify says."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lrid.errors import LridError
from lrid.identify.partial_layers import at_partial, partial_copies
from lrid.identify.recording import PartialLayersWarning, Recording, write_recording
from lrid.schema import Scores, depth_groups


def _long_table(layers_per_run: dict[str, int]) -> pd.DataFrame:
    """Two steps of each run, a row per layer, as a store's long format lays them out."""
    rows = [
        {"run_id": run, "step": step, "layer": f"l{index}", "layer_index": index,
         "depth_group": depth_groups(n_layers)[index], "w": 10.0 * index + step}
        for run, n_layers in layers_per_run.items() for step in (0, 1) for index in range(n_layers)
    ]
    return pd.DataFrame(rows)


def test_hidden_drops_each_runs_readout_and_single_keeps_one_hidden_layer_in_its_depth_group():
    table = _long_table({"a": 3, "b": 5, "c": 2, "lone": 1})
    hidden = at_partial(table, "hidden")
    assert hidden.groupby("run_id")["layer_index"].max().to_dict() == {"a": 1, "b": 3, "c": 0}  # "lone" has none
    single = at_partial(table, "single")
    kept = single.groupby("run_id")["layer_index"].unique()
    assert all(len(indices) == 1 for indices in kept) and set(kept.index) == {"a", "b", "c"}
    assert kept["c"][0] == 0 and kept["a"][0] in (0, 1) and kept["b"][0] in (0, 1, 2, 3)
    # the kept rows are the whole network's rows: same depth group, same values, both steps
    merged = single.merge(table, on=["run_id", "step", "layer_index"], suffixes=("", "_whole"))
    assert len(merged) == len(single) == 6 and (merged["depth_group"] == merged["depth_group_whole"]).all()
    assert (merged["w"] == merged["w_whole"]).all()
    # the same layer in another process: the draw depends on the run's id alone, not on Python's hash salt
    program = (
        "import json, pandas as pd; from lrid.identify.partial_layers import at_partial; "
        f"table = pd.DataFrame(json.loads({table.to_json(orient='records')!r})); "
        "print(at_partial(table, 'single').groupby('run_id')['layer_index'].first().to_json())"
    )
    again = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(again.stdout) == {run: int(indices[0]) for run, indices in kept.items()}


def test_copies_are_named_after_their_run_and_follow_the_runs():
    table = _long_table({"a": 3, "b": 4})
    copies = partial_copies(table, ["hidden", "single", "hidden"])
    assert sorted(copies["run_id"].unique()) == ["a@hidden", "a@single", "b@hidden", "b@single"]
    single = partial_copies(table, ["single"])
    assert set(single["run_id"]) == {"a@single", "b@single"} and len(single) == 4  # one layer, two steps, each run
    with pytest.raises(LridError, match="unknown partial layers 'readout'; use hidden or single"):
        partial_copies(table, ["readout"])


def test_partial_layers_need_the_run_unit(tiny_store, tmp_path):
    from lrid.identify import classify

    with pytest.raises(LridError, match="--partial-layers .* needs --unit run"):
        classify(tiny_store, tmp_path / "l", classifiers=("rf",), n_splits=2, control=False, progress=False,
                 partial_layers=("hidden",))


def _partial_recording(path):
    """A network's last hidden layer and readout (positions 1 and 2 of 3), recorded at 6 steps: random
    weights and activations that drift, as learning moves them."""
    rng = np.random.default_rng(0)
    shapes = {"hidden2": (32, 32), "readout": (32, 10)}
    arrays = {"weight": {}, "act": {}}
    for layer, (fan_in, units) in shapes.items():
        arrays["weight"][layer] = np.cumsum(rng.normal(0, 0.1, (6, fan_in, units)), axis=0).astype(np.float32)
        arrays["act"][layer] = np.cumsum(rng.normal(0, 0.1, (6, 16, units)), axis=0).astype(np.float32)
    recording = Recording("lab-net", np.arange(0, 60, 10), list(shapes), arrays, None, [1, 2], 3)
    return write_recording(recording, path)


def test_classify_learns_partial_copies_and_identify_warns_only_where_a_model_never_saw_them(tiny_store, tmp_path):
    from typer.testing import CliRunner

    from lrid.cli import app
    from lrid.identify.default_identifier import model_path
    from lrid.identify.inference import identify, read_input
    from lrid.identify.model_files import load_fitted

    classified = CliRunner().invoke(app, [
        "classify", "--store", str(tiny_store), "--out", str(tmp_path / "partial"), "--classifiers", "rf",
        "--splits", "2", "--no-control", "--observables", "weight,act", "--unit", "run", "--time", "progress",
        "--baseline", "relative", "--partial-layers", "hidden,single"])
    assert classified.exit_code == 0, classified.output
    scores = Scores.model_validate_json((tmp_path / "partial" / "scores.json").read_text())
    assert scores.n_runs == 24 and scores.n_samples == 24 and scores.settings.partial_layers == ["hidden", "single"]
    result = scores.classifiers["rf"]
    assert list(result.accuracy_by_schedule) == ["as recorded", "hidden", "single"]
    # the prediction sets: one threshold from the whole runs the splits tested, and one per choice of layers
    # from those runs seen so
    tested = set().union(*(split.test for split in scores.splits))
    sets = result.prediction_sets
    assert sets.by_points == [] and sets.runs == len(tested)
    assert [(entry.layers, entry.runs) for entry in sets.by_layers] == [("hidden", len(tested)), ("single", len(tested))]
    said = " ".join(classified.output.split())
    assert f"rf: for runs recorded at some of their layers, test runs seen so set: hidden: {sets.by_layers[0].threshold:.3f}" in said
    assert load_fitted(tmp_path / "partial" / "models" / "rf")[1]["partial_layers"] == ["hidden", "single"]

    path = _partial_recording(tmp_path / "lab.npz")
    observables = read_input(path)
    assert set(observables["depth_group"]) == {"middle", "deep"}  # layers 1 and 2 of 3
    with warnings_as_errors():  # trained on partial copies: nothing to warn of
        named = identify(tmp_path / "partial" / "models" / "rf", observables)
    assert named["run_id"].tolist() == ["lab-net"]
    # two layers recorded: the set is drawn at the hidden-layer copies' threshold, not the whole runs' nor the
    # single layers' (set apart here so that each would give another set)
    sidecar_path = tmp_path / "partial" / "models" / "rf.json"
    sidecar = json.loads(sidecar_path.read_text())
    calibration = sidecar["prediction_sets"]
    for threshold, expected in ((0.0, len(scores.classes)), (1.01, 1)):
        calibration["threshold"], calibration["by_layers"][1]["threshold"] = 1.01 - threshold, 1.01 - threshold
        calibration["by_layers"][0]["threshold"] = threshold
        sidecar_path.write_text(json.dumps(sidecar))
        named = identify(tmp_path / "partial" / "models" / "rf", observables)
        assert len(named.iloc[0]["prediction_set"].split(",")) == expected
    whole = model_path("weight,act")  # the shipped identifier's whole-network model of these measures
    with pytest.warns(PartialLayersWarning, match="1 network\\(s\\) \\(lab-net: 2 of 3 layers\\)"):
        identify(whole, observables)
    result = CliRunner().invoke(app, ["identify", str(whole), str(path)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "some of their layers" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: 1 network(s) (lab-net: 2 of 3 layers)")
    assert "--partial-layers" in lines[0]


class warnings_as_errors:
    """Within it, any warning fails the test."""

    def __enter__(self):
        import warnings

        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)
