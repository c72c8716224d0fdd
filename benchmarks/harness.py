"""What every benchmark shares: thread settings, interleaved timing, a printed table and a JSON result.

Timings on a shared machine drift with its load, so comparisons are measured *alternately in one
process*: every case is timed once per round, rounds repeat, and the median over rounds is reported.
A ratio of two medians measured this way stays meaningful when absolute times are inflated. Each result
records the machine's load average (``uptime``) before and after, so a reader can judge the noise.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


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
    """Print ``rows`` as an aligned plain-text table of ``columns``."""
    def cell(value):
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    widths = {c: max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns}
    print(f"\n{title}")
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(cell(row.get(c, "")).rjust(widths[c]) for c in columns))


def write_result(name: str, payload: dict, load_before: list[float]) -> Path:
    """Write ``benchmarks/results/{name}.json`` with the machine's description and load; return its path."""
    import lrid

    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "lrid": lrid.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2))
    print(f"wrote {path}")
    return path
