"""The sweep engine: executors agree, a killed sweep resumes cleanly, compiled steps are reused safely."""

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from lrid.config import RuleSpec, RunSpec, TrainSpec, load_sweep
from lrid.generate import generate, trainer
from lrid.generate.executors import make_executor
from lrid.store import Store

SMALL_SWEEP = """
name: small
model: {hidden: [16, 16]}
train: {epochs: 1, batch_size: 128}
observe: {points: 4, probe_size: 32}
rules: {sgdm: {lr: 0.05}, fa: {lr: 0.05}, ia: {lr: 0.05}, adam: {lr: 0.005}}
grid: {model_seed: [0, 1]}
"""


def observables_by_run(store_root) -> dict[str, pd.DataFrame]:
    # The sweep's runs are too short to learn much: some are collapsed, which is still a finished run.
    frame = Store(store_root).read_observables(("complete", "collapsed"))
    return {run_id: rows.reset_index(drop=True) for run_id, rows in frame.groupby("run_id")}


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "small.yaml"
    path.write_text(SMALL_SWEEP)
    return path


@pytest.fixture(scope="module")
def sequential_store(small_sweep, tmp_path_factory):
    root = tmp_path_factory.mktemp("sequential") / "store"
    summary = generate(load_sweep(small_sweep), root, executor=make_executor("sequential"), progress=False)
    assert summary.complete + summary.collapsed == 8
    return root


def written_manifests(store_root) -> list[Path]:
    """The manifests in place: a kill can leave a half-written ``.tmp-*.json`` beside them, which is not one
    (pathlib's glob, unlike a shell's, matches names that start with a dot)."""
    return [path for path in (Path(store_root) / "runs").glob("*.json") if not path.name.startswith(".")]


def assert_same_store(reference_root, other_root):
    reference, other = observables_by_run(reference_root), observables_by_run(other_root)
    assert reference.keys() == other.keys() and len(reference) == 8
    for run_id in reference:
        pd.testing.assert_frame_equal(other[run_id], reference[run_id], check_exact=True)


def test_process_pool_writes_the_same_store_as_sequential(small_sweep, sequential_store, tmp_path):
    summary = generate(load_sweep(small_sweep), tmp_path / "pool", executor=make_executor("process", workers=2), progress=False)
    assert (summary.complete + summary.collapsed, summary.failed) == (8, 0)
    assert_same_store(sequential_store, tmp_path / "pool")


def test_ray_writes_the_same_store_as_sequential(small_sweep, sequential_store, tmp_path):
    pytest.importorskip("ray")
    summary = generate(load_sweep(small_sweep), tmp_path / "ray", executor=make_executor("ray", num_cpus=1), progress=False)
    assert (summary.complete + summary.collapsed, summary.failed) == (8, 0)
    assert_same_store(sequential_store, tmp_path / "ray")


def test_sigkill_mid_sweep_then_resume_leaves_every_run_once_and_every_file_readable(small_sweep, sequential_store, tmp_path):
    store = tmp_path / "store"
    command = [sys.executable, "-m", "lrid.cli", "generate", str(small_sweep), "--store", str(store), "--workers", "2"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(written_manifests(store)) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the CLI and its workers, mid-run
    process.wait()
    killed_with = len(written_manifests(store))
    assert 3 <= killed_with < 8, "the sweep should be killed part-way through"

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{killed_with} already in" in resumed.stdout

    manifests = [json.loads(p.read_text()) for p in written_manifests(store)]
    assert sorted(m["run_id"] for m in manifests) == sorted(observables_by_run(sequential_store))
    visible = [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".")]
    for path in visible:
        if path.suffix == ".parquet":
            pq.read_table(path)
        else:
            json.loads(path.read_text())
    assert Store(store).orphan_observables() == []
    assert_same_store(sequential_store, store)


@pytest.mark.parametrize("rule, first_lr, second_lr", [("ia", 0.03, 0.01), ("np", 0.003, 0.001), ("dtp", 0.003, 0.001)])
def test_compiled_steps_are_reused_and_give_the_same_trajectory_as_a_fresh_build(rule, first_lr, second_lr):
    """np and dtp hold state in their steps (noise generators, inverses): reseed() must reset it exactly."""
    first = RunSpec(rule=RuleSpec(name=rule, hparams={"lr": first_lr}), train=TrainSpec(epochs=1, batch_size=128))
    second = first.model_copy(update={"rule": RuleSpec(name=rule, hparams={"lr": second_lr}),
                                      "train": TrainSpec(epochs=1, batch_size=128, model_seed=5, data_seed=2)})
    trainer._COMPILED.clear()
    fresh_second = trainer.train_run(second).observables
    trainer._COMPILED.clear()
    trainer.train_run(first)
    compiled = next(iter(trainer._COMPILED.values()))
    reused_second = trainer.train_run(second).observables
    assert next(iter(trainer._COMPILED.values())) is compiled  # same traced step, re-initialised
    pd.testing.assert_frame_equal(reused_second, fresh_second, check_exact=True)


