"""scikit-learn's digits, split, ordered and normalised this implementation's own way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 20161
HELD_OUT = 500
PROBE = 200
IMAGE_SHAPE = (8, 8, 1)  # digits' pixels as an image: height, width, channels


@dataclass(frozen=True)
class Digits:
    """A train set, a held-out set, and the probe: the first ``PROBE`` held-out examples, fixed for all networks."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def probe(self) -> np.ndarray:
        """The fixed probe batch the activations are recorded on."""
        return self.x_test[:PROBE]

    def as_images(self) -> Digits:
        """The same examples shaped [N, 8, 8, 1] for a conv net (rows of the 8 x 8 image in order)."""
        shape = (-1, *IMAGE_SHAPE)
        return Digits(self.x_train.reshape(shape), self.y_train, self.x_test.reshape(shape), self.y_test)


def load(dtype=np.float32) -> Digits:
    """A random (unstratified) 1297/500 split; pixels standardised by the training set's mean and std."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(digits.target))
    x, y = digits.data[order], digits.target[order].astype(np.int64)
    x_train, x_test = x[HELD_OUT:], x[:HELD_OUT]
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # border pixels that are always blank
    normalise = lambda a: ((a - mean) / std).astype(dtype)  # noqa: E731
    return Digits(normalise(x_train), y[HELD_OUT:], normalise(x_test), y[:HELD_OUT])
