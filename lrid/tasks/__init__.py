"""Tasks a network can be trained on, registered by name.

A task (see :class:`lrid.tasks.base.Task`) provides seeded training batches, a fixed probe batch on which
activations are recorded, and test accuracy. A loader is registered with :func:`register_task` and called
with the spec's options that are set (``data_dir``, ``image_size``); it raises :class:`LridError` with
what was expected where when its data are missing or malformed.
"""

from __future__ import annotations

from collections.abc import Callable

from lrid.errors import LridError
from lrid.tasks.base import Task

TASKS: dict[str, Callable[..., Task]] = {}
#: each task's loss ("cross_entropy" or "mse"), known without loading its data, to validate sweeps
TASK_LOSSES: dict[str, str] = {}


def register_task(name: str, loss: str = "cross_entropy"):
    """Register a task loader under ``name`` (a decorator); it takes the spec's options as keywords.

    ``loss`` must match the loaded task's ``Task.loss``; it is declared here so a sweep can be checked
    (e.g. a rule that only descends cross-entropy on a regression task) before any data are loaded.
    """

    def decorator(loader: Callable[..., Task]) -> Callable[..., Task]:
        TASKS[name] = loader
        TASK_LOSSES[name] = loss
        return loader

    return decorator


_LOADED: dict[tuple, Task] = {}


def get_task(name: str, data_dir: str | None = None, image_size: int | None = None, **options) -> Task:
    """Load a task, once per process and options (loading is deterministic, so caching is safe).

    ``options`` are the task's own settings (a spec's ``task.options``, e.g. teacher_student's sizes).
    """
    if name not in TASKS:
        raise LridError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    options = {k: v for k, v in {"data_dir": data_dir, "image_size": image_size, **options}.items() if v is not None}
    key = (name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items())))
    if key not in _LOADED:
        try:
            _LOADED[key] = TASKS[name](**options)
        except TypeError as error:
            raise LridError(f"task {name!r} does not take the option(s) {sorted(options)}: {error}") from None
    return _LOADED[key]


# Input shape, classes and training-set size of the standard data sets, so that a sweep's cost can be
# estimated (``lrid generate --dry-run``) on a machine that does not hold the data.
STANDARD_GEOMETRY = {
    "cifar10": lambda image_size: ((32, 32, 3), 10, 50_000),
    "imagenet": lambda image_size: ((image_size or 224, image_size or 224, 3), 1000, 1_281_167),
}


def task_geometry(name: str, image_size: int | None = None, **options) -> tuple[tuple[int, ...], int, int]:
    """(input shape, number of classes or outputs, training examples) of a task, without its data where known."""
    if name in STANDARD_GEOMETRY:
        return STANDARD_GEOMETRY[name](image_size)
    task = get_task(name, image_size=image_size, **options)
    return task.input_shape, task.n_classes, task.steps_per_epoch(1)


from lrid.tasks import digits  # noqa: E402,F401  (registers the embedded default)
from lrid.tasks import cifar10, imagenet, teacher_student  # noqa: E402,F401
