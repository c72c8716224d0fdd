"""An all-convolutional network without pooling, normalisation or skips: the conv net target propagation
can train (every layer is a learned-invertible map of the one below).

conv 32@3x3/2 -> conv 64@3x3/2 -> conv 64@3x3/2 (``activation``, SAME padding) -> dense n_classes: 4
measured layers (grouped 1 / 1 / 2). Striding replaces pooling, as in Springenberg et al.'s
all-convolutional nets; ``width`` scales the filters, ``init_scale`` the forward kernels' initial std.
``filters`` and ``strides`` (one per conv layer) change the layers themselves: ``filters=(32, 64),
strides=(1, 2)`` is two conv layers, the first keeping the image's size.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from lrid.models.base import MeasuredModel
from lrid.models.layers import FeedbackConv2D, FeedbackDense

FILTERS = (32, 64, 64)
STRIDE = 2


class ConvNet(MeasuredModel):
    """Conv layers (by default three of stride 2) and a dense readout (see the module docstring)."""

    def __init__(
        self,
        n_classes: int,
        activation: str = "tanh",
        feedback: str | None = None,
        seed: int = 0,
        width: float = 1.0,
        init_scale: float = 1.0,
        init_scheme: str = "glorot",
        init_distribution: str = "uniform",
        filters: tuple[int, ...] = FILTERS,
        strides: tuple[int, ...] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        init: dict[str, Any] = {
            "init_scale": init_scale,
            "init_scheme": init_scheme,
            "init_distribution": init_distribution,
        }
        strides = (STRIDE,) * len(filters) if strides is None else strides
        if not filters or len(strides) != len(filters):
            raise ValueError(f"give one stride per conv layer: {len(filters)} filters, {len(strides)} strides")
        self.convs = [
            FeedbackConv2D(
                max(1, int(layer_filters * width)),
                3,
                strides=layer_stride,
                activation=activation,
                feedback=feedback,
                seed=seed * 1000 + 2 * index,
                **init,
                name=f"conv{index + 1}",
            )
            for index, (layer_filters, layer_stride) in enumerate(zip(filters, strides, strict=True))
        ]
        self.classifier = FeedbackDense(
            n_classes, feedback=feedback, seed=seed * 1000 + 2 * len(filters), **init, name=f"fc{len(filters) + 1}"
        )
        self.measured_layers = [*self.convs, self.classifier]

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = inputs
        for conv in self.convs:
            x = conv(x)
        return self.classifier(tf.reshape(x, [tf.shape(x)[0], -1]))
