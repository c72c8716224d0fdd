"""Hardening probes that already held when the hardening issue was filed, kept so they keep holding.

One test per probe case, so ``pytest tests/test_hardening*.py -v`` prints one PASS/FAIL line per case.
"One line" means through the CLI: exit code 2, exactly one line on stderr, no traceback. Every payload
test checks that a marker file the payload would create does not exist, and runs the same bytes through
an unrestricted loader in a subprocess to show the payload is live (so the test can fail). Nothing here
trains a network.

Probe case -> where it is tested (cases tested elsewhere are not repeated here):

==================================================  ==========================================================
Security
YAML python tags in a sweep (apply os.system,       test_yaml_python_tag_runs_nothing_and_is_one_line (five
eval, subprocess.Popen; name:, module:)             tags, CLI); test_config.py::test_bad_sweeps_raise_... (the
                                                    os.system tag, loader level)
CIFAR-10 batch with a __reduce__ payload            test_tasks_images.py::test_cifar10_refuses_a_malicious_pickle
                                                    (os.system, protocol 2, folder);
                                                    test_tasks_images.py::test_restricted_unpickler_admits_no_
                                                    other_globals (os.system, eval protocol 0, _codecs);
                                                    here: test_cifar10_batch_payload_runs_nothing (os.system,
                                                    eval, Popen x protocols 0-5) and
                                                    test_cifar10_archive_payload_runs_nothing (the .tar.gz)
object arrays in an .npz recording                  test_npz_object_array_runs_nothing_and_is_one_line
raw pickle renamed .npz                             test_pickle_renamed_npz_runs_nothing_and_is_one_line
                                                    (protocols 0-5)
../ in rule, task, arch names                       test_dotdot_name_in_a_sweep_writes_nothing
../ in a view name (--view; a manifest's views)     test_dotdot_view_option_writes_nothing,
                                                    test_dotdot_view_name_in_a_manifest_writes_nothing;
                                                    view *paths* in manifests: test_hardening_store.py::
                                                    test_manifest_view_path_outside_the_store_is_refused
../ in a run id (recording export; manifests)       test_dotdot_run_id_in_export_recording_writes_nothing;
                                                    test_hardening_store.py::test_manifest_run_id_with_path_
                                                    separators_is_refused, ..._observables_path_outside_...
../ in a recording's run and layer names            test_dotdot_names_in_a_recording_write_nothing
Clear errors (API level elsewhere; CLI one-line here)
malformed YAML                                      test_config.py::test_bad_sweeps_raise_...;
                                                    test_malformed_sweep_is_one_line[malformed-yaml, not-a-mapping]
unknown rules and keys                              test_config.py::test_bad_sweeps_raise_...; test_cli.py::
                                                    test_bad_sweep_is_refused_before_any_training (rule key);
                                                    test_malformed_sweep_is_one_line[unknown-*]
bad numbers                                         test_config.py (lr -1); test_hardening_inputs.py (--workers,
                                                    --splits, --jobs); test_malformed_sweep_is_one_line[*-number]
corrupt Parquet                                     test_store.py::test_corrupt_observables_file_is_a_clear_error;
                                                    test_corrupt_parquet_in_the_store_is_one_line
truncated manifests                                 test_store.py::test_corrupt_manifest_is_a_clear_error;
                                                    test_truncated_manifest_is_one_line;
                                                    wrong-shape manifests: test_hardening_store.py
too few runs for a split                            test_identify.py::test_too_few_runs_for_a_split_is_a_
                                                    clear_error (API);
                                                    test_too_few_runs_for_a_split_is_one_line
malformed recordings                                test_recordings.py::test_malformed_npz_is_one_clear_error,
                                                    ::test_malformed_parquet_is_one_clear_error (API);
                                                    test_hardening_inputs.py (empty, ragged batches);
                                                    test_malformed_npz_recording_is_one_line (the same 10 cases,
                                                    CLI); test_unreadable_recording_is_one_line
Crash safety
kill -9 mid-sweep then resume; two writers          scripts/probe_crashes.py (kill9_resume[process|sequential],
                                                    two_writers, pool_worker_killed); test_hardening_runs.py::
                                                    test_two_concurrent_generates_train_each_run_once,
                                                    ::test_a_killed_pool_worker_fails_only_its_run_..., ::test_
                                                    resume_removes_stale_temporary_files_and_claims_...
==================================================  ==========================================================
"""

