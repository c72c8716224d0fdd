"""Reading a results directory: the scores of ``lrid classify`` and the optional robustness rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lrid.errors import LridError


def load_scores(results_dir: str | Path) -> dict:
    """Read ``scores.json`` from a results directory, with a clear error if it is missing or corrupt."""
    path = Path(results_dir) / "scores.json"
    if not path.is_file():
        raise LridError(f"{path} does not exist; run `lrid classify --store STORE --out {results_dir}` first")
    try:
        scores = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise LridError(f"{path} is not valid JSON; re-run `lrid classify` to rewrite it") from None
    _check_filters(scores, path)
    return scores


def _check_filters(scores, path: Path) -> None:
    """Refuse held-out filters outside lrid's filter language before anything uses them: a results folder
    may come from elsewhere, and its filters are re-applied when importance rebuilds the splits."""
    from lrid.identify.splits import check_held_out_filters

    settings = scores.get("settings") if isinstance(scores, dict) else None
    if not isinstance(settings, dict):
        return
    try:
        check_held_out_filters(settings.get("train_where"), settings.get("test_where"))
    except LridError as error:
        raise LridError(f"{path}: a held-out filter in its settings is refused: {error}") from None


def load_robustness(results_dir: str | Path) -> pd.DataFrame | None:
    """The rows of ``robustness.json`` (view, units_fraction, noise_std, classifier, accuracy_mean, ...), or
    ``None`` when the results have none."""
    path = Path(results_dir) / "robustness.json"
    if not path.is_file():
        return None
    try:
        rows = json.loads(path.read_text()).get("rows") or []
    except (json.JSONDecodeError, AttributeError):
        raise LridError(f"{path} is not a valid robustness file; re-run the robustness sweep to rewrite it") from None
    required = {"units_fraction", "noise_std", "classifier", "accuracy_mean"}
    frame = pd.DataFrame(rows)
    if frame.empty:
        return None
    missing = required - set(frame.columns)
    if missing:
        raise LridError(f"{path} rows lack {', '.join(sorted(missing))}; re-run the robustness sweep to rewrite it")
    if "view" not in frame:
        frame["view"] = "all"
    if "accuracy_sem" not in frame:
        frame["accuracy_sem"] = 0.0
    return frame


def chance_level(scores: dict) -> float:
    """Accuracy of guessing on balanced classes: 1 / number of rules."""
    return 1.0 / len(scores["classes"])
