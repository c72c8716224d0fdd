"""Update reach (lrid.observables.update_reach): closed forms, layouts, undefined cases, and the physics it is for."""

from __future__ import annotations

import numpy as np
import pytest

from lrid.errors import LridError
from lrid.observables.update_reach import MIN_CEILING, ReachRecorder, checkpoint_reach, read_gram, update_reach

UNITS, READOUT = 40, 10


def _pair(update: np.ndarray, above: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Kernels at two checkpoints: the layer changes by ``update``, the layer above stays ``above``."""
    start = rng.standard_normal(update.shape)
    return [np.stack([start, start + update]), np.stack([above, above])]


def _ceiling(gram: np.ndarray) -> float:
    return len(gram) * np.sum(gram * gram) / np.trace(gram) ** 2


def test_an_update_shaped_like_what_the_layer_above_reads_has_reach_one():
    # D = Q W^T with Q's columns orthonormal gives D^T D = W W^T = M: backprop's update with isotropic errors.
    rng = np.random.default_rng(0)
    above = rng.standard_normal((UNITS, READOUT))
    orthonormal, _ = np.linalg.qr(rng.standard_normal((30, READOUT)))
    reach = update_reach(_pair(orthonormal @ above.T, above, rng))
    assert reach.shape == (1, 1)
    np.testing.assert_allclose(reach, 1.0, atol=1e-10)


def test_an_update_the_layer_above_cannot_read_has_the_negative_floor():
    rng = np.random.default_rng(1)
    above = rng.standard_normal((UNITS, READOUT))
    _, _, vt = np.linalg.svd(above.T)
    unread = vt[READOUT:]  # directions of the layer's units that the layer above ignores
    update = rng.standard_normal((30, UNITS - READOUT)) @ unread
    expected = -1 / (_ceiling(above @ above.T) - 1)
    np.testing.assert_allclose(update_reach(_pair(update, above, rng)), expected, atol=1e-10)


def test_a_random_update_has_reach_near_zero_and_scale_does_not_matter():
    rng = np.random.default_rng(2)
    above = rng.standard_normal((UNITS, READOUT))
    update = rng.standard_normal((20_000, UNITS))
    reach = update_reach(_pair(update, above, rng))[0, 0]
    assert abs(reach) < 0.05
    rescaled = update_reach(_pair(7.0 * update, 0.1 * above, rng))[0, 0]
    assert rescaled == pytest.approx(reach, rel=1e-9)


def test_kernels_grown_far_beyond_float32s_squares_read_as_their_unit_scale(recwarn):
    rng = np.random.default_rng(8)
    above = rng.standard_normal((UNITS, READOUT)).astype(np.float32)
    update = rng.standard_normal((30, UNITS)).astype(np.float32) + above[:, 0]
    kernels = [kernel.astype(np.float32) for kernel in _pair(update, above, rng)]  # as networks keep them
    reach = update_reach(kernels)
    grown = update_reach([np.float32(1e15) * kernel for kernel in kernels])  # squared sums beyond float32's range
    np.testing.assert_allclose(grown, reach, rtol=1e-4)
    assert np.isfinite(reach).all() and not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_conv_kernels_read_as_their_taps_side_by_side():
    rng = np.random.default_rng(3)
    below = rng.standard_normal((3, 3, 3, 4, 12))  # [T, kh, kw, in, out]
    conv_above = rng.standard_normal((3, 3, 3, 12, 5))
    # The same maps as dense kernels: the patch entries as rows below, the taps as extra outputs above.
    dense_below = below.reshape(3, -1, 12)
    dense_above = conv_above.transpose(0, 3, 1, 2, 4).reshape(3, 12, -1)
    np.testing.assert_allclose(
        update_reach([below, conv_above]), update_reach([dense_below, dense_above]), rtol=1e-10
    )
    np.testing.assert_allclose(read_gram(conv_above[0], 12), dense_above[0] @ dense_above[0].T, rtol=1e-10)


def test_reach_is_undefined_where_there_is_nothing_to_tell():
    rng = np.random.default_rng(4)
    above = rng.standard_normal((UNITS, READOUT))
    still = update_reach([np.zeros((2, 30, UNITS)), np.stack([above, above])])
    square, _ = np.linalg.qr(rng.standard_normal((UNITS, UNITS)))  # reads every direction alike: M = I
    assert _ceiling(square @ square.T) < MIN_CEILING
    even = update_reach(_pair(rng.standard_normal((30, UNITS)), square, rng))
    flattened = rng.standard_normal((4 * UNITS, READOUT))  # a dense layer reading 4 positions of a map
    positions = update_reach(_pair(rng.standard_normal((30, UNITS)), flattened, rng))
    assert np.isnan(still).all() and np.isnan(even).all() and np.isnan(positions).all()


def test_a_map_flattened_channels_last_is_read_as_the_sum_over_its_positions():
    rng = np.random.default_rng(6)
    flattened = rng.standard_normal((4 * UNITS, READOUT))  # rows (position, channel), the channel fastest
    per_position = flattened.reshape(4, UNITS, READOUT)
    expected = sum(block @ block.T for block in per_position)
    np.testing.assert_allclose(read_gram(flattened, UNITS, "channels_last"), expected, rtol=1e-12)
    assert read_gram(flattened, UNITS) is None
    # Read so, it is the conv kernel over the same positions as taps.
    update = rng.standard_normal((30, UNITS))
    as_conv = per_position.reshape(2, 2, UNITS, READOUT)
    np.testing.assert_allclose(
        update_reach(_pair(update, flattened, rng), "channels_last"), update_reach(_pair(update, as_conv, rng))
    )


def test_the_same_map_flattened_channels_first_reads_the_same_and_an_unknown_order_is_refused():
    rng = np.random.default_rng(7)
    channels_last = rng.standard_normal((4 * UNITS, READOUT))  # rows (position, channel)
    # PyTorch's NCHW flatten: rows (channel, position), the same weights in another order.
    channels_first = channels_last.reshape(4, UNITS, READOUT).transpose(1, 0, 2).reshape(4 * UNITS, READOUT)
    np.testing.assert_allclose(
        read_gram(channels_first, UNITS, "channels_first"), read_gram(channels_last, UNITS, "channels_last"), rtol=1e-12
    )
    assert not np.allclose(read_gram(channels_first, UNITS, "channels_last"), read_gram(channels_last, UNITS, "channels_last"))
    update = rng.standard_normal((30, UNITS))
    with pytest.raises(LridError, match="unknown flatten order 'NHWC'; choose channels_last or channels_first"):
        checkpoint_reach([np.zeros((30, UNITS)), channels_last], [update, channels_last], flatten="NHWC")


@pytest.mark.parametrize(
    ("kernels", "message"),
    [
        ([np.zeros((3, 4, 5))], "at least two consecutive layers"),
        ([np.zeros((3, 4, 5)), np.zeros((2, 5, 10))], "same two or more checkpoints"),
        ([np.zeros((3, 4, 5)), np.zeros((3, 7, 10))], "cannot read a layer of 5 output units"),
    ],
)
def test_kernels_that_do_not_stack_are_refused_in_one_line(kernels, message):
    with pytest.raises(LridError, match=message) as error:
        update_reach(kernels)
    assert "\n" not in str(error.value)


def test_one_intervals_reach_is_the_trajectorys_column_and_layers_without_a_reader_are_nan():
    kernels = _train("backprop", steps=20, every=5)
    trajectory = update_reach(kernels)
    for step in range(trajectory.shape[1]):
        interval = checkpoint_reach([k[step] for k in kernels], [k[step + 1] for k in kernels])
        assert np.isnan(interval[-1])  # the readout: nothing reads its output
        assert interval[0] == trajectory[0, step]
        # Told that nothing reads the hidden layer alone (a residual branch), it has no reach either.
        assert np.isnan(checkpoint_reach([k[step] for k in kernels], [k[step + 1] for k in kernels], [None, None])).all()
    # A "reader" whose kernel does not take the layer's units gives NaN rather than an error: lrid records
    # whatever layers a model lists, and only a chain's neighbours read each other.
    mismatched = [np.zeros((20, 50)), np.zeros((7, 10))], [np.ones((20, 50)), np.zeros((7, 10))]
    assert np.isnan(checkpoint_reach(*mismatched)).all()


def test_the_recorder_reports_each_checkpoints_reach_from_its_own_copy_of_the_last_kernels():
    kernels = _train("backprop", steps=20, every=5)
    recorder = ReachRecorder()
    live = [k[0].copy() for k in kernels]  # a network's weights, changed in place as it trains
    recorded = [recorder.record(live)]
    for step in range(1, len(kernels[0])):
        for layer, kernel in zip(live, kernels):
            layer[...] = kernel[step]
        recorded.append(recorder.record(live))
    assert np.isnan(recorded[0]).all()
    np.testing.assert_array_equal(np.array(recorded[1:])[:, :-1].T, update_reach(kernels))


def _train(feedback: str, steps: int = 40, every: int = 5) -> list[np.ndarray]:
    """A 20-50-10 tanh net trained on a random teacher by backprop or by feedback alignment, kernels recorded."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((256, 20))
    labels = np.argmax(x @ rng.standard_normal((20, 10)), axis=1)
    targets = np.eye(10)[labels]
    w1, w2 = rng.standard_normal((20, 50)) / np.sqrt(20), rng.standard_normal((50, 10)) / np.sqrt(50)
    random_feedback = rng.standard_normal((50, 10)) / np.sqrt(50)
    recorded = [[w1.copy()], [w2.copy()]]
    for step in range(1, steps + 1):
        hidden = np.tanh(x @ w1)
        logits = hidden @ w2
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        error = (probabilities - targets) / len(x)
        carrier = w2 if feedback == "backprop" else random_feedback
        hidden_error = (error @ carrier.T) * (1 - hidden**2)
        w2 = w2 - 0.5 * hidden.T @ error
        w1 = w1 - 0.5 * x.T @ hidden_error
        if step % every == 0:
            recorded[0].append(w1.copy())
            recorded[1].append(w2.copy())
    return [np.stack(kernels) for kernels in recorded]


def test_backprop_reaches_where_the_readout_reads_and_random_feedback_does_not():
    backprop, feedback_alignment = update_reach(_train("backprop")), update_reach(_train("fa"))
    assert np.nanmin(backprop) > 0.3
    assert np.nanmax(np.abs(feedback_alignment)) < 0.15


def test_a_networks_reach_is_summarised_per_quarter_of_training_below_the_top_and_further_down():
    from benchmarks.update_reach import REACH_FEATURES, reach_features

    kernels = _train("backprop", steps=40, every=5)  # 8 intervals: two per quarter
    features = reach_features(kernels)
    reach = update_reach(kernels)[0]
    assert len(features) == len(REACH_FEATURES) == 8
    np.testing.assert_allclose(features[:4], reach.reshape(4, 2).mean(axis=1))
    assert np.isnan(features[4:]).all()  # one hidden layer: nothing below it


def test_the_benchmark_compares_the_identifier_with_and_without_reach_on_zoo_and_foreign_runs(
    tiny_store, tiny_sweep_file, tmp_path, monkeypatch, capsys
):
    import json
    import os

    from benchmarks import harness, update_reach
    from benchmarks.foreign import generate_networks

    monkeypatch.setattr(harness, "RESULTS", tmp_path / "results")
    foreign = tmp_path / "foreign" / "seed1"
    generate_networks(foreign, 4, seed=1, rules="sgdm,adam,fa,ia")
    cache = tmp_path / "kernels"
    arguments = ["--store", str(tiny_store), "--sweep", str(tiny_sweep_file), "--foreign", str(foreign),
                 "--cache", str(cache), "--workers", "1", "--quick"]
    update_reach.main(arguments)
    result = json.loads((tmp_path / "results" / "update_reach_quick.json").read_text())
    assert result["quick"] is True and result["per_rule"] == 5
    assert [row["arm"] for row in result["rows"]] == [arm.name for arm in update_reach.ARMS]
    for row in result["rows"]:
        assert row["zoo_runs"] == 20 and 0 <= row["zoo_min"] <= row["zoo_mean"] <= 1
        assert 0 <= row["foreign/seed1"] <= 1 and len(row["foreign/seed1 per seed"]) == 1
        assert set(row["recall"]) <= {f"mlp {r}" for r in ("sgdm", "adam", "fa", "ia")}
    assert "Foreign recall per rule" in capsys.readouterr().out
    # The re-trained runs' kernels stay cached: asked again, nothing is re-trained.
    cached = sorted(cache.glob("*.npz"))
    assert len(cached) == 20
    stamps = [os.stat(path).st_mtime_ns for path in cached]
    run_ids = [path.stem for path in cached]
    again = update_reach.zoo_reach(str(tiny_store), run_ids, cache, workers=1)
    assert [os.stat(path).st_mtime_ns for path in cached] == stamps
    assert list(again.index) == run_ids and list(again.columns) == update_reach.REACH_FEATURES
    # The store records the reach itself now: read from it, it is the re-trained kernels' (to the float32
    # rounding by which a population's sums differ from a solo re-run's), and the benchmark runs on it.
    from lrid.store import Store

    recorded = update_reach.recorded_reach(Store(tiny_store).read_observables(), run_ids)
    np.testing.assert_allclose(recorded.loc[run_ids].to_numpy(), again.to_numpy(), rtol=1e-3, atol=1e-4)
    update_reach.main([*arguments, "--recorded"])
    from_store = json.loads((tmp_path / "results" / "update_reach_quick.json").read_text())
    assert from_store["recorded"] is True and [row["zoo_runs"] for row in from_store["rows"]] == [20] * len(update_reach.ARMS)
    _, metadata = update_reach.load_zoo(str(tiny_store), sweep=str(tiny_sweep_file))
    assert len(update_reach.sample_runs(metadata, 0)) == 24  # --per-rule 0: every learned run


def test_an_arm_can_train_on_conv_runs_once_more_without_their_top_reach():
    from benchmarks.update_reach import QUARTERS, REACH_FEATURES, Arm, _training_rows

    X = np.arange(4 * 12, dtype=float).reshape(4, 12)  # 4 features of lrid's, then the 8 of the reach
    labels, conv_runs, rows = np.array([0, 1, 2, 3]), np.array([False, True, False, True]), np.array([0, 1, 3])
    plain_X, plain_labels = _training_rows(X, labels, conv_runs, Arm("plain", reach=True), rows)
    np.testing.assert_array_equal(plain_X, X[rows])
    doubled_X, doubled_labels = _training_rows(X, labels, conv_runs, Arm("copies", reach=True, blank_conv_copies=True), rows)
    np.testing.assert_array_equal(doubled_labels, [0, 1, 3, 1, 3])
    np.testing.assert_array_equal(doubled_X[:3], X[rows])
    top = slice(12 - len(REACH_FEATURES), 12 - len(REACH_FEATURES) + QUARTERS)
    assert np.isnan(doubled_X[3:, top]).all() and not np.isnan(np.delete(doubled_X[3:], np.r_[top], axis=1)).any()
