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
    """One network's raw arrays: ``arrays[kind][layer]`` is [T, ...] over ``steps``, layers in depth order."""

    run: str
    steps: np.ndarray
    layers: list[str]
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    epochs: np.ndarray | None = None


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
        for kind, by_layer in recording.arrays.items():
            contents.update({f"{kind}/{layer}": by_layer[layer] for layer in recording.layers})
        np.savez_compressed(path, **contents)
        return path
    rows = []
    for step_index, step in enumerate(recording.steps):
        for layer in recording.layers:
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
                    }
                )
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path
