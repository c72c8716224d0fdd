"""Distributions for sampled sweeps, and the seeded streams they are drawn from.

A distribution is written in a sweep as a one-key mapping, named as in Ray Tune and Optuna:

- ``uniform: [lo, hi]``: a float, ``lo <= x <= hi``.
- ``loguniform: [lo, hi]``: a float whose logarithm is uniform, ``0 < lo <= x <= hi``.
- ``int_uniform: [lo, hi]``: an integer, both ends included (Optuna's ``suggest_int``; unlike Ray's
  ``randint``, whose upper end is excluded).
- ``int_loguniform: [lo, hi]``: an integer, both ends included, as likely in each octave (``1 <= lo``).
- ``choice: [a, b, ...]``: one of the options, equally likely unless ``weights: [...]`` sits beside it.

Two compound entries build on them. A *group* (a ``choice`` whose options are mappings of keys to values
or distributions) draws one option and then its keys, so settings that only make sense together (an
architecture and the input shape it needs) are drawn together. A *conditional* distribution
(``{given: KEY, cases: {VALUE: distribution, ...}}``) draws from the case matching the value drawn for
another key of the same mapping, e.g. a learning rate whose range depends on the optimizer.

Every key has its own random stream, derived with SHA-256 from the sweep's seed and the names on the way
to the key (rule, key, group option), so the draws are the same in every Python process, and adding a
rule or a key leaves the others' draws unchanged. Floats are rounded to four significant digits (then
kept inside their range), so the values in specs and reports stay readable.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

RANGE_KINDS = ("uniform", "loguniform", "int_uniform", "int_loguniform")
DISTRIBUTIONS = (*RANGE_KINDS, "choice")


@dataclass(frozen=True)
class Fixed:
    """A value given as it is (inside a group or beside a conditional)."""

    value: Any

    def draw(self, rng: np.random.Generator, n: int) -> list:
        """``n`` copies of the value."""
        return [self.value] * n

    @property
    def values(self) -> list:
        """The values it can take."""
        return [self.value]


@dataclass(frozen=True)
class Distribution:
    """One of :data:`DISTRIBUTIONS`: ``args`` is ``(lo, hi)`` for ranges, the options for ``choice``."""

    kind: str
    args: tuple
    weights: tuple[float, ...] | None = None

    @property
    def values(self) -> list:
        """The values to check against the field it sets: both ends of a range, every option of a choice."""
        return list(self.args)

    def draw(self, rng: np.random.Generator, n: int) -> list:
        """``n`` independent draws, as plain Python values."""
        if self.kind == "choice":
            return [self.args[i] for i in _pick(rng, len(self.args), self.weights, n)]
        lo, hi = self.args
        if self.kind == "int_uniform":
            return [int(v) for v in rng.integers(lo, hi + 1, size=n)]
        if self.kind == "int_loguniform":
            # floor of a log-uniform draw on [lo, hi + 1): P(k) is proportional to log((k + 1) / k)
            draws = np.floor(np.exp(rng.uniform(math.log(lo), math.log(hi + 1), size=n)))
            return [int(min(max(v, lo), hi)) for v in draws]
        if self.kind == "loguniform":
            draws = np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))
        else:
            draws = rng.uniform(lo, hi, size=n)
        return [min(max(float(f"{v:.4g}"), lo), hi) for v in draws]


def _pick(rng: np.random.Generator, count: int, weights: tuple[float, ...] | None, n: int) -> np.ndarray:
    """``n`` indices below ``count``, equally likely or in proportion to ``weights``."""
    p = None if weights is None else np.asarray(weights) / sum(weights)
    return rng.choice(count, size=n, p=p)


@dataclass(frozen=True)
class Group:
    """A choice among mappings of keys to values or distributions: one option is drawn, then its keys."""

    options: tuple[dict[str, Any], ...]
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Conditional:
    """A distribution chosen by the value drawn for another key (``given``) of the same mapping."""

    given: str
    cases: dict[str, Fixed | Distribution]


Entry = Fixed | Distribution | Group | Conditional


def case_name(value: Any) -> str:
    """The text a value of the ``given`` key is matched by: case keys and values are compared as text, so a
    YAML key ``16`` matches a drawn 16 and ``true`` a drawn True."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_entry(raw: Any, group_allowed: bool = False) -> Entry:
    """Parse one entry of a space; ``ValueError`` with a one-line reason if it is not valid.

    A mapping is a distribution (or, where ``group_allowed``, a group; or a conditional); a list is
    refused as ambiguous (a grid axis? a list value?); anything else is a fixed value.
    """
    if isinstance(raw, list):
        raise ValueError(
            "a list is ambiguous here: write {choice: [...]} to draw one of its items, or {choice: [[...]]} "
            "for the list itself"
        )
    if not isinstance(raw, dict):
        return Fixed(raw)
    if "given" in raw or "cases" in raw:
        return _parse_conditional(raw)
    kinds = [key for key in raw if key in DISTRIBUTIONS]
    unknown = [key for key in raw if key not in DISTRIBUTIONS and key != "weights"]
    if unknown or len(kinds) != 1:
        names = ", ".join(repr(k) for k in unknown) or "none"
        raise ValueError(
            f"not a distribution (unknown: {names}); write one of {', '.join(DISTRIBUTIONS)}, e.g. "
            "{loguniform: [0.001, 0.1]}"
        )
    kind = kinds[0]
    args = raw[kind]
    if "weights" in raw and kind != "choice":
        raise ValueError("weights go with choice only")
    if kind == "choice":
        return _parse_choice(args, raw.get("weights"), group_allowed)
    return _parse_range(kind, args)


