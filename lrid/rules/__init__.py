"""Learning rules, one module each, registered by name.

To add a rule of your own, subclass :class:`~lrid.rules.base.LearningRule` and decorate it with
:func:`register_rule`; sweeps can then name it like a built-in rule.
"""

from __future__ import annotations

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


def get_rule(name: str) -> type[LearningRule]:
    """The rule class registered as ``name``."""
    if name not in RULES:
        raise LridError(f"unknown rule {name!r}; known rules: {', '.join(sorted(RULES))} (see `lrid rules`)")
    return RULES[name]


from lrid.rules import backprop, feedback_alignment, information_alignment, sign_symmetry  # noqa: E402,F401
