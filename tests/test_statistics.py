"""Observable statistics against independent computations (numpy, scipy, Python's statistics module)."""

import statistics as pystats
import warnings

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


def test_rows_of_a_length_unknown_when_traced_are_refused_clearly():
    """The percentiles' ranks are Python numbers of the row length, so a graph must know it."""
    any_length = tf.function(lambda rows: percentile(rows, 50), input_signature=[tf.TensorSpec([None, None], tf.float32)])
    with pytest.raises(ValueError, match="rows whose length is known when traced"):
        any_length.get_concrete_function()


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


def _host_and_device(kernels, outputs, changes):
    from lrid.observables import host_statistics
    from lrid.observables.measures import layer_statistics

    arrays = [None if a is None else a.astype(np.float32) for a in (kernels, outputs, changes)]
    device = layer_statistics(*(None if a is None else tf.constant(a) for a in arrays)).numpy()
    return host_statistics.layer_statistics(*arrays), device


def test_the_host_statistics_equal_tensorflows_to_float32_rounding():
    """Raw recordings are reduced in numpy (no TensorFlow import), lrid's own runs in TensorFlow: the two must
    agree to float32 rounding, NaN where TensorFlow gives NaN, on every kind of layer a recording holds."""
    rng = np.random.default_rng(7)
    layers = [  # (kernels [T, ...], outputs [T, batch, ...], changes [T, batch]): widths odd, even, 1 and conv
        (rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 8, 4)), rng.normal(size=(3, 8))),
        (rng.normal(size=(2, 4, 1)), rng.normal(size=(2, 6, 1)), rng.normal(size=(2, 6))),
        (rng.normal(size=(3, 3, 3, 2, 5)), rng.normal(size=(3, 4, 6, 6, 5)), rng.normal(size=(3, 4))),
        (np.ones((2, 7, 6)), np.tanh(rng.normal(size=(2, 9, 6))), np.zeros((2, 9))),  # constant: NaN skew
        (rng.normal(size=(4, 64, 33)), rng.normal(size=(4, 16, 33)), None),
        (None, rng.normal(size=(2, 5, 12)), None),
        # a kernel long enough to be partitioned, and activations many enough to be reduced apart
        (0.01 + 0.1 * rng.standard_t(df=4, size=(3, 160, 150)), np.tanh(rng.normal(size=(3, 512, 150))), None),
        # logits grown to ~1e5 (a foreign conv net's): the squares' fourth moment overflows float32, to NaN
        (None, 1e5 * rng.normal(size=(2, 6, 10)), None),
    ]
    for kernels, outputs, changes in layers:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a user reading a recording sees no numpy warning
            host, device = _host_and_device(kernels, outputs, changes)
        assert host.shape == device.shape == (len(next(a for a in (kernels, outputs) if a is not None)), len(OBSERVABLES))
        np.testing.assert_array_equal(np.isnan(host), np.isnan(device))
        np.testing.assert_allclose(host, device, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 40), (256, 300)])
def test_describe_stacked_and_apart_match_the_definitions_and_the_host(shape):
    """Small arrays reduce the functions stacked, large ones apart; both give the textbook statistics, and
    the host's numpy reduction gives the same."""
    from lrid.observables.host_statistics import describe_steps
    from lrid.observables.statistics import APART_MIN_ENTRIES

    values = np.random.default_rng(3).standard_t(df=4, size=shape).astype(np.float32)
    assert (values.size >= APART_MIN_ENTRIES) == (shape[0] == 256)
    known = describe(tf.constant(values)).numpy()
    transforms = {"raw": values, "abs": np.abs(values), "sq": values**2}
    expected = [
        np.mean([reference_statistics(row)[s] for row in transforms[f]]) for f in FUNCTIONS for s in STATISTICS
    ]
    np.testing.assert_allclose(known, expected, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(describe_steps(values[None])[0], known, rtol=1e-5, atol=1e-6)
