"""Degraded views: unit subsampling and measurement noise, recorded during generation and classified."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrid.config import ObserveSpec, RunSpec, load_sweep
from lrid.errors import LridError
from lrid.observables import OBSERVABLES
from lrid.store import Store

REPO = Path(__file__).resolve().parent.parent

VIEWS_SWEEP = """
name: views
task: {name: digits}
model: {arch: mlp, hidden: [16, 16], activation: tanh}
train: {epochs: 1, batch_size: 64}
observe:
  points: 3
  probe_size: 32
  views:
    - {units_fraction: 1.0, noise_std: 0.0}
    - {units_fraction: 0.5, noise_std: 0.1}
rules:
  sgdm: {lr: 0.05}
  fa: {lr: 0.05}
grid:
  model_seed: [0, 1]
  data_seed: [0, 1]
"""


@pytest.fixture(scope="module")
def views_store(tmp_path_factory):
    """Eight small runs (2 rules x 4 seeds) recording the full observables and two views."""
    from lrid.generate import generate

    root = tmp_path_factory.mktemp("views")
    (root / "views.yaml").write_text(VIEWS_SWEEP)
    summary = generate(load_sweep(root / "views.yaml"), root / "store", progress=False)
    assert summary.complete == 8, summary
    return root / "store"


def test_specs_without_views_keep_their_run_ids():
    spec = RunSpec(rule={"name": "sgdm"})
    assert "views" not in spec.model_dump(mode="json")["observe"]
    shipped = Store(REPO / "data" / "sample_store").manifests()
    assert shipped
    for manifest in shipped:
        assert RunSpec(**manifest["spec"]).run_id == manifest["run_id"]
    with_view = RunSpec(rule={"name": "sgdm"}, observe={"views": [{"units_fraction": 0.5}]})
    assert with_view.run_id != spec.run_id
    assert RunSpec(**with_view.model_dump(mode="json")).run_id == with_view.run_id


@pytest.mark.parametrize(
    "views, message",
    [
        ([{"units_fraction": 0}], "greater than 0"),
        ([{"units_fraction": 1.5}], "less than or equal to 1"),
        ([{"noise_std": -1}], "greater than or equal to 0"),
        ([{"units_fraction": 0.5}, {"units_fraction": 0.5, "noise_std": 0}], "views listed twice: u0.5_n0"),
    ],
)
def test_bad_views_are_refused(views, message):
    with pytest.raises(ValueError, match=message):
        ObserveSpec(views=views)


def test_unit_subset_is_seeded_sorted_and_sized_by_ceil():
    from lrid.lazy_import import tf
    from lrid.observables.degrade import kept_units, layer_seed

    seed = layer_seed(7, 1, 0)
    first = kept_units(10, 0.25, seed).numpy()
    assert len(first) == 3 and np.all(np.diff(first) > 0)  # ceil(2.5) units, in their original order
    np.testing.assert_array_equal(kept_units(10, 0.25, layer_seed(7, 1, 0)).numpy(), first)
    others = {tuple(kept_units(10, 0.25, layer_seed(s, 1, 0)).numpy()) for s in range(8)}
    assert len(others) > 1
    assert kept_units(10, 1.0, seed) is None
    kernel = tf.reshape(tf.range(40, dtype=tf.float32), [4, 10])
    from lrid.observables.degrade import degraded_kernel

    kept = degraded_kernel(kernel, 0.25, 0.0, seed, 0).numpy()
    np.testing.assert_array_equal(kept, kernel.numpy()[:, first])  # the kept units' incoming synapses


def test_noise_has_the_requested_scale_and_is_fresh_per_step():
    from lrid.lazy_import import tf
    from lrid.observables.degrade import degraded_activation, layer_seed

    clean = tf.zeros([200, 500])
    seed = layer_seed(3, 0, 0)
    noisy = degraded_activation(clean, 1.0, 0.3, seed, 5).numpy()
    assert abs(noisy.std() - 0.3) < 0.003 and abs(noisy.mean()) < 0.003
    np.testing.assert_array_equal(degraded_activation(clean, 1.0, 0.3, seed, 5).numpy(), noisy)
    assert not np.array_equal(degraded_activation(clean, 1.0, 0.3, seed, 6).numpy(), noisy)
    np.testing.assert_array_equal(degraded_activation(clean + 1.0, 1.0, 0.0, seed, 5).numpy(), clean.numpy() + 1.0)


def test_views_are_stored_beside_the_full_observables(views_store):
    store = Store(views_store)
    assert store.view_names() == ["full", "u0.5_n0.1", "u1_n0"]
    full = store.read_observables()
    same = Store(views_store, view="u1_n0").read_observables()
    degraded = Store(views_store, view="u0.5_n0.1").read_observables()
    assert len(full) == len(same) == len(degraded) == 8 * 3 * 3  # runs x points x layers
    assert (views_store / "views" / "u0.5_n0.1").is_dir() and not store.orphan_observables()
    # Every unit kept, no noise: the full observables, to float32 rounding (a separately compiled graph).
    np.testing.assert_allclose(same[list(OBSERVABLES)], full[list(OBSERVABLES)], rtol=1e-5, atol=1e-7)
    # Noise of std 0.1 on every synapse adds about 0.01 to the kernel's variance (here over half its units).
    added = (degraded["weight_raw_var"] - full["weight_raw_var"]).to_numpy()
    assert 0.007 < added.mean() < 0.013
    assert np.all(degraded["act_raw_norm"] != full["act_raw_norm"])
    with pytest.raises(LridError, match="no run in .* recorded view 'u0.2_n0'; views present: full, u0.5_n0.1, u1_n0"):
        Store(views_store, view="u0.2_n0").read_observables()


def test_regenerating_a_view_is_bit_identical(views_store):
    from lrid.generate.trainer import train_run

    manifest = Store(views_store).manifests()[0]
    again = train_run(RunSpec(**manifest["spec"])).observables
    again = again[again["view"] == "u0.5_n0.1"].reset_index(drop=True)
    stored = Store(views_store, view="u0.5_n0.1").read_observables()
    stored = stored[stored["run_id"] == manifest["run_id"]].reset_index(drop=True)
    np.testing.assert_array_equal(again[list(OBSERVABLES)].to_numpy(), stored[list(OBSERVABLES)].to_numpy())


def test_robustness_table_has_a_row_per_view_and_classifier(views_store, tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lrid"), "robustness", "--store", str(views_store), "--out", str(tmp_path),
         "--classifiers", "linear,rf", "--splits", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "Robustness: accuracy per view" in result.stdout and "robustness.json" in result.stdout
    rows = json.loads((tmp_path / "robustness.json").read_text())["rows"]
    assert [(r["view"], r["classifier"]) for r in rows] == [
        (view, classifier) for view in ("full", "u1_n0", "u0.5_n0.1") for classifier in ("linear", "rf")
    ]
    for row in rows:
        assert set(row) >= {"view", "units_fraction", "noise_std", "classifier", "accuracy_mean", "accuracy_sem", "n_runs"}
        assert 0 <= row["accuracy_mean"] <= 1 and row["n_runs"] == 8
    assert rows[-1]["units_fraction"] == 0.5 and rows[-1]["noise_std"] == 0.1
    assert (tmp_path / "views" / "u0.5_n0.1" / "scores.json").exists()


def test_robustness_refuses_a_store_without_views(tmp_path):
    from lrid.identify.robustness import robustness

    with pytest.raises(LridError, match="holds no degraded views"):
        robustness(REPO / "data" / "sample_store", tmp_path)
