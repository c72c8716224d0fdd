"""Tasks a network can be trained on: a table of entries, one module each.

A task (see :class:`lrid.tasks.base.Task`) provides seeded training batches, a fixed probe batch on which
activations are recorded, and test accuracy. Each module of this package registers its loader with
:func:`register_task` (a decorator), which puts one :class:`TaskEntry` in the table: the loader, the loss
its networks descend, and, where known without the data, its geometry (so a sweep's cost can be
estimated on a machine that does not hold them). Every module of the package is imported the first time
the table is read, so a new task is one new module here (see README, "Extending lrid"); a task of your
own package registers the same way, imported before use or exposed in the ``lrid.tasks`` entry-point group.
A loader is called with the spec's options that are set (``data_dir``, ``image_size``, ``task.options``)
and raises :class:`LridError` with what was expected where when its data are missing or malformed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lrid.errors import LridError
from lrid.registry import Registry
from lrid.tasks.base import Task

Geometry = tuple[tuple[int, ...], int, int]


@dataclass(frozen=True)
class TaskEntry:
    """One task of the table.

    Attributes:
        name: what a sweep's ``task.name`` calls it.
        loader: ``loader(**options)`` -> the loaded :class:`~lrid.tasks.base.Task`.
        loss: the loaded task's ``Task.loss`` ("cross_entropy" or "mse"), declared so a sweep can be checked
            (e.g. a rule that only descends cross-entropy on a regression task) before any data are loaded.
        geometry: ``geometry(image_size)`` -> (input shape, classes or outputs, training examples) without
            loading the data, for tasks whose data may be absent; None: the task is loaded to learn them.
    """

    name: str
    loader: Callable[..., Task]
    loss: str = "cross_entropy"
    geometry: Callable[[int | None], Geometry] | None = None


#: the table: task name -> :class:`TaskEntry`
TASK_ENTRIES: Registry[TaskEntry] = Registry(__name__, "lrid.tasks", "task")
#: each task's loader, by name
TASKS: Mapping[str, Callable[..., Task]] = TASK_ENTRIES.column("loader")
#: each task's loss ("cross_entropy" or "mse"), known without loading its data, to validate sweeps
TASK_LOSSES: Mapping[str, str] = TASK_ENTRIES.column("loss")


def register_task(
    name: str, loss: str = "cross_entropy", geometry: Callable[[int | None], Geometry] | None = None
) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    """Register a task loader under ``name`` (a decorator); it takes the spec's options as keywords.

    ``loss`` and ``geometry`` go into the task's :class:`TaskEntry` (see there).
    """

    def decorator(loader: Callable[..., Task]) -> Callable[..., Task]:
        TASK_ENTRIES.add(name, TaskEntry(name, loader, loss, geometry))
        return loader

    return decorator


_LOADED: dict[tuple, Task] = {}


def get_task(name: str, data_dir: str | None = None, image_size: int | None = None, **options) -> Task:
    """Load a task, once per process and options (loading is deterministic, so caching is safe).

    ``options`` are the task's own settings (a spec's ``task.options``, e.g. teacher_student's sizes).
    """
    if name not in TASK_ENTRIES:
        raise LridError(f"unknown task {name!r}; known tasks: {', '.join(TASK_ENTRIES)}")
    options = {k: v for k, v in {"data_dir": data_dir, "image_size": image_size, **options}.items() if v is not None}
    key = (name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items())))
    if key not in _LOADED:
        try:
            _LOADED[key] = TASKS[name](**options)
        except TypeError as error:
            raise LridError(f"task {name!r} does not take the option(s) {sorted(options)}: {error}") from None
    return _LOADED[key]


def task_geometry(name: str, image_size: int | None = None, **options) -> Geometry:
    """(input shape, number of classes or outputs, training examples) of a task, without its data where known."""
    entry = TASK_ENTRIES.get(name)
    if entry is not None and entry.geometry is not None:
        return entry.geometry(image_size)
    task = get_task(name, image_size=image_size, **options)
    return task.input_shape, task.n_classes, task.steps_per_epoch(1)
