"""Raw recordings: an lrid run exported as arrays reads back as the observables the store holds for it."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lrid.errors import LridError
from lrid.generate.export import export_recording
from lrid.identify.recording import (
    Recording,
    load_recordings,
    partial_runs,
    read_recording,
    recording_observables,
    require_measures,
    write_recording,
)
from lrid.observables import OBSERVABLES
from lrid.store import Store


@pytest.fixture(scope="module")
def exported(tiny_store, tmp_path_factory):
    """An fa run of the tiny store, re-run and exported as an NPZ recording, with the store's rows for it."""
    store = Store(tiny_store)
    manifest = next(m for m in store.manifests() if m["spec"]["rule"]["name"] == "fa" and m["status"] == "complete")
    path = export_recording(store, tmp_path_factory.mktemp("recording") / "run.npz", run_id=manifest["run_id"])
    stored = store.read_observables()
    stored = stored[stored["run_id"] == manifest["run_id"]].reset_index(drop=True)
    return path, stored, manifest


def test_exported_recording_reads_back_as_the_stored_observables(exported):
    path, stored, manifest = exported
    with np.load(path) as archive:
        assert archive["steps"].tolist() == manifest["recorded_steps"]
        assert archive["weight/" + stored["layer"][0]].shape[0] == len(manifest["recorded_steps"])
    read = read_recording(path)
    assert read[["run_id", "step", "layer", "layer_index", "depth_group"]].equals(
        stored[["run_id", "step", "layer", "layer_index", "depth_group"]]
    )
    np.testing.assert_allclose(read["epoch"], stored["epoch"])
    np.testing.assert_allclose(read[list(OBSERVABLES)], stored[list(OBSERVABLES)], rtol=1e-5, atol=1e-6)


def test_parquet_recording_matches_npz(exported, tmp_path):
    path, stored, _ = exported
    (recording,) = load_recordings(path)
    parquet = write_recording(recording, tmp_path / "run.parquet")
    pd.testing.assert_frame_equal(read_recording(parquet), read_recording(path))


def test_recording_gets_the_runs_prediction(exported, tiny_store, tmp_path):
    from lrid.identify import classify, identify
    from lrid.identify.prediction_sets import SET_COLUMNS

    path, stored, manifest = exported
    classify(tiny_store, tmp_path, classifiers=("linear",), n_splits=2, observables="weight,act", control=False,
             progress=False)
    model = tmp_path / "models" / "linear"
    from_store = identify(model, stored)
    from_recording = identify(model, read_recording(path))
    assert from_recording["predicted"].tolist() == from_store["predicted"].tolist()
    classes = [c for c in from_store.columns if c not in ("run_id", "predicted", "n_samples", "rule", *SET_COLUMNS)]
    np.testing.assert_allclose(from_recording[classes], from_store[classes], atol=1e-4)
    assert from_recording["prediction_set"].tolist() == from_store["prediction_set"].tolist()

    # A model that reads activity changes refuses a recording that carries none, rather than guessing.
    (recording,) = load_recordings(path)
    del recording.arrays["actchange"]
    classify(tiny_store, tmp_path / "all", classifiers=("linear",), n_splits=2, control=False, progress=False)
    with pytest.raises(LridError, match="no actchange observables"):
        identify(tmp_path / "all" / "models" / "linear", recording_observables(recording))


def test_missing_actchange_is_refused_for_a_model_that_uses_it(exported):
    path, _, _ = exported
    (recording,) = load_recordings(path)
    del recording.arrays["actchange"]
    observables = recording_observables(recording)
    assert observables.filter(like="actchange_").isna().all().all()
    assert observables.filter(like="weight_").notna().all().all()
    require_measures(observables, ["weight_raw_mean@t0", "act_abs_mean@t5", "depth_early"])
    with pytest.raises(LridError, match="no actchange observables"):
        require_measures(observables, ["weight_raw_mean@t0", "actchange_raw_mean@t5"])


def _synthetic(tmp_path, **changes):
    """A valid two-layer, three-step NPZ recording, with keys replaced (None deletes) as ``changes`` say."""
    rng = np.random.default_rng(0)
    contents = {
        "steps": np.array([0, 10, 20]),
        "weight/dense": rng.normal(size=(3, 4, 5)),
        "weight/dense_1": rng.normal(size=(3, 5, 2)),
        "act/dense": rng.normal(size=(3, 8, 5)),
        "act/dense_1": rng.normal(size=(3, 8, 2)),
    }
    for key, value in changes.items():
        key = key.replace("__", "/")
        if value is None:
            contents.pop(key)
        else:
            contents[key] = value
    path = tmp_path / "synthetic.npz"
    np.savez(path, **contents)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_a_recording_of_some_layers_reads_back_as_the_stored_rows_of_those_layers(exported, tmp_path, suffix):
    """Placed by their positions, the layers a lab kept keep the index and depth group they have in the network."""
    path, stored, _ = exported
    (whole,) = load_recordings(path)
    kept = [index for index in range(len(whole.layers)) if index != 1]  # a middle layer was not recorded
    layers = [whole.layers[index] for index in kept]
    arrays = {kind: {layer: by_layer[layer] for layer in layers} for kind, by_layer in whole.arrays.items()}
    part = Recording(whole.run, whole.steps, layers, arrays, whole.epochs, kept, len(whole.layers))
    read = read_recording(write_recording(part, tmp_path / f"part{suffix}"))
    expected = stored[stored["layer_index"].isin(kept)].reset_index(drop=True)
    assert read[["layer", "layer_index", "depth_group"]].equals(expected[["layer", "layer_index", "depth_group"]])
    np.testing.assert_allclose(read[list(OBSERVABLES)], expected[list(OBSERVABLES)], rtol=1e-5, atol=1e-6)
    assert partial_runs(read).to_dict() == {whole.run: f"{len(kept)} of {len(whole.layers)}"}
    assert partial_runs(read_recording(path)).empty and partial_runs(stored).empty


