"""The embedded default task: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes).

The data ship inside scikit-learn, so this task needs no download and is what the demo and tests use.
"""

from __future__ import annotations

import numpy as np

from lrid.tasks import register_task
from lrid.tasks.base import ArrayTask

TEST_FRACTION = 0.25
SPLIT_SEED = 0


@register_task("digits")
def load_digits_task(as_images: bool = False, standardize: bool = False) -> ArrayTask:
    """Digits scaled to [0, 1], flattened to 64 features (or 8x8x1 images with ``as_images``, for conv
    nets), with a fixed stratified 75/25 train/test split.

    ``standardize`` instead centres each pixel and divides it by its standard deviation over the training
    images (a pixel that is constant there keeps unit scale): the other common way to feed a network, which
    changes every activation statistic a run records.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    if standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train, x_test = ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)
    if as_images:
        x_train, x_test = x_train.reshape(-1, 8, 8, 1), x_test.reshape(-1, 8, 8, 1)
    return ArrayTask("digits", x_train, y_train, x_test, y_test, n_classes=10)
