"""Hardening probes for the store: malformed manifests, paths outside the store, a store path that is a
file, strict JSON manifests, and runs that trained to the end without learning (collapsed).

One test per probe case, so ``pytest -v`` prints one PASS/FAIL line per case.
"""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lrid.config import ModelSpec, RuleSpec, RunSpec, TrainSpec
from lrid.errors import LridError
from lrid.generate.trainer import collapse_reason, train_run
from lrid.schema import json_safe
from lrid.store import Store

MANIFEST_SHAPES = {
    "a_list": [],
    "no_spec": {"run_id": "abc", "status": "complete"},
    "no_status": {"run_id": "abc", "spec": {"task": {"name": "digits"}, "model": {"arch": "mlp"}, "rule": {"name": "sgdm"}}},
    "no_run_id": {"status": "complete", "spec": {"task": {"name": "digits"}, "model": {"arch": "mlp"}, "rule": {"name": "sgdm"}}},
    "unknown_status": {"run_id": "abc", "status": "great",
                       "spec": {"task": {"name": "digits"}, "model": {"arch": "mlp"}, "rule": {"name": "sgdm"}}},
    "spec_a_string": {"run_id": "abc", "status": "complete", "spec": "sgdm"},
}


def _lrid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lrid.cli", *args], capture_output=True, text=True, timeout=300)


def _copy(store: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(store, root)
    return root


@pytest.mark.parametrize("shape", sorted(MANIFEST_SHAPES))
def test_manifest_of_the_wrong_shape_is_one_line_naming_the_file(tmp_path, shape):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "abc.json").write_text(json.dumps(MANIFEST_SHAPES[shape]))
    with pytest.raises(LridError, match=r"abc\.json is malformed .*re-run `lrid generate`") as caught:
        Store(tmp_path).manifests()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("command", ["status", "classify", "identify", "generate"])
def test_malformed_manifest_is_one_line_in_every_command(tiny_store, tiny_sweep_file, tmp_path, command):
    root = _copy(tiny_store, tmp_path)
    victim = sorted((root / "runs").glob("*.json"))[0]
    victim.write_text(json.dumps({"run_id": victim.stem, "status": "complete"}))
    args = {
        "status": ["status", str(root)],
        "classify": ["classify", "--store", str(root), "--out", str(tmp_path / "results"), "--classifiers", "linear"],
        "identify": ["identify", str(tmp_path / "no-model.joblib"), str(root)],
        "generate": ["generate", str(tiny_sweep_file), "--store", str(root), "--backend", "sequential"],
    }[command]
    result = _lrid(*args)
    assert result.returncode != 0
    if command != "identify":  # identify may first refuse the missing model; either way, no traceback
        assert f"{victim.name} is malformed" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("path", ["/etc/passwd", "../../secret.parquet", "observables/../../x.parquet", "runs/x.parquet"])
def test_manifest_observables_path_outside_the_store_is_refused(tiny_store, tmp_path, path):
    root = _copy(tiny_store, tmp_path)
    victim = sorted((root / "runs").glob("*.json"))[0]
    manifest = json.loads(victim.read_text())
    victim.write_text(json.dumps({**manifest, "observables": path}))
    with pytest.raises(LridError, match="is not inside the store") as caught:
        Store(root).read_observables()
    # The message must not tell whether the named file exists.
    assert "unreadable" not in str(caught.value) and "No such file" not in str(caught.value)


def test_manifest_view_path_outside_the_store_is_refused(tiny_store, tmp_path):
    root = _copy(tiny_store, tmp_path)
    victim = sorted((root / "runs").glob("*.json"))[0]
    manifest = json.loads(victim.read_text())
    victim.write_text(json.dumps({**manifest, "views": {"u0.5_n0": "/tmp/elsewhere.parquet"}}))
    with pytest.raises(LridError, match="is not inside the store"):
        Store(root, view="u0.5_n0").read_observables()


def test_manifest_run_id_with_path_separators_is_refused(tmp_path):
    (tmp_path / "runs").mkdir()
    document = {"run_id": "../../x", "status": "complete",
                "spec": {"task": {"name": "digits"}, "model": {"arch": "mlp"}, "rule": {"name": "sgdm"}}}
    (tmp_path / "runs" / "x.json").write_text(json.dumps(document))
    with pytest.raises(LridError, match="x.json is malformed .*not a plain name"):
        Store(tmp_path).manifests()


def test_manifest_whose_run_id_differs_from_its_file_name_is_refused(tiny_store, tmp_path):
    root = _copy(tiny_store, tmp_path)
    first, second = sorted((root / "runs").glob("*.json"))[:2]
    second.write_text(first.read_text())  # a copied manifest would make one run appear twice
    with pytest.raises(LridError, match=f"{second.name} is malformed .*does not match the file name"):
        Store(root).manifests()


