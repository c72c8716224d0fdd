"""Deferred imports, so that commands which never train a network do not pay TensorFlow's ~4 s import,
and the check that the optional heavy dependencies are installed before a command needs them."""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import types
from collections.abc import Iterator
from typing import Any, NoReturn

from lrid.errors import LridError

# What the `cpu`/`gpu` extras of setup.cfg bring: module name -> what a user knows it as.
EXTRA_MODULES = {"tensorflow": "TensorFlow", "xgboost": "XGBoost"}


class LazyModule(types.ModuleType):
    """A module placeholder that imports the real module on first attribute access."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._module: types.ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return getattr(self._module, attribute)


tf = LazyModule("tensorflow")
keras = LazyModule("keras")


def prefer_onednn() -> None:
    """Ask TensorFlow for its oneDNN CPU kernels, unless the user chose (``TF_ENABLE_ONEDNN_OPTS``) or
    TensorFlow is already imported (it reads the choice once, on import; processes started from here
    inherit it).

    TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI and newer. On an AVX2-only CPU they
    made a population's batched matmuls much faster while the solo conv net ran slower
    (benchmarks/population.py, ``--onednn``), so populations ask for them and solo runs keep TensorFlow's choice
    (see :func:`lrid.generate.executors.pool_prefers_onednn`).
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def exit_now(code: int = 0) -> NoReturn:
    """End this process with ``code``: its other threads joined, its exit handlers run and its streams
    flushed as at any exit, but without the interpreter's teardown of loaded modules, which with TensorFlow
    loaded costs about 2 CPU-seconds and nothing a finished lrid process needs.

    Call it only where the process ends anyway (the ``lrid`` command, a pool worker), never in a library
    call: the caller's own code would not run on.
    """
    import atexit
    import threading

    # What the interpreter's exit does first, in its order: threading's exit hooks (which stop the worker
    # threads of executors left running, as joblib's are) and the joins of every non-daemon thread, then the
    # exit handlers. Both functions are the interpreter's own and are safe to call again.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream has nothing left to flush
            stream.flush()
    os._exit(code)


def require_extra(*modules: str, purpose: str) -> None:
    """Raise a one-line :class:`LridError` naming the extra to install when any of ``modules`` is missing.

    ``pip install -e .`` alone installs lrid without TensorFlow and XGBoost; checking before a command
    starts spares the user a traceback from every pool worker. ``purpose`` says what needs them.
    """
    missing = [EXTRA_MODULES.get(module, module) for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise LridError(
            f"{purpose} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed; "
            "install lrid with its extra: pip install -e '.[cpu]' (or '.[gpu]' on a GPU machine)"
        )


# TensorFlow's C++ libraries log as they load, before they read TF_CPP_MIN_LOG_LEVEL: every process that
# imports TensorFlow (each pool worker too) printed absl's preface and oneDNN's and the CPU features' notices
# even when the user had asked for none. lrid applies the user's level to what the import itself logs.
_SEVERITIES = "IWEF"  # absl's INFO, WARNING, ERROR, FATAL: TF_CPP_MIN_LOG_LEVEL 0..3 hides those below it
_LOG_LINE = re.compile(r"^([IWEF])\d{4} ")
_ABSL_PREFACE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def hidden_log_lines(text: str, min_level: int) -> str:
    """``text`` without the C++ log messages below ``min_level`` (TF_CPP_MIN_LOG_LEVEL: 1 hides INFO, 2 also
    WARNING, ...), the lines that continue them, and, from level 1, absl's preface to early messages.

    Anything else (Python warnings, errors) is kept as it is.
    """
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            dropping = _SEVERITIES.index(match.group(1)) < min_level
        elif line.startswith(_ABSL_PREFACE):
            dropping = min_level >= 1
        elif line.startswith(("WARNING:", "ERROR:", "Traceback")):
            dropping = False  # a new message of another logger
        if not dropping:
            kept.append(line)
    return "".join(kept)


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def _stderr_filtered(min_level: int) -> Iterator[None]:
    """Collect what is written to file descriptor 2 (where C++ logs go) and pass on what
    :func:`hidden_log_lines` keeps."""
    with contextlib.suppress(Exception):  # no sys.stderr (pythonw) or a closed one: nothing to flush
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()  # Python's own writes during the import, in order
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = hidden_log_lines(captured.read().decode(errors="replace"), min_level)
            if kept:
                os.write(2, kept.encode())


class _FilteredLoader(importlib.abc.Loader):
    """The TensorFlow package's loader, running its import with :func:`_stderr_filtered`."""

    def __init__(self, loader: Any, min_level: int) -> None:
        self._loader, self._min_level = loader, min_level

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        with _stderr_filtered(self._min_level):
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # resources, source, is_package: the real loader's
        return getattr(self._loader, name)


class _TensorFlowImportFilter(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do, with a loader that filters its load-time logs."""

    _finding = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        # Consulted first for every module any code imports: the name alone turns all but one away.
        if fullname != "tensorflow" or self._finding or "tensorflow" in sys.modules:
            return None
        min_level = _min_log_level()
        if min_level < 1:
            return None
        # Asked again from inside, the other finders answer. A spec found only to check that TensorFlow is
        # installed (lazy_import.require_extra) is never loaded, so this finder stays for the real import.
        self._finding = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader, min_level)
        return spec


def filter_tensorflow_load_logs() -> None:
    """Make the first import of TensorFlow in this process honour TF_CPP_MIN_LOG_LEVEL for what it logs while
    loading (read at that import; unset or 0 leaves everything). Imports nothing itself."""
    if not any(isinstance(finder, _TensorFlowImportFilter) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TensorFlowImportFilter())
