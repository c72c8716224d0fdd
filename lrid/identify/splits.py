"""Category-balanced train/test splits grouped by run.

Each split draws the same number of test runs from every rule (25% of the rarest rule's runs), and the
same number of training runs from each rule's remainder, so chance is 1/n_rules on both sides. Splitting
runs rather than samples keeps every layer of one network on one side: layers of a network share its
history, and letting them straddle the split would leak the answer.

Held-out generalisation: with ``train_runs``/``test_runs`` (the runs matching ``--train-where`` and
``--test-where``), each split draws its test runs only from the test pool and its training runs only from
the train pool, never one run on both sides. Filters are comparisons over run metadata in a small
language that cannot call anything (:func:`run_metadata`, :func:`parse_filter`, :func:`select_runs`).

Hyperparameter search uses :func:`inner_cv`: folds over the training runs only, grouped by run and
stratified by rule, so no network is on both sides of an inner fold either.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from lrid.errors import LridError


def balanced_run_splits(
    run_rules: dict[str, str],
    n_splits: int = 10,
    test_fraction: float = 0.25,
    seed: int = 0,
    *,
    train_runs: set[str] | list[str] | None = None,
    test_runs: set[str] | list[str] | None = None,
) -> list[tuple[list[str], list[str]]]:
    """``n_splits`` (train run ids, test run ids) pairs, balanced by rule.

    Args:
        run_rules: each run id's rule.
        n_splits: number of independent random splits.
        test_fraction: share of each rule's runs held out for testing.
        seed: seeds the draws; the same inputs and seed give the same splits.
        train_runs, test_runs: the runs each side may draw from (default: all). With either given, each
            rule contributes ``round(test_fraction * its runs in either pool)`` test runs (at most its test
            pool) and as many training runs as every rule can still give from its train pool.
    """
    if train_runs is not None or test_runs is not None:
        return _pooled_splits(run_rules, n_splits, test_fraction, seed, train_runs, test_runs)
    by_rule: dict[str, list[str]] = {}
    for run_id, rule in sorted(run_rules.items()):
        by_rule.setdefault(rule, []).append(run_id)
    if len(by_rule) < 2:
        raise LridError(f"the store holds runs of {len(by_rule)} rule(s); identification needs at least two rules")
    rarest_rule, n_per_rule = min(((rule, len(runs)) for rule, runs in by_rule.items()), key=lambda item: item[1])
    n_test = max(1, int(round(test_fraction * n_per_rule)))
    n_train = n_per_rule - n_test
    if n_train < 1:
        raise LridError(
            f"rule {rarest_rule!r} has only {n_per_rule} complete run(s); a {1 - test_fraction:.0%}/"
            f"{test_fraction:.0%} split needs at least 2 per rule (8 or more recommended): add seeds to the sweep"
        )
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(n_splits):
        train, test = [], []
        for rule in sorted(by_rule):
            shuffled = rng.permutation(by_rule[rule]).tolist()
            test += shuffled[:n_test]
            train += shuffled[n_test : n_test + n_train]
        splits.append((train, test))
    return splits


def _pooled_splits(run_rules, n_splits, test_fraction, seed, train_runs, test_runs):
    train_pool = set(run_rules) if train_runs is None else set(train_runs) & set(run_rules)
    test_pool = set(run_rules) if test_runs is None else set(test_runs) & set(run_rules)
    rules = sorted(set(run_rules.values()))
    if len(rules) < 2:
        raise LridError(f"the store holds runs of {len(rules)} rule(s); identification needs at least two rules")
    pools = {}
    for rule in rules:
        train = sorted(r for r in train_pool if run_rules[r] == rule)
        test = sorted(r for r in test_pool if run_rules[r] == rule)
        if not train or not test:
            side = "--train-where" if not train else "--test-where"
            raise LridError(
                f"{side} leaves no run of rule {rule!r}; loosen the filter so every rule has runs on both sides"
            )
        pools[rule] = (train, test)
    n_test = min(
        min(len(test) for _, test in pools.values()),
        max(1, min(int(round(test_fraction * len(set(train) | set(test)))) for train, test in pools.values())),
    )
    # Runs in both pools may be drawn for testing; what a rule can surely give to training excludes them.
    n_train = min(len(train) - min(n_test, len(set(train) & set(test))) for train, test in pools.values())
    if n_train < 1:
        raise LridError(
            "the train and test filters overlap so much that some rule has no training run left; "
            "make --train-where and --test-where select different runs"
        )
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(n_splits):
        train_ids, test_ids = [], []
        for rule in rules:
            train, test = pools[rule]
            drawn_test = rng.permutation(test).tolist()[:n_test]
            remaining = [run for run in train if run not in set(drawn_test)]
            train_ids += rng.permutation(remaining).tolist()[:n_train]
            test_ids += drawn_test
        splits.append((train_ids, test_ids))
    return splits


def inner_cv(y: np.ndarray, groups: np.ndarray, n_folds: int = 5, seed: int = 0) -> StratifiedGroupKFold:
    """Folds for hyperparameter search over training samples: grouped by run, stratified by rule.

    Uses ``n_folds`` folds, or fewer when a rule has fewer training runs than that (at least 2).
    """
    runs = pd.DataFrame({"y": y, "group": groups}).drop_duplicates("group")
    fewest = int(runs["y"].value_counts().min())
    if fewest < 2:
        raise LridError("hyperparameter search needs at least 2 training runs per rule; add seeds or use --no-search")
    return StratifiedGroupKFold(n_splits=min(n_folds, fewest), shuffle=True, random_state=seed)


def run_metadata(manifests: list[dict]) -> pd.DataFrame:
    """One row per run: its spec flattened to dotted columns (``train.batch_size``, ``model.hidden``, ...).

    Also: ``rule``, ``task``, ``arch``, ``status``, the final metrics, and a short alias (``batch_size``,
    ``lr``, ``hidden``) for every dotted column whose last part is unique. Lists become their text
    (``model.hidden == '[128, 128]'``).
    """
    rows = []
    for manifest in manifests:
        flat = pd.json_normalize(manifest["spec"], sep=".").iloc[0].to_dict()
        flat = {key: json.dumps(value) if isinstance(value, (list, dict)) else value for key, value in flat.items()}
        flat = {key.replace("rule.hparams.", "rule."): value for key, value in flat.items()}
        rows.append(
            {
                "run_id": manifest["run_id"],
                "status": manifest.get("status"),
                "rule": manifest["spec"]["rule"]["name"],
                "task": manifest["spec"]["task"]["name"],
                "arch": manifest["spec"]["model"]["arch"],
                **{key: value for key, value in flat.items() if key not in ("rule.name", "task.name", "model.arch")},
                "final_test_accuracy": manifest.get("final_test_accuracy"),
                "final_train_loss": manifest.get("final_train_loss"),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=["run_id", "status", "rule", "task", "arch"])
    dotted = [column for column in table.columns if "." in column]
    last_parts = pd.Series([column.rsplit(".", 1)[1] for column in dotted])
    for column in dotted:
        alias = column.rsplit(".", 1)[1]
        if (last_parts == alias).sum() == 1 and alias not in table.columns:
            table[alias] = table[column]
    return table.set_index("run_id", drop=False)


def spec_field(metadata: pd.DataFrame, column: str, default: Any) -> pd.Series:
    """One spec field of every run in :func:`run_metadata`'s table, reading ``default`` where the spec omits it.

    Specs leave some fields out at their defaults (``model.init``, a task's options) so that older run ids
    hold; their column is then missing or NaN.
    """
    values = metadata[column] if column in metadata else pd.Series(default, index=metadata.index)
    return values.where(values.notna(), default).astype(type(default))


_SIMPLE_TERM = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=\s*([^=<>!].*?)\s*$")
_ALLOWED_FORM = (
    "write key=value[,key=value] or comparisons of fields with literals (==, !=, <, <=, >, >=, in, not in) "
    "joined by and/or/not, e.g. \"arch in ['mlp', 'knet'] and lr > 0.01\""
)
_COMPARISONS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_MAX_FILTER_CHARS = 10_000
_MAX_FILTER_DEPTH = 50


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Compare:
    left: object  # _Field or a literal
    op: str  # one of _COMPARISONS' values, or "text==" for the key=value form
    right: object


@dataclass(frozen=True)
class _Logic:
    op: str  # "and", "or" or "not" (one term)
    terms: tuple


@dataclass(frozen=True)
class RunFilter:
    """A held-out filter parsed by :func:`parse_filter`: comparisons of run metadata fields with literals.

    It holds no code: evaluating it (:meth:`mask`) only compares values, so a filter read from a results
    folder received from elsewhere cannot run anything.
    """

    text: str
    option: str
    tree: object

    @property
    def fields(self) -> list[str]:
        """The metadata fields the filter names, in order of appearance."""
        found: list[str] = []

        def walk(node):
            if isinstance(node, _Field):
                found.append(node.name)
            elif isinstance(node, _Compare):
                walk(node.left), walk(node.right)
            elif isinstance(node, _Logic):
                for term in node.terms:
                    walk(term)

        walk(self.tree)
        return list(dict.fromkeys(found))

    def mask(self, metadata: pd.DataFrame) -> pd.Series:
        """Which rows of ``metadata`` (:func:`run_metadata`) match; an unknown field is an error."""
        for name in self.fields:
            _check_field(metadata, name, self.option)
        return pd.Series(self._evaluate(self.tree, metadata), index=metadata.index, dtype=bool)

    def _evaluate(self, node, metadata: pd.DataFrame) -> np.ndarray:
        if isinstance(node, _Logic):
            values = [self._evaluate(term, metadata) for term in node.terms]
            if node.op == "not":
                return ~values[0]
            return np.logical_and.reduce(values) if node.op == "and" else np.logical_or.reduce(values)
        left, right = (self._operand(side, metadata) for side in (node.left, node.right))
        return np.fromiter((self._compare(a, node.op, b) for a, b in zip(left, right)), dtype=bool, count=len(metadata))

    @staticmethod
    def _operand(side, metadata: pd.DataFrame) -> list:
        if isinstance(side, _Field):
            return metadata[side.name].tolist()
        return [side] * len(metadata)

    def _compare(self, cell, op: str, value) -> bool:
        if op == "text==":
            return _as_text(cell) == _as_text(value)
        if op in ("in", "not in"):
            return any(_equal(cell, item) for item in value) == (op == "in")
        if op in ("==", "!="):
            # As in pandas, `field == [a, b]` means membership, unless the field holds lists itself.
            if isinstance(value, tuple) and not _list_text(cell):
                matched = any(_equal(cell, item) for item in value)
            else:
                matched = _equal(cell, value)
            return matched == (op == "==")
        if _missing(cell) or _missing(value):
            return False
        try:
            return bool(_ORDERINGS[op](cell, value))
        except TypeError:
            raise LridError(
                f"{self.option} {_quoted(self.text)} compares {cell!r} with {value!r} by {op}, which have no order; "
                "compare numbers with numbers and text with text"
            ) from None


def _quoted(text: str) -> str:
    # A filter is echoed in one-line errors; a very long one is cut so the line stays readable.
    return repr(text if len(text) <= 160 else text[:157] + "...")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _list_text(cell) -> bool:
    return isinstance(cell, str) and cell.startswith("[")


def _equal(cell, value) -> bool:
    if value is None or _missing(cell):
        return value is None and _missing(cell)
    if isinstance(value, tuple):
        # run_metadata stores lists as their JSON text.
        try:
            return _list_text(cell) and json.loads(cell) == list(value)
        except json.JSONDecodeError:
            return False
    try:
        return bool(cell == value)
    except (TypeError, ValueError):
        return False


def parse_filter(where: str, option: str = "--train-where") -> RunFilter:
    """Parse a held-out filter without evaluating anything; a form outside the language is an error.

    Two forms: ``key=value[,key=value...]`` (all must hold; values compare as text, so ``batch_size=32``
    and ``model.hidden=[64, 64]`` work), or comparisons (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``,
    ``in``, ``not in``) between fields and literals (numbers, strings, True/False/None, lists of them),
    joined by ``and``/``or``/``not`` (or ``&``/``|``/``~``) and parentheses, e.g.
    ``batch_size == 32 and arch in ['mlp', 'knet']``. Dotted names are written as they are, bare or in
    backticks (``model.hidden == [64, 64]``; list fields also compare with their text, ``'[64, 64]'``).
    Calls, attributes of anything but a field name, subscripts, arithmetic, ``@`` locals and dunder names
    are refused, so no filter can run code.
    """
    if not isinstance(where, str):
        raise LridError(f"{option} must be a filter string, not {type(where).__name__}; {_ALLOWED_FORM}")
    if len(where) > _MAX_FILTER_CHARS:
        raise LridError(f"{option} is {len(where):,} characters long; a filter has at most {_MAX_FILTER_CHARS:,}")
    terms = [_SIMPLE_TERM.match(term) for term in _split_simple(where)]
    matches = [match for match in terms if match is not None]
    if len(matches) == len(terms):
        compares = []
        for match in matches:
            key = match.group(1)
            _check_name(key, where, option)
            compares.append(_Compare(_Field(key), "text==", match.group(2).strip().strip("'\"")))
        return RunFilter(where, option, _Logic("and", tuple(compares)))
    source = _pandas_spelling_to_python(where, option)
    try:
        expression = ast.parse(source.strip(), mode="eval")
        return RunFilter(where, option, _FilterParser(where, source.strip(), option).boolean(expression.body))
    except (SyntaxError, ValueError) as error:
        detail = getattr(error, "msg", None) or str(error)
        raise LridError(f"{option} {_quoted(where)} is not a valid filter ({detail}); {_ALLOWED_FORM}") from None
    except (RecursionError, MemoryError):
        raise LridError(f"{option} {_quoted(where)} is nested too deeply; {_ALLOWED_FORM}") from None


def _pandas_spelling_to_python(where: str, option: str) -> str:
    """``&``, ``|``, ``~`` as ``and``, ``or``, ``not`` (pandas gives them that precedence) and backtick-quoted
    names unquoted; ``@`` (pandas' local variables) is refused. Quoted strings are left alone."""
    out, quote, index = [], None, 0
    while index < len(where):
        character = where[index]
        if quote:
            out.append(character)
            if character == "\\" and index + 1 < len(where):
                out.append(where[index + 1])
                index += 1
            elif character == quote:
                quote = None
        elif character in "'\"":
            quote = character
            out.append(character)
        elif character == "@":
            raise LridError(f"{option} {_quoted(where)}: '@' (a local variable) is not allowed; {_ALLOWED_FORM}")
        else:
            out.append({"&": " and ", "|": " or ", "~": " not ", "`": ""}.get(character, character))
        index += 1
    return "".join(out)


def _check_name(name: str, where: str, option: str) -> None:
    if "__" in name:
        raise LridError(
            f"{option} {_quoted(where)}: the name {name!r} is not allowed (no dunder names); {_ALLOWED_FORM}"
        )


class _FilterParser:
    """Turns a Python expression tree into the filter's own tree, refusing every node outside the language."""

    def __init__(self, where: str, source: str, option: str):
        self.where, self.source, self.option = where, source, option

    def refuse(self, node: ast.AST, what: str) -> LridError:
        segment = ast.get_source_segment(self.source, node) or ast.unparse(node)
        return LridError(f"{self.option} {_quoted(self.where)}: {segment!r} is not allowed ({what}); {_ALLOWED_FORM}")

    def boolean(self, node: ast.AST, depth: int = 0):
        if depth > _MAX_FILTER_DEPTH:
            raise LridError(
                f"{self.option} {_quoted(self.where)} nests and/or/not more than {_MAX_FILTER_DEPTH} deep; simplify it"
            )
        if isinstance(node, ast.BoolOp):
            logic = "and" if isinstance(node.op, ast.And) else "or"
            return _Logic(logic, tuple(self.boolean(value, depth + 1) for value in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return _Logic("not", (self.boolean(node.operand, depth + 1),))
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            compares = []
            # a < b < c means a < b and b < c, as in Python and pandas.
            for left, op, right in zip(operands, node.ops, operands[1:]):
                if type(op) not in _COMPARISONS:
                    raise self.refuse(node, f"the operator {type(op).__name__!r}")
                name = _COMPARISONS[type(op)]
                value = self.operand(right)
                if name in ("in", "not in") and not isinstance(value, tuple):
                    raise self.refuse(right, f"the right side of {name!r} must be a list of literals")
                compares.append(_Compare(self.operand(left), name, value))
            return compares[0] if len(compares) == 1 else _Logic("and", tuple(compares))
        raise self.refuse(node, f"{self.describe(node)} where a comparison belongs")

    def operand(self, node: ast.AST):
        if isinstance(node, (ast.Name, ast.Attribute)):
            return _Field(self.dotted_name(node))
        return self.literal(node)

    def dotted_name(self, node: ast.AST) -> str:
        parts, base = [], node
        while isinstance(base, ast.Attribute):
            parts.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name):
            raise self.refuse(node, "attribute access; attributes are allowed only in dotted field names")
        name = ".".join([base.id, *reversed(parts)])
        _check_name(name, self.where, self.option)
        return name

    def literal(self, node: ast.AST):
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))
            and not isinstance(node.operand.value, bool)
        ):
            return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return tuple(self.literal(element) for element in node.elts)
        raise self.refuse(node, self.describe(node))

    @staticmethod
    def describe(node: ast.AST) -> str:
        kinds = {
            ast.Call: "a call",
            ast.Attribute: "attribute access",
            ast.Subscript: "a subscript",
            ast.Lambda: "a lambda",
            ast.BinOp: "arithmetic",
            ast.UnaryOp: "an operator",
            ast.Name: "a bare name",
            ast.Constant: "a literal",
        }
        return next(
            (text for kind, text in kinds.items() if isinstance(node, kind)), f"the construct {type(node).__name__}"
        )


