"""The statistics of Nayebi et al. (2020), computed row-wise in TensorFlow so they run on any device.

For a matrix of values [rows, entries], each statistic reduces over the entries of each row:

* norm: L2 norm;  mean;  median and q3: 50th and 75th percentiles (linear interpolation, numpy's default);
* var: population variance;  skew: Pearson's second coefficient ``3 (mean - median) / std``;
* kurtosis: ``E[(x - mean)^4] / var^2``.

Constant rows give NaN skew and kurtosis (0/0); callers store non-finite values as NaN.
"""

from __future__ import annotations

from lrid.lazy_import import tf
from lrid.observables import FUNCTIONS, STATISTICS


def apply_function(values, function: str):
    """The elementwise transform applied before the statistics: raw, abs or sq."""
    if function == "raw":
        return values
    if function == "abs":
        return tf.abs(values)
    if function == "sq":
        return tf.square(values)
    raise ValueError(f"unknown function {function!r}")


def percentile(values, q: float, ordered=None):
    """The q-th percentile (0..100) of each row of a [rows, entries] tensor, interpolating linearly.

    ``ordered``, the rows already sorted, saves a sort when several percentiles are taken.
    """
    n_entries = values.shape[-1]
    ordered = tf.sort(values, axis=-1) if ordered is None else ordered
    position = q / 100.0 * (n_entries - 1)
    lower = int(position)
    upper = min(lower + 1, n_entries - 1)
    fraction = position - lower
    return ordered[:, lower] * (1.0 - fraction) + ordered[:, upper] * fraction


def row_statistics(values):
    """All of :data:`STATISTICS` for each row of a [rows, entries] tensor: shape [rows, len(STATISTICS)]."""
    mean = tf.reduce_mean(values, axis=-1)
    centred = values - mean[:, None]
    var = tf.reduce_mean(tf.square(centred), axis=-1)
    ordered = tf.sort(values, axis=-1)
    median = percentile(values, 50.0, ordered)
    by_name = {
        "norm": tf.norm(values, axis=-1),
        "mean": mean,
        "median": median,
        "q3": percentile(values, 75.0, ordered),
        "var": var,
        "skew": 3.0 * (mean - median) / tf.sqrt(var),
        "kurtosis": tf.reduce_mean(tf.square(tf.square(centred)), axis=-1) / tf.square(var),
    }
    return tf.stack([by_name[name] for name in STATISTICS], axis=-1)


def describe(values):
    """Every (function, statistic) pair for a [rows, entries] tensor, averaged over rows.

    Rows are examples of the probe batch for activations, or the single row of a flattened kernel for
    weights, so the result is one value per pair: a vector of length ``len(FUNCTIONS) * len(STATISTICS)``
    ordered function-major, as in :data:`lrid.observables.OBSERVABLES`.
    """
    values = tf.cast(values, tf.float32)
    per_function = [tf.reduce_mean(row_statistics(apply_function(values, f)), axis=0) for f in FUNCTIONS]
    return tf.concat(per_function, axis=0)
