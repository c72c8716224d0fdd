"""Category-balanced train/test splits grouped by run.

Each split draws the same number of test runs from every rule (25% of the rarest rule's runs), and the
same number of training runs from each rule's remainder, so chance is 1/n_rules on both sides. Splitting
runs rather than samples keeps every layer of one network on one side: layers of a network share its
history, and letting them straddle the split would leak the answer.

Held-out generalisation: with ``train_runs``/``test_runs`` (the runs matching ``--train-where`` and
``--test-where``), each split draws its test runs only from the test pool and its training runs only from
the train pool, never one run on both sides. Filters are expressions over run metadata
(:func:`run_metadata`, :func:`select_runs`).

Hyperparameter search uses :func:`inner_cv`: folds over the training runs only, grouped by run and
stratified by rule, so no network is on both sides of an inner fold either.
"""

from __future__ import annotations

import json
import re

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
        raise LridError(
            f"the store holds runs of {len(by_rule)} rule(s); identification needs at least two rules"
        )
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
            raise LridError(f"{side} leaves no run of rule {rule!r}; loosen the filter so every rule has runs on both sides")
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


_SIMPLE_TERM = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=\s*([^=<>!].*?)\s*$")


def select_runs(metadata: pd.DataFrame, where: str, option: str = "--train-where") -> set[str]:
    """The run ids whose metadata match ``where``.

    Two forms: ``key=value[,key=value...]`` (all must hold; values compare as text, so ``batch_size=32``
    and ``model.hidden=[64, 64]`` work), or any pandas ``DataFrame.query`` expression
    (``batch_size == 32 and arch in ['mlp', 'knet']``), where dotted names are written as they are
    (``model.hidden == '[64, 64]'``). An unknown field or a filter matching nothing is an error.
    """
    terms = [_SIMPLE_TERM.match(term) for term in _split_simple(where)]
    if all(terms):
        mask = pd.Series(True, index=metadata.index)
        for match in terms:
            key, value = match.group(1), match.group(2).strip().strip("'\"")
            _check_field(metadata, key, option)
            mask &= metadata[key].map(lambda cell: _as_text(cell) == _as_text(value))
        selected = metadata.index[mask]
    else:
        expression = where
        for column in sorted((c for c in metadata.columns if "." in c), key=len, reverse=True):
            expression = re.sub(rf"(?<![\w.`]){re.escape(column)}(?![\w.])", f"`{column}`", expression)
        try:
            selected = metadata.query(expression, engine="python").index
        except pd.errors.UndefinedVariableError as error:
            name = re.search(r"'(.+?)'", str(error))
            _check_field(metadata, name.group(1) if name else str(error), option)
            raise
        except Exception as error:  # noqa: BLE001 - pandas raises many types for a malformed query
            raise LridError(f"{option} {where!r} is not a valid filter ({error}); write key=value or a pandas query") from None
    if len(selected) == 0:
        raise LridError(f"{option} {where!r} matches no complete run; check the values with `lrid status STORE`")
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
        raise LridError(f"{option} names unknown field {key!r}; {hint}known fields: {fields} (or dotted, e.g. train.batch_size)")