import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np
import pandas as pd
import pytest
import test_recordings
import yaml
from test_hardening_inputs import assert_one_line_error, lrid
from test_hardening_inputs import recording as two_layer_recording
from test_recordings import _synthetic
from test_tasks_images import cifar, write_pickle  # noqa: F401 - cifar is a fixture

from lrid import cli
from lrid.config import RuleSpec, RunSpec, TrainSpec
from lrid.errors import LridError
from lrid.identify import classify
from lrid.identify.recording import write_recording
from lrid.observables import OBSERVABLES
from lrid.store import Store
from lrid.tasks import cifar10

# ---------------------------------------------------------------------------------------------------------
# Helpers


class Call:
    """Pickles as a call of ``function(*args)``: what a malicious file runs when it is unpickled."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(marker):
    """Three ways to create ``marker`` when unpickled: a shell command, eval of Python, a child process."""
    return {
        "os.system": Call(os.system, f"touch '{marker}'"),
        "eval": Call(eval, f"open({str(marker)!r}, 'w').close()"),
        "Popen": Call(subprocess.Popen, ["touch", str(marker)]),
    }


PAYLOAD_KINDS = tuple(payloads("marker"))


def settle(kind):
    """A Popen payload runs asynchronously: give it time to act before checking that it did not."""
    if kind == "Popen":
        time.sleep(0.2)


def run_unrestricted(code, marker):
    """Run ``code`` (which unpickles with an unrestricted loader) in a subprocess and report whether the
    marker appeared: the control that shows a payload is live."""
    wait_children = "import subprocess, gc\n[p.wait() for p in gc.get_objects() if isinstance(p, subprocess.Popen)]\n"
    subprocess.run([sys.executable, "-c", code + "\n" + wait_children], capture_output=True, timeout=60)
    return marker.exists()


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def synthetic_store(root, rules=("sgdm", "fa"), runs_per_rule=3, points=3, layers=2):
    """A store of complete runs with random observables, written through Store.write_run (no training)."""
    rng = np.random.default_rng(0)
    store = Store(root)
    for rule in rules:
        for seed in range(runs_per_rule):
            spec = RunSpec(rule=RuleSpec(name=rule), train=TrainSpec(model_seed=seed))
            rows = pd.DataFrame({
                "run_id": spec.run_id,
                "step": np.repeat(np.arange(points) * 10, layers),
                "epoch": np.repeat(np.arange(points, dtype=float), layers),
                "layer": [f"dense_{i}" for i in range(layers)] * points,
                "layer_index": np.tile(np.arange(layers, dtype=np.int32), points),
                "depth_group": ["early", "deep"][:layers] * points,
                **{name: rng.normal(size=points * layers) for name in OBSERVABLES},
            })
            store.write_run(rows, {"run_id": spec.run_id, "status": "complete", "spec": spec.model_dump(mode="json")})
    return store


# ---------------------------------------------------------------------------------------------------------
# Security: YAML python tags


YAML_TAGS = {
    "apply-os.system": "!!python/object/apply:os.system [\"touch '{marker}'\"]",
    "apply-eval": "!!python/object/apply:builtins.eval [\"open('{marker}', 'w').close()\"]",
    "apply-Popen": "!!python/object/apply:subprocess.Popen [[touch, '{marker}']]",
    "name-os.system": "!!python/name:os.system",
    "module-os": "!!python/module:os",
}


@pytest.mark.parametrize("tag", YAML_TAGS.values(), ids=YAML_TAGS.keys())
def test_yaml_python_tag_runs_nothing_and_is_one_line(monkeypatch, capsys, tmp_path, tag):
    marker = tmp_path / "pwned"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"name: x\nrules:\n  sgdm:\n    lr: {tag.format(marker=marker)}\n")
    code, _, err = lrid(monkeypatch, capsys, "generate", sweep, "--store", tmp_path / "store")
    assert_one_line_error(code, err, "not valid YAML")
    settle("Popen" if "Popen" in tag else "")
    assert not marker.exists() and not (tmp_path / "store").exists()
    if "apply" in tag:  # control: an unsafe loader runs it
        assert run_unrestricted(f"import yaml; yaml.unsafe_load(open({str(sweep)!r}).read())", marker)
    else:  # control: an unsafe loader hands over the live object
        assert yaml.unsafe_load(sweep.read_text())["rules"]["sgdm"]["lr"] in (os.system, os)


# ---------------------------------------------------------------------------------------------------------
# Security: CIFAR-10 pickles


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_cifar10_batch_payload_runs_nothing(cifar, tmp_path, kind, protocol):  # noqa: F811 - the fixture
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(cifar["folder"], folder)
    marker = tmp_path / "pwned"
    batch = folder / "data_batch_3"
    write_pickle(batch, {b"data": payloads(marker)[kind], b"labels": [0]}, protocol)
    with pytest.raises(LridError, match=r"data_batch_3 .* not a valid CIFAR-10 pickle \(refused to load the global") as error:
        cifar10.load(data_dir=str(folder))
    assert "\n" not in str(error.value)
    settle(kind)
    assert not marker.exists()
    assert run_unrestricted(f"import pickle; pickle.loads(open({str(batch)!r}, 'rb').read())", marker)


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_cifar10_archive_payload_runs_nothing(cifar, tmp_path, kind):  # noqa: F811 - the fixture
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(cifar["folder"], folder)
    marker = tmp_path / "pwned"
    write_pickle(folder / "test_batch", {b"data": payloads(marker)[kind], b"labels": [0]}, pickle.DEFAULT_PROTOCOL)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    shutil.rmtree(folder)
    with pytest.raises(LridError, match=r"test_batch in .*\.tar\.gz is not a valid CIFAR-10 pickle \(refused to load the global") as error:
        cifar10.load(data_dir=str(archive))
    assert "\n" not in str(error.value)
    settle(kind)
    assert not marker.exists() and files_under(tmp_path) == ["cifar-10-python.tar.gz"]
    control = (f"import pickle, tarfile\nwith tarfile.open({str(archive)!r}) as tar:\n"
               "    pickle.loads(tar.extractfile('cifar-10-batches-py/test_batch').read())")
    assert run_unrestricted(control, marker)


# ---------------------------------------------------------------------------------------------------------
# Security: .npz recordings


@pytest.mark.parametrize("key", ["weight/dense", "run"])
@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_npz_object_array_runs_nothing_and_is_one_line(monkeypatch, capsys, tmp_path, kind, key):
    marker = tmp_path / "pwned"
    path = _synthetic(tmp_path)
    with np.load(path) as archive:
        contents = {name: archive[name] for name in archive.files}
    contents[key] = np.array([payloads(marker)[kind]], dtype=object)
    np.savez(path, **contents)
    code, _, err = lrid(monkeypatch, capsys, "identify", tmp_path / "model", path)
    assert_one_line_error(code, err, "is not a plain .npz archive", "pickled (object) data")
    settle(kind)
    assert not marker.exists()
    assert run_unrestricted(f"import numpy; numpy.load({str(path)!r}, allow_pickle=True)[{key!r}]", marker)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_renamed_npz_runs_nothing_and_is_one_line(monkeypatch, capsys, tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "recording.npz"
    path.write_bytes(pickle.dumps(payloads(marker)["os.system"], protocol=protocol))
    code, _, err = lrid(monkeypatch, capsys, "identify", tmp_path / "model", path)
    assert_one_line_error(code, err, "is not a plain .npz archive", "pickled (object) data")
    assert not marker.exists()
    assert run_unrestricted(f"import pickle; pickle.loads(open({str(path)!r}, 'rb').read())", marker)


# ---------------------------------------------------------------------------------------------------------
# Security: ../ in names


ESCAPE = "../../../../escaped"


@pytest.mark.parametrize("section, unknown", [
    ("rules: {{'{name}': {{}}}}", "unknown rule"),
    ("task: {{name: '{name}'}}\nrules: {{sgdm: {{}}}}", "unknown task"),
    ("model: {{arch: '{name}'}}\nrules: {{sgdm: {{}}}}", "unknown architecture"),
], ids=["rule", "task", "arch"])
def test_dotdot_name_in_a_sweep_writes_nothing(monkeypatch, capsys, tmp_path, section, unknown):
    root = tmp_path / "work"
    root.mkdir()
    sweep = root / "sweep.yaml"
    sweep.write_text("name: x\n" + section.format(name=ESCAPE) + "\n")
    code, _, err = lrid(monkeypatch, capsys, "generate", sweep, "--store", root / "store")
    assert_one_line_error(code, err, unknown, repr(ESCAPE))
    assert files_under(tmp_path) == ["work", "work/sweep.yaml"]


def test_dotdot_view_option_writes_nothing(monkeypatch, capsys, tmp_path):
    synthetic_store(tmp_path / "work" / "store")
    before = files_under(tmp_path)
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "work" / "store",
                        "--out", tmp_path / "work" / "results", "--classifiers", "linear", "--view", ESCAPE)
    assert_one_line_error(code, err, f"recorded view {ESCAPE!r}")
    assert files_under(tmp_path) == before


def test_dotdot_view_name_in_a_manifest_writes_nothing(monkeypatch, capsys, tmp_path):
    store = synthetic_store(tmp_path / "work" / "store")
    manifest = store.manifests()[0]
    victim = tmp_path / "work" / "store" / "runs" / f"{manifest['run_id']}.json"
    victim.write_text(victim.read_text().replace('"status"', f'"views": {{"{ESCAPE}": "views/x.parquet"}},\n  "status"'))
    before = files_under(tmp_path)
    code, _, err = lrid(monkeypatch, capsys, "robustness", "--store", tmp_path / "work" / "store",
                        "--out", tmp_path / "work" / "results", "--classifiers", "linear")
    assert_one_line_error(code, err, f"{victim.name} is malformed", "is not a plain name")
    assert files_under(tmp_path) == before


def test_dotdot_run_id_in_export_recording_writes_nothing(monkeypatch, capsys, tmp_path):
    synthetic_store(tmp_path / "work" / "store")
    before = files_under(tmp_path)
    code, _, err = lrid(monkeypatch, capsys, "export-recording", tmp_path / "work" / "store", ESCAPE,
                        tmp_path / "work" / "recording.npz")
    assert_one_line_error(code, err, f"run {ESCAPE!r} is not in")
    assert files_under(tmp_path) == before


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory):
    """A linear model saved by `classify` on a synthetic store (2 rules x 4 runs, 3 points, 2 layers)."""
    root = tmp_path_factory.mktemp("held_model")
    synthetic_store(root / "store", runs_per_rule=4)
    classify(root / "store", root / "results", classifiers=("linear",), n_splits=2, control=False, progress=False)
    return root / "results" / "models" / "linear"


def test_dotdot_names_in_a_recording_write_nothing(monkeypatch, capsys, tmp_path, linear_model):
    # A recording's run and layer names are labels: identifying it writes the --output file and nothing else.
    recording = two_layer_recording(run=ESCAPE, actchange=True)
    layer = f"{ESCAPE}/fc1"
    recording.layers = [layer, "fc2"]
    recording.arrays = {kind: {layer: arrays["fc1"], "fc2": arrays["fc2"]} for kind, arrays in recording.arrays.items()}
    path = write_recording(recording, tmp_path / "work" / "recording.npz")
    before = files_under(tmp_path)
    monkeypatch.setattr(sys, "argv", ["lrid", "identify", str(linear_model), str(path), "--output", str(tmp_path / "work" / "rules.csv")])
    cli.main()  # returns on success
    assert files_under(tmp_path) == sorted([*before, "work/rules.csv"])
    assert pd.read_csv(tmp_path / "work" / "rules.csv")["run_id"].tolist() == [ESCAPE]


# ---------------------------------------------------------------------------------------------------------
# Clear errors: one line through the CLI


BAD_SWEEPS = {
    "malformed-yaml": ("name: [unclosed\nrules: {sgdm: {}}\n", "not valid YAML at line"),
    "not-a-mapping": ("- sgdm\n- fa\n", "must be a YAML mapping"),
    "unknown-rule": ("name: x\nrules: {backprop: {}}\n", "unknown rule 'backprop'"),
    "unknown-key": ("name: x\nrules: {sgdm: {}}\ntrain: {epoch: 3}\n", "train.epoch: unknown key"),
    "unknown-grid-key": ("name: x\nrules: {sgdm: {}}\ngrid: {seed: [1, 2]}\n", "unknown grid key 'seed'"),
    "negative-number": ("name: x\nrules: {adam: {lr: -1}}\n", "lr: Input should be greater than 0"),
    "text-for-a-number": ("name: x\nrules: {sgdm: {lr: fast}}\n", "lr"),
    "fraction-for-a-count": ("name: x\nrules: {sgdm: {}}\ntrain: {epochs: 1.5}\n", "train.epochs"),
    "zero-batch-number": ("name: x\nrules: {sgdm: {}}\ntrain: {batch_size: 0}\n", "train.batch_size"),
    "nan-number": ("name: x\nrules: {sgdm: {lr: .nan}}\n", "lr"),
}


@pytest.mark.parametrize("text, message", BAD_SWEEPS.values(), ids=BAD_SWEEPS.keys())
def test_malformed_sweep_is_one_line(monkeypatch, capsys, tmp_path, text, message):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(text)
    code, _, err = lrid(monkeypatch, capsys, "generate", sweep, "--store", tmp_path / "store")
    assert_one_line_error(code, err, message, str(sweep))
    assert not (tmp_path / "store").exists()


def test_corrupt_parquet_in_the_store_is_one_line(monkeypatch, capsys, tmp_path):
    store = synthetic_store(tmp_path / "store")
    broken = tmp_path / "store" / store.manifests()[0]["observables"]
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 2])
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "store", "--out", tmp_path / "results",
                        "--classifiers", "linear", "--splits", "2")
    assert_one_line_error(code, err, f"observables file {broken} is unreadable", "re-run `lrid generate`")


@pytest.mark.parametrize("command", ["status", "classify"])
def test_truncated_manifest_is_one_line(monkeypatch, capsys, tmp_path, command):
    store = synthetic_store(tmp_path / "store")
    victim = tmp_path / "store" / "runs" / f"{store.manifests()[0]['run_id']}.json"
    victim.write_text(victim.read_text()[:40])
    args = [tmp_path / "store"] if command == "status" else ["--store", tmp_path / "store", "--out", tmp_path / "results"]
    code, _, err = lrid(monkeypatch, capsys, command, *args)
    assert_one_line_error(code, err, f"manifest {victim} is corrupt")


@pytest.mark.parametrize("runs_per_rule, rules, message", [
    (1, ("sgdm", "fa"), "rule 'fa' has only 1 complete run(s)"),
    (3, ("sgdm",), "identification needs at least two rules"),
], ids=["one-run-per-rule", "one-rule"])
def test_too_few_runs_for_a_split_is_one_line(monkeypatch, capsys, tmp_path, runs_per_rule, rules, message):
    synthetic_store(tmp_path / "store", rules=rules, runs_per_rule=runs_per_rule)
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "store", "--out", tmp_path / "results",
                        "--classifiers", "linear", "--splits", "2")
    assert_one_line_error(code, err, message)


# The malformed recordings of test_recordings.py, each through the CLI rather than the loader.
MALFORMED_NPZ = test_recordings.test_malformed_npz_is_one_clear_error.pytestmark[0].args[1]


@pytest.mark.parametrize("changes, message", MALFORMED_NPZ, ids=[message.replace("\\", "") for _, message in MALFORMED_NPZ])
def test_malformed_npz_recording_is_one_line(monkeypatch, capsys, tmp_path, changes, message):
    code, _, err = lrid(monkeypatch, capsys, "identify", tmp_path / "model", _synthetic(tmp_path, **changes))
    assert_one_line_error(code, err)
    assert err.startswith("error: ") and re.search(message, err), err


def _truncated_npz(path):
    good = _synthetic(path.parent).read_bytes()
    path.write_bytes(good[:200])


def _bit_flipped_npz(path):
    good = bytearray(_synthetic(path.parent).read_bytes())
    good[len(good) // 2] ^= 0xFF
    path.write_bytes(bytes(good))


UNREADABLE = {
    "truncated-npz": ("recording.npz", _truncated_npz, "is not a readable .npz file (File is not a zip file)"),
    "bit-flipped-npz": ("recording.npz", _bit_flipped_npz, "is not a readable .npz file (Bad CRC-32"),
    "text-as-npz": ("recording.npz", lambda path: path.write_text("steps,weight\n0,1\n"), ".npz"),
    "text-as-parquet": ("recording.parquet", lambda path: path.write_text("not parquet"), "is not a readable Parquet file"),
    "parquet-without-values": ("recording.parquet",
                               lambda path: pd.DataFrame({"step": [0], "layer": ["a"], "kind": ["act"]}).to_parquet(path),
                               "missing column(s) shape, values"),
    "parquet-unknown-kind": ("recording.parquet",
                             lambda path: pd.DataFrame({"step": [0, 1], "layer": ["a"] * 2, "kind": ["grad"] * 2,
                                                        "shape": [[1, 1]] * 2, "values": [[0.0]] * 2}).to_parquet(path),
                             "unknown kind(s) grad"),
    "wrong-suffix": ("recording.h5", lambda path: path.write_bytes(b"\x89HDF"), "neither .npz nor .parquet"),
}


@pytest.mark.parametrize("name, write, message", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_recording_is_one_line(monkeypatch, capsys, tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    code, _, err = lrid(monkeypatch, capsys, "identify", tmp_path / "model", path)
    assert_one_line_error(code, err, message)
