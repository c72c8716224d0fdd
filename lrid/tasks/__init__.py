"""Tasks a network can be trained on, registered by name.

A task provides in-memory train and test arrays, its number of classes, seeded batches for one epoch,
and a fixed probe batch on which activations are recorded.
"""

from __future__ import annotations

from collections.abc import Callable

from lrid.errors import LridError
from lrid.tasks.base import Task

TASKS: dict[str, Callable[[], Task]] = {}


def register_task(name: str):
    """Register a zero-argument task loader under ``name`` (a decorator)."""

    def decorator(loader: Callable[[], Task]) -> Callable[[], Task]:
        TASKS[name] = loader
        return loader

    return decorator


_LOADED: dict[str, Task] = {}


def get_task(name: str) -> Task:
    """Load a task by name, once per process (loading is deterministic, so caching is safe)."""
    if name not in TASKS:
        raise LridError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    if name not in _LOADED:
        _LOADED[name] = TASKS[name]()
    return _LOADED[name]


from lrid.tasks import digits  # noqa: E402,F401  (registers the embedded default)
