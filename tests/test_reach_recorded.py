"""Update reach as a recorded observable: generated runs store it, recordings get it on the host, stores from
before it read it as NaN, and classifiers read it as per-quarter summaries, from the CLI to `lrid identify`."""

import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from lrid.cli import app
from lrid.errors import LridError
from lrid.generate.export import export_recording
from lrid.identify.features import build_features
from lrid.identify.importance import column_levels
from lrid.identify.recording import (
    Recording,
    load_recordings,
    read_recording,
    recording_observables,
    require_measures,
    write_recording,
)
from lrid.observables.recorder import with_reach
from lrid.schema import OBSERVABLES, STORED_OBSERVABLES
from lrid.store import Store


@pytest.fixture(scope="module")
def stored(tiny_store):
    return Store(tiny_store).read_observables()


def test_every_generated_run_stores_each_layers_reach_since_the_last_recording(stored):
    assert list(STORED_OBSERVABLES) == [*OBSERVABLES, "reach"]
    first_step = stored["step"] == 0
    readout = stored["layer_index"] == stored["layer_index"].max()
    assert stored.loc[first_step | readout, "reach"].isna().all()  # no update before, no reader above
    assert stored.loc[~first_step & ~readout, "reach"].notna().all()
    # Backprop's errors reach the hidden layer through the readout's weights; random feedback's do not.
    under_readout = stored[stored["layer_index"] == 1].groupby(["rule", "run_id"])["reach"].mean()
    backprop, feedback = under_readout[["sgdm", "adam"]], under_readout[["fa", "ia"]]
    assert backprop.min() > feedback.max()


def test_an_exported_recording_gets_the_reach_its_run_stored(tiny_store, stored, tmp_path):
    store = Store(tiny_store)
    manifest = next(m for m in store.manifests() if m["spec"]["rule"]["name"] == "sgdm")
    path = export_recording(store, tmp_path / "run.npz", run_id=manifest["run_id"])
    read = read_recording(path)
    run = stored[stored["run_id"] == manifest["run_id"]].reset_index(drop=True)
    assert read[["step", "layer_index"]].equals(run[["step", "layer_index"]])
    # The store's run may have trained in a population, whose sums run in another order than the solo
    # re-run's: the kernels agree to float32 rounding, and the reach, a ratio of their changes, closely.
    np.testing.assert_allclose(read["reach"], run["reach"], rtol=1e-3, atol=1e-4)
    # A recording of some of the layers has no reach: the layer above a recorded one may not be there.
    (recording,) = load_recordings(path)
    recording.layers, recording.positions, recording.network_layers = recording.layers[:2], [0, 1], 3
    assert recording_observables(recording)["reach"].isna().all()


def test_a_store_written_before_reach_existed_reads_it_as_nan(tiny_store, stored, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy)
    store = Store(copy)
    manifest = store.manifests()[0]
    path = copy / manifest["observables"]
    pq.write_table(pq.read_table(path).drop(["reach"]), path)  # the file as lrid wrote it before
    read = store.read_observables()
    old = read["run_id"] == manifest["run_id"]
    assert read.loc[old, "reach"].isna().all() and read.loc[~old, "reach"].notna().any()
    pd.testing.assert_frame_equal(read[list(OBSERVABLES)], stored[list(OBSERVABLES)])


def test_a_degraded_view_keeps_no_reach():
    observed = {"full": np.zeros((3, len(OBSERVABLES))), "u0.5_n0.1": np.ones((3, len(OBSERVABLES)))}
    recorded = with_reach(observed, np.array([0.5, 0.2, np.nan]))
    assert recorded["full"].shape == (3, len(STORED_OBSERVABLES))
    np.testing.assert_array_equal(recorded["full"][:, -1], [0.5, 0.2, np.nan])
    assert np.isnan(recorded["u0.5_n0.1"][:, -1]).all()
    np.testing.assert_array_equal(recorded["u0.5_n0.1"][:, :-1], observed["u0.5_n0.1"])


