"""Hardening of the sweep engine: dying pool workers, temporary files of killed processes, concurrent writers."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lrid.config import load_sweep
from lrid.generate import generate
from lrid.generate import scratch
from lrid.store import Store

# A rule plugin for these tests: SGD with momentum that logs which process trains each run, and can be
# told (through the environment, which pool workers inherit) to kill its process or to take its time.
PROBE_RULES = '''
import os, signal, time
from lrid.rules import register_rule
from lrid.rules.backprop import SGDMomentum

@register_rule
class ProbeSGDM(SGDMomentum):
    """SGD with momentum that can kill its process or slow down (tests only)."""
    name = "probe_sgdm"
    description = "test rule"
    reference = "test"

    def __init__(self, hparams=None, *args, **kwargs):
        super().__init__(hparams, *args, **kwargs)
        log = os.environ.get("LRID_PROBE_LOG")
        if log:
            with open(os.path.join(log, f"{time.time_ns()}-{os.getpid()}-{self.hparams.lr}"), "w"):
                pass
        if repr(self.hparams.lr) == os.environ.get("LRID_PROBE_DIE_AT_LR"):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(os.environ.get("LRID_PROBE_SLEEP", "0")))
'''

LRS = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12]
PROBE_SWEEP = f"""
name: probe
model: {{hidden: [16]}}
train: {{epochs: 1, batch_size: 256}}
observe: {{points: 2, probe_size: 16}}
rules: {{probe_sgdm: {{lr: {LRS}}}}}
"""


@pytest.fixture
def probe_rule(tmp_path, monkeypatch):
    """The probe rule, importable here, in spawned workers (they inherit sys.path) and in subprocesses."""
    import importlib

    from lrid.rules import RULES

    plugins = tmp_path / "plugins"
    (plugins / "lrid_probe_rules-1.0.dist-info").mkdir(parents=True)
    (plugins / "lrid_probe_rules.py").write_text(PROBE_RULES)
    (plugins / "lrid_probe_rules-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lrid-probe-rules\nVersion: 1.0\n")
    (plugins / "lrid_probe_rules-1.0.dist-info" / "entry_points.txt").write_text(
        "[lrid.rules]\nprobe_sgdm = lrid_probe_rules\n")
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])))
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("LRID_PROBE_LOG", str(log))
    importlib.import_module("lrid_probe_rules")
    sweep = tmp_path / "probe.yaml"
    sweep.write_text(PROBE_SWEEP)
    yield sweep, log
    RULES.pop("probe_sgdm", None)
    sys.modules.pop("lrid_probe_rules", None)


def trainings(log: Path) -> list[tuple[int, int, float]]:
    """(time, pid, lr) of every run the probe rule started, in order."""
    return sorted((int(t), int(pid), float(lr)) for t, pid, lr in (p.name.split("-", 2) for p in log.iterdir()))


def test_a_killed_pool_worker_fails_only_its_run_and_the_pool_keeps_its_workers(probe_rule, tmp_path, monkeypatch):
    from lrid.generate.executors import make_executor

    sweep, log = probe_rule
    monkeypatch.setenv("LRID_PROBE_DIE_AT_LR", "0.03")
    store = tmp_path / "store"
    summary = generate(load_sweep(sweep), store, executor=make_executor("process", workers=2), progress=False)

    manifests = Store(store).manifests()
    assert sorted(m["spec"]["rule"]["hparams"]["lr"] for m in manifests) == [lr for lr in LRS if lr != 0.03]
    # Trained to the end (a probe run this short learns too little to count as complete: it collapses).
    assert {m["status"] for m in manifests} <= {"complete", "collapsed"}
    assert not list((store / "claims").glob("*.json"))  # the dead worker's claim was removed too

    started = trainings(log)
    killed_at = next(i for i, (_, _, lr) in enumerate(started) if lr == 0.03)
    dead = started[killed_at][1]
    # One replacement pool of two workers, not a fresh single-worker pool per remaining run: four processes
    # at most (the other first worker may start its run just after the killed one did), and the runs after
    # the death spread over two or more of them, never the dead one.
    after = {pid for _, pid, _ in started[killed_at + 1:]}
    assert len({pid for _, pid, _ in started}) <= 4 and dead not in after and len(after) >= 2, started
    assert sum(lr == 0.03 for _, _, lr in started) == 1  # not retried
    assert (summary.complete + summary.collapsed, summary.failed) == (11, 1), summary
    assert "the worker process died while training this run" in summary.errors[0]


def _generate_command(sweep, store, *options):
    return [sys.executable, "-m", "lrid.cli", "generate", str(sweep), "--store", str(store), *options]


def _counts(stdout: str) -> dict:
    return {key: int(value) for value, key in re.findall(r"(\d+) (complete|collapsed|already in|failed)", stdout)}


def test_two_concurrent_generates_train_each_run_once(probe_rule, tmp_path):
    sweep, log = probe_rule
    store = tmp_path / "store"
    env = {**os.environ, "LRID_PROBE_SLEEP": "0.5", "COLUMNS": "200"}
    command = _generate_command(sweep, store, "--backend", "sequential")
    first, second = (subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2))
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert first.returncode == second.returncode == 0, [stderr[-2000:] for _, stderr in outputs]

    started = [lr for _, _, lr in trainings(log)]
    assert sorted(started) == LRS, "every run trained exactly once between the two processes"
    assert sum(_counts(stdout)["complete"] + _counts(stdout)["collapsed"] for stdout, _ in outputs) == len(LRS)
    assert any("being trained by another process" in stdout for stdout, _ in outputs)
    assert len(Store(store).manifests()) == len(LRS) and not list((store / "claims").glob("*.json"))

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"{len(LRS)} already in" in again.stdout and len(trainings(log)) == len(LRS)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_claims_are_taken_over_and_live_ones_are_not(tmp_path):
    store = Store(tmp_path / "store")
    assert (mine := store.try_claim("a")) is not None  # also makes the claims folder
    assert store.try_claim("a") is None  # held by a live process (this one)

    # A claimant of this host that died (kill -9) is stale at once, however long its lease.
    dead = {"host": mine["host"], "pid": _dead_pid(), "parent": 1, "token": "dead", "expires": time.time() + 3600}
    Path(store.claim_path("b")).write_text(json.dumps(dead))
    # A claimant elsewhere whose lease has expired (it crashed, or lost touch) is stale too.
    expired = {"host": "elsewhere", "pid": 1, "parent": 1, "token": "old", "expires": time.time() - 1}
    Path(store.claim_path("c")).write_text(json.dumps(expired))
    # ...but not one elsewhere that still renews its lease.
    live = {"host": "elsewhere", "pid": 1, "parent": 1, "token": "live", "expires": time.time() + 3600}
    Path(store.claim_path("d")).write_text(json.dumps(live))
    for run_id in "bc":
        claim = store.try_claim(run_id)
        assert claim is not None and store.read_claim(run_id)["token"] == claim["token"]
    assert store.try_claim("d") is None and store.read_claim("d")["token"] == "live"

    # A holder renews its lease while it trains, and loses nothing to a takeover that did not happen.
    with store.claimed("e", lease_s=0.3) as claim:
        time.sleep(0.5)
        assert store.read_claim("e")["expires"] > time.time() and store.try_claim("e") is None
    assert store.read_claim("e") is None  # released with the block
    store.release_claim("a", {"token": "someone else"})
    assert store.read_claim("a")["token"] == mine["token"]  # only the holder's release removes it


def test_resume_removes_stale_temporary_files_and_claims_but_not_fresh_ones(tmp_path):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text("name: s\nrules: {sgdm: {lr: 0.05}}\ngrid: {model_seed: [0, 1]}\n")
    sweep = load_sweep(sweep_file)
    store = Store(tmp_path / "store")
    for spec in sweep.expand():  # every run done: resuming trains nothing and needs no TensorFlow
        store.write_run(None, {"run_id": spec.run_id, "status": "complete", "spec": spec.model_dump(mode="json")})
    partition = tmp_path / "store/observables/task=digits/arch=mlp/rule=sgdm"
    partition.mkdir(parents=True)
    old = time.time() - 2 * Store.CLAIM_LEASE_S
    stale_files = [partition / ".tmp-0123-x.parquet", tmp_path / "store/runs/.tmp-4567-x.json"]
    fresh_files = [partition / ".tmp-89ab-y.parquet"]
    for path in stale_files + fresh_files:
        path.write_bytes(b"partial")
    for path in stale_files:
        os.utime(path, (old, old))
    dead = {"host": socket.gethostname(), "pid": _dead_pid(), "parent": 1, "token": "t", "expires": time.time() + 3600}
    Path(store.claim_path("z")).parent.mkdir()
    Path(store.claim_path("z")).write_text(json.dumps(dead))
    Path(store.claim_path("y")).write_text(json.dumps({**dead, "pid": os.getpid()}))  # a live claimant's

    summary = generate(sweep, store, progress=False)
    assert (summary.skipped, summary.complete) == (2, 0)
    assert [p.exists() for p in stale_files + fresh_files] == [False, False, True]
    assert not Path(store.claim_path("z")).exists() and Path(store.claim_path("y")).exists()


def test_scratch_directories_of_dead_processes_are_removed_and_user_temp_files_stay(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(scratch, "_scratch", None)
    user_file = tmp_path / "users-own.txt"
    user_file.write_text("keep")
    dead = tmp_path / f"{scratch.PREFIX}{_dead_pid()}-abc"
    dead.mkdir()
    (dead / "__autograph_generated_file1.py").write_text("")
    live = tmp_path / f"{scratch.PREFIX}{os.getppid()}-abc"
    live.mkdir()
    with scratch.scratch_tempdir() as directory:
        assert tempfile.gettempdir() == directory and Path(directory).parent == tmp_path
    assert tempfile.gettempdir() == str(tmp_path)  # the user's temporary files go where they went before
    assert not dead.exists() and live.exists() and user_file.read_text() == "keep"
    scratch.remove_scratch()
    assert not Path(directory).exists()


@pytest.mark.parametrize("backend", ["process", "sequential"])
def test_a_killed_sweep_leaves_no_scratch_files_once_resumed(backend, tmp_path):
    """What TensorFlow writes while tracing (AutoGraph's generated files, where Keras or a plugin rule still
    converts code) goes to per-process scratch directories, which a killed sweep leaves and the next removes."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / "users-own.txt").write_text("keep")
    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: s\nmodel: {hidden: [16]}\ntrain: {epochs: 1, batch_size: 256}\n"
                     "observe: {points: 2, probe_size: 16}\nrules: {sgdm: {lr: 0.05}, fa: {lr: 0.05}}\n"
                     "grid: {model_seed: [0, 1, 2, 3]}\n")
    store = tmp_path / "store"
    command = _generate_command(sweep, store, "--backend", backend, "--workers", "2")
    env = {**os.environ, "TMPDIR": str(temp)}
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((store / "runs").glob("*.json"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert list(temp.glob(f"{scratch.PREFIX}*")), "the killed sweep should have left its scratch directories"

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(Store(store).manifests()) == 8
    assert not list(temp.rglob("__autograph_generated_file*"))
    assert [p.name for p in temp.iterdir()] == ["users-own.txt"]


def test_a_zombie_process_counts_as_dead():
    from lrid.store import process_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    # Not waited for: once it exits it stays a zombie until reaped, like a killed worker nobody reaps.
    while time.monotonic() < deadline and not Path(f"/proc/{child.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
        time.sleep(0.05)
    try:
        assert not process_alive(child.pid)
    finally:
        child.wait()
    assert process_alive(os.getpid())
