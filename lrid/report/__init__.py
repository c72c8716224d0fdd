"""Stage 3: the report of a classify run: ``report.md`` with figures, and observable-importance tables.

``write_report(RESULTS)`` writes ``report.md`` and ``figures/*.png``; the figure functions in
:mod:`lrid.report.figures` take plain data, so notebooks can draw the same figures.
"""

from __future__ import annotations

from lrid.report.document import accuracy_frame, accuracy_table, importance_markdown, write_report
from lrid.report.results import chance_level, load_robustness, load_scores

__all__ = [
    "accuracy_frame",
    "accuracy_table",
    "chance_level",
    "importance_markdown",
    "load_robustness",
    "load_scores",
    "write_report",
]
