"""The task interface shared by every data set."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lrid.errors import LridError


@dataclass(frozen=True)
class Task:
    """A classification task held in memory as float32 inputs and int32 labels.

    The train/test split is fixed by the task; the data order of training is drawn from the run's
    ``data_seed``, and the probe batch from the spec's ``probe_seed``, so neither depends on global state.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.x_train.shape[1:])

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch; the remainder is dropped so every step has the same shape."""
        steps = len(self.x_train) // batch_size
        if steps == 0:
            raise LridError(
                f"batch size {batch_size} exceeds the {len(self.x_train)} training examples of task "
                f"{self.name!r}; use a batch size of at most {len(self.x_train)}"
            )
        return steps

    def epoch_batches(self, epoch: int, batch_size: int, data_seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the shuffled full batches of one epoch; the order depends only on (data_seed, epoch)."""
        order = np.random.default_rng([data_seed, epoch]).permutation(len(self.x_train))
        for step in range(self.steps_per_epoch(batch_size)):
            index = order[step * batch_size : (step + 1) * batch_size]
            yield self.x_train[index], self.y_train[index]

    def probe_batch(self, size: int, seed: int) -> np.ndarray:
        """A fixed batch of test inputs on which activations are recorded (capped at the test-set size)."""
        size = min(size, len(self.x_test))
        index = np.sort(np.random.default_rng(seed).choice(len(self.x_test), size=size, replace=False))
        return self.x_test[index]