def test_synthetic_recording_gets_its_layers_in_order_and_nan_actchange(tmp_path):
    observables = read_recording(_synthetic(tmp_path))
    assert observables["layer"].tolist() == ["dense", "dense_1"] * 3
    assert observables["depth_group"].tolist() == ["middle", "deep"] * 3
    assert observables["run_id"].unique().tolist() == ["synthetic"]
    assert observables.filter(like="actchange_").isna().all().all()
    assert observables.filter(like="act_").notna().all().all()


def test_identifying_a_raw_recording_needs_no_tensorflow(tmp_path):
    """A recording's arrays are reduced in numpy and the default identifier is xgb: `lrid identify` of a
    recording works where TensorFlow cannot be imported, and never pays for its import where it can."""
    program = (
        "import sys; sys.modules['tensorflow'] = None; "  # any import of it now fails
        "from typer.testing import CliRunner; from lrid.cli import app; "
        f"result = CliRunner().invoke(app, ['identify', {str(_synthetic(tmp_path))!r}]); "
        "print(result.exit_code); print(result.output)"
    )
    ended = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert ended.stdout.splitlines()[0] == "0", ended.stdout + ended.stderr
    assert "synthetic" in ended.stdout and "predicted rule per run" in ended.stdout  # the run was named


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"weight__dense": np.zeros((2, 4, 5))}, "weight/dense has 2 steps but `steps` has 3"),
        ({"act__dense_1": None}, "layer\\(s\\) dense_1 have no act array"),
        ({"act__dense": np.full((3, 8, 5), np.nan)}, "act/dense has NaN or infinite values at step 0"),
        ({"steps": np.array([0, 20, 10])}, "increasing"),
        ({"steps": np.array([0.0, 1.0, 2.0])}, "integer"),
        ({"grad__dense": np.zeros((3, 4, 5))}, "unknown key 'grad/dense'"),
        ({"layers": np.array(["dense"])}, "dense_1 not in `layers`"),
        ({"layers": np.array(["dense", "dense_1", "dense_2"])}, "dense_2 have no weight array"),
        ({"act__dense": np.zeros((3, 5))}, "expected \\[T, batch, ...units\\]"),
        ({"steps": None}, "no `steps` array"),
        ({"network_layers": np.array(4)}, "2 of the network's 4 layers are recorded; say which with `layer_positions`"),
        ({"layer_positions": np.array([0, 2])}, "`layer_positions` without `network_layers`"),
        ({"network_layers": np.array(4), "layer_positions": np.array([2, 1])}, "increasing, from 0 .* to 3"),
        ({"network_layers": np.array(3), "layer_positions": np.array([1, 3])}, "`layer_positions` is \\[1, 3\\]"),
        ({"network_layers": np.array(4), "layer_positions": np.array([0.0, 2.0])}, "`layer_positions` is"),
        ({"network_layers": np.array(1), "layer_positions": np.array([0, 1])}, "`layer_positions` is \\[0, 1\\]"),
        ({"network_layers": np.array(2.5), "layer_positions": np.array([0, 1])}, "must be a positive integer"),
    ],
)
def test_malformed_npz_is_one_clear_error(tmp_path, changes, message):
    with pytest.raises(LridError, match=message):
        read_recording(_synthetic(tmp_path, **changes))


