"""Records every measured layer's observables on a fixed probe batch, and any degraded views of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lrid.lazy_import import tf
from lrid.observables.degrade import degraded_activation, degraded_activity_change, degraded_kernel, layer_seed
from lrid.observables.measures import activity_change, layer_statistics
from lrid.schema import FULL_VIEW


class Recorder:
    """Computes the [n_layers, 45] observable matrix of ``model`` on ``probe`` in one compiled call.

    ``views`` (:class:`lrid.config.ViewSpec`) are each another [n_layers, 45] matrix, of the units they
    keep, with their measurement noise. They are computed in a separate compiled call: in one graph,
    TensorFlow's rewrites of the shared subexpressions change the full observables in the last bit.
    """

    def __init__(self, model: Any, probe: np.ndarray, views: Any = ()) -> None:
        self.model = model
        self.probe = tf.constant(probe)
        self.views = tuple(views)
        self._observe = tf.function(self._observe_all, autograph=False)
        self._observe_views = tf.function(self._observe_degraded, autograph=False)
        # The trace for self.probe, called without tf.function's per-call dispatch.
        self._observe_probe: Callable | None = None

    def _full(self):
        # The probe never changes, so one trace serves every recording; calling it directly skips the
        # argument canonicalisation and trace lookup of each tf.function call.
        if self._observe_probe is None:
            self._observe_probe = self._observe.get_concrete_function(self.probe)
        return self._observe_probe(self.probe).numpy()

    def _observe_all(self, probe):
        _, layer_inputs, layer_outputs = self.model.forward_with_activity(probe, exact_gradient=True)
        layers = zip(self.model.measured_layers, layer_inputs, layer_outputs)
        return tf.stack(
            [
                _one_step(layer.kernel, layer_output, activity_change(layer, layer_input))
                for layer, layer_input, layer_output in layers
            ]
        )

    def _observe_degraded(self, probe, seed, step):
        _, layer_inputs, layer_outputs = self.model.forward_with_activity(probe, exact_gradient=True)
        layers = list(zip(self.model.measured_layers, layer_inputs, layer_outputs))
        matrices = []
        for view_index, view in enumerate(self.views):
            rows = []
            for layer_index, (layer, layer_input, layer_output) in enumerate(layers):
                degrade = (view.units_fraction, view.noise_std, layer_seed(seed, view_index, layer_index), step)
                rows.append(
                    _one_step(
                        degraded_kernel(layer.kernel, *degrade),
                        degraded_activation(layer_output, *degrade),
                        degraded_activity_change(layer, layer_input, *degrade),
                    )
                )
            matrices.append(tf.stack(rows))
        return tf.stack(matrices)

    def record_all(self, step: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
        """Every view's observables now, ``"full"`` first, as float64 with non-finite values as NaN.

        ``seed`` (:func:`lrid.observables.degrade.run_seed`) fixes the views' unit subsets for a run and
        ``step`` draws their measurement noise afresh; neither changes the full observables.
        """
        values = [self._full()]
        if self.views:
            values += list(
                self._observe_views(self.probe, tf.constant(seed, tf.int64), tf.constant(step, tf.int64)).numpy()
            )
        names = [FULL_VIEW, *(view.name for view in self.views)]
        return {name: _finite_or_nan(matrix) for name, matrix in zip(names, values)}

    def record(self) -> np.ndarray:
        """The full observables now, as float64 with every non-finite value replaced by NaN."""
        return _finite_or_nan(self._full())


def with_reach(observed: dict[str, np.ndarray], reach: np.ndarray) -> dict[str, np.ndarray]:
    """Each view's [n_layers, 45] observables with the cross-layer column appended: [n_layers, 46].

    The full observables get ``reach`` (:class:`lrid.observables.update_reach.ReachRecorder`); a degraded
    view gets NaN, since which of a layer's updates its reader reads through units the view does not keep
    is not something the view measures.
    """
    return {
        name: np.column_stack([values, reach if name == FULL_VIEW else np.full(len(values), np.nan)])
        for name, values in observed.items()
    }


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


def _one_step(kernel, output, change):
    """:func:`layer_statistics` of one layer now: its 45 values."""
    kernel = tf.convert_to_tensor(kernel)
    return layer_statistics(kernel[None], output[None], change[None])[0]
