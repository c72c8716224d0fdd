"""Degraded views of a layer: recording only some of its units, with Gaussian measurement noise.

Nayebi et al. (2020) ask how well rules are told apart when an experimenter sees only part of a network,
noisily (their code's ``obfuscate_tensor``: noise first, then a seeded ``ceil(frac * N)`` subset). lrid
follows that recipe with one deliberate difference, so that a view is one consistent set of recorded
neurons rather than unrelated subsets per measure:

* A *unit* is an output channel: a dense layer's neuron, a convolution's feature map (at every position).
  A view keeps ``ceil(units_fraction * n_units)`` of a layer's units, drawn once per run and kept for the
  whole trajectory. The activations are those units' outputs; the weights are their incoming synapses,
  the kernel's matching output columns (Nayebi et al. instead drew kernel entries and activation entries
  independently); the activity change sums the Jacobian over the kept output units and over a seeded
  subset of the same fraction of input channels (their pre/post-synaptic split), divided by the kept
  output count.
* Noise is additive Gaussian, ``N(0, noise_std^2)`` in the array's own units, drawn afresh at every
  recording step (a new measurement), and added before the subsampling, as theirs: to every kernel entry,
  every activation, and each example's activity change.

Everything is drawn from stateless generators keyed by the run's seed, the view, the layer and (for noise)
the step, so the same run gives bit-identical views, and a view with ``units_fraction=1`` and
``noise_std=0`` is the full observables exactly.
"""

from __future__ import annotations

import math
from typing import Any

from lrid.lazy_import import tf
from lrid.observables.measures import activity_change, keep_channels

# Streams under a (view, layer) seed, so that no two draws share random numbers.
_OUTPUT_UNITS, _INPUT_UNITS, _WEIGHT_NOISE, _ACT_NOISE, _ACTCHANGE_NOISE = range(5)


def run_seed(run_id: str) -> int:
    """The seed of a run's views, from its id: fixed for the run, different between runs."""
    return int(run_id[:8], 16) % (2**31)


def layer_seed(seed: Any, view_index: int, layer_index: int) -> Any:
    """The stateless seed ([2] int64) of one view of one layer, derived from the run's ``seed``."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(base, view_index), layer_index
    )


def kept_units(n_units: int, fraction: float, seed: Any, stream: int = _OUTPUT_UNITS) -> Any:
    """Sorted indices of ``ceil(fraction * n_units)`` units drawn without replacement; None if all are kept.

    Sorting keeps the units in their original order, so reductions over a view that keeps every unit add
    the same numbers in the same order as the full observables.
    """
    count = math.ceil(fraction * n_units)
    if count >= n_units:
        return None
    scores = tf.random.stateless_uniform([n_units], tf.random.experimental.stateless_fold_in(seed, stream))
    return tf.sort(tf.math.top_k(scores, count).indices)


def add_noise(values: Any, std: float, seed: Any, step: Any, stream: int) -> Any:
    """``values`` plus N(0, std^2) noise drawn for this recording ``step``; unchanged when ``std`` is 0."""
    if std == 0:
        return values
    step_seed = tf.random.experimental.stateless_fold_in(tf.random.experimental.stateless_fold_in(seed, stream), step)
    return values + std * tf.random.stateless_normal(tf.shape(values), step_seed, dtype=values.dtype)


def degraded_kernel(kernel: Any, units_fraction: float, noise_std: float, seed: Any, step: Any) -> Any:
    """The kernel as recorded: noise on every synapse, then the kept units' incoming synapses (last axis)."""
    kernel = tf.convert_to_tensor(kernel, tf.float32)
    noisy = add_noise(kernel, noise_std, seed, step, _WEIGHT_NOISE)
    return keep_channels(noisy, kept_units(kernel.shape[-1], units_fraction, seed))


def degraded_activation(layer_output: Any, units_fraction: float, noise_std: float, seed: Any, step: Any) -> Any:
    """The layer output as recorded: noise on every value, then the kept units (last axis) at every position."""
    layer_output = tf.convert_to_tensor(layer_output, tf.float32)
    noisy = add_noise(layer_output, noise_std, seed, step, _ACT_NOISE)
    return keep_channels(noisy, kept_units(layer_output.shape[-1], units_fraction, seed))


def degraded_activity_change(
    layer: Any, layer_input: Any, units_fraction: float, noise_std: float, seed: Any, step: Any
) -> Any:
    """Per example, the Jacobian summed over kept outputs and kept inputs, over the kept output count, plus noise.

    With every unit kept and no noise this is :func:`lrid.observables.measures.activity_change`.
    """
    output_units = kept_units(layer.kernel.shape[-1], units_fraction, seed)
    input_units = kept_units(layer_input.shape[-1], units_fraction, seed, _INPUT_UNITS)
    change = activity_change(layer, layer_input, output_units, input_units)
    return add_noise(change, noise_std, seed, step, _ACTCHANGE_NOISE)
