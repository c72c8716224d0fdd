"""The statistics of :mod:`lrid.observables.statistics` in numpy, for arrays already on the host.

A recording made outside lrid arrives as numpy arrays, and reducing them needs no device: here they are
reduced without importing TensorFlow, whose import costs more CPU time than the reduction of a whole
recording (``benchmarks/identify_speed.py``). The arithmetic is the TensorFlow reduction's, step for step,
in float32: the values agree to float32 rounding (``tests/test_statistics.py`` holds the two together), not
to the bit, since numpy and TensorFlow sum in different orders.

The ranked entries the percentiles interpolate between are selected here for both implementations: on a
CPU-only host the TensorFlow reduction calls :func:`select_ranks` too.
"""

from __future__ import annotations

import numpy as np

from lrid.schema import FUNCTIONS, OBSERVABLES, STATISTICS

# The percentiles the statistics take (median, q3). Each interpolates between two ranks of its row.
QUANTILES = (50.0, 75.0)
# From this row length on, numpy selects a row's few ranked entries by partitioning it faster than it sorts
# the row (benchmarks/recording_overhead.py); shorter rows, as activations' are, sort faster.
PARTITION_MIN_ENTRIES = 3072


def ranks(q: float, n_entries: int) -> tuple[int, int, float]:
    """The two ranks the q-th percentile of n entries interpolates between, and the upper one's weight."""
    position = q / 100.0 * (n_entries - 1)
    lower = int(position)
    return lower, min(lower + 1, n_entries - 1), position - lower


def rank_list(quantiles: tuple[float, ...], n_entries: int) -> list[int]:
    """The lower and upper rank of each quantile, quantile by quantile."""
    return [rank for q in quantiles for rank in ranks(q, n_entries)[:2]]


def select_ranks(values: np.ndarray, quantiles: tuple[float, ...] = QUANTILES) -> np.ndarray:
    """[rows, 2 * len(quantiles)]: each row's entries at the lower and upper rank of each quantile (ascending),
    as a sort would place them (NaN last)."""
    n_entries = values.shape[-1]
    wanted = rank_list(quantiles, n_entries)
    if n_entries < PARTITION_MIN_ENTRIES:
        return np.sort(values, axis=-1)[:, wanted]
    selected = np.empty((values.shape[0], len(wanted)), values.dtype)
    # Partition at each rank in turn, keeping only the entries above it (those of the next ranks, in some
    # order). The entry just above a partitioned rank is the smallest of those, which fmin finds without
    # another partition (and, like a sort, reads NaN only if nothing else is left).
    segment, offset = values, 0
    for column, rank in enumerate(wanted):
        if column and rank == wanted[column - 1]:
            selected[:, column] = selected[:, column - 1]
        elif rank == offset:
            selected[:, column] = np.fmin.reduce(segment, axis=-1)
        else:
            segment = np.partition(segment, rank - offset, axis=-1)
            selected[:, column] = segment[:, rank - offset]
            segment, offset = segment[:, rank - offset + 1 :], rank + 1
    return selected


def select_ranks_and_magnitudes(values: np.ndarray) -> np.ndarray:
    """[2, rows, 2 * len(QUANTILES)]: :func:`select_ranks` of the rows of ``values`` and of their magnitudes."""
    return np.stack([select_ranks(values), select_ranks(np.abs(values))])


def row_statistics(values: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """All of :data:`STATISTICS` for each row of a float32 [rows, entries] array, given its rows' ranked entries."""
    n_entries = values.shape[-1]
    mean = values.mean(axis=-1, dtype=np.float32)
    squared_centred = np.square(values - mean[:, None])
    var = squared_centred.mean(axis=-1, dtype=np.float32)
    median, q3 = (
        ranked[:, 2 * i] * np.float32(1.0 - fraction) + ranked[:, 2 * i + 1] * np.float32(fraction)
        for i, fraction in enumerate(ranks(q, n_entries)[2] for q in QUANTILES)
    )
    # Constant rows divide zero by zero, to NaN as in TensorFlow, and the squares of entries of ~1e5 (a network's
    # grown logits) overflow a float32 fourth moment, to inf as in TensorFlow; the caller stores non-finite
    # values as NaN, so neither is worth a warning to whoever reads a recording.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        by_name = {
            "norm": np.sqrt(np.float32(n_entries) * (var + np.square(mean))),
            "mean": mean,
            "median": median,
            "q3": q3,
            "var": var,
            "skew": (mean - median) * (np.float32(3.0) / np.sqrt(var)),
            "kurtosis": np.square(squared_centred).mean(axis=-1, dtype=np.float32) / np.square(var),
        }
    return np.stack([by_name[name] for name in STATISTICS], axis=-1)


def describe_steps(values: np.ndarray) -> np.ndarray:
    """Every (function, statistic) pair of each step of a [steps, rows, entries] array, averaged over rows:
    [steps, functions * statistics], function-major, as :func:`lrid.observables.statistics.describe_steps`."""
    if FUNCTIONS != ("raw", "abs", "sq"):
        raise AssertionError("describe_steps reduces the functions in the order raw, abs, sq")
    values = np.asarray(values, dtype=np.float32)
    n_steps, n_rows = values.shape[:2]
    rows = values.reshape(n_steps * n_rows, -1)
    magnitudes = np.abs(rows)
    ranked_raw, ranked_abs = select_ranks(rows), select_ranks(magnitudes)
    # Squaring is monotonic on |x|, so the squared magnitudes' ranked entries are the squares' ranked entries.
    per_function = [
        row_statistics(function_rows, ranked).reshape(n_steps, n_rows, len(STATISTICS)).mean(axis=1, dtype=np.float32)
        for function_rows, ranked in (
            (rows, ranked_raw),
            (magnitudes, ranked_abs),
            (np.square(rows), np.square(ranked_abs)),
        )
    ]
    return np.concatenate(per_function, axis=1)


#: How many of the 45 observables each measure has, in :data:`OBSERVABLES` order.
MEASURE_WIDTHS = {
    kind: sum(name.startswith(f"{kind}_") for name in OBSERVABLES) for kind in ("weight", "act", "actchange")
}


def layer_statistics(
    kernels: np.ndarray | None = None, outputs: np.ndarray | None = None, changes: np.ndarray | None = None
) -> np.ndarray:
    """A layer's 45 observables at each step from host arrays, in :data:`OBSERVABLES` order: [steps, 45].

    The arrays are those of :func:`lrid.observables.measures.layer_statistics`: ``kernels`` [steps, *kernel
    shape] (reduced over all its entries), ``outputs`` [steps, batch, ...] (over each example's units, then
    averaged over the batch) and ``changes`` [steps, batch]; a measure given as None is NaN.
    """
    given = next(a for a in (kernels, outputs, changes) if a is not None)
    n_steps = len(given)
    parts = []
    for kind, values in (("weight", kernels), ("act", outputs), ("actchange", changes)):
        if values is None:
            parts.append(np.full((n_steps, MEASURE_WIDTHS[kind]), np.nan, np.float32))
        elif kind == "weight":
            parts.append(describe_steps(np.reshape(values, (n_steps, 1, -1))))
        elif kind == "act":
            parts.append(describe_steps(np.reshape(values, (n_steps, np.shape(values)[1], -1))))
        else:
            changes32 = np.asarray(values, dtype=np.float32)
            functions = (changes32, np.abs(changes32), np.square(changes32))
            parts.append(np.stack([f.mean(axis=1, dtype=np.float32) for f in functions], axis=1))
    return np.concatenate(parts, axis=1)
