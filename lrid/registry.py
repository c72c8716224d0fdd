"""Tables of named entries whose rows are modules: the classifiers (:mod:`lrid.identify.classifiers`) and the
tasks (:mod:`lrid.tasks`).

A :class:`Registry` is filled by the modules of its package, each of which adds its entry when imported;
all of them are imported the first time the table is read, so adding an entry is adding a module. Modules
of other packages add theirs the same way once imported, or from the registry's entry-point group.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from lrid.errors import LridError

Entry = TypeVar("Entry")


class Registry(Mapping[str, Entry], Generic[Entry]):
    """Entries by name, in ``order`` (default: by name), complete once read.

    Args:
        package: the package whose every module is imported before the table is first read.
        group: the entry-point group whose modules are imported then too (plugins of other packages).
        what: what an entry is, for messages ("classifier", "task").
        order: sort key of the entries in listings.
    """

    def __init__(self, package: str, group: str, what: str, order: Callable[[Entry], Any] | None = None) -> None:
        self.package, self.group, self.what = package, group, what
        self._order = order
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def add(self, name: str, entry: Entry, *, replace: bool = True) -> Entry:
        """Put ``entry`` in the table under ``name``; with ``replace`` False, a different entry there is an error."""
        existing = self._entries.get(name)
        if not replace and existing is not None and existing != entry:
            raise ValueError(f"a {self.what} named {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def load(self) -> None:
        """Import every module of the package, then of the entry-point group, once."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")
        for entry_point in entry_points(group=self.group):
            try:
                entry_point.load()
            except Exception as error:  # noqa: BLE001 - a broken plugin must not hide the built-in entries
                raise LridError(
                    f"{self.what} plugin {entry_point.name!r} ({entry_point.value}) failed to import: "
                    f"{error}; fix or uninstall that package"
                ) from None

    def get_entry(self, name: str) -> Entry:
        """The entry ``name``; an unknown name is a one-line error listing the known ones."""
        if name not in self:
            raise LridError(f"unknown {self.what} {name!r}; choose from {', '.join(self)}")
        return self[name]

    def column(self, field: str) -> Mapping[str, Any]:
        """A read-only view of one field of every entry, by name."""
        return _Column(self, field)

    def _rows(self) -> dict[str, Entry]:
        self.load()
        order = self._order
        if order is None:
            return dict(sorted(self._entries.items()))
        return dict(sorted(self._entries.items(), key=lambda item: (order(item[1]), item[0])))

    def __getitem__(self, name: str) -> Entry:
        return self._rows()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows())

    def __len__(self) -> int:
        return len(self._rows())


class _Column(Mapping[str, Any]):
    def __init__(self, registry: Registry, field: str):
        self._registry, self._field = registry, field

    def __getitem__(self, name: str) -> Any:
        return getattr(self._registry[name], self._field)

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)
