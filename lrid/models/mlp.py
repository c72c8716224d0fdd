"""A multilayer perceptron built from :class:`FeedbackDense` layers."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from lrid.models.base import MeasuredModel
from lrid.models.layers import FeedbackDense


class MLP(MeasuredModel):
    """``n_in -> hidden... -> n_classes``, with ``activation`` on hidden layers and linear logits.

    Inputs of any shape are flattened, so the MLP runs on image tasks too. ``init_scale`` multiplies every
    forward kernel's initial standard deviation; ``init_scheme`` and ``init_distribution`` choose the
    initialisation (see :class:`FeedbackLayer`).
    """

    def __init__(
        self,
        hidden: Any,
        n_classes: int,
        activation: str = "tanh",
        feedback: str | None = None,
        seed: int = 0,
        init_scale: float = 1.0,
        init_scheme: str = "glorot",
        init_distribution: str = "uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        widths = [*hidden, n_classes]
        self.measured_layers = [
            FeedbackDense(
                width,
                activation=activation if index < len(hidden) else None,
                feedback=feedback,
                seed=seed * 1000 + 2 * index,
                init_scale=init_scale,
                init_scheme=init_scheme,
                init_distribution=init_distribution,
                name=f"dense{index}",
            )
            for index, width in enumerate(widths)
        ]

    def initial_weights(self, input_shape: Any) -> list[tuple[str, Any, Any, Any]]:
        """``(name, kernel, bias, feedback kernel or None)`` per layer, as building the model on inputs of
        ``input_shape`` (one example's) initialises them, without building it: a population of networks
        (lrid.generate.population) takes its members' starting weights from here."""
        weights = []
        width = int(np.prod(input_shape))
        for layer in self.measured_layers:
            weights.append((layer.name, *layer.initial_values((None, width))))
            width = layer.units
        return weights

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        outputs = tf.reshape(inputs, [tf.shape(inputs)[0], -1])
        for layer in self.measured_layers:
            outputs = layer(outputs)
        return outputs