def _reach_table(steps: list[int], reach_by_layer: list[list[float]], run_id: str = "run") -> pd.DataFrame:
    """One run's rows: the given steps, one reach trajectory per layer (its first value NaN), weights all 1."""
    rows = []
    for layer, reach in enumerate(reach_by_layer):
        for step, value in zip(steps, reach):
            rows.append({"run_id": run_id, "step": step, "layer_index": layer, "depth_group": "deep",
                         **dict.fromkeys(OBSERVABLES, 1.0), "reach": value})
    return pd.DataFrame(rows)


def test_reach_is_averaged_over_each_quarter_of_training_by_the_intervals_overlap():
    nan = np.nan
    even = build_features(_reach_table([0, 1, 2, 3, 4], [[nan, 1, 2, 3, 4]]), subset="reach")
    assert even.feature_names == ["depth_early", "depth_middle", "depth_deep", "reach@q1", "reach@q2", "reach@q3", "reach@q4"]
    np.testing.assert_allclose(even.X[0, 3:], [1, 2, 3, 4])
    # A schedule denser early (fractions 0, 1/8, 3/8, 1): intervals straddle quarters and weigh by their overlap,
    # and a missing value is left out rather than counted.
    uneven = build_features(_reach_table([0, 10, 30, 80], [[nan, 1, 2, 3]]), subset="reach")
    np.testing.assert_allclose(uneven.X[0, 3:], [1.5, 2.5, 3, 3])
    gap = build_features(_reach_table([0, 10, 30, 80], [[nan, 1, nan, 3]]), subset="reach")
    np.testing.assert_allclose(gap.X[0, 3:], [1, 3, 3, 3])
    # Other observables keep their trajectories, with the reach after every other column.
    both = build_features(_reach_table([0, 1, 2, 3, 4], [[nan, 1, 2, 3, 4]]), subset="weight,reach")
    assert both.n_static == 7 and both.feature_names[-4:] == ["reach@q1", "reach@q2", "reach@q3", "reach@q4"]
    assert "reach" not in {name.split("@")[0] for name in build_features(_reach_table([0, 1], [[nan, 1]])).feature_names}


def test_a_runs_reach_is_its_layer_under_the_readout_and_the_mean_of_those_below():
    nan = np.nan
    table = _reach_table([0, 1, 2, 3, 4], [[nan, 1, 1, 1, 1], [nan, 3, 3, 3, 3], [nan, 5, 5, 5, 5], [nan] * 5])
    features = build_features(table, subset="reach", unit="run")
    assert features.feature_names == [f"reach@{part}@q{q}" for part in ("top", "lower") for q in (1, 2, 3, 4)]
    np.testing.assert_allclose(features.X[0], [5, 5, 5, 5, 2, 2, 2, 2])
    one_hidden = build_features(_reach_table([0, 1, 2, 3, 4], [[nan, 1, 1, 1, 1], [nan] * 5]), subset="reach", unit="run")
    assert np.isnan(one_hidden.X[0, 4:]).all()
    assert column_levels("reach@top@q2").measure == "reach"


def test_a_model_that_reads_reach_needs_a_recordings_weights(tiny_store, tmp_path):
    store = Store(tiny_store)
    manifest = store.manifests()[0]
    (recording,) = load_recordings(export_recording(store, tmp_path / "run.npz", run_id=manifest["run_id"]))
    del recording.arrays["weight"]
    observables = recording_observables(recording)
    require_measures(observables, ["act_abs_mean@t2", "depth_deep"])
    with pytest.raises(LridError, match="no weight observables"):
        require_measures(observables, ["act_abs_mean@t2", "reach@top@q1"])


