"""Hiratani et al.'s teacher-student regression: a random teacher network labels Gaussian inputs.

Inputs are ``x ~ N(0, I)``; the targets are the teacher's outputs plus, for *model mismatch*, Gaussian
output noise ``y = teacher(x) + noise_std * eps`` that no student can fit (Hiratani, Mehta, Lillicrap &
Latham 2022, whose linear theory uses ``input_dim=100``, ``output_dim=10`` and ``noise_std=0.32``). The
student is any lrid network on ``input_dim`` inputs with ``output_dim`` linear outputs, trained on the mean
squared error; with mismatch, plain node perturbation's weights diffuse without bound while the
weight-normalised variant stays put.

Settings (a sweep's ``task.options``): ``input_dim``, ``output_dim``, ``teacher_hidden`` (widths of the
teacher's tanh hidden layers; empty for Hiratani's linear teacher), ``noise_std``, ``n_train``, ``n_test``
and ``seed`` (teacher and data). The test targets are the teacher's noiseless outputs, so the test MSE
measures how well the student learned the teacher, not the noise. The metric is that MSE (lower is better).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lrid.errors import LridError
from lrid.tasks import register_task
from lrid.tasks.base import ArrayTask


@dataclass(frozen=True)
class RegressionArrayTask(ArrayTask):
    """An in-memory regression task: float targets [N, n_outputs], mean squared error as loss and metric.

    ``n_classes`` is the number of network outputs.
    """

    loss = "mse"
    metric = "mse"

    def evaluate(self, predict: Callable[[np.ndarray], np.ndarray], batch_size: int = 512) -> float:
        """Mean squared error of ``predict`` over the test set (averaged over examples and outputs)."""
        squared_error = 0.0
        for start in range(0, len(self.x_test), batch_size):
            outputs = np.asarray(predict(self._prepare(self.x_test[start : start + batch_size])), dtype=np.float64)
            squared_error += float(np.sum((outputs - self.y_test[start : start + batch_size]) ** 2))
        return squared_error / self.y_test.size


def teacher_outputs(inputs: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """The teacher's outputs: tanh hidden layers, then a linear readout (no biases)."""
    activity = inputs
    for kernel in weights[:-1]:
        activity = np.tanh(activity @ kernel)
    return activity @ weights[-1]


@register_task("teacher_student", loss="mse")
def load_teacher_student_task(
    input_dim: int = 100,
    output_dim: int = 10,
    teacher_hidden: tuple[int, ...] = (),
    noise_std: float = 0.0,
    n_train: int = 4096,
    n_test: int = 1024,
    seed: int = 0,
) -> RegressionArrayTask:
    """Draw a teacher (weights ``N(0, 1/fan_in)``, so outputs have unit scale) and its training and test sets."""
    teacher_hidden = tuple(int(width) for width in teacher_hidden)
    sizes = {"input_dim": input_dim, "output_dim": output_dim, "n_train": n_train, "n_test": n_test}
    invalid = [f"{name}={value}" for name, value in sizes.items() if int(value) < 1]
    if invalid or any(width < 1 for width in teacher_hidden) or noise_std < 0:
        raise LridError(
            f"teacher_student options {', '.join(invalid) or 'teacher_hidden/noise_std'} are invalid; sizes must be "
            "positive integers and noise_std >= 0"
        )
    rng = np.random.default_rng(seed)
    widths = [int(input_dim), *teacher_hidden, int(output_dim)]
    weights = [
        rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(fan_in, fan_out)) for fan_in, fan_out in zip(widths, widths[1:])
    ]
    x_train = rng.normal(size=(int(n_train), int(input_dim)))
    x_test = rng.normal(size=(int(n_test), int(input_dim)))
    y_train = teacher_outputs(x_train, weights) + noise_std * rng.normal(size=(int(n_train), int(output_dim)))
    y_test = teacher_outputs(x_test, weights)
    return RegressionArrayTask(
        "teacher_student",
        x_train.astype(np.float32),
        y_train.astype(np.float32),
        x_test.astype(np.float32),
        y_test.astype(np.float32),
        n_classes=int(output_dim),
    )
