"""Reading back what ``lrid classify`` wrote: ``scores.json`` in a results directory.

It lives in the identify stage, beside the code that writes it, so that :mod:`lrid.identify.importance`
(which re-reads a run's settings) and :mod:`lrid.report` (which presents them) both import it downward.
"""

from __future__ import annotations

import json
from pathlib import Path

from lrid.errors import LridError
from lrid.identify.splits import check_held_out_filters


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
    settings = scores.get("settings") if isinstance(scores, dict) else None
    if not isinstance(settings, dict):
        return
    try:
        check_held_out_filters(settings.get("train_where"), settings.get("test_where"))
    except LridError as error:
        raise LridError(f"{path}: a held-out filter in its settings is refused: {error}") from None
