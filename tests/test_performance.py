"""The performance fixes of issue #8 keep results exact, and the benchmark helpers do what they claim."""

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from lrid.config import ModelSpec, ObserveSpec, RuleSpec, RunSpec, TrainSpec
from lrid.observables import host_statistics, statistics

# The benchmark scripts import their helpers as siblings, so their folder goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def test_host_sort_gives_tensorflows_sort_bit_for_bit(monkeypatch):
    values = tf.constant(np.random.default_rng(0).standard_t(df=3, size=(7, 301)).astype(np.float32))
    # Forced, so that a GPU host tests the host sort too (it would otherwise sort on the device).
    monkeypatch.setattr(statistics, "_sort_on_host", lambda: True)
    sort = tf.function(statistics.sorted_rows)
    assert any("PyFunc" in op.type for op in sort.get_concrete_function(values).graph.get_operations())  # numpy sorts
    np.testing.assert_array_equal(sort(values).numpy(), tf.sort(values, axis=-1).numpy())


def test_describe_is_the_same_with_host_and_device_sorts(monkeypatch):
    values = tf.constant(np.random.default_rng(1).normal(size=(5, 97)).astype(np.float32))
    host = tf.function(statistics.describe)(values).numpy()
    monkeypatch.setattr(statistics, "_sort_on_host", lambda: False)
    device = tf.function(statistics.describe)(values).numpy()
    # abs and sq share one sort: the squares of the sorted magnitudes are the sorted squares exactly
    np.testing.assert_array_equal(host, device)


def small_spec(seed: int) -> RunSpec:
    return RunSpec(model=ModelSpec(hidden=(16,)), rule=RuleSpec(name="sgdm", hparams={"lr": 0.05}),
                   train=TrainSpec(epochs=1, batch_size=128, model_seed=seed, data_seed=seed),
                   observe=ObserveSpec(points=3, probe_size=32))


def test_a_run_gives_the_same_observables_whatever_ran_before_it_in_the_worker():
    from lrid.generate.trainer import train_run

    spec = small_spec
    # Seed 0 builds the worker's model; seed 1 re-initialises it from a fresh build; the repeats take both
    # seeds' kept initial weights.
    first = train_run(spec(0)).observables
    other = train_run(spec(1)).observables
    again = train_run(spec(0)).observables
    other_again = train_run(spec(1)).observables
    assert not first.drop(columns="run_id").equals(other.drop(columns="run_id"))
    assert first.equals(again)
    assert other.equals(other_again)


def test_initial_weights_past_the_memory_limit_are_rebuilt_not_kept(monkeypatch):
    from lrid.generate import trainer

    first = trainer.train_run(small_spec(2)).observables
    monkeypatch.setattr(trainer, "_INITIAL_WEIGHTS_LIMIT", 10)
    monkeypatch.setattr(trainer, "_COMPILED", {})
    assert trainer.train_run(small_spec(3)).observables is not None
    (compiled,) = trainer._COMPILED.values()
    assert compiled._initial_weights == {}  # the network's 1,210 floats exceed the limit
    assert trainer.train_run(small_spec(2)).observables.equals(first)  # seed 2 rebuilt from scratch


def test_interleaved_timing_alternates_cases_and_reports_medians(monkeypatch):
    import types

    import harness

    # A clock that each case advances by a known duration per call: warm-up first, then three timed rounds.
    clock = [0.0]
    monkeypatch.setattr(harness, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    durations = {"a": iter([100.0, 3.0, 1.0, 2.0]), "b": iter([100.0, 5.0, 9.0, 5.0])}
    calls = []

    def case(name):
        def run():
            calls.append(name)
            clock[0] += next(durations[name])
        return run

    timings = harness.interleaved({"a": case("a"), "b": case("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert timings == {"a": {"median_s": 2.0, "rounds_s": [3.0, 1.0, 2.0]},
                       "b": {"median_s": 5.0, "rounds_s": [5.0, 9.0, 5.0]}}


def test_the_larger_classification_sweep_is_the_demo_with_ten_times_the_runs():
    from classification import LARGER_SPEC

    from lrid.config import load_sweep

    demo = {run.run_id: run for run in load_sweep(Path(__file__).resolve().parent.parent / "pipelines" / "demo.yaml").expand()}
    larger = {run.run_id: run for run in load_sweep(LARGER_SPEC).expand()}
    assert len(larger) == 10 * len(demo)
    assert set(demo) <= set(larger)  # the demo's own runs, plus new data seeds of the same configurations
    strip = lambda run: run.model_copy(update={"train": run.train.model_copy(update={"data_seed": 0})})  # noqa: E731
    assert {strip(run).run_id for run in larger.values()} == {strip(run).run_id for run in demo.values()}


def test_long_rows_select_by_partition_the_entries_a_sort_would_place(monkeypatch):
    """Past PARTITION_MIN_ENTRIES the host partitions instead of sorting; the ranked entries, and so every
    statistic, must be the device sort's bit for bit, ties and NaN (which sorts last) included."""
    rng = np.random.default_rng(3)
    n_even, n_odd = host_statistics.PARTITION_MIN_ENTRIES * 2, host_statistics.PARTITION_MIN_ENTRIES + 1
    for n_entries in (n_even, n_odd):
        values = rng.standard_t(df=3, size=(6, n_entries)).astype(np.float32)
        values[1] = np.round(values[1])  # many ties
        values[2, : n_entries // 2 + 3] = np.nan  # NaN past the median's ranks
        values[3, :] = np.nan
        values[4, ::7] = np.inf
        quantiles = (0.0, 25.0, 50.0, 75.0, 100.0)
        host = tf.function(lambda rows: statistics.ranked_entries(rows, quantiles))(values).numpy()
        expected = np.sort(values, axis=-1)[:, [r for q in quantiles for r in host_statistics.ranks(q, n_entries)[:2]]]
        np.testing.assert_array_equal(host, expected)
        rows_without_nan = [0, 1, 4]  # TensorFlow's sort places NaN elsewhere than numpy's, as it always has
        described = tf.function(statistics.describe)(values[rows_without_nan]).numpy()
        monkeypatch.setattr(statistics, "_sort_on_host", lambda: False)
        np.testing.assert_array_equal(tf.function(statistics.describe)(values[rows_without_nan]).numpy(), described)
        np.testing.assert_array_equal(statistics.ranked_entries(tf.constant(values[rows_without_nan]), quantiles).numpy(),
                                      expected[rows_without_nan])
        monkeypatch.setattr(statistics, "_sort_on_host", lambda: True)
