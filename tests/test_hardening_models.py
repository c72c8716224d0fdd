"""Model files safe to share (hardening issue, item 6): saved classifiers load without running code.

Round trips per classifier, `lrid identify` end to end on saved files, tampered skops and Keras files, old
`.joblib` pickles behind --trust-pickle, and malformed sidecars."""

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.decomposition import PCA

from lrid.errors import LridError
from lrid.identify import classify, identify, load_fitted
from lrid.identify.classifiers import make_classifier
from lrid.identify.model_files import TRUSTED_TYPES, PickleWarning, save_model, schema_types
from lrid.store import Store

LRID = shutil.which("lrid") or str(Path(sys.executable).parent / "lrid")
N_POINTS = 6


@pytest.fixture(scope="module")
def data():
    """Synthetic features in lrid's layout (7 observables x 6 points + 3 depth columns), 4 classes, a NaN."""
    rng = np.random.default_rng(0)
    y = np.arange(80) % 4
    X = rng.normal(size=(80, 7 * N_POINTS + 3)) + y[:, None] * 0.3
    X[0, 0] = np.nan
    features = SimpleNamespace(feature_names=[f"f{i}" for i in range(X.shape[1])], options={"subset": "all"})
    return X, y, features


@pytest.fixture(scope="module")
def saved(tiny_store, tmp_path_factory):
    """linear, rf and xgb saved by `classify` on the tiny store."""
    out = tmp_path_factory.mktemp("hardening_results")
    classify(tiny_store, out, classifiers=("linear", "rf", "xgb"), n_splits=2, control=False, progress=False)
    return out / "models"


def _schema(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("schema.json"))


def _one_line_error(call) -> str:
    with pytest.raises(LridError) as error:
        call()
    assert "\n" not in str(error.value)
    return str(error.value)


@pytest.mark.parametrize("name,suffixes", [("linear", {".skops"}), ("rf", {".skops"}), ("xgb", {".ubj"})])
def test_saved_model_gives_identical_probabilities(data, tmp_path, name, suffixes):
    X, y, features = data
    estimator = make_classifier(name).fit(X, y)
    save_model(estimator, tmp_path, name, list("abcd"), features)
    assert {p.suffix for p in tmp_path.iterdir()} == suffixes | {".json"}
    loaded, sidecar = load_fitted(tmp_path / name)
    assert type(loaded) is type(estimator) and loaded is not estimator
    assert np.array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
    assert sidecar["classes"] == list("abcd") and sidecar["feature_names"] == features.feature_names


def test_conv1d_saves_a_keras_network_and_gives_identical_probabilities(data, tmp_path):
    X, y, features = data
    estimator = make_classifier("conv1d", n_points=N_POINTS).set_params(epochs=3).fit(X, y)
    save_model(estimator, tmp_path, "conv1d", list("abcd"), features)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv1d.json", "conv1d.keras", "conv1d.skops"]
    assert schema_types(_schema(tmp_path / "conv1d.skops")) <= set(TRUSTED_TYPES)
    loaded, sidecar = load_fitted(tmp_path / "conv1d.keras")
    assert sidecar["format"] == "keras"
    assert np.array_equal(loaded.predict_proba(X), estimator.predict_proba(X))


def test_trusted_types_are_exactly_those_of_lrids_classifiers(data):
    X, y, _ = data
    fitted = [
        make_classifier("linear").fit(X, y),
        make_classifier("linear").set_params(pca=PCA(n_components=0.9, svd_solver="full")).fit(X, y),  # --search
        make_classifier("rf").set_params(n_estimators=5).fit(X, y),
    ]
    named = set().union(*(schema_types(_schema(io.BytesIO(skops.io.dumps(m)))) for m in fitted))
    # conv1d's estimator adds only its own class (its round trip checks the rest of its file).
    assert named | {"lrid.identify.conv1d.Conv1DClassifier"} == set(TRUSTED_TYPES)


def test_identify_command_reads_the_saved_files(saved, tiny_store, tmp_path):
    assert sorted(p.name for p in saved.iterdir()) == [
        "linear.json", "linear.skops", "rf.json", "rf.skops", "xgb.json", "xgb.ubj"
    ]
    observables = Store(tiny_store).read_observables()
    for model in ("rf", "xgb.ubj"):  # by name and by file; linear is read the same way as rf
        output = tmp_path / f"{model}.csv"
        result = subprocess.run([LRID, "identify", str(saved / model), str(tiny_store), "--output", str(output)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "predicted rule per run (24 runs)" in result.stdout
        table = pd.read_csv(output).set_index("run_id")
        direct = identify(saved / model, observables).set_index("run_id")
        assert (table["predicted"] == direct.loc[table.index, "predicted"]).all()
        assert (table["predicted"] == table["rule"]).mean() > 0.5  # chance is 0.25


def _with_payload(path: Path, payload: dict) -> None:
    """Rewrite a skops archive of the linear pipeline with ``payload`` where the imputer's strategy was."""
    schema = _schema(path)
    imputer = schema["content"]["content"]["steps"]["content"][0]["content"][1]
    imputer["content"]["content"]["strategy"] = payload
    with zipfile.ZipFile(path) as old:
        items = {item: old.read(item) for item in old.namelist()}
    items["schema.json"] = json.dumps(schema)
    with zipfile.ZipFile(path, "w") as new:
        for item, content in items.items():
            new.writestr(item, content)


def test_a_skops_file_asking_for_an_untrusted_type_is_refused_and_runs_nothing(data, tmp_path):
    X, y, features = data
    save_model(make_classifier("linear").fit(X, y), tmp_path, "linear", list("abcd"), features)
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    argument = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(code), "is_json": True}
    payload = {
        "__class__": "eval", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [argument]},
    }
    _with_payload(tmp_path / "linear.skops", payload)
    message = _one_line_error(lambda: load_fitted(tmp_path / "linear"))
    assert "builtins.eval" in message and "refusing" in message
    assert not marker.exists()
    # The payload is live: a loader that trusted builtins.eval would have run it.
    skops.io.load(tmp_path / "linear.skops", trusted=[*TRUSTED_TYPES, "builtins.eval"])
    assert marker.exists()


