"""AlexNet with batch normalisation (``alexnet``, the variant Xiao et al. 2019 trained with sign symmetry)
or with local response normalisation (``alexnetlrn``, Krizhevsky et al. 2012's original).

``alexnet``: conv 64@11x11/4 -> BN relu -> max-pool 3/2 -> conv 192@5x5 -> BN relu -> max-pool 3/2 ->
conv 384@3x3 -> BN relu -> conv 256@3x3 -> BN relu -> conv 256@3x3 -> BN relu -> max-pool 3/2 -> dense 4096
-> BN relu -> dense 4096 -> BN relu -> dense n_classes: 8 measured layers (Nayebi et al.'s grouping 2 / 2 / 4).

``alexnetlrn``: the same layers with biases and no batch norm; after the first two convolutions' relu,
local response normalisation with Krizhevsky et al.'s constants (k = 2, n = 5, alpha = 1e-4, beta = 0.75)
before the pooling.

Dropout is left out: batch normalisation regularises, and a dropout mask is one more random stream that
would have to be re-seeded for runs to be reproducible. ``width`` scales every layer (1.0 is AlexNet).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from lrid.models.base import MeasuredModel
from lrid.models.layers import FeedbackConv2D, FeedbackDense

CONVS = [(64, 11, 4), (192, 5, 1), (384, 3, 1), (256, 3, 1), (256, 3, 1)]
POOL_AFTER = {0, 1, 4}


LRN_AFTER = {0, 1}


class AlexNet(MeasuredModel):
    """AlexNet (5 conv + 3 dense measured layers) with batch norm (``norm="bn"``) or LRN (``norm="lrn"``)."""

    def __init__(
        self, n_classes: int, feedback: str | None = None, seed: int = 0, width: float = 1.0, norm: str = "bn", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if norm not in ("bn", "lrn"):
            raise ValueError(f"norm must be 'bn' or 'lrn', got {norm!r}")
        self.norm = norm
        use_bias = norm == "lrn"  # batch norm's shift makes a bias redundant
        self.convs = [
            FeedbackConv2D(
                max(1, int(f * width)),
                k,
                strides=s,
                feedback=feedback,
                use_bias=use_bias,
                seed=seed * 1000 + 2 * i,
                name=f"conv{i + 1}",
            )
            for i, (f, k, s) in enumerate(CONVS)
        ]
        hidden = max(1, int(4096 * width))
        self.dense = [
            FeedbackDense(hidden, feedback=feedback, use_bias=use_bias, seed=seed * 1000 + 10, name="fc6"),
            FeedbackDense(hidden, feedback=feedback, use_bias=use_bias, seed=seed * 1000 + 12, name="fc7"),
        ]
        self.classifier = FeedbackDense(n_classes, feedback=feedback, seed=seed * 1000 + 14, name="fc8")
        self.batch_norms = (
            [keras.layers.BatchNormalization(name=f"bn{i + 1}") for i in range(7)] if norm == "bn" else []
        )
        self.measured_layers = [*self.convs, *self.dense, self.classifier]

    def _normalise(self, x, index: int, training: bool):
        if self.norm == "bn":
            return tf.nn.relu(self.batch_norms[index](x, training=training))
        x = tf.nn.relu(x)
        if index in LRN_AFTER:
            x = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
        return x

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = inputs
        for index, conv in enumerate(self.convs):
            x = self._normalise(conv(x), index, training)
            if index in POOL_AFTER:
                x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        for index, dense in enumerate(self.dense):
            x = self._normalise(dense(x), 5 + index, training)
        return self.classifier(x)
