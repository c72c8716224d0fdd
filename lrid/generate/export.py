"""Exporting an lrid run as a raw recording, so the recording format can be seen on a real example."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrid.config import RunSpec
from lrid.errors import LridError
from lrid.generate.trainer import train_run
from lrid.observables.measures import activity_change
from lrid.observables.raw import KINDS, Recording, write_recording
from lrid.store import Store


def export_recording(source: RunSpec | Store | str | Path, path: str | Path, run_id: str | None = None) -> Path:
    """Re-run an lrid run and write its raw weights, activations and activity changes as a recording.

    ``source`` is a :class:`lrid.config.RunSpec`, or a store (path or :class:`lrid.store.Store`) holding
    ``run_id``. Training is deterministic, so the arrays are those the run's observables were computed
    from, at the same recorded steps. Returns ``path``.
    """
    if isinstance(source, RunSpec):
        spec = source
    else:
        store = source if isinstance(source, Store) else Store(source)
        manifests = {m["run_id"]: m for m in store.manifests()}
        if run_id not in manifests:
            raise LridError(
                f"run {run_id!r} is not in {store.location}; `lrid status {store.location}` lists the store's runs"
            )
        spec = RunSpec(**manifests[run_id]["spec"])
    if Path(path).suffix not in (".npz", ".parquet"):
        raise LridError(f"cannot write a recording to {path}; name it .npz or .parquet")

    captured: dict[str, dict[str, list]] = {kind: {} for kind in KINDS}
    steps: list[int] = []

    def capture(step, model, probe):
        _, layer_inputs, layer_outputs = model.forward_with_activity(probe, exact_gradient=True)
        steps.append(step)
        for layer, layer_input, layer_output in zip(model.measured_layers, layer_inputs, layer_outputs):
            captured["weight"].setdefault(layer.name, []).append(layer.kernel.numpy())
            captured["act"].setdefault(layer.name, []).append(layer_output.numpy())
            captured["actchange"].setdefault(layer.name, []).append(activity_change(layer, layer_input).numpy())

    result = train_run(spec, on_record=capture)
    if result.manifest["status"] == "failed" or result.observables is None:
        raise LridError(f"run {spec.run_id} failed when re-run ({result.manifest.get('error')}); it has no recording")
    layers = list(captured["weight"])
    epochs = result.observables.drop_duplicates("step").set_index("step").loc[steps, "epoch"].to_numpy()
    arrays = {kind: {layer: np.stack(captured[kind][layer]) for layer in layers} for kind in KINDS}
    # TensorFlow's maps are NHWC, and lrid's models flatten them so.
    recording = Recording(spec.run_id, np.asarray(steps, np.int64), layers, arrays, epochs, flatten="channels_last")
    return write_recording(recording, path)
