"""The task interface shared by every data set, and its in-memory implementation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from lrid.errors import LridError


class Task(ABC):
    """A task: seeded training batches, a fixed probe batch, and a test metric (accuracy by default).

    The data order of training depends only on the run's ``data_seed`` and the epoch, and the probe batch
    only on the spec's ``probe_seed``, never on global random state, so a run is reproducible. Batches
    all have the same shape (the remainder of an epoch is dropped), so a compiled step never retraces.

    Attributes:
        name: the registry name.
        n_classes: number of classes.
        input_shape: shape of one example (``(64,)`` for digits, ``(32, 32, 3)`` for CIFAR-10).
        loss: the loss every rule descends (``lrid.rules.base.LOSSES``): "cross_entropy" on integer labels,
            or "mse" on real-valued targets, for which ``n_classes`` is the number of network outputs.
        metric: what :meth:`evaluate` returns ("accuracy", or "mse" for regression tasks).
    """

    name: str
    n_classes: int
    input_shape: tuple[int, ...]
    loss = "cross_entropy"
    metric = "accuracy"

    @abstractmethod
    def steps_per_epoch(self, batch_size: int) -> int:
        """Full training batches per epoch."""

    @abstractmethod
    def epoch_batches(self, epoch: int, batch_size: int, data_seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the (augmented, shuffled) full training batches of one epoch as float32 inputs, int labels."""

    def stacked_epoch_batches(
        self, epoch: int, batch_size: int, data_seeds: list[int]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield, per step of one epoch, the batches of every seed in ``data_seeds`` stacked: ([seeds, batch,
        ...], [seeds, batch, ...]), each seed's batch the one :meth:`epoch_batches` yields for it (the
        training batches of a population of networks)."""
        distinct = sorted(set(data_seeds))
        index = [distinct.index(seed) for seed in data_seeds]
        for batches in zip(*(self.epoch_batches(epoch, batch_size, seed) for seed in distinct)):
            yield np.stack([b[0] for b in batches])[index], np.stack([b[1] for b in batches])[index]

    @abstractmethod
    def probe_batch(self, size: int, seed: int) -> np.ndarray:
        """A fixed batch of held-out inputs, without augmentation, on which activations are recorded."""

    @abstractmethod
    def evaluate(self, predict: Callable[[np.ndarray], np.ndarray], batch_size: int = 512) -> float:
        """The test metric of ``predict`` (inputs -> network outputs) over the whole test set."""


@dataclass(frozen=True)
class ArrayTask(Task):
    """A task held in memory as arrays; ``preprocess`` turns stored inputs (e.g. uint8) into float32.

    ``augment(batch, rng)`` optionally transforms each training batch, drawing from a generator seeded by
    (data_seed, epoch); the probe batch and the test set are never augmented.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    # Set from x_train in __post_init__. A field, not a property: Task.input_shape is a plain attribute
    # (ImageNetTask assigns it), and a read-only property may not override a writable attribute.
    input_shape: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(self.x_train.shape[1:]))

    def _prepare(self, inputs: np.ndarray) -> np.ndarray:
        return (self.preprocess(inputs) if self.preprocess else inputs).astype(np.float32, copy=False)

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
        rng = np.random.default_rng([data_seed, epoch])
        for index in self._epoch_order(rng, batch_size):
            inputs = self._prepare(self.x_train[index])
            if self.augment is not None:
                inputs = self.augment(inputs, rng)
            yield inputs, self.y_train[index]

    def _epoch_order(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """[steps, batch_size]: the training examples of each step of an epoch, each step's in ascending order."""
        steps = self.steps_per_epoch(batch_size)
        return np.sort(rng.permutation(len(self.x_train))[: steps * batch_size].reshape(steps, batch_size), axis=1)

    def stacked_epoch_batches(
        self, epoch: int, batch_size: int, data_seeds: list[int]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """As :meth:`Task.stacked_epoch_batches`; without augmentation, every seed's examples of a step are
        gathered and prepared in one call rather than one per seed, so K networks' batches cost about one's."""
        if self.augment is not None:  # augmentation draws from each seed's generator in turn
            yield from super().stacked_epoch_batches(epoch, batch_size, data_seeds)
            return
        orders = np.stack([self._epoch_order(np.random.default_rng([seed, epoch]), batch_size) for seed in data_seeds])
        for step in range(orders.shape[1]):
            index = orders[:, step]
            inputs = self._prepare(self.x_train[index.reshape(-1)])
            yield inputs.reshape(*index.shape, *inputs.shape[1:]), self.y_train[index]

    def probe_batch(self, size: int, seed: int) -> np.ndarray:
        """A fixed batch of test inputs (capped at the test-set size), in test-set order."""
        size = min(size, len(self.x_test))
        index = np.sort(np.random.default_rng(seed).choice(len(self.x_test), size=size, replace=False))
        return self._prepare(self.x_test[index])

    def evaluate(self, predict: Callable[[np.ndarray], np.ndarray], batch_size: int = 512) -> float:
        """Test accuracy over the whole test set, predicted in batches."""
        correct = 0
        for start in range(0, len(self.x_test), batch_size):
            logits = np.asarray(predict(self._prepare(self.x_test[start : start + batch_size])))
            correct += int(np.sum(np.argmax(logits, axis=1) == self.y_test[start : start + batch_size]))
        return correct / len(self.x_test)