def _parse_range(kind: str, args: Any) -> Distribution:
    if not isinstance(args, list) or len(args) != 2:
        raise ValueError(f"{kind} takes [lo, hi], got {args!r}")
    integer = kind.startswith("int_")
    for bound in args:
        if isinstance(bound, bool) or not isinstance(bound, int if integer else (int, float)):
            raise ValueError(f"{kind} bounds must be {'integers' if integer else 'numbers'}, got {args!r}")
    lo, hi = args
    if lo > hi:
        raise ValueError(f"{kind} [{lo}, {hi}]: lo is above hi; write [lo, hi] with lo <= hi")
    if kind == "loguniform" and lo <= 0:
        raise ValueError(
            f"loguniform [{lo}, {hi}]: lo must be > 0 (a logarithm is drawn); use uniform for ranges from 0"
        )
    if kind == "int_loguniform" and lo < 1:
        raise ValueError(f"int_loguniform [{lo}, {hi}]: lo must be >= 1; use int_uniform for ranges from 0")
    return Distribution(kind, (lo, hi) if integer else (float(lo), float(hi)))


def _parse_choice(options: Any, weights: Any, group_allowed: bool) -> Distribution | Group:
    if not isinstance(options, list) or not options:
        raise ValueError(f"choice takes a non-empty list of options, got {options!r}")
    if weights is not None:
        if (
            not isinstance(weights, list)
            or len(weights) != len(options)
            or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights)
            or sum(weights) <= 0
        ):
            raise ValueError(f"weights must be {len(options)} non-negative numbers, not all zero, one per option")
        weights = tuple(float(w) for w in weights)
    mappings = [isinstance(option, dict) for option in options]
    if group_allowed:
        if not all(mappings):
            raise ValueError(
                "a group's choice takes mappings of keys to values, e.g. [{model.arch: mlp}, {model.arch: convnet}]"
            )
        parsed = []
        for option in options:
            entries = {}
            for key, value in option.items():
                try:
                    entries[key] = parse_entry(value)
                except ValueError as error:
                    raise ValueError(f"{key}: {error}") from None
            check_conditionals(entries)
            parsed.append(entries)
        return Group(tuple(parsed), weights)
    return Distribution("choice", tuple(options), weights)


