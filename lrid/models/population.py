"""K multilayer perceptrons of one shape held as stacked variables, for training a population in one step.

Member k's dense layer ``l`` is the slice ``[k]`` of kernels shaped [K, in, out] (biases [K, out]), and
every forward pass takes inputs shaped [K, batch, ...]: each member sees its own batch, and a batched
matmul computes all members at once. The members are independent (no op mixes them), so a member whose
weights go non-finite leaves the others untouched.

The backward signal follows :class:`~lrid.models.layers.FeedbackDense`: exact backprop, or a feedback
kernel B (fixed, learned or ``s * sign(W)``) carrying the error to the input while the weight gradient
stays local. Initial weights are those a solo network's layers draw (:meth:`lrid.models.mlp.MLP.initial_weights`,
loaded with :meth:`PopulationMLP.load`), so a member starts exactly where a solo run of the same spec starts.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lrid.models.layers import FEEDBACK_KINDS, scheme_std


class PopulationMLP:
    """K MLPs ``widths[0] -> ... -> widths[-1]``, ``activation`` on hidden layers and linear logits.

    Args:
        widths: the input size, then each layer's width (the last is the number of outputs).
        activation: a Keras activation name for the hidden layers.
        feedback: the layers' feedback kind, as :class:`~lrid.models.layers.FeedbackLayer` takes it.
        size: K, the number of members.
        layer_names: the solo model's measured-layer names, in depth order.
        init_scale: the solo model's multiplier of the forward kernels' initial std (node perturbation's
            weight normalisation holds kernels at that scale).
        init_scheme: the solo model's variance-scaling scheme (``model.init``), which sets sign symmetry's
            feedback magnitude and that scale.

    Copy initial weights in with :meth:`load`.
    """

    def __init__(
        self,
        widths: Any,
        activation: str,
        feedback: str | None,
        size: int,
        layer_names: Any,
        init_scale: float = 1.0,
        init_scheme: str = "glorot",
    ) -> None:
        if feedback not in FEEDBACK_KINDS:
            raise ValueError(f"feedback must be one of {FEEDBACK_KINDS}, got {feedback!r}")
        self.size = size
        self.feedback = feedback
        self.layer_names = list(layer_names)
        self.init_scale = init_scale
        self.init_scheme = init_scheme
        self.activations = [keras.activations.get(activation)] * (len(widths) - 2) + [keras.activations.get(None)]
        shapes = list(zip(widths[:-1], widths[1:]))
        self.kernels = [
            tf.Variable(tf.zeros([size, n_in, n_out]), name=f"kernel{i}") for i, (n_in, n_out) in enumerate(shapes)
        ]
        self.biases = [tf.Variable(tf.zeros([size, n_out]), name=f"bias{i}") for i, (_, n_out) in enumerate(shapes)]
        self.feedback_kernels = (
            [tf.Variable(tf.zeros([size, n_in, n_out]), name=f"feedback{i}") for i, (n_in, n_out) in enumerate(shapes)]
            if feedback in ("fixed", "learned")
            else []
        )
        # The scheme's standard deviation at scale 1, the magnitude of sign-symmetric feedback (as FeedbackLayer).
        self.feedback_scales = [scheme_std(shape, init_scheme) for shape in shapes]

    @property
    def variables(self) -> list:
        """Every stacked variable: kernels, biases, then feedback kernels."""
        return [*self.kernels, *self.biases, *self.feedback_kernels]

    @property
    def forward_variables(self) -> list:
        """The variables the task loss trains: kernels and biases."""
        return [*self.kernels, *self.biases]

    def load(self, members: Any) -> None:
        """Give member k the weights ``members[k]``: ``(name, kernel, bias, feedback kernel or None)`` per layer,
        read from a solo MLP of this shape and feedback kind."""
        for index, kernel in enumerate(self.kernels):
            kernel.assign(np.stack([layers[index][1] for layers in members]))
            self.biases[index].assign(np.stack([layers[index][2] for layers in members]))
            if self.feedback_kernels:
                self.feedback_kernels[index].assign(np.stack([layers[index][3] for layers in members]))

    def feedback_matrix(self, index: int) -> tf.Tensor | None:
        """Layer ``index``'s feedback kernels [K, in, out], or None for exact backprop."""
        if self.feedback == "sign":
            return self.feedback_scales[index] * tf.sign(tf.convert_to_tensor(self.kernels[index]))
        if self.feedback_kernels:
            return tf.convert_to_tensor(self.feedback_kernels[index])
        return None

    def projection(self, index: int, inputs: tf.Tensor, exact_gradient: bool = False) -> tf.Tensor:
        """Layer ``index``'s linear map ``x W`` on inputs [K, batch, in], its backward signal by the rule."""
        kernel = tf.convert_to_tensor(self.kernels[index])
        feedback = None if exact_gradient else self.feedback_matrix(index)
        if feedback is None:
            return tf.matmul(inputs, kernel)
        return _feedback_matmul(inputs, kernel, tf.stop_gradient(feedback))

    def layer(
        self,
        index: int,
        inputs: tf.Tensor,
        exact_gradient: bool = False,
        projection: Any = None,
        perturbation: Any = None,
    ) -> tf.Tensor:
        """Layer ``index`` on inputs [K, batch, in]: ``activation(x W + b)``, its backward signal by the rule.
        ``projection``, ``x W`` if already computed, is reused; ``perturbation`` is added to ``x W + b``."""
        if projection is None:
            projection = self.projection(index, inputs, exact_gradient)
        preactivation = projection + tf.convert_to_tensor(self.biases[index])[:, None, :]
        if perturbation is not None:
            preactivation = preactivation + perturbation
        return self.activations[index](preactivation)

    def forward_with_activity(
        self,
        inputs: tf.Tensor,
        exact_gradient: bool = False,
        projections: list | None = None,
        perturbations: Any = None,
    ) -> Any:
        """``(logits, layer_inputs, layer_outputs)`` for inputs [K, batch, ...], one entry per layer; each
        layer's ``x W`` is appended to ``projections`` if given (a rule's local update reuses it), and
        ``perturbations`` (one [K, batch, units] tensor per layer) are added to the pre-activations."""
        outputs = tf.reshape(inputs, [self.size, tf.shape(inputs)[1], -1])
        layer_inputs, layer_outputs = [], []
        for index in range(len(self.kernels)):
            layer_inputs.append(outputs)
            projection = self.projection(index, outputs, exact_gradient)
            if projections is not None:
                projections.append(projection)
            outputs = self.layer(
                index,
                outputs,
                projection=projection,
                perturbation=None if perturbations is None else perturbations[index],
            )
            layer_outputs.append(outputs)
        return outputs, layer_inputs, layer_outputs

    def members_finite(self) -> tf.Tensor:
        """[K] booleans: whether each member's variables are all finite."""
        return members_finite(self.variables)