def test_a_failing_run_does_not_stop_the_others(tmp_path):
    sweep = tmp_path / "mixed.yaml"
    sweep.write_text("name: mixed\ntrain: {epochs: 1, batch_size: 128}\nobserve: {points: 3, probe_size: 16}\n"
                     "rules: {sgdm: {}}\ngrid: {batch_size: [128, 100000]}\n")
    command = [sys.executable, "-m", "lrid.cli", "generate", str(sweep), "--store", str(tmp_path / "s"), "--backend", "sequential"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "1 complete, 0 collapsed, 0 diverged, 1 failed" in result.stdout
    assert "batch size 100000 exceeds" in result.stderr and "Traceback" not in result.stderr
    statuses = sorted(m["status"] for m in Store(tmp_path / "s").manifests())
    assert statuses == ["complete", "failed"]

    status = subprocess.run([sys.executable, "-m", "lrid.cli", "status", str(tmp_path / "s"), str(sweep)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert status.returncode == 0, status.stderr
    assert "│ digits │ mlp  │ sgdm │        1 │         0 │        0 │      1 │" in status.stdout  # complete, collapsed, diverged, failed
    assert "1 of 2 runs done" in status.stdout and "missing: 1 run(s) of sgdm" in status.stdout

    # Without --retry-failed a failed run counts as done; with it, it is attempted again.
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "2 already in" in again.stdout
    assert "1 run(s) that failed before were skipped; add --retry-failed" in again.stdout
    retried = subprocess.run([*command, "--retry-failed"], capture_output=True, text=True, timeout=300)
    assert retried.returncode == 2 and "1 already in" in retried.stdout and "1 failed" in retried.stdout


def test_store_on_a_non_local_filesystem_round_trips(tiny_store, tmp_path):
    source = Store(tiny_store)
    manifest = source.manifests()[0]
    rows = source.read_observables()
    rows = rows[rows.run_id == manifest["run_id"]].drop(columns=["rule", "task", "arch"])
    remote_like = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())  # no atomic rename path
    target = Store("bucket/prefix", filesystem=remote_like)
    target.write_run(rows, manifest)
    assert [m["run_id"] for m in target.manifests()] == [manifest["run_id"]]
    back = target.read_observables().drop(columns=["rule", "task", "arch"])
    pd.testing.assert_frame_equal(back, rows.reset_index(drop=True), check_exact=True)
    assert (tmp_path / "bucket/prefix/runs" / f"{manifest['run_id']}.json").is_file()
    assert Store(f"file://{tiny_store}").done_run_ids() == source.done_run_ids()


def test_dry_run_counts_runs_per_rule_and_architecture_and_writes_nothing(tmp_path):
    sweep = tmp_path / "mix.yaml"
    # CIFAR-10's geometry is known without its data, so the estimate needs no download.
    sweep.write_text("name: mix\ntask: {name: cifar10}\ntrain: {epochs: 1, batch_size: 64}\n"
                     "observe: {points: 3, probe_size: 16}\nmodel: {hidden: [8]}\nrules: {sgdm: {}, fa: {}}\n"
                     "grid: {arch: [mlp, knet], model_seed: [0, 1, 2]}\n")
    command = [sys.executable, "-m", "lrid.cli", "generate", str(sweep), "--store", str(tmp_path / "s"), "--dry-run"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "runs per rule: fa 6, sgdm 6" in result.stdout
    assert "runs per architecture: knet 6, mlp 6" in result.stdout
    assert "minutes" in result.stdout and "nothing was written" in result.stdout
    assert not (tmp_path / "s").exists()


def test_step_decay_schedule_lowers_the_learning_rate_at_the_listed_epochs():
    train = TrainSpec(lr_decay_epochs=(2, 4), lr_decay_factor=0.5)
    assert [train.learning_rate(0.1, e) for e in range(6)] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    with pytest.raises(ValueError, match="increasing positive epoch numbers"):
        TrainSpec(lr_decay_epochs=(4, 2))
    # Plain SGD, so no momentum carries the first epoch's learning rate into the second.
    constant = RunSpec(rule=RuleSpec(name="sgd", hparams={"lr": 0.5}), train=TrainSpec(epochs=2, batch_size=128))
    decayed = constant.model_copy(update={"train": TrainSpec(epochs=2, batch_size=128, lr_decay_epochs=(1,), lr_decay_factor=0.01)})
    a, b = trainer.train_run(constant).observables, trainer.train_run(decayed).observables
    first_epoch = a["epoch"] <= 1.0
    pd.testing.assert_frame_equal(a[first_epoch].drop(columns="run_id"), b[first_epoch].drop(columns="run_id"), check_exact=True)
    # In the second epoch the decayed run moves its weights far less.
    drift = lambda frame: abs(frame["weight_raw_norm"].iloc[-3:].to_numpy() - frame[first_epoch]["weight_raw_norm"].iloc[-3:].to_numpy()).sum()
    assert drift(b) < 0.2 * drift(a)


def test_pool_chunks_keep_each_configuration_on_one_worker_and_cover_every_run_once():
    from lrid.generate.executors import configuration_chunks

    sweep = load_sweep(Path(__file__).resolve().parent.parent / "pipelines" / "demo.yaml")
    specs = sweep.expand()
    chunks = configuration_chunks(specs, workers=2)
    assert sorted(spec.run_id for chunk in chunks for spec in chunk) == sorted(spec.run_id for spec in specs)
    for chunk in chunks:
        assert len({trainer.configuration_key(spec) for spec in chunk}) == 1
    # 8 configurations (4 rules x 2 batch sizes; learning rates and seeds reuse a trace) of 12 runs each:
    # each is one chunk, so each is traced by one worker only.
    assert len({trainer.configuration_key(spec) for spec in specs}) == 8 and len(chunks) == 8
    # Many runs of one configuration are split, so that every worker gets work.
    one_configuration = [spec for spec in specs if trainer.configuration_key(spec) == trainer.configuration_key(specs[0])]
    assert len(one_configuration) == 12
    assert [len(chunk) for chunk in configuration_chunks(one_configuration, workers=2)] == [2] * 6


@pytest.mark.parametrize(("preset", "expected"), [(None, "true"), ("false", "false")])
def test_workers_sharing_a_gpu_let_tensorflow_grow_its_memory_unless_the_user_said_otherwise(preset, expected):
    # Pool workers and Ray tasks import lrid before TensorFlow and inherit its environment: growing on demand
    # is what lets two of them share one GPU. Checked in a fresh interpreter, as a worker starts.
    environment = {key: value for key, value in os.environ.items() if key != "TF_FORCE_GPU_ALLOW_GROWTH"}
    if preset is not None:
        environment["TF_FORCE_GPU_ALLOW_GROWTH"] = preset
    probe = "import os, lrid; print(os.environ['TF_FORCE_GPU_ALLOW_GROWTH'])"
    printed = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == expected


def test_tensorflow_load_logs_are_hidden_at_the_users_log_level():
    # TensorFlow's C++ libraries log oneDNN's and the CPU features' notices as they load, before they read
    # TF_CPP_MIN_LOG_LEVEL; every pool worker printed them. lrid applies the level to that import.
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    probe = "import lrid, tensorflow as tf; tf.constant(1); print(tf.__version__)"
    printed = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True)
    assert printed.stdout.strip()
    assert "absl::InitializeLog" not in printed.stderr
    assert not [line for line in printed.stderr.splitlines() if re.match(r"[IW]\d{4} ", line)], printed.stderr


def test_hidden_log_lines_drop_messages_below_the_level_with_their_continuations_and_keep_the_rest(capfd):
    from lrid.lazy_import import _stderr_filtered, hidden_log_lines

    logged = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:17.1 9 cpu_feature_guard.cc:227] This binary is optimized\n"
        "To enable the following instructions: AVX2\n"
        "W0000 00:00:17.2 9 gpu.cc:1] no GPU found\n"
        "E0000 00:00:17.3 9 file.cc:2] could not open\n"
        "UserWarning: something a user should see\n"
    )
    assert hidden_log_lines(logged, 0) == logged
    assert hidden_log_lines(logged, 1) == "".join(logged.splitlines(keepends=True)[3:])
    assert hidden_log_lines(logged, 2) == "E0000 00:00:17.3 9 file.cc:2] could not open\nUserWarning: something a user should see\n"
    # What is written to the descriptor while TensorFlow loads (where C++ logs go) is filtered as it ends.
    with _stderr_filtered(1):
        os.write(2, logged.encode())
        os.write(2, b"Traceback (most recent call last):\n")
    assert capfd.readouterr().err == "".join(logged.splitlines(keepends=True)[3:]) + "Traceback (most recent call last):\n"
