"""What every benchmark shares: thread settings, interleaved timing, a printed table and a JSON result.

Timings on a shared machine drift with its load, so comparisons are measured *alternately in one
process*: every case is timed once per round, rounds repeat, and the median over rounds is reported.
A ratio of two medians measured this way stays meaningful when absolute times are inflated. Each result
records the machine's load average (``uptime``) before and after, so a reader can judge the noise.

Each result also carries the stamp of the invocation that wrote it (``run_all.py`` creates one and hands
it to every benchmark in ``LRID_BENCH_RUN``; a script run alone makes its own), so a summary reads only what
its own run measured. A ``--quick`` smoke run writes ``<name>_quick.json`` and judges no target: its ``met``
is ``None``, printed "not judged".
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
STAMP_VARIABLE = "LRID_BENCH_RUN"
NOT_JUDGED = "not judged"


def run_stamp() -> str:
    """The stamp of this benchmark invocation: ``run_all.py``'s (``LRID_BENCH_RUN``), or a new one for a
    script run alone, kept in the environment so that every result of this process carries the same."""
    return os.environ.setdefault(STAMP_VARIABLE, uuid.uuid4().hex)


def verdict(met: bool | None, quick: bool) -> bool | None:
    """Whether a target is met: ``None`` (not judged) for a quick smoke run or a comparison that cannot be judged."""
    return None if quick or met is None else bool(met)


def result_path(name: str, quick: bool) -> Path:
    """Where benchmark ``name`` writes its result: a quick run's file is separate from a full run's."""
    return RESULTS / f"{name}{'_quick' if quick else ''}.json"


def configure_tensorflow(threads: int = 1, determinism: bool = True):
    """Import TensorFlow with ``threads`` intra/inter-op threads (a pool worker's share on 2 cores) and,
    as ``lrid generate`` runs, op determinism on. Must run before any TensorFlow op."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if determinism:
        tf.config.experimental.enable_op_determinism()
        tf.random.set_seed(0)  # determinism refuses unseeded random ops (model.fit's shuffle)
    return tf


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, as ``uptime`` prints them."""
    return [round(value, 2) for value in os.getloadavg()]


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, dict]:
    """Time every case once per round, alternating, for ``rounds`` rounds after ``warmup`` untimed rounds.

    Returns, per case, the median and every round's wall seconds (a case's return value is ignored).
    """
    for _ in range(warmup):
        for case in cases.values():
            case()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            seconds[name].append(time.perf_counter() - started)
    return {name: {"median_s": statistics.median(values), "rounds_s": [round(v, 5) for v in values]}
            for name, values in seconds.items()}


def print_table(rows: list[dict], columns: list[str], title: str) -> None:
    """Print ``rows`` as an aligned plain-text table of ``columns`` (a ``met`` of ``None`` reads "not judged")."""
    def cell(row, column):
        value = row.get(column, "")
        if value is None:
            return NOT_JUDGED if column == "met" else "–"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    widths = {c: max([len(c), *(len(cell(r, c)) for r in rows)]) for c in columns}  # rows may be none
    print(f"\n{title}")
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(cell(row, c).rjust(widths[c]) for c in columns))


def write_result(name: str, payload: dict, load_before: list[float], quick: bool = False) -> Path:
    """Write benchmark ``name``'s result (:func:`result_path`) with the machine's description, its load and
    this invocation's stamp; return its path. In a ``quick`` result every ``met`` is ``None``."""
    import lrid

    if quick:
        payload = {key: [{**row, "met": None} if isinstance(row, dict) and "met" in row else row for row in value]
                   if isinstance(value, list) else value for key, value in payload.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "run_stamp": run_stamp(),
        "quick": quick,
        "lrid": lrid.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **payload,
    }
    path = result_path(name, quick)
    path.write_text(json.dumps(document, indent=2))
    print(f"wrote {path}")
    return path
