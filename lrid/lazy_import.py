"""Deferred imports, so that commands which never train a network do not pay TensorFlow's ~4 s import,
and the check that the optional heavy dependencies are installed before a command needs them."""

from __future__ import annotations

import importlib
import importlib.util
import types
from typing import Any

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