def test_a_scikit_learn_type_that_lrid_does_not_use_is_refused(data, tmp_path):
    from sklearn.svm import SVC

    X, y, features = data
    save_model(SVC().fit(X[:, 1:], y), tmp_path, "linear", list("abcd"), features)
    assert "sklearn.svm._classes.SVC" in _one_line_error(lambda: load_fitted(tmp_path / "linear.skops"))


def test_a_keras_network_naming_a_foreign_module_is_refused(data, tmp_path):
    from lrid.identify.conv1d import Conv1DClassifier

    _, _, features = data
    skops.io.dump(Conv1DClassifier(), tmp_path / "conv1d.skops")
    sidecar = {"classifier": "conv1d", "classes": list("abcd"), "feature_names": features.feature_names,
               "feature_options": features.options, "lrid_version": "0", "format": "keras"}
    (tmp_path / "conv1d.json").write_text(json.dumps(sidecar))
    config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [
        {"module": "os", "class_name": "system", "config": {}, "registered_name": None}]}}
    with zipfile.ZipFile(tmp_path / "conv1d.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    message = _one_line_error(lambda: load_fitted(tmp_path / "conv1d"))
    assert "asks for os," in message and "not part of Keras" in message


class _OpenOnUnpickle:
    """Unpickling this creates a file: the harm a shared pickle could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _legacy_model(directory: Path, sidecar: dict, model) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump({"model": model, "classes": sidecar["classes"], "feature_names": sidecar["feature_names"]},
                directory / "linear.joblib")
    (directory / "linear.json").write_text(json.dumps({**sidecar, "format": "joblib"}))
    return directory / "linear.joblib"


def test_a_joblib_model_needs_trust_pickle(saved, tiny_store, tmp_path):
    sidecar = json.loads((saved / "linear.json").read_text())
    marker = tmp_path / "pwned"
    hostile = _legacy_model(tmp_path / "hostile", sidecar, _OpenOnUnpickle(marker))
    message = _one_line_error(lambda: load_fitted(hostile))
    assert "pickle" in message and "--trust-pickle" in message
    assert not marker.exists()

    estimator, _ = load_fitted(saved / "linear")
    legacy = _legacy_model(tmp_path / "legacy", sidecar, estimator)
    refused = subprocess.run([LRID, "identify", str(legacy), str(tiny_store)], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--trust-pickle" in refused.stderr
    trusted = subprocess.run([LRID, "identify", str(legacy), str(tiny_store), "--trust-pickle"],
                             capture_output=True, text=True, timeout=300)
    assert trusted.returncode == 0, trusted.stderr
    warning = next(line for line in trusted.stderr.splitlines() if line.startswith("warning:"))
    assert "loading the pickle" in warning and "could have run any code" in warning
    assert "predicted rule per run (24 runs)" in trusted.stdout
    with pytest.warns(PickleWarning):
        loaded, _ = load_fitted(legacy, trust_pickle=True)
    X = np.random.default_rng(1).normal(size=(5, len(sidecar["feature_names"])))
    assert np.array_equal(loaded.predict_proba(X), estimator.predict_proba(X))


def test_a_sidecar_without_feature_names_is_one_line(data, tmp_path):
    X, y, features = data
    save_model(make_classifier("linear").fit(X, y), tmp_path, "linear", list("abcd"), features)
    sidecar = json.loads((tmp_path / "linear.json").read_text())
    del sidecar["feature_names"]
    (tmp_path / "linear.json").write_text(json.dumps(sidecar))
    message = _one_line_error(lambda: load_fitted(tmp_path / "linear"))
    assert str(tmp_path / "linear.json") in message and "lacks the key 'feature_names'" in message
    (tmp_path / "linear.json").write_text(json.dumps({**sidecar, "feature_names": "f0", "format": "pickle"}))
    assert "bad 'feature_names'" in _one_line_error(lambda: load_fitted(tmp_path / "linear"))
    (tmp_path / "linear.json").write_text("{not json")
    assert "cannot read the model sidecar" in _one_line_error(lambda: load_fitted(tmp_path / "linear"))


def test_a_skops_file_of_trusted_types_that_is_no_classifier_is_refused(data, tmp_path):
    X, y, features = data
    save_model(make_classifier("linear").fit(X, y), tmp_path, "linear", list("abcd"), features)
    skops.io.dump({"steps": ["impute", "scale"]}, tmp_path / "linear.skops")
    assert "does not hold a fitted classifier" in _one_line_error(lambda: load_fitted(tmp_path / "linear"))
