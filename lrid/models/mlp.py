"""A multilayer perceptron built from :class:`FeedbackDense` layers."""

from __future__ import annotations

import keras
import tensorflow as tf

from lrid.models.layers import FeedbackDense


class MLP(keras.Model):
    """``n_in -> hidden... -> n_classes``, with ``activation`` on hidden layers and linear logits.

    ``measured_layers`` lists every layer with a weight kernel in depth order: the layers whose
    observables are recorded.
    """

    def __init__(self, hidden, n_classes: int, activation: str = "tanh", feedback: str | None = None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        widths = [*hidden, n_classes]
        self.measured_layers = [
            FeedbackDense(
                width,
                activation=activation if index < len(hidden) else None,
                feedback=feedback,
                seed=seed * 1000 + 2 * index,
                name=f"dense{index}",
            )
            for index, width in enumerate(widths)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.measured_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=False):
        outputs = inputs
        for layer in self.measured_layers:
            outputs = layer(outputs)
        return outputs

    def predict_logits(self, inputs):
        """Logits for a batch of inputs, through a compiled forward pass (for evaluation)."""
        if not hasattr(self, "_compiled_call"):
            self._compiled_call = tf.function(self.call, reduce_retracing=True)
        return self._compiled_call(inputs).numpy()

    def forward_with_activity(self, inputs, exact_gradient: bool = False):
        """Return ``(logits, layer_inputs, layer_outputs)``, one entry per measured layer."""
        layer_inputs, layer_outputs = [], []
        outputs = inputs
        for layer in self.measured_layers:
            layer_inputs.append(outputs)
            outputs = layer(outputs, exact_gradient=exact_gradient)
            layer_outputs.append(outputs)
        return outputs, layer_inputs, layer_outputs
