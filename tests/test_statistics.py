"""Observable statistics against independent computations (numpy, scipy, Python's statistics module)."""

import statistics as pystats

import numpy as np
import pytest
import tensorflow as tf

from lrid.observables import FUNCTIONS, OBSERVABLES, STATISTICS
from lrid.observables.statistics import describe, percentile, row_statistics


def reference_statistics(row: np.ndarray) -> dict:
    """Each statistic of one row, by its textbook definition, in float64."""
    row = row.astype(np.float64)
    mean = pystats.fmean(row)
    median = pystats.median(row)
    var = pystats.pvariance(row)
    return {
        "norm": float(np.sqrt(np.sum(row**2))),
        "mean": mean,
        "median": median,
        "q3": float(np.percentile(row, 75)),
        "var": var,
        "skew": 3 * (mean - median) / np.sqrt(var),
        "kurtosis": float(np.mean((row - mean) ** 4) / var**2),
    }


@pytest.mark.parametrize("n_entries", [1 + 1, 7, 64, 129])
def test_row_statistics_match_definitions(n_entries):
    values = np.random.default_rng(n_entries).standard_t(df=5, size=(6, n_entries)).astype(np.float32)
    computed = row_statistics(tf.constant(values)).numpy()
    for row_index, row in enumerate(values):
        expected = reference_statistics(row)
        np.testing.assert_allclose(computed[row_index], [expected[s] for s in STATISTICS], rtol=2e-4, atol=1e-5)


def test_percentile_matches_numpy_linear_interpolation():
    values = np.random.default_rng(0).normal(size=(4, 33)).astype(np.float32)
    for q in (0, 25, 50, 75, 100):
        np.testing.assert_allclose(percentile(tf.constant(values), q).numpy(), np.percentile(values, q, axis=1), rtol=1e-6)


def test_describe_averages_each_function_over_rows():
    values = np.random.default_rng(1).normal(size=(5, 40)).astype(np.float32)
    computed = describe(tf.constant(values)).numpy()
    transforms = {"raw": values, "abs": np.abs(values), "sq": values**2}
    expected = [
        np.mean([reference_statistics(row)[s] for row in transforms[f]]) for f in FUNCTIONS for s in STATISTICS
    ]
    np.testing.assert_allclose(computed, expected, rtol=2e-4, atol=1e-5)


def test_constant_rows_give_nan_shape_statistics_not_errors():
    computed = row_statistics(tf.ones((2, 10))).numpy()
    by_name = dict(zip(STATISTICS, computed[0]))
    assert by_name["var"] == 0 and by_name["mean"] == 1 and by_name["norm"] == pytest.approx(np.sqrt(10))
    assert np.isnan(by_name["skew"]) and np.isnan(by_name["kurtosis"])


def test_there_are_45_observables_with_the_documented_names():
    assert len(OBSERVABLES) == 45 and len(set(OBSERVABLES)) == 45
    assert OBSERVABLES[:2] == ("weight_raw_norm", "weight_raw_mean")
    assert "act_sq_kurtosis" in OBSERVABLES and "actchange_abs_mean" in OBSERVABLES
    assert sum(name.startswith("actchange_") for name in OBSERVABLES) == 3