def test_malformed_parquet_is_one_clear_error(tmp_path):
    steps = [0, 10]
    rows = [
        {"step": s, "layer": layer, "kind": "act", "shape": [2, 3], "values": [0.1 * i for i in range(6)]}
        for layer in ("a", "b")
        for s in steps
    ]
    good = tmp_path / "good.parquet"
    pd.DataFrame(rows).to_parquet(good)
    assert len(read_recording(good)) == 4
    bad = tmp_path / "bad.parquet"
    pd.DataFrame(rows[:-1]).to_parquet(bad)  # layer b lacks step 10
    with pytest.raises(LridError, match="act/b is recorded at steps \\[0\\] but the run at \\[0, 10\\]"):
        read_recording(bad)
    text = tmp_path / "run.txt"
    text.write_text("steps: 0, 10")
    with pytest.raises(LridError, match="neither .npz nor .parquet"):
        read_recording(text)
    with pytest.raises(LridError, match="does not exist"):
        read_recording(tmp_path / "missing.npz")
    placed = tmp_path / "placed.parquet"
    uneven = [{**row, "network_layers": 4, "layer_position": {"a": 1, "b": 3}[row["layer"]]} for row in rows]
    pd.DataFrame(uneven).to_parquet(placed)
    assert read_recording(placed)["depth_group"].tolist() == ["middle", "deep"] * 2  # positions 1 and 3 of 4
    pd.DataFrame([{**row, "network_layers": None} if index == 1 else row for index, row in enumerate(uneven)]).to_parquet(placed)
    assert read_recording(placed)["network_layers"].unique().tolist() == [4]  # a column with a gap holds floats
    uneven[0]["network_layers"] = 5
    pd.DataFrame(uneven).to_parquet(placed)
    with pytest.raises(LridError, match="`network_layers` holds \\[4, 5\\]; give the run one value"):
        read_recording(placed)
    uneven[0].update(network_layers=4, layer_position=2)
    pd.DataFrame(uneven).to_parquet(placed)
    with pytest.raises(LridError, match="layer a has several `layer_position` values"):
        read_recording(placed)


def test_parquet_runs_read_in_row_groups_and_interleaved_are_each_runs_arrays(tmp_path):
    """Parquet values are read one row group at a time into each run's arrays; runs may interleave."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    runs = [
        Recording(name, np.array([0, 4, 8]), ["in", "out"], {
            "weight": {"in": rng.normal(size=(3, 6, width)), "out": rng.normal(size=(3, width, 2))},
            "act": {"in": rng.normal(size=(3, 5, width)), "out": rng.normal(size=(3, 5, 2))},
        }, np.array([0.0, 0.5, 1.0]))
        for name, width in (("first", 4), ("second", 7))
    ]
    tables = [pd.read_parquet(write_recording(run, tmp_path / f"{run.run}.parquet")) for run in runs]
    # Rows alternate between the runs, the second run's last row before the first run's, four rows a group.
    mixed = pd.concat([tables[0].iloc[:-1], tables[1]]).sort_index(kind="stable")
    mixed = pd.concat([mixed, tables[0].iloc[-1:]], ignore_index=True)
    path = tmp_path / "mixed.parquet"
    mixed.to_parquet(path, row_group_size=4)
    assert pq.ParquetFile(path).num_row_groups > 3
    read = load_recordings(path)
    assert [r.run for r in read] == ["first", "second"]
    for expected, got in zip(runs, read):
        assert got.layers == expected.layers and got.steps.tolist() == expected.steps.tolist()
        np.testing.assert_array_equal(got.epochs, expected.epochs)
        for kind, by_layer in expected.arrays.items():
            for layer, array in by_layer.items():
                assert got.arrays[kind][layer].dtype == np.float32
                np.testing.assert_array_equal(got.arrays[kind][layer], array.astype(np.float32))


def test_parquet_with_unreadable_values_is_one_clear_error(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "net.parquet"
    rows = [{"step": s, "layer": "a", "kind": "act", "shape": [4, 50], "values": np.linspace(s, s + 1, 200).tolist()}
            for s in (0, 10)]
    pd.DataFrame(rows).to_parquet(path)
    column = next(c for c in (pq.ParquetFile(path).metadata.row_group(0).column(i) for i in range(5))
                  if c.path_in_schema.startswith("values"))
    data = bytearray(path.read_bytes())
    end = (column.dictionary_page_offset or column.data_page_offset) + column.total_compressed_size
    for i in range(column.data_page_offset + 30, end - 4):  # the values' pages, past their header
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(LridError, match="net.parquet: row group 0 is not readable \\(OSError\\); rewrite the file"):
        read_recording(path)


def test_recording_dataclass_round_trips_through_npz(tmp_path):
    recording = Recording("net", np.array([0, 5]), ["l"], {"weight": {"l": np.ones((2, 3, 2)) * [[[1.0, 2.0]]]}})
    (again,) = load_recordings(write_recording(recording, tmp_path / "net.npz"))
    assert again.run == "net" and again.layers == ["l"] and again.steps.tolist() == [0, 5]
    np.testing.assert_array_equal(again.arrays["weight"]["l"], recording.arrays["weight"]["l"])


def test_cli_export_of_an_unknown_run_is_one_line(tiny_store, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    lrid = str(Path(sys.executable).parent / "lrid")
    result = subprocess.run([lrid, "export-recording", str(tiny_store), "nosuchrun", str(tmp_path / "r.npz")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: run 'nosuchrun' is not in {tiny_store}; `lrid status {tiny_store}` lists the store's runs"
    ]
    assert not (tmp_path / "r.npz").exists()
