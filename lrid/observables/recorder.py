"""Records every measured layer's observables on a fixed probe batch."""

from __future__ import annotations

import numpy as np

from lrid.lazy_import import tf
from lrid.observables.measures import activation_observables, activity_change_observables, weight_observables


class Recorder:
    """Computes the [n_layers, 45] observable matrix of ``model`` on ``probe`` in one compiled call."""

    def __init__(self, model, probe: np.ndarray):
        self.model = model
        self.probe = tf.constant(probe)
        self._observe = tf.function(self._observe_all)

    def _observe_all(self, probe):
        _, layer_inputs, layer_outputs = self.model.forward_with_activity(probe, exact_gradient=True)
        rows = []
        for layer, layer_input, layer_output in zip(self.model.measured_layers, layer_inputs, layer_outputs):
            rows.append(
                tf.concat(
                    [
                        weight_observables(layer),
                        activation_observables(layer_output),
                        activity_change_observables(layer, layer_input),
                    ],
                    axis=0,
                )
            )
        return tf.stack(rows)

    def record(self) -> np.ndarray:
        """The observables now, as float64 with every non-finite value replaced by NaN."""
        values = self._observe(self.probe).numpy().astype(np.float64)
        values[~np.isfinite(values)] = np.nan
        return values
