"""The one observable pipeline: a layer's (kernel, output, activity change) arrays reduced to its 45 statistics.

Everything lrid trains reduces its arrays with :func:`layer_statistics`: the recorder from a network on its
probe batch, and the degraded views from the units and noise they keep (:mod:`lrid.observables.degrade`).
Raw recordings, arrays another framework wrote, are already on the host and reduced there by
:func:`lrid.observables.host_statistics.layer_statistics`, the same arithmetic in numpy. The activity change
itself, the one Jacobian reduction, is :func:`activity_change`.
"""

from __future__ import annotations

from typing import Any

from lrid.lazy_import import tf
from lrid.observables import FUNCTIONS
from lrid.observables.host_statistics import MEASURE_WIDTHS
from lrid.observables.statistics import apply_function, describe_steps


def weight_statistics(kernels: Any) -> Any:
    """Statistics of each step's forward kernel over all its entries: [steps, *kernel] -> [steps, 21].

    The norm is the whole kernel's Frobenius norm. Nayebi et al.'s code reshapes the kernel to
    [shape[0], -1] before the norm, which yields one norm per input unit and leaves the reduction to one
    number unstated.
    """
    kernels = tf.convert_to_tensor(kernels)
    return describe_steps(tf.reshape(kernels, [tf.shape(kernels)[0], 1, -1]))


def activation_statistics(outputs: Any) -> Any:
    """Statistics over each example's units, averaged over the probe batch: [steps, batch, ...] -> [steps, 21]."""
    outputs = tf.convert_to_tensor(outputs)
    shape = tf.shape(outputs)
    return describe_steps(tf.reshape(outputs, [shape[0], shape[1], -1]))


def activity_change_statistics(changes: Any) -> Any:
    """The probe-batch mean of raw, abs and squared activity change: [steps, batch] -> [steps, 3]."""
    changes = tf.cast(changes, tf.float32)
    return tf.stack([tf.reduce_mean(apply_function(changes, f), axis=1) for f in FUNCTIONS], axis=1)


def layer_statistics(kernels: Any = None, outputs: Any = None, changes: Any = None) -> Any:
    """A layer's 45 observables at each step, in :data:`OBSERVABLES` order: [steps, 45].

    ``kernels`` is [steps, *kernel shape], ``outputs`` [steps, batch, ...] and ``changes`` [steps, batch]
    (:func:`activity_change` per step). A measure given as None (a recording that lacks it) is NaN.
    """
    given = next(a for a in (kernels, outputs, changes) if a is not None)
    n_steps = tf.shape(given)[0]
    parts = []
    for values, reduce, width in (
        (kernels, weight_statistics, MEASURE_WIDTHS["weight"]),
        (outputs, activation_statistics, MEASURE_WIDTHS["act"]),
        (changes, activity_change_statistics, MEASURE_WIDTHS["actchange"]),
    ):
        parts.append(tf.fill([n_steps, width], float("nan")) if values is None else reduce(values))
    return tf.concat(parts, axis=1)


def activity_change(layer: Any, layer_input: Any, output_units: Any = None, input_units: Any = None) -> Any:
    """Per example, the layer's input-output Jacobian summed over its entries, divided by its output units.

    ``sum_i sum_j dy_i/dx_j / n_out`` is the gradient of ``sum_i y_i`` with respect to x summed over x's
    entries. The Jacobian is the forward map's (``exact_gradient=True``), never the rule's feedback path.
    ``output_units`` and ``input_units`` (channel indices on the last axis; None: all) restrict the sums to
    the units a degraded view keeps; ``n_out`` then counts the kept outputs.
    """
    with tf.GradientTape() as tape:
        tape.watch(layer_input)
        layer_output = keep_channels(layer(layer_input, exact_gradient=True), output_units)
        total_output = tf.reduce_sum(layer_output)
    jacobian_row_sums = keep_channels(tape.gradient(total_output, layer_input), input_units)
    batch_size = tf.shape(layer_input)[0]
    n_outputs = tf.cast(tf.reduce_prod(tf.shape(layer_output)[1:]), tf.float32)
    return tf.reduce_sum(tf.reshape(jacobian_row_sums, [batch_size, -1]), axis=1) / n_outputs


def keep_channels(values: Any, indices: Any) -> Any:
    """``values`` restricted to the channels ``indices`` of the last axis (all when None)."""
    return values if indices is None else tf.gather(values, indices, axis=-1)
