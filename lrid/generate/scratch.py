"""A scratch directory per lrid process for the files TensorFlow writes while it traces.

Autograph writes each converted function to ``__autograph_generated_file*.py`` in the system temporary
directory and removes it at interpreter exit, which a killed process (kill -9, the OOM killer, a pool or
Ray worker stopped by its parent) never reaches: sweeps then leave hundreds of such files behind. lrid
points Python's :mod:`tempfile` at ``<system temp>/lrid-scratch-<pid>-*`` instead, removes that directory
when the process exits, and removes the directories of processes of this host that no longer exist
whenever a new one is made, so what a killed process leaves is cleared by the next lrid process. lrid's own
steps and recorders are traced without AutoGraph; Keras, TensorFlow and plugin rules may still convert code.

Pool and Ray workers are lrid's own processes and use the directory for their whole life; in the user's
process (the sequential backend, lrid used as a library) it is used only while a run trains, so the
user's own temporary files stay where they were.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lrid.store import process_alive

PREFIX = "lrid-scratch-"
_NAME = re.compile(rf"{re.escape(PREFIX)}(\d+)-")
_scratch: str | None = None


def remove_dead_scratch(base: str | None = None) -> list[str]:
    """Remove the scratch directories of processes that no longer exist; their paths."""
    removed = []
    for path in Path(base or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        match = _NAME.match(path.name)
        if match and path.is_dir() and not process_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def scratch_dir() -> str:
    """This process's scratch directory, made on first use and removed when the process exits."""
    global _scratch
    if _scratch is None or not os.path.isdir(_scratch):
        base = tempfile.gettempdir()
        remove_dead_scratch(base)
        _scratch = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base)
        atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
    return _scratch


def use_scratch_for_this_process() -> str:
    """Send every temporary file of this process to its scratch directory (for lrid's worker processes)."""
    tempfile.tempdir = scratch_dir()
    return tempfile.tempdir


def remove_scratch() -> None:
    """Remove this process's scratch directory now (a worker about to end without running atexit)."""
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)


@contextmanager
def scratch_tempdir() -> Iterator[str]:
    """Send temporary files to the scratch directory for the ``with`` block only (in the user's process)."""
    previous = tempfile.tempdir
    if previous is not None and Path(previous).name.startswith(PREFIX):
        yield previous  # already a worker's scratch directory
        return
    tempfile.tempdir = scratch_dir()
    try:
        yield tempfile.tempdir
    finally:
        tempfile.tempdir = previous