def test_classify_reads_reach_from_the_cli_and_identify_names_a_recording_with_it(tiny_store, tmp_path):
    runner = CliRunner()
    results = tmp_path / "results"
    classified = runner.invoke(app, ["classify", "--store", str(tiny_store), "--out", str(results), "--classifiers",
                                     "linear", "--splits", "2", "--observables", "weight,reach", "--unit", "run",
                                     "--no-control"])
    assert classified.exit_code == 0, classified.output
    store = Store(tiny_store)
    manifest = next(m for m in store.manifests() if m["spec"]["rule"]["name"] == "fa")
    recording = export_recording(store, tmp_path / "fa.npz", run_id=manifest["run_id"])
    output = tmp_path / "named.csv"
    named = runner.invoke(app, ["identify", str(results / "models" / "linear"), str(recording), "--output", str(output)])
    assert named.exit_code == 0, named.output
    predictions = pd.read_csv(output)
    assert predictions["predicted"].tolist() == ["fa"]


def _conv_recording(flatten: str | None, order: str = "channels_last") -> Recording:
    """A conv layer of 8 channels under a dense readout of its 2x2 map that reads one channel direction only,
    the readout's kernel flattened in ``order``; the conv layer's update is shaped like what the readout reads,
    so its reach is exactly 1 where the order is known."""
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(8)
    direction /= np.linalg.norm(direction)
    blocks = np.stack([np.outer(direction, rng.standard_normal(10)) for _ in range(4)])  # [position, channel, out]
    readout = blocks.reshape(32, 10) if order == "channels_last" else blocks.transpose(1, 0, 2).reshape(32, 10)
    conv = rng.standard_normal((3, 3, 1, 8))
    update = np.outer(rng.standard_normal(9), direction).reshape(3, 3, 1, 8)
    weights = {"conv": np.stack([conv, conv + update, conv + 3 * update]), "readout": np.stack([readout] * 3)}
    return Recording("conv", np.array([0, 10, 20]), ["conv", "readout"], {"weight": weights}, flatten=flatten)


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_a_recording_that_says_how_its_maps_were_flattened_gets_its_readouts_reach(tmp_path, suffix):
    for order in ("channels_last", "channels_first"):
        said = read_recording(write_recording(_conv_recording(order, order), tmp_path / f"{order}{suffix}"))
        under_readout = said.loc[(said["layer"] == "conv") & (said["step"] > 0), "reach"]
        np.testing.assert_allclose(under_readout, 1.0, rtol=1e-5)
    (unsaid,) = load_recordings(write_recording(_conv_recording(None), tmp_path / f"unsaid{suffix}"))
    assert unsaid.flatten is None and recording_observables(unsaid)["reach"].isna().all()


def test_an_unknown_flatten_order_is_one_line_naming_the_choices(tmp_path):
    path = write_recording(_conv_recording(None), tmp_path / "run.npz")
    with np.load(path) as archive:
        contents = dict(archive)
    np.savez(path, **contents, flatten=np.asarray("NHWC"))
    with pytest.raises(LridError, match="`flatten` is 'NHWC'; say channels_last .NHWC. or channels_first") as error:
        load_recordings(path)
    assert "\n" not in str(error.value)


def test_an_exported_conv_run_says_its_maps_are_channels_last_and_reads_back_its_runs_reach(tmp_path):
    from lrid.config import ModelSpec, RuleSpec, RunSpec, TrainSpec
    from lrid.generate.trainer import train_run

    spec = RunSpec(rule=RuleSpec(name="sgdm"), task={"name": "digits", "options": {"as_images": True}},
                   model=ModelSpec(arch="convnet", conv_filters=(4, 32), conv_strides=(2, 2)),
                   train=TrainSpec(epochs=1, batch_size=128), observe={"points": 3, "probe_size": 16})
    (recording,) = load_recordings(export_recording(spec, tmp_path / "conv.npz"))
    assert recording.flatten == "channels_last"
    # The 8x8 image strided twice leaves a 2x2 map, which the readout reads over its 4 positions.
    assert recording.arrays["weight"][recording.layers[-1]].shape[1:] == (4 * 32, 10)
    read = recording_observables(recording)["reach"].to_numpy()
    stored = train_run(spec).observables["reach"].to_numpy()
    np.testing.assert_array_equal(read, stored)
    # The layer under the readout, at both points after the first: the readout reads it over its 4 positions.
    # (The first conv layer, read through 9 taps of 32 channels, is read too evenly to tell.)
    assert np.isfinite(read).sum() == 2
