"""The statistics of Nayebi et al. (2020), computed row-wise in TensorFlow so they run on any device.

For a matrix of values [rows, entries], each statistic reduces over the entries of each row:

* norm: L2 norm;  mean;  median and q3: 50th and 75th percentiles (linear interpolation, numpy's default);
* var: population variance;  skew: Pearson's second coefficient ``3 (mean - median) / std``;
* kurtosis: ``E[(x - mean)^4] / var^2``.

Constant rows give NaN skew and kurtosis (0/0); callers store non-finite values as NaN. Arrays already on the
host (a recording made outside lrid) are reduced by :mod:`lrid.observables.host_statistics`, the same
arithmetic in numpy, without importing TensorFlow.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from lrid.lazy_import import tf
from lrid.observables import FUNCTIONS, STATISTICS
from lrid.observables.host_statistics import QUANTILES, rank_list, ranks, select_ranks, select_ranks_and_magnitudes


def apply_function(values: Any, function: str) -> Any:
    """The elementwise transform applied before the statistics: raw, abs or sq."""
    if function == "raw":
        return values
    if function == "abs":
        return tf.abs(values)
    if function == "sq":
        return tf.square(values)
    raise ValueError(f"unknown function {function!r}")


@functools.cache
def _sort_on_host() -> bool:
    # TensorFlow's CPU sort is a full top-k, an order of magnitude slower than numpy's vectorised sort,
    # which made sorting most of a recording (benchmarks/recording_overhead.py times both). A GPU sorts fast itself, and copying activations to the host would cost more.
    return not tf.config.list_logical_devices("GPU")


def _numpy_sort_rows(values: np.ndarray) -> np.ndarray:
    return np.sort(values, axis=-1)


def sorted_rows(values: Any) -> Any:
    """Each row of a [rows, entries] tensor sorted ascending (by numpy on CPU-only machines, where it is faster)."""
    if not _sort_on_host():
        return tf.sort(values, axis=-1)
    ordered = tf.numpy_function(_numpy_sort_rows, [values], values.dtype, stateful=False)
    ordered.set_shape(values.shape)
    return ordered


def ranked_entries(values: Any, quantiles: tuple[float, ...] = QUANTILES) -> Any:
    """[rows, 2 * len(quantiles)]: each row's entries at the two ranks each quantile (0..100, ascending)
    interpolates between, lower then upper, quantile by quantile.

    On the device, one sort; on a CPU-only host, numpy sorts short rows and partitions long ones (the same
    entries either way, so the statistics are the same bits).
    """
    if list(quantiles) != sorted(quantiles):
        raise ValueError(f"quantiles {quantiles} must be ascending")
    if not _sort_on_host():
        return tf.gather(sorted_rows(values), rank_list(quantiles, _row_length(values)), axis=-1)
    select = functools.partial(select_ranks, quantiles=tuple(quantiles))
    selected = tf.numpy_function(select, [values], values.dtype, stateful=False)
    selected.set_shape([values.shape[0], 2 * len(quantiles)])
    return selected


def _row_length(values: Any) -> int:
    # The ranks a percentile interpolates between, and their weights, are Python numbers of the row length,
    # so every graph that reduces rows is traced for rows of a known length.
    n_entries = values.shape[-1]
    if n_entries is None:
        raise ValueError("the statistics reduce rows whose length is known when traced; this tensor's is not")
    return n_entries


def _interpolate(q: float, values: Any, lower_entries: Any, upper_entries: Any) -> Any:
    """The q-th percentile from each row's entries at its two ranks (numpy's linear interpolation)."""
    fraction = ranks(q, _row_length(values))[2]
    return lower_entries * (1.0 - fraction) + upper_entries * fraction


def percentile(values: Any, q: float) -> Any:
    """The q-th percentile (0..100) of each row of a [rows, entries] tensor, interpolating linearly as numpy does."""
    ranked = ranked_entries(values, (q,))
    return _interpolate(q, values, ranked[:, 0], ranked[:, 1])


def row_statistics(values: Any, ranked: Any = None) -> Any:
    """All of :data:`STATISTICS` for each row of a [rows, entries] tensor: shape [rows, len(STATISTICS)].

    ``ranked``, the rows' :func:`ranked_entries`, saves selecting them.
    """
    mean = tf.reduce_mean(values, axis=-1)
    centred = values - mean[:, None]
    squared_centred = tf.square(centred)
    var = tf.reduce_mean(squared_centred, axis=-1)
    ranked = ranked_entries(values) if ranked is None else ranked
    median, q3 = (_interpolate(q, values, ranked[:, 2 * i], ranked[:, 2 * i + 1]) for i, q in enumerate(QUANTILES))
    n_entries = tf.cast(tf.shape(values)[-1], values.dtype)
    by_name = {
        # sum(x^2) = n (var + mean^2), two positive terms: no cancellation, and no pass over the entries of
        # its own (a population's recording is bound by such passes).
        "norm": tf.sqrt(n_entries * (var + tf.square(mean))),
        "mean": mean,
        "median": median,
        "q3": q3,
        "var": var,
        # Written as TensorFlow's graph optimizer rewrites ``/ sqrt(var)`` anyway, so that eager and compiled
        # runs of this code give the same bits; the constant scales rsqrt, which no graph's optimizer regroups
        # (with tf.sort's negations in view it regrouped ``3 * d * rsqrt``: tests/test_performance.py).
        "skew": (mean - median) * (3.0 * tf.math.rsqrt(var)),
        "kurtosis": tf.reduce_mean(tf.square(squared_centred), axis=-1) / tf.square(var),
    }
    return tf.stack([by_name[name] for name in STATISTICS], axis=-1)


def describe(values: Any) -> Any:
    """Every (function, statistic) pair for a [rows, entries] tensor, averaged over rows.

    Rows are examples of the probe batch for activations, or the single row of a flattened kernel for
    weights, so the result is one value per pair: a vector of length ``len(FUNCTIONS) * len(STATISTICS)``
    ordered function-major, as in :data:`lrid.observables.OBSERVABLES`.
    """
    values = tf.cast(values, tf.float32)
    n_rows = tf.shape(values)[0]
    per_row = _function_row_statistics(values)
    return tf.reshape(tf.reduce_mean(tf.reshape(per_row, [len(FUNCTIONS), n_rows, len(STATISTICS)]), axis=1), [-1])


def describe_steps(values: Any) -> Any:
    """:func:`describe` of each step of a [steps, rows, entries] array at once: [steps, functions * statistics].

    A recording holds a layer's arrays at every recorded step; reducing them in one call, rather than one
    call per step, saves the per-op dispatch that dominates eager TensorFlow on arrays this small.
    """
    values = tf.cast(values, tf.float32)
    n_steps, n_rows = tf.shape(values)[0], tf.shape(values)[1]
    per_row = _function_row_statistics(tf.reshape(values, [n_steps * n_rows, -1]))
    per_step = tf.reduce_mean(tf.reshape(per_row, [len(FUNCTIONS), n_steps, n_rows, len(STATISTICS)]), axis=2)
    return tf.reshape(tf.transpose(per_step, [1, 0, 2]), [n_steps, -1])


# From this many entries on, the functions' rows are reduced apart rather than stacked into one tensor first:
# stacking copies every entry, which costs more than it saves in ops on arrays as large as a population's;
# below, as a single network's layers mostly are, one stacked reduction is cheaper
# (benchmarks/recording_overhead.py times both).
APART_MIN_ENTRIES = 65536


def _function_row_statistics(values):
    """:func:`row_statistics` of each row under raw, abs and sq, stacked function-major: [3 * rows, statistics]."""
    # Squaring is monotonic on |x|, so the squares of the magnitudes' ranked entries are the squares' ranked
    # entries, bit for bit: one selection over raw and abs serves the three functions.
    if FUNCTIONS != ("raw", "abs", "sq"):
        raise AssertionError("describe stacks the functions in the order raw, abs, sq")
    magnitudes = apply_function(values, "abs")
    ranked_raw, ranked_abs = _ranked_entries_and_magnitudes(values, magnitudes)
    functions = (values, magnitudes, apply_function(values, "sq"))
    ranked = (ranked_raw, ranked_abs, tf.square(ranked_abs))

    def apart():
        return tf.concat([row_statistics(v, r) for v, r in zip(functions, ranked)], axis=0)

    def stacked():
        return row_statistics(tf.concat(functions, axis=0), tf.concat(ranked, axis=0))

    return apart() if values.shape.num_elements() >= APART_MIN_ENTRIES else stacked()


def _ranked_entries_and_magnitudes(values: Any, magnitudes: Any) -> tuple[Any, Any]:
    """:func:`ranked_entries` of the rows of ``values`` and of their ``magnitudes`` (``|values|``), in one call."""
    if not _sort_on_host():
        ranked = ranked_entries(tf.concat([values, magnitudes], axis=0))
        return ranked[: tf.shape(values)[0]], ranked[tf.shape(values)[0] :]
    # On the host the magnitudes are taken there, rather than copied over beside the values.
    ranked = tf.numpy_function(select_ranks_and_magnitudes, [values], values.dtype, stateful=False)
    ranked.set_shape([2, values.shape[0], 2 * len(QUANTILES)])
    return ranked[0], ranked[1]
