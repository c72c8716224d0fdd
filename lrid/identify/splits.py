"""Category-balanced train/test splits grouped by run.

Each split draws the same number of test runs from every rule (25% of the rarest rule's runs), and the
same number of training runs from each rule's remainder, so chance is 1/n_rules on both sides. Splitting
runs rather than samples keeps every layer of one network on one side: layers of a network share its
history, and letting them straddle the split would leak the answer.
"""

from __future__ import annotations

import numpy as np

from lrid.errors import LridError


def balanced_run_splits(
    run_rules: dict[str, str], n_splits: int = 10, test_fraction: float = 0.25, seed: int = 0
) -> list[tuple[list[str], list[str]]]:
    """``n_splits`` (train run ids, test run ids) pairs, balanced by rule.

    Args:
        run_rules: each run id's rule.
        n_splits: number of independent random splits.
        test_fraction: share of each rule's runs held out for testing.
        seed: seeds the draws; the same inputs and seed give the same splits.
    """
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
