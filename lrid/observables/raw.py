"""A raw recording: one network's per-layer weight, activation and activity-change arrays over steps.

These are the arrays the observables reduce. :func:`write_recording` writes them in the NPZ and Parquet
formats that :mod:`lrid.identify.recording` documents and reads, so a run re-trained by
:func:`lrid.generate.export.export_recording` and a network recorded by another framework look alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrid.errors import LridError

KINDS = ("weight", "act", "actchange")


@dataclass
class Recording:
    """One network's raw arrays: ``arrays[kind][layer]`` is [T, ...] over ``steps``, layers in depth order.

    A recording may hold some of the network's layers only (a lab records a few areas): ``network_layers``
    is then the whole network's number of layers, its readout included, and ``positions`` says where each
    recorded layer sits in it (0 the first layer, ``network_layers - 1`` the readout), so that every layer
    is read in the depth group it has in the network. Left None, the recording is the whole network.

    ``flatten`` says how a dense layer reading a conv layer's map flattened it (one of
    :data:`lrid.observables.update_reach.FLATTEN_ORDERS`); left None, such a layer's update reach is unknown.
    """

    run: str
    steps: np.ndarray
    layers: list[str]
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    epochs: np.ndarray | None = None
    positions: list[int] | None = None
    network_layers: int | None = None
    flatten: str | None = None

    @property
    def placement(self) -> tuple[list[int], int]:
        """Each recorded layer's position in the network, and the network's number of layers."""
        positions = list(range(len(self.layers))) if self.positions is None else [int(p) for p in self.positions]
        return positions, len(self.layers) if self.network_layers is None else int(self.network_layers)

    @property
    def partial(self) -> bool:
        """Whether the recording holds fewer layers than its network has."""
        return self.placement[1] > len(self.layers)


def write_recording(recording: Recording, path: str | Path) -> Path:
    """Write a recording as ``.npz`` or ``.parquet`` (by the suffix of ``path``) in the documented format."""
    path = Path(path)
    if path.suffix not in (".npz", ".parquet"):
        raise LridError(f"cannot write a recording to {path}; name it .npz or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        contents: dict[str, Any] = {
            "steps": recording.steps,
            "layers": np.asarray(recording.layers),
            "run": np.asarray(recording.run),
        }
        if recording.epochs is not None:
            contents["epoch"] = np.asarray(recording.epochs)
        if recording.partial:
            positions, contents["network_layers"] = recording.placement
            contents["layer_positions"] = np.asarray(positions, np.int64)
        if recording.flatten is not None:
            contents["flatten"] = np.asarray(recording.flatten)
        for kind, by_layer in recording.arrays.items():
            contents.update({f"{kind}/{layer}": by_layer[layer] for layer in recording.layers})
        np.savez_compressed(path, **contents)
        return path
    rows = []
    positions, network_layers = recording.placement
    placement = recording.partial
    for step_index, step in enumerate(recording.steps):
        for layer, position in zip(recording.layers, positions):
            for kind, by_layer in recording.arrays.items():
                array = by_layer[layer][step_index]
                rows.append(
                    {
                        "run": recording.run,
                        "step": int(step),
                        "layer": layer,
                        "kind": kind,
                        "shape": list(array.shape),
                        "values": array.ravel().tolist(),
                        **({"epoch": float(recording.epochs[step_index])} if recording.epochs is not None else {}),
                        **({"layer_position": position, "network_layers": network_layers} if placement else {}),
                        **({"flatten": recording.flatten} if recording.flatten is not None else {}),
                    }
                )
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path
