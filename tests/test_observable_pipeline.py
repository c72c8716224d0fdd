"""One observable pipeline: the recorder and degraded views reduce through
:func:`lrid.observables.measures.layer_statistics`, raw recordings through its numpy twin on the host, and all
give the values the three earlier implementations gave.

``data/observables_before_one_pipeline.json`` was written by the code before the pipeline was merged (the
recorder, the degraded views and :func:`recording_observables` each reduced their own arrays): a ConvNet's
full observables and a degraded view on a fixed probe, and the observables of a synthetic raw recording
without activity changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).parent / "data" / "observables_before_one_pipeline.json"


def compute():
    from lrid.config import ModelSpec, ViewSpec
    from lrid.identify.recording import recording_observables
    from lrid.models import build_model
    from lrid.observables import OBSERVABLES
    from lrid.observables.raw import Recording
    from lrid.observables.recorder import Recorder
    from lrid.tasks import get_task

    task = get_task("digits", as_images=True)
    model = build_model(ModelSpec(arch="convnet", width=0.25), task, feedback=None, seed=3)
    recorder = Recorder(model, task.probe_batch(16, 0), views=[ViewSpec(units_fraction=0.5, noise_std=0.1)])
    views = recorder.record_all(step=2, seed=11)
    rng = np.random.default_rng(5)
    recording = Recording("synthetic", np.array([0, 5]), ["a", "b"], {
        "weight": {"a": rng.normal(size=(2, 6, 4)), "b": rng.normal(size=(2, 4, 3))},
        "act": {"a": rng.normal(size=(2, 8, 4)), "b": np.tanh(rng.normal(size=(2, 8, 3)))},
    })
    return views, recording_observables(recording)[list(OBSERVABLES)].to_numpy(), model, recorder


def test_recorder_views_and_recordings_give_the_values_of_before_the_pipeline_was_merged():
    golden = json.loads(GOLDEN.read_text())
    views, recording, _, _ = compute()
    assert sorted(views) == sorted(golden["views"]) == ["full", "u0.5_n0.1"]
    for name, matrix in views.items():
        _assert_close_to_golden(matrix, np.array(golden["views"][name]))
    expected = np.array(golden["recording"], dtype=float)
    assert np.isnan(expected[:, -3:]).all()  # no actchange arrays: those columns are NaN
    _assert_close_to_golden(recording, expected)


def _assert_close_to_golden(computed, golden):
    """Equal to float32 rounding. Skew, 3 (mean - median) / std, is a difference of close numbers: a last-bit
    change in the mean's summation order moves it by ~1e-7 absolute, so its columns get that much more room."""
    from lrid.observables import OBSERVABLES

    skew = np.array([name.endswith("_skew") for name in OBSERVABLES])
    np.testing.assert_allclose(computed[:, ~skew], golden[:, ~skew], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(computed[:, skew], golden[:, skew], rtol=1e-6, atol=1e-6)


def test_a_recording_of_a_networks_arrays_gives_the_recorders_observables():
    """The recorder (TensorFlow) and a raw recording of the same layer arrays (numpy, on the host) give the same
    observables to float32 rounding: the two sum in different orders, so not to the bit."""
    from lrid.identify.recording import recording_observables
    from lrid.observables import OBSERVABLES
    from lrid.observables.measures import activity_change
    from lrid.observables.raw import Recording

    views, _, model, recorder = compute()
    _, inputs, outputs = model.forward_with_activity(recorder.probe, exact_gradient=True)
    names = [layer.name for layer in model.measured_layers]
    arrays = {
        "weight": {n: layer.kernel.numpy()[None] for n, layer in zip(names, model.measured_layers)},
        "act": {n: output.numpy()[None] for n, output in zip(names, outputs)},
        "actchange": {n: activity_change(layer, x).numpy()[None]
                      for n, layer, x in zip(names, model.measured_layers, inputs)},
    }
    observables = recording_observables(Recording("same", np.array([0]), names, arrays))
    np.testing.assert_allclose(observables[list(OBSERVABLES)].to_numpy(), views["full"], rtol=1e-5, atol=1e-6)
