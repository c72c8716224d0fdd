"""Reading back what ``lrid classify`` wrote: ``scores.json`` in a results directory, as :class:`lrid.schema.Scores`.

It lives in the identify stage, beside the code that writes it, so that :mod:`lrid.identify.importance`
(which re-reads a run's settings) and :mod:`lrid.report` (which presents them) both import it downward.
"""

from __future__ import annotations

from pathlib import Path

from lrid.errors import LridError
from lrid.identify.splits import check_held_out_filters
from lrid.schema import Scores


def load_scores(results_dir: str | Path) -> Scores:
    """The validated ``scores.json`` of a results directory (any shape lrid has written); a missing, corrupt
    or foreign file, or a held-out filter outside lrid's filter language, is a one-line :class:`LridError`."""
    path = Path(results_dir) / "scores.json"
    scores = Scores.read(path)
    _check_filters(scores, path)
    return scores


def _check_filters(scores: Scores, path: Path) -> None:
    """Refuse held-out filters outside lrid's filter language before anything uses them: a results folder
    may come from elsewhere, and its filters are re-applied when importance rebuilds the splits."""
    try:
        check_held_out_filters(scores.settings.train_where, scores.settings.test_where)
    except LridError as error:
        raise LridError(f"{path}: a held-out filter in its settings is refused: {error}") from None
