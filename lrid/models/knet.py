"""KNet: Krizhevsky's CIFAR-10 network from the Caffe tutorial (cifar10_full), as Nayebi et al. used it.

conv1 32@5x5 -> max-pool 3/2 -> norm -> conv2 32@5x5 relu -> avg-pool 3/2 -> norm -> conv3 64@5x5 relu
-> avg-pool 3/2 [-> conv4 128@5x5 relu -> avg-pool 3/2 for KNet-C4] -> dense n_classes.

``norm`` is batch normalisation (``knet``, ``knetc4``; Nayebi et al.'s default, more robust to learning
hyperparameters) or local response normalisation after the first two stages (``knetlrn``, ``knetc4lrn``,
the Caffe original). Kernels use Glorot initialisation rather than the tutorial's N(0, 1e-4 / 1e-2),
so that every rule, feedback alignment included, starts from the same well-scaled point.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from lrid.models.base import MeasuredModel
from lrid.models.layers import FeedbackConv2D, FeedbackDense


class KNet(MeasuredModel):
    """KNet (3 conv + 1 dense measured layers) or KNet-C4 (``conv4=True``: 4 conv + 1 dense)."""

    def __init__(
        self,
        n_classes: int,
        norm: str = "bn",
        conv4: bool = False,
        feedback: str | None = None,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if norm not in ("bn", "lrn"):
            raise ValueError(f"norm must be 'bn' or 'lrn', got {norm!r}")
        self.norm = norm
        filters = [32, 32, 64] + ([128] if conv4 else [])
        self.convs = [
            FeedbackConv2D(
                f,
                5,
                activation=None if i == 0 else "relu",
                feedback=feedback,
                seed=seed * 1000 + 2 * i,
                name=f"conv{i + 1}",
            )
            for i, f in enumerate(filters)
        ]
        self.batch_norms = (
            [keras.layers.BatchNormalization(name=f"bn{i + 1}") for i in range(len(filters))] if norm == "bn" else []
        )
        self.classifier = FeedbackDense(
            n_classes, feedback=feedback, seed=seed * 1000 + 2 * len(filters), name=f"fc{len(filters) + 1}"
        )
        self.measured_layers = [*self.convs, self.classifier]

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = inputs
        for index, conv in enumerate(self.convs):
            x = conv(x)
            pool = tf.nn.max_pool2d if index == 0 else tf.nn.avg_pool2d
            x = pool(x, 3, 2, "SAME")
            if self.norm == "bn":
                x = self.batch_norms[index](x, training=training)
                if index == 0:
                    x = tf.nn.relu(x)
            elif index < 2:  # LRN after the first two stages only, as in Caffe
                if index == 0:
                    x = tf.nn.relu(x)
                x = tf.nn.local_response_normalization(x, depth_radius=3, bias=1.0, alpha=5e-5, beta=0.75)
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        return self.classifier(x)