def _parse_conditional(raw: dict) -> Conditional:
    if (
        set(raw) != {"given", "cases"}
        or not isinstance(raw["given"], str)
        or not isinstance(raw["cases"], dict)
        or not raw["cases"]
    ):
        raise ValueError("a conditional is {given: KEY, cases: {VALUE: distribution, ...}} with at least one case")
    cases = {}
    for case, value in raw["cases"].items():
        entry = parse_entry(value)
        if not isinstance(entry, (Fixed, Distribution)):
            raise ValueError(f"case {case}: a case is a value or a distribution, not a group or another conditional")
        cases[case_name(case)] = entry
    return Conditional(raw["given"], cases)


def check_conditionals(space: dict[str, Entry], grid_axes: tuple[str, ...] = ()) -> None:
    """Check every conditional of ``space`` names a key of it that is fixed or a choice, with a case for each value.

    ``grid_axes`` are keys swept as a grid beside the space: they take every value, so cannot select a case.
    """
    for key, entry in space.items():
        if not isinstance(entry, Conditional):
            continue
        if entry.given in grid_axes:
            raise ValueError(
                f"{key}: given {entry.given!r} is a grid axis; draw it with {{choice: [...]}} to condition on it"
            )
        given = space.get(entry.given)
        if not isinstance(given, (Fixed, Distribution)) or (isinstance(given, Distribution) and given.kind != "choice"):
            raise ValueError(
                f"{key}: given {entry.given!r} must be another key here, fixed or drawn with choice "
                "(a grid axis or a range cannot select a case)"
            )
        missing = [case_name(v) for v in given.values if case_name(v) not in entry.cases]
        if missing:
            raise ValueError(f"{key}: no case for {entry.given} = {', '.join(missing)}; add one under cases")


def leaves(space: dict[str, Entry]) -> dict[str, list[Fixed | Distribution]]:
    """Every key a space can set (group options' keys included), with the entries that may set it."""
    found: dict[str, list] = {}
    for key, entry in space.items():
        if isinstance(entry, Group):
            for option in entry.options:
                for inner, value in leaves(option).items():
                    found.setdefault(inner, []).extend(value)
        elif isinstance(entry, Conditional):
            found.setdefault(key, []).extend(entry.cases.values())
        else:
            found.setdefault(key, []).append(entry)
    return found


def stream(seed: int, *names: str) -> np.random.Generator:
    """A generator for ``names`` under ``seed``, the same in every process (SHA-256, not Python's ``hash``)."""
    words = [int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") for name in names]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def draw_space(space: dict[str, Entry], n: int, seed: int, scope: tuple[str, ...]) -> list[dict[str, Any]]:
    """``n`` configurations (key -> value) drawn from ``space``; ``scope`` names the streams (e.g. the rule)."""
    configs: list[dict[str, Any]] = [{} for _ in range(n)]
    for key in sorted(space):
        entry = space[key]
        if isinstance(entry, Group):
            picks = _pick(stream(seed, *scope, key), len(entry.options), entry.weights, n)
            for index, option in enumerate(entry.options):
                drawn = draw_space(option, n, seed, (*scope, key, str(index)))
                for config, pick, values in zip(configs, picks, drawn):
                    if pick == index:
                        config.update(values)
        elif not isinstance(entry, Conditional):
            for config, value in zip(configs, entry.draw(stream(seed, *scope, key), n)):
                config[key] = value
    for key in sorted(space):
        entry = space[key]
        if isinstance(entry, Conditional):
            by_case = {case: dist.draw(stream(seed, *scope, key, case), n) for case, dist in entry.cases.items()}
            for index, config in enumerate(configs):
                config[key] = by_case[case_name(config[entry.given])][index]
    return configs