def check_held_out_filters(train_where: str | None, test_where: str | None) -> None:
    """Parse ``--train-where``/``--test-where`` (either may be None) so a bad one fails before any work."""
    for where, option in ((train_where, "--train-where"), (test_where, "--test-where")):
        if where is not None:
            parse_filter(where, option)


def select_runs(metadata: pd.DataFrame, where: str, option: str = "--train-where") -> set[str]:
    """The run ids whose metadata match the filter ``where`` (its language: :func:`parse_filter`).

    An unknown field or a filter matching nothing is an error.
    """
    selected = metadata.index[parse_filter(where, option).mask(metadata)]
    if len(selected) == 0:
        raise LridError(f"{option} {_quoted(where)} matches no complete run; check the values with `lrid status STORE`")
    return set(selected)


def _split_simple(where: str) -> list[str]:
    # Commas inside brackets belong to a value such as [64, 64].
    parts, depth, current = [], 0, ""
    for character in where:
        depth += character in "[("
        depth -= character in "])"
        if character == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += character
    return parts + [current]


def _as_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    try:
        number = float(text)
        return str(int(number)) if number.is_integer() else repr(number)
    except ValueError:
        return text.replace(" ", "")


def _check_field(metadata: pd.DataFrame, key: str, option: str) -> None:
    if key not in metadata.columns:
        import difflib

        close = difflib.get_close_matches(key, [str(c) for c in metadata.columns], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        fields = ", ".join(sorted(c for c in metadata.columns if "." not in c and c != "run_id"))
        raise LridError(
            f"{option} names unknown field {key!r}; {hint}known fields: {fields} (or dotted, e.g. train.batch_size)"
        )
