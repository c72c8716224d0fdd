"""Deferred imports, so that commands which never train a network do not pay TensorFlow's ~4 s import."""

import importlib
import types


class LazyModule(types.ModuleType):
    """A module placeholder that imports the real module on first attribute access."""

    def __init__(self, name: str):
        super().__init__(name)
        self._module = None

    def __getattr__(self, attribute):
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return getattr(self._module, attribute)


tf = LazyModule("tensorflow")
keras = LazyModule("keras")
