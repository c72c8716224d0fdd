"""The two workloads the benchmarks measure: the demo's digits MLP and KNet on CIFAR-shaped inputs.

KNet runs on random 32x32x3 images registered as the task ``cifar_shaped``, so the benchmarks need no
CIFAR-10 download; a step's cost does not depend on pixel values. Each workload also has a plain Keras
twin (stock layers, same shapes) for the ``model.fit`` baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CIFAR_SHAPED = "cifar_shaped"


@dataclass(frozen=True)
class Workload:
    """A benchmark workload: its task and model specs, batch size, and epochs of a demo-sized run."""

    name: str
    task_name: str
    model: dict
    batch_size: int
    epochs: int

    def run_spec(self, rule: str = "sgdm", points: int = 21, seed: int = 0, epochs: int | None = None, **rule_hparams):
        """A RunSpec of this workload, as a sweep would expand it."""
        from lrid.config import ModelSpec, ObserveSpec, RuleSpec, RunSpec, TaskSpec, TrainSpec

        return RunSpec(task=TaskSpec(name=self.task_name), model=ModelSpec(**self.model),
                       rule=RuleSpec(name=rule, hparams=rule_hparams),
                       train=TrainSpec(epochs=epochs or self.epochs, batch_size=self.batch_size, model_seed=seed,
                                       data_seed=seed),
                       observe=ObserveSpec(points=points))


def register_cifar_shaped(n_train: int = 2048) -> None:
    """Register ``cifar_shaped``: ``n_train`` random uint8 32x32x3 training images, 512 test images."""
    from lrid.tasks import TASKS, register_task
    from lrid.tasks.base import ArrayTask

    if CIFAR_SHAPED in TASKS:
        return

    @register_task(CIFAR_SHAPED)
    def load_cifar_shaped() -> ArrayTask:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(n_train + 512, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_train + 512).astype(np.int32)
        return ArrayTask(CIFAR_SHAPED, images[:n_train], labels[:n_train], images[n_train:], labels[n_train:],
                         n_classes=10, preprocess=lambda x: x.astype(np.float32) / 255.0)


# The demo's network and its smaller batch size; a demo run is 8 epochs of 42 steps.
DIGITS_MLP = Workload("mlp", "digits", {"arch": "mlp", "hidden": (128, 128), "activation": "tanh"}, 32, 8)
# KNet at the paper's smallest batch size; one epoch of the registered random images.
CIFAR_KNET = Workload("knet", CIFAR_SHAPED, {"arch": "knet"}, 128, 1)
WORKLOADS = {w.name: w for w in (DIGITS_MLP, CIFAR_KNET)}


def keras_twin(workload: Workload):
    """The workload's network as a plain Keras model of stock layers (for the ``model.fit`` baseline)."""
    import keras

    layers = keras.layers
    if workload.name == "mlp":
        return keras.Sequential([
            keras.Input((64,)),
            *[layers.Dense(width, activation=workload.model["activation"]) for width in workload.model["hidden"]],
            layers.Dense(10),
        ])
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 5, padding="same"), layers.MaxPooling2D(3, 2, padding="same"),
        layers.BatchNormalization(), layers.ReLU(),
        layers.Conv2D(32, 5, padding="same", activation="relu"), layers.AveragePooling2D(3, 2, padding="same"),
        layers.BatchNormalization(),
        layers.Conv2D(64, 5, padding="same", activation="relu"), layers.AveragePooling2D(3, 2, padding="same"),
        layers.BatchNormalization(),
        layers.Flatten(), layers.Dense(10),
    ])
