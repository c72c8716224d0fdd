"""The store: round trip, resume without rewriting, crash leftovers, corrupt files, determinism."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lrid.config import ModelSpec, RuleSpec, RunSpec, TrainSpec, load_sweep
from lrid.errors import LridError
from lrid.generate import generate
from lrid.generate.trainer import recording_steps, train_run
from lrid.observables import OBSERVABLES
from lrid.store import Store


def test_tiny_store_round_trip(tiny_store):
    store = Store(tiny_store)
    manifests = store.manifests()
    assert len(manifests) == 24 and {m["status"] for m in manifests} == {"complete"}
    observables = store.read_observables()
    assert list(observables.columns[:6]) == ["run_id", "step", "epoch", "layer", "layer_index", "depth_group"]
    assert set(OBSERVABLES) <= set(observables.columns)
    # 3 measured layers x 6 points per run, early/middle/deep.
    assert observables.groupby("run_id").size().eq(18).all()
    assert sorted(observables["depth_group"].unique()) == ["deep", "early", "middle"]
    one = manifests[0]
    path = tiny_store / one["observables"]
    assert path.parent.name == f"rule={one['spec']['rule']['name']}" and path.stem == one["run_id"]
    assert sorted(observables["step"].unique())[0] == 0


def test_second_generate_skips_every_complete_run_and_writes_nothing(tiny_sweep_file, tiny_store):
    before = {p: p.stat().st_mtime_ns for p in tiny_store.rglob("*") if p.is_file()}
    summary = generate(load_sweep(tiny_sweep_file), tiny_store, progress=False)
    assert summary.skipped == 24 and summary.complete == 0
    after = {p: p.stat().st_mtime_ns for p in tiny_store.rglob("*") if p.is_file()}
    assert after == before


def test_resume_runs_only_what_is_missing_and_ignores_crash_leftovers(tiny_sweep_file, tiny_store, tmp_path):
    import shutil

    store_root = tmp_path / "store"
    shutil.copytree(tiny_store, store_root)
    victim = Store(store_root).manifests()[5]
    # A crash after the observables but before the manifest: the run does not exist yet.
    Path(Store(store_root).manifest_path(victim["run_id"])).unlink()
    (store_root / "runs" / ".tmp-deadbeef-x.json").write_text("{half")
    store = Store(store_root)  # opened after the crash, as the next `lrid generate` would
    assert victim["run_id"] not in store.done_run_ids()
    assert [Path(p).stem for p in store.orphan_observables()] == [victim["run_id"]]
    summary = generate(load_sweep(tiny_sweep_file), store, progress=False)
    assert (summary.skipped, summary.complete) == (23, 1)
    assert len(store.manifests()) == 24
    assert len(list((store_root / "observables").rglob("*.parquet"))) == 24
    assert store.orphan_observables() == []


def test_corrupt_observables_file_is_a_clear_error(tiny_store, tmp_path):
    import shutil

    store_root = tmp_path / "store"
    shutil.copytree(tiny_store, store_root)
    store = Store(store_root)
    broken = store_root / store.manifests()[0]["observables"]
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(LridError, match="unreadable.*re-run `lrid generate`"):
        store.read_observables()


def test_filters_select_partitions_and_leave_other_runs_files_unopened(tiny_store, tmp_path):
    """rule/arch/task filters prune hive partitions: a broken file of another rule is never read."""
    import shutil

    store_root = tmp_path / "store"
    shutil.copytree(tiny_store, store_root)
    store = Store(store_root)
    everything = store.read_observables()
    broken = next(m for m in store.manifests() if m["spec"]["rule"]["name"] == "fa")
    (store_root / broken["observables"]).write_bytes(b"not parquet at all")
    kept = store.read_observables(rules=["sgdm", "adam"], archs=["mlp"], tasks=["digits"])
    assert set(kept["rule"]) == {"sgdm", "adam"}
    expected = everything[everything["rule"].isin(["sgdm", "adam"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, expected)
    assert store.read_observables(archs=["convnet"]).empty
    with pytest.raises(LridError, match=f"observables file .*{broken['run_id']}.parquet is unreadable"):
        store.read_observables(rules=["fa"])


def test_manifests_are_read_once_per_store_until_it_writes(tiny_store, tmp_path, monkeypatch):
    import shutil

    import lrid.store

    store_root = tmp_path / "store"
    shutil.copytree(tiny_store, store_root)
    parsed = []
    real_parse = lrid.store.parse_manifest
    monkeypatch.setattr(lrid.store, "parse_manifest", lambda document: parsed.append(1) or real_parse(document))
    store = Store(store_root)
    first = store.manifests()
    store.runs_table(), store.done_run_ids(), store.read_observables(), store.view_names()
    assert len(parsed) == len(first) == 24  # one parse per manifest, however many readers
    run = first[0]
    Path(store.manifest_path(run["run_id"])).unlink()
    store.write_run(None, {**run, "status": "failed", "error": "rewritten"})
    assert len(store.manifests()) == 24 and len(parsed) == 48  # this instance wrote: read afresh
    assert {m["run_id"]: m["status"] for m in store.manifests()}[run["run_id"]] == "failed"


def test_a_uri_store_reads_what_the_local_path_reads(tiny_store):
    pd.testing.assert_frame_equal(Store(f"file://{tiny_store}").read_observables(rules=["ia"]),
                                  Store(tiny_store).read_observables(rules=["ia"]))


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "abc.json").write_text("{")
    with pytest.raises(LridError, match="abc.json is corrupt"):
        Store(tmp_path).manifests()


def test_same_spec_gives_bit_identical_observables():
    spec = RunSpec(rule=RuleSpec(name="ia"), train=TrainSpec(epochs=1, batch_size=64, model_seed=3, data_seed=4))
    first, second = train_run(spec), train_run(spec)
    assert first.manifest["status"] == "complete"
    pd.testing.assert_frame_equal(first.observables, second.observables, check_exact=True)
    other = train_run(spec.model_copy(update={"train": TrainSpec(epochs=1, batch_size=64, model_seed=3, data_seed=5)}))
    assert not np.allclose(other.observables[list(OBSERVABLES)].to_numpy()[-3:], first.observables[list(OBSERVABLES)].to_numpy()[-3:])


def test_recording_schedule_includes_first_and_last_step():
    assert recording_steps(100, 21) == list(range(0, 101, 5))
    assert recording_steps(5, 21) == [0, 1, 2, 3, 4, 5]


def test_a_diverging_run_is_recorded_as_diverged_with_its_finite_prefix(tmp_path):
    spec = RunSpec(
        rule=RuleSpec(name="sgdm", hparams={"lr": 1e5}), model=ModelSpec(activation="relu"), train=TrainSpec(epochs=2, batch_size=32)
    )
    result = train_run(spec)
    assert result.manifest["status"] == "diverged", result.manifest
    assert result.manifest["diverged_at_step"] > 0
    recorded = result.observables["step"].unique()
    assert recorded[0] == 0 and recorded.max() < result.manifest["diverged_at_step"]
    store = Store(tmp_path)
    store.write_run(result.observables, result.manifest)
    assert store.read_observables().empty  # classification reads complete runs only
    assert len(store.read_observables(("diverged",))) == len(result.observables)
    assert json.loads(Path(store.manifest_path(spec.run_id)).read_text())["status"] == "diverged"


def test_a_run_that_raises_is_recorded_as_failed():
    spec = RunSpec(rule=RuleSpec(name="sgdm"), train=TrainSpec(batch_size=100_000))
    result = train_run(spec)
    assert result.manifest["status"] == "failed"
    assert "batch size 100000 exceeds" in result.manifest["error"]
    assert result.observables is None