@pytest.mark.parametrize("backend", ["sequential", "process"])
@pytest.mark.parametrize("where", ["is_a_file", "under_a_file"])
def test_store_path_that_is_a_file_is_one_line(tiny_sweep_file, tmp_path, backend, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    store = blocker if where == "is_a_file" else blocker / "store"
    result = _lrid("generate", str(tiny_sweep_file), "--store", str(store), "--backend", backend)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "file" in result.stderr and str(blocker) in result.stderr
    assert blocker.read_text() == "a file, not a directory"


def test_status_of_a_store_path_that_is_a_file_is_an_error_not_an_empty_table(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result = _lrid("status", str(blocker))
    assert result.returncode != 0 and "is a file" in result.stderr, result
    assert "runs in" not in result.stdout


def test_manifests_are_strict_json_with_null_for_non_finite_numbers(tmp_path):
    spec = RunSpec(rule=RuleSpec(name="sgdm", hparams={"lr": 1e5}), model=ModelSpec(activation="relu"),
                   train=TrainSpec(epochs=2, batch_size=32))
    result = train_run(spec)
    assert result.manifest["status"] == "diverged"
    assert not math.isfinite(result.manifest["final_train_loss"])
    store = Store(tmp_path)
    store.write_run(result.observables, result.manifest)

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    text = Path(store.manifest_path(spec.run_id)).read_text()
    strict = json.loads(text, parse_constant=refuse)  # what jq and JavaScript accept
    assert strict["final_train_loss"] is None
    assert store.manifests()[0]["status"] == "diverged"


def test_old_manifests_with_nan_still_load(tiny_store, tmp_path):
    root = _copy(tiny_store, tmp_path)
    victim = sorted((root / "runs").glob("*.json"))[0]
    manifest = json.loads(victim.read_text())
    victim.write_text(json.dumps({**manifest, "final_train_loss": float("nan")}))  # json.dumps writes NaN
    assert "NaN" in victim.read_text()
    loaded = {m["run_id"]: m for m in Store(root).manifests()}[victim.stem]
    assert math.isnan(loaded["final_train_loss"])


def test_json_safe_replaces_only_non_finite_floats():
    value = {"a": [1.0, float("inf"), {"b": float("nan")}], "c": "NaN", "d": 3, "e": (float("-inf"),)}
    assert json_safe(value) == {"a": [1.0, None, {"b": None}], "c": "NaN", "d": 3, "e": [None]}


def test_collapse_criterion():
    # Learned: loss fell and accuracy is well above chance.
    assert collapse_reason("accuracy", 10, 0.9, initial_loss=2.3, last_loss=0.3) is None
    # Loss rose (the lr 1e6 case): collapsed whatever the accuracy.
    assert "did not fall" in collapse_reason("accuracy", 10, 0.5, initial_loss=2.3, last_loss=1.7e7)
    # Loss fell a little but accuracy stayed near chance (threshold 0.1 + 0.1 * 0.9 = 0.19).
    assert "below 0.190" in collapse_reason("accuracy", 10, 0.18, initial_loss=2.3, last_loss=2.2)
    assert collapse_reason("accuracy", 10, 0.20, initial_loss=2.3, last_loss=2.2) is None
    # Regression tasks are judged on the loss alone.
    assert collapse_reason("mse", 1, 5.0, initial_loss=1.0, last_loss=0.5) is None
    assert collapse_reason("mse", 1, 0.1, initial_loss=1.0, last_loss=float("nan")) is not None


def test_a_run_with_a_huge_learning_rate_ends_collapsed_not_complete(tmp_path):
    spec = RunSpec(rule=RuleSpec(name="sgdm", hparams={"lr": 1e6}), model=ModelSpec(hidden=(32, 32)),
                   train=TrainSpec(epochs=2, batch_size=64))
    result = train_run(spec)
    assert result.manifest["status"] == "collapsed", result.manifest.get("collapse_reason")
    assert result.manifest["collapse_reason"]
    assert result.manifest["final_test_accuracy"] is not None
    store = Store(tmp_path)
    store.write_run(result.observables, result.manifest)
    assert store.read_observables().empty  # left out of classification by default
    assert len(store.read_observables(("complete", "collapsed"))) == len(result.observables)
    status = _lrid("status", str(tmp_path))
    assert status.returncode == 0 and "collapsed" in status.stdout, status


def test_classify_leaves_collapsed_runs_out_unless_kept(tiny_store, tmp_path):
    from lrid.identify import classify

    root = _copy(tiny_store, tmp_path)
    manifests = sorted((root / "runs").glob("*.json"))
    sgdm = [p for p in manifests if json.loads(p.read_text())["spec"]["rule"]["name"] == "sgdm"][:2]
    for path in sgdm:
        manifest = json.loads(path.read_text())
        path.write_text(json.dumps({**manifest, "status": "collapsed", "collapse_reason": "test"}))
    default = classify(root, tmp_path / "default", classifiers=("linear",), n_splits=2, control=False, progress=False)
    kept = classify(root, tmp_path / "kept", classifiers=("linear",), n_splits=2, control=False, progress=False,
                    keep_collapsed=True)
    assert default.n_runs == len(manifests) - 2 and kept.n_runs == len(manifests)
    assert kept.settings.keep_collapsed is True and default.settings.keep_collapsed is False


def test_status_of_a_missing_store_is_an_error_not_an_empty_table(tmp_path):
    result = _lrid("status", str(tmp_path / "nowhere"))
    assert result.returncode != 0 and "no store at" in result.stderr, result
    assert len(result.stderr.strip().splitlines()) == 1


def test_classify_takes_a_file_uri_store(tiny_store, tmp_path):
    result = _lrid("classify", "--store", f"file://{tiny_store}", "--out", str(tmp_path / "r"), "--classifiers", "linear",
                   "--splits", "2", "--no-control")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r" / "scores.json").read_text())["settings"]["store"] == f"file://{tiny_store}"
