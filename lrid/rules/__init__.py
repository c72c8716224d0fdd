"""Learning rules, one module each, registered by name.

To add a rule of your own, subclass :class:`~lrid.rules.base.LearningRule` and decorate it with
:func:`register_rule`; sweeps can then name it like a built-in rule. For the ``lrid`` command and for
worker processes to find it, expose the module that defines it as an entry point of your package::

    [options.entry_points]            # setup.cfg; or [project.entry-points."lrid.rules"] in pyproject.toml
    lrid.rules =
        my_rule = my_package.my_rule_module

lrid imports every module in the ``lrid.rules`` entry-point group the first time a rule is looked up.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from lrid.errors import LridError
from lrid.rules.base import LearningRule

RULES: dict[str, type[LearningRule]] = {}


def register_rule(rule_class: type[LearningRule]) -> type[LearningRule]:
    """Register ``rule_class`` under its ``name`` (a class decorator); a clashing name is an error."""
    existing = RULES.get(rule_class.name)
    if existing is not None and existing is not rule_class:
        raise ValueError(f"a rule named {rule_class.name!r} is already registered ({existing.__qualname__})")
    RULES[rule_class.name] = rule_class
    return rule_class


_plugins_loaded = False


def load_plugins() -> None:
    """Import the modules of the ``lrid.rules`` entry-point group once, so their rules register."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry_point in entry_points(group="lrid.rules"):
        try:
            entry_point.load()
        except Exception as error:  # noqa: BLE001 - a broken plugin must not hide the built-in rules
            raise LridError(
                f"rule plugin {entry_point.name!r} ({entry_point.value}) failed to import: {error}; "
                "fix or uninstall that package"
            ) from None


def get_rule(name: str) -> type[LearningRule]:
    """The rule class registered as ``name`` (built-in, registered in this process, or a plugin)."""
    if name not in RULES:
        load_plugins()
    if name not in RULES:
        raise LridError(f"unknown rule {name!r}; known rules: {', '.join(sorted(RULES))} (see `lrid rules`)")
    return RULES[name]


from lrid.rules import (  # noqa: E402,F401
    backprop,
    feedback_alignment,
    information_alignment,
    node_perturbation,  # noqa: E402,F401
    sign_symmetry,
    target_propagation,  # noqa: E402,F401
)