# Functions of the stacked weights rather than of a model, so that one trace serves the populations of every
# rule and feedback kind that share the activations and shapes (a tf.function traces once per argument shape).


def exact_forward(kernels: Any, biases: Any, activations: Any, inputs: tf.Tensor, projections: Any = None) -> list:
    """Each layer's outputs [K, batch, units] of the MLPs with stacked ``kernels`` and ``biases`` (variables or
    tensors) on inputs [K, batch, ...]: :meth:`PopulationMLP.forward_with_activity` with exact gradients of
    a model holding these weights. Each layer's ``x W`` is appended to ``projections`` if given."""
    outputs = tf.reshape(inputs, [kernels[0].shape[0], tf.shape(inputs)[1], -1])
    layer_outputs = []
    for kernel, bias, activation in zip(kernels, biases, activations, strict=True):
        projection = tf.matmul(outputs, tf.convert_to_tensor(kernel))
        if projections is not None:
            projections.append(projection)
        outputs = activation(projection + tf.convert_to_tensor(bias)[:, None, :])
        layer_outputs.append(outputs)
    return layer_outputs


def members_logits(activations: Any, kernels: Any, biases: Any, inputs: tf.Tensor) -> tf.Tensor:
    """Every member's outputs [K, batch, outputs] for one batch [batch, ...] shared by all members."""
    shared = tf.reshape(inputs, [1, tf.shape(inputs)[0], -1])
    return exact_forward(kernels, biases, activations, tf.repeat(shared, kernels[0].shape[0], axis=0))[-1]


def members_finite(variables: list) -> tf.Tensor:
    """[K] booleans: whether each member's slices of the stacked ``variables`` are all finite."""
    size = variables[0].shape[0]
    return tf.reduce_all(
        tf.stack(
            [tf.reduce_all(tf.reshape(tf.math.is_finite(variable), [size, -1]), axis=1) for variable in variables]
        ),
        axis=0,
    )


def _feedback_matmul(inputs, kernel, feedback):
    """``x W`` whose input gradient flows through B (``dy B^T``) and whose kernel gradient is ``x^T dy``."""

    @tf.custom_gradient
    def op(x, w, b):
        def grad(upstream):
            return (
                tf.matmul(upstream, b, transpose_b=True),
                tf.matmul(x, upstream, transpose_a=True),
                tf.zeros_like(b),
            )

        return tf.matmul(x, w), grad

    return op(inputs, kernel, feedback)
