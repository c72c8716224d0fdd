"""Layers whose backward signal the learning rule provides.

The forward pass always uses the forward kernel W. The error sent back to the layer's input uses a
feedback kernel B chosen by the rule (W itself for backprop, a fixed random matrix for feedback
alignment, a learned one for information alignment), while the weight gradient stays the local
``x^T delta``. Bias and activation sit outside the custom op, so autodiff handles them exactly.
"""

from __future__ import annotations

import keras
import tensorflow as tf

FEEDBACK_KINDS = (None, "fixed", "learned", "sign")


@tf.custom_gradient
def feedback_matmul(inputs, kernel, feedback):
    """``inputs @ kernel`` whose input gradient is ``upstream @ feedback`` instead of ``upstream @ kernel^T``.

    ``feedback`` has shape [n_out, n_in], so ``feedback = kernel^T`` reproduces backprop exactly. It
    receives no gradient from this op: rules that learn it do so through a local loss.
    """
    outputs = tf.matmul(inputs, kernel)

    def grad(upstream):
        return (
            tf.matmul(upstream, feedback),
            tf.matmul(inputs, upstream, transpose_a=True),
            tf.zeros_like(feedback),
        )

    return outputs, grad


class FeedbackDense(keras.layers.Layer):
    """A dense layer ``activation(x W + b)`` whose backward pass sends the error through a feedback kernel.

    Args:
        units: output width.
        activation: a Keras activation name, or None for a linear (logit) layer.
        feedback: None for exact backprop; ``"fixed"`` for a random non-trainable B drawn from W's init
            distribution; ``"learned"`` for a trainable B that only the rule's feedback update changes;
            ``"sign"`` for B = s * sign(W)^T recomputed at every call, s being W's init standard deviation.
        seed: seeds the kernel and feedback initialisers (the feedback uses ``seed + 1``).
    """

    def __init__(self, units: int, activation: str | None = None, feedback: str | None = None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if feedback not in FEEDBACK_KINDS:
            raise ValueError(f"feedback must be one of {FEEDBACK_KINDS}, got {feedback!r}")
        self.units = units
        self.activation_name = activation
        self.activation = keras.activations.get(activation)
        self.feedback = feedback
        self.seed = seed

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(fan_in, self.units),
            initializer=keras.initializers.GlorotUniform(seed=self.seed),
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.feedback_kernel = None
        # Glorot-uniform's standard deviation: the magnitude sign-symmetric feedback carries.
        self.feedback_scale = (2.0 / (fan_in + self.units)) ** 0.5
        if self.feedback in ("fixed", "learned"):
            # Glorot's limit is symmetric in fan-in and fan-out, so [n_out, n_in] has W's init distribution.
            self.feedback_kernel = self.add_weight(
                name="feedback_kernel",
                shape=(self.units, fan_in),
                initializer=keras.initializers.GlorotUniform(seed=self.seed + 1),
                trainable=self.feedback == "learned",
            )

    def feedback_matrix(self):
        """The current feedback kernel B ([n_out, n_in]), or None for exact backprop."""
        if self.feedback == "sign":
            # Derived from W at every call, so it tracks sign flips inside a compiled step.
            return self.feedback_scale * tf.sign(tf.transpose(tf.convert_to_tensor(self.kernel)))
        if self.feedback_kernel is not None:
            return tf.convert_to_tensor(self.feedback_kernel)
        return None

    def preactivation(self, inputs, exact_gradient: bool = False):
        """``x W + b``; with ``exact_gradient`` the backward pass is true backprop whatever the rule."""
        kernel = tf.convert_to_tensor(self.kernel)
        feedback = None if exact_gradient else self.feedback_matrix()
        if feedback is None:
            outputs = tf.matmul(inputs, kernel)
        else:
            outputs = feedback_matmul(inputs, kernel, tf.stop_gradient(feedback))
        return outputs + tf.convert_to_tensor(self.bias)

    def call(self, inputs, exact_gradient: bool = False):
        return self.activation(self.preactivation(inputs, exact_gradient))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation_name,
            "feedback": self.feedback,
            "seed": self.seed,
        }
