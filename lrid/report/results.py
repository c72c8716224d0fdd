"""Reading a results directory: the scores of ``lrid classify`` and the optional robustness rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from lrid.errors import LridError
from lrid.schema import Scores, first_problem


def load_scores(results_dir: str | Path) -> Scores:
    """Read ``scores.json`` from a results directory (:func:`lrid.identify.scores.load_scores`)."""
    # Deferred so that importing lrid.report stays light: importing lrid.identify loads scikit-learn.
    from lrid.identify.scores import load_scores as read_scores

    return read_scores(results_dir)


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


def as_scores(scores: Scores | dict) -> Scores:
    """``scores`` as the validated model (a dict, as read from a ``scores.json`` by hand, is checked)."""
    if isinstance(scores, Scores):
        return scores
    try:
        return Scores.model_validate(scores)
    except ValidationError as error:
        raise LridError(f"not the scores of `lrid classify` ({first_problem(error)})") from None


def chance_level(scores: Scores | dict) -> float:
    """Accuracy of guessing on balanced classes: 1 / number of rules."""
    return as_scores(scores).chance
