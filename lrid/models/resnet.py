"""ResNet-18 and ResNet-34 (He et al. 2016), v1 (post-activation) and v2 (pre-activation), with basic blocks.

Stem: conv 64@7x7/2 -> BN relu -> max-pool 3/2; four stages of (2, 2, 2, 2) or (3, 4, 6, 3) basic blocks
with 64, 128, 256, 512 filters (stride 2 from the second stage on); global average pool; dense n_classes.
As in TensorFlow's official ResNet that Nayebi et al. used, the first block of *every* stage has a 1x1
projection shortcut, so ResNet-18 has 22 measured layers (1 + 16 + 4 + 1) and ResNet-34 has 38.

* v1 block: conv3x3/s -> BN relu -> conv3x3 -> BN, plus the (projected) input, then relu.
* v2 block: BN relu -> conv3x3/s -> BN relu -> conv3x3, plus the (projected) pre-activated input; the
  network ends with BN relu before pooling.

Convolutions have no bias (batch normalisation follows). ``width`` scales every layer's filters.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from lrid.models.base import MeasuredModel
from lrid.models.layers import FeedbackConv2D, FeedbackDense

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class ResNet(MeasuredModel):
    """ResNet-``depth`` (18 or 34), ``version`` 1 or 2."""

    def __init__(
        self,
        n_classes: int,
        depth: int = 18,
        version: int = 1,
        feedback: str | None = None,
        seed: int = 0,
        width: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if depth not in BLOCKS or version not in (1, 2):
            raise ValueError(f"ResNet depth must be 18 or 34 and version 1 or 2, got {depth}, {version}")
        self.version = version
        counter = iter(range(10_000))

        def conv(filters, size, strides, name):
            return FeedbackConv2D(
                max(1, int(filters * width)),
                size,
                strides=strides,
                feedback=feedback,
                use_bias=False,
                seed=seed * 1000 + 2 * next(counter),
                name=name,
            )

        def norm(name):
            return keras.layers.BatchNormalization(name=name)

        self.stem = conv(64, 7, 2, "conv1")
        self.stem_norm: keras.layers.Layer | None = norm("bn1") if version == 1 else None
        self.blocks = []
        measured = [self.stem]
        for stage, (n_blocks, filters) in enumerate(zip(BLOCKS[depth], (64, 128, 256, 512))):
            for index in range(n_blocks):
                strides = 2 if stage > 0 and index == 0 else 1
                prefix = f"stage{stage + 1}_block{index + 1}"
                block = {
                    "projection": conv(filters, 1, strides, f"{prefix}_shortcut") if index == 0 else None,
                    "conv_a": conv(filters, 3, strides, f"{prefix}_conv1"),
                    "conv_b": conv(filters, 3, 1, f"{prefix}_conv2"),
                    "norm_a": norm(f"{prefix}_bn1"),
                    "norm_b": norm(f"{prefix}_bn2"),
                    "norm_projection": norm(f"{prefix}_shortcut_bn") if index == 0 and version == 1 else None,
                }
                self.blocks.append(block)
                measured += [layer for layer in (block["projection"], block["conv_a"], block["conv_b"]) if layer]
        self.final_norm: keras.layers.Layer | None = norm("bn_final") if version == 2 else None
        self.classifier = FeedbackDense(n_classes, feedback=feedback, seed=seed * 1000 + 2 * next(counter), name="fc")
        self.measured_layers = [*measured, self.classifier]

    def measured_readers(self) -> list[int | None]:
        """Only a block's first conv has a layer that reads its output alone (the block's second conv); every
        other output is summed with a shortcut before the next layer reads it."""
        index = {id(layer): position for position, layer in enumerate(self.measured_layers)}
        readers: list[int | None] = [None] * len(self.measured_layers)
        for block in self.blocks:
            readers[index[id(block["conv_a"])]] = index[id(block["conv_b"])]
        return readers

    def _block_v1(self, block, x, training):
        shortcut = x
        if block["projection"] is not None:
            shortcut = block["norm_projection"](block["projection"](x), training=training)
        y = tf.nn.relu(block["norm_a"](block["conv_a"](x), training=training))
        y = block["norm_b"](block["conv_b"](y), training=training)
        return tf.nn.relu(y + shortcut)

    def _block_v2(self, block, x, training):
        activated = tf.nn.relu(block["norm_a"](x, training=training))
        shortcut = x if block["projection"] is None else block["projection"](activated)
        y = block["conv_a"](activated)
        y = block["conv_b"](tf.nn.relu(block["norm_b"](y, training=training)))
        return y + shortcut

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = self.stem(inputs)
        if self.stem_norm is not None:
            x = tf.nn.relu(self.stem_norm(x, training=training))
        x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        for block in self.blocks:
            x = self._block_v1(block, x, training) if self.version == 1 else self._block_v2(block, x, training)
        if self.final_norm is not None:
            x = tf.nn.relu(self.final_norm(x, training=training))
        x = tf.reduce_mean(x, axis=[1, 2])
        return self.classifier(x)
