"""The three measures of one layer: its weights, its activations and its activity change."""

from __future__ import annotations

from lrid.lazy_import import tf
from lrid.observables import FUNCTIONS
from lrid.observables.statistics import apply_function, describe


def weight_observables(layer):
    """Statistics of the forward kernel W over all its entries (the norm is W's Frobenius norm).

    Nayebi et al.'s code reshapes the kernel to [shape[0], -1] before the norm, which yields one norm per
    input unit and leaves the reduction to one number unstated; lrid takes the norm of the whole kernel.
    """
    kernel = tf.convert_to_tensor(layer.kernel)
    return describe(tf.reshape(kernel, [1, -1]))


def activation_observables(layer_output):
    """Statistics over each example's units of the layer output, averaged over the probe batch."""
    batch_size = tf.shape(layer_output)[0]
    return describe(tf.reshape(layer_output, [batch_size, -1]))


def activity_change(layer, layer_input):
    """Per example, the layer's input-output Jacobian summed over all entries, divided by its output units.

    ``sum_i sum_j dy_i/dx_j / n_out`` is the gradient of ``sum_i y_i`` with respect to x summed over x's
    entries. The Jacobian is the forward map's (``exact_gradient=True``), never the rule's feedback path.
    """
    with tf.GradientTape() as tape:
        tape.watch(layer_input)
        layer_output = layer(layer_input, exact_gradient=True)
        total_output = tf.reduce_sum(layer_output)
    jacobian_row_sums = tape.gradient(total_output, layer_input)
    batch_size = tf.shape(layer_input)[0]
    n_outputs = tf.cast(tf.reduce_prod(tf.shape(layer_output)[1:]), tf.float32)
    return tf.reduce_sum(tf.reshape(jacobian_row_sums, [batch_size, -1]), axis=1) / n_outputs


def activity_change_observables(layer, layer_input):
    """The probe-batch mean of raw, abs and squared activity change: one value per function."""
    change = activity_change(layer, layer_input)
    return tf.stack([tf.reduce_mean(apply_function(change, f)) for f in FUNCTIONS])
