"""The performance-matched control: does a classifier only detect which rule trains better?

Two answers, both written to ``scores.json["control"]``:

* ``curve_baseline``: the accuracy of classifiers that see only what a run's performance says: its
  training-loss curve (``recorded_train_loss`` in the manifest: the mean training loss since the previous
  recording, one value per recorded step) and its final test accuracy, or, for stores written before the
  curve was recorded, its final training loss and final test accuracy. One sample per run, on the same
  splits as the main classifiers. If this baseline is far below the observable classifiers, the
  observables carry more than performance.
* ``matched_bins``: the main classifier's test accuracy within bins of matched final test accuracy
  (quantile bins over the classified runs), from the per-split predictions. Within a bin the runs train
  about equally well, so accuracy there cannot come from telling good learners from bad ones. Rules need
  not be balanced within a bin (a bin may hold only the two rules that train alike), so each bin lists its
  test samples per rule and carries its own chance: ``chance`` is the majority rule's share of the bin's
  test samples (what always guessing that rule scores), ``balanced_accuracy`` the mean recall over the
  rules present in the bin and ``balanced_chance`` its chance, 1 / (rules present).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CURVE_KEY = "recorded_train_loss"


def curve_features(manifests: list[dict], run_ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Per run (in ``run_ids`` order): the loss curve and final test accuracy, or the final metrics as fallback."""
    by_id = {manifest["run_id"]: manifest for manifest in manifests}
    chosen = [by_id[run_id] for run_id in run_ids]
    curves = [manifest.get(CURVE_KEY) for manifest in chosen]
    known_curves = [curve for curve in curves if curve is not None]
    lengths = {len(curve) for curve in known_curves}
    accuracy = np.array([_number(m.get("final_test_accuracy")) for m in chosen])[:, None]
    if len(known_curves) == len(curves) and len(lengths) == 1:
        losses = np.array([[_number(value) for value in curve] for curve in known_curves])
        known = ~np.isnan(losses).all(axis=0)  # step 0 has no training loss yet
        names = [f"train_loss@t{k}" for k in np.flatnonzero(known)] + ["final_test_accuracy"]
        return np.concatenate([losses[:, known], accuracy], axis=1), names
    final_loss = np.array([_number(m.get("final_train_loss")) for m in chosen])[:, None]
    return np.concatenate([final_loss, accuracy], axis=1), ["final_train_loss", "final_test_accuracy"]


def matched_bins(predictions: pd.DataFrame, final_accuracy: pd.Series, n_bins: int = 4) -> list[dict]:
    """Accuracy of ``predictions`` (columns run_id, true, predicted) within quantile bins of ``final_accuracy``.

    ``final_accuracy`` is indexed by run id; the bins are its quantiles over those runs, so each holds
    about the same number of runs. Runs without a final accuracy are left out.
    """
    accuracy = pd.to_numeric(final_accuracy, errors="coerce").dropna()
    if accuracy.empty or predictions.empty:
        return []
    edges = np.unique(np.quantile(accuracy.to_numpy(), np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        edges = np.array([accuracy.min(), accuracy.max()])
    joined = predictions.assign(final_test_accuracy=predictions["run_id"].map(accuracy)).dropna(
        subset=["final_test_accuracy"]
    )
    bin_index = np.clip(np.searchsorted(edges, joined["final_test_accuracy"], side="right") - 1, 0, len(edges) - 2)
    bins = []
    for index in range(len(edges) - 1):
        inside = joined[bin_index == index]
        correct = inside["true"] == inside["predicted"]
        rules = {str(rule): int(count) for rule, count in inside["true"].value_counts().sort_index().items()}
        bins.append(
            {
                "bin": [float(edges[index]), float(edges[index + 1])],
                "n_test": int(len(inside)),
                "accuracy": float(correct.mean()) if len(inside) else None,
                "balanced_accuracy": float(correct.groupby(inside["true"]).mean().mean()) if len(inside) else None,
                **_bin_chance(rules),
                "rules": rules,
            }
        )
    return bins


def bins_with_chance(bins: list[dict], n_classes: int) -> list[dict]:
    """``bins`` (``scores.json["control"]["matched_bins"]``) with ``chance``, ``balanced_chance`` and
    ``balanced_accuracy`` present in each, for results written before bins carried them.

    The chances come from the bin's rule counts where the bin lists them, else from balanced classes
    (1 / ``n_classes``, the one global line older reports drew); a missing balanced accuracy stays ``None``.
    """
    complete = []
    for entry in bins:
        filled = {"balanced_accuracy": None, **entry}
        rules = entry.get("rules")
        if (
            isinstance(rules, dict)
            and any(rules.values())
            and all(isinstance(n, int) and n >= 0 for n in rules.values())
        ):
            known = _bin_chance(rules)
        else:
            known = {"chance": 1 / n_classes, "balanced_chance": 1 / n_classes}
        for key, value in known.items():
            if filled.get(key) is None:
                filled[key] = value
        complete.append(filled)
    return complete


def _bin_chance(rules: dict[str, int]) -> dict:
    """A bin's chance levels from its test samples per rule; ``None`` for an empty bin."""
    total = sum(rules.values())
    if not total:
        return {"chance": None, "balanced_chance": None}
    return {"chance": max(rules.values()) / total, "balanced_chance": 1.0 / sum(1 for count in rules.values() if count)}


def _number(value) -> float:
    return float("nan") if value is None else float(value)
