"""Saved classifiers in formats that load without running code: how ``lrid classify`` writes a fitted model
and how ``lrid identify`` reads it back.

A saved model NAME is a JSON sidecar ``NAME.json`` plus its model file(s), in ``RESULTS/models/``. The
sidecar records the classifier's name, its classes, its feature names, the
:func:`lrid.identify.features.build_features` keyword arguments that made its columns, the lrid version and
the ``format``, which says which files hold the model and how to read them:

* ``skops`` (linear, rf): ``NAME.skops``, a skops archive (a zip of a JSON schema and ``.npy`` arrays,
  deflated). Before anything is built, every type that the schema names is checked against
  :data:`TRUSTED_TYPES`, exactly the types lrid's own classifiers are made of; a file that names any
  other type is refused with the type's name (a registered classifier may add its own types, its
  entry's ``trusted_types``). The list then goes to ``skops.io.load`` as its explicit trusted list.
* ``xgboost`` (xgb): ``NAME.ubj``, XGBoost's own UBJSON model (the boosted trees plus the scikit-learn
  wrapper's attributes), read with ``XGBClassifier.load_model``.
* ``keras`` (conv1d): ``NAME.keras``, the network in Keras' native format, read with ``safe_mode=True`` and
  ``compile=False`` after checking that its config names only Keras' own modules (no custom or lambda
  layers), and ``NAME.skops`` for the estimator around it (hyperparameters, classes, the standardisation
  statistics), read as above.
* ``joblib``: the pickles that lrid wrote before these formats. Unpickling runs whatever code the file
  carries, so they load only with ``trust_pickle=True`` (``lrid identify --trust-pickle``), with a warning.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

import lrid
from lrid.errors import LridError
from lrid.identify.classifiers import CLASSIFIERS
from lrid.identify.features import FeatureSet
from lrid.schema import SetCalibration

SUFFIXES = {"skops": (".skops",), "xgboost": (".ubj",), "keras": (".skops", ".keras"), "joblib": (".joblib",)}
MODEL_SUFFIXES = frozenset(suffix for suffixes in SUFFIXES.values() for suffix in suffixes)

# Every type that the skops files of lrid's classifiers name: linear (with and without PCA, the searched
# variant), rf, and the conv1d estimator around its network. tests/test_hardening_models.py checks that
# freshly fitted classifiers name exactly these.
TRUSTED_TYPES = (
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "sklearn.decomposition._pca.PCA",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "lrid.identify.conv1d.Conv1DClassifier",
)


class Sidecar(BaseModel):
    """The JSON sidecar of a saved model (see the module docstring)."""

    classifier: str
    classes: list[str]
    feature_names: list[str]
    feature_options: dict[str, Any]
    lrid_version: str
    format: Literal["skops", "xgboost", "keras", "joblib"]
    # Absent from models saved before prediction sets, and from any saved without calibration.
    prediction_sets: SetCalibration | None = None
    # The partial layers (lrid.identify.partial_layers) it was also trained on; none before they existed.
    partial_layers: list[str] = Field(default_factory=list)


def save_model(
    estimator: Any,
    directory: Path,
    name: str,
    classes: list[str],
    features: FeatureSet,
    partial_layers: Sequence[str] = (),
    prediction_sets: SetCalibration | None = None,
) -> Path:
    """Save a fitted classifier as ``directory/name.*`` with its sidecar; return the sidecar's path.

    ``prediction_sets``, the calibration of the model's prediction sets, goes into the sidecar, where
    :func:`lrid.identify.inference.identify` reads it; so do ``partial_layers``, the choices of layers it was
    also trained on (:mod:`lrid.identify.partial_layers`).

    The format follows the estimator's type: XGBoost's UBJSON for an ``XGBClassifier``, a ``.keras`` network
    plus a skops estimator for :class:`lrid.identify.conv1d.Conv1DClassifier`, skops for everything else.
    """
    import skops.io

    from lrid.identify.conv1d import Conv1DClassifier

    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / name
    if type(estimator).__name__ == "XGBClassifier":
        file_format = "xgboost"
        estimator.save_model(stem.with_name(f"{name}.ubj"))
    elif isinstance(estimator, Conv1DClassifier):
        file_format = "keras"
        # The estimator without its network goes to skops; building the shell directly avoids copy.copy,
        # which would serialise the network through __getstate__.
        shell = object.__new__(Conv1DClassifier)
        shell.__dict__.update({key: value for key, value in estimator.__dict__.items() if key != "model_"})
        skops.io.dump(shell, stem.with_name(f"{name}.skops"), compression=zipfile.ZIP_DEFLATED)
        estimator.model_.save(stem.with_name(f"{name}.keras"))
    else:
        file_format = "skops"
        skops.io.dump(estimator, stem.with_name(f"{name}.skops"), compression=zipfile.ZIP_DEFLATED)
    # Files of another format under the same name (a pickle from an older lrid) would contradict the sidecar.
    for suffix in MODEL_SUFFIXES - set(SUFFIXES[file_format]):
        stem.with_name(f"{name}{suffix}").unlink(missing_ok=True)
    sidecar = Sidecar(
        classifier=name,
        classes=classes,
        feature_names=features.feature_names,
        feature_options=features.options,
        lrid_version=lrid.__version__,
        format=file_format,
        prediction_sets=prediction_sets,
        partial_layers=list(dict.fromkeys(partial_layers)),
    )
    sidecar_path = stem.with_name(f"{name}.json")
    sidecar_path.write_text(json.dumps(sidecar.model_dump(), indent=2))  # last: a sidecar means a whole model
    return sidecar_path


def load_fitted(path: str | Path, *, trust_pickle: bool = False) -> tuple[Any, dict[str, Any]]:
    """The fitted estimator saved at ``path`` and its sidecar dict.

    ``path`` is any of the model's files (``NAME.skops``, ``.ubj``, ``.keras``, ``.joblib`` or ``.json``) or
    its name without suffix; the sidecar's ``format`` decides how it is read (see the module docstring).
    Pickles (``format: joblib``) load only with ``trust_pickle=True``, and then with a :class:`PickleWarning`.
    """
    stem = _stem(Path(path))
    sidecar_path = stem.with_name(f"{stem.name}.json")
    if not sidecar_path.exists():
        if any(stem.with_name(stem.name + suffix).exists() for suffix in MODEL_SUFFIXES):
            raise LridError(
                f"the model {stem} has no sidecar {sidecar_path.name}; re-run `lrid classify` to write both"
            )
        raise LridError(
            f"no saved model at {path}; give RESULTS/models/NAME (or one of its files) written by `lrid classify`"
        )
    sidecar = read_sidecar(sidecar_path)
    files = [stem.with_name(stem.name + suffix) for suffix in SUFFIXES[sidecar.format]]
    for file in files:
        if not file.exists():
            raise LridError(f"the model file {file} named by {sidecar_path.name} is missing; re-run `lrid classify`")
    if sidecar.format == "skops":
        estimator = _load_skops(files[0])
    elif sidecar.format == "xgboost":
        estimator = _load_xgboost(files[0])
    elif sidecar.format == "keras":
        from lrid.identify.conv1d import Conv1DClassifier

        estimator = _load_skops(files[0])
        if not isinstance(estimator, Conv1DClassifier):
            raise LridError(
                f"{files[0]} does not hold a conv1d estimator, as {sidecar_path.name} says; re-run `lrid classify`"
            )
        estimator.model_ = _load_keras(files[1])
    else:
        estimator = _load_pickle(files[0], trust_pickle)
    # Trusted types can still be put together into something that is not a classifier.
    if not (callable(getattr(estimator, "predict_proba", None)) and hasattr(estimator, "classes_")):
        raise LridError(f"{files[0]} does not hold a fitted classifier; re-run `lrid classify`")
    return estimator, sidecar.model_dump()


class PickleWarning(UserWarning):
    """A model was read from a pickle, which could have run any code it carried."""


def _stem(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in MODEL_SUFFIXES | {".json"} else path


def read_sidecar(path: Path) -> Sidecar:
    """The validated sidecar at ``path``; a missing key or a malformed file is a one-line error naming it."""
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as error:
        raise LridError(f"cannot read the model sidecar {path} ({error}); re-run `lrid classify`") from None
    try:
        return Sidecar.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        if first["type"] == "missing":
            raise LridError(
                f"the model sidecar {path} lacks the key '{key}'; re-run `lrid classify` to write it"
            ) from None
        raise LridError(f"the model sidecar {path} has a bad '{key}': {first['msg']}; re-run `lrid classify`") from None


def schema_types(schema: Any) -> set[str]:
    """Every ``module.name`` that a skops schema asks for: each node names the type it builds."""
    return {
        f"{node.get('__module__')}.{node.get('__class__')}"
        for node in _dicts(schema)
        if "__class__" in node or "__module__" in node
    }


def _dicts(document):
    """Every dict nested in a parsed JSON document, without recursion (a hostile file can nest deeply)."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _json_member(path: Path, member: str):
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(member))
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, RecursionError, ValueError) as error:
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: BaseException) -> LridError:
    lines = str(error).strip().splitlines()
    return LridError(
        f"cannot load the model file {path} ({type(error).__name__}: {lines[0] if lines else ''}); "
        "re-run `lrid classify`"
    )


def _load_skops(path: Path):
    import skops.io

    trusted = set(TRUSTED_TYPES).union(*(entry.trusted_types for entry in CLASSIFIERS.values()))
    untrusted = sorted(schema_types(_json_member(path, "schema.json")) - trusted)
    if untrusted:
        raise LridError(
            f"the model file {path} asks for the type {', '.join(untrusted)}, which is not one of lrid's classifiers' "
            "types; refusing to load it (use a model written by `lrid classify`)"
        )
    try:
        return skops.io.load(path, trusted=sorted(trusted))
    except Exception as error:  # noqa: BLE001 - a damaged archive can fail in many ways; all mean the same
        raise _unreadable(path, error) from None


def _load_xgboost(path: Path):
    from xgboost import XGBClassifier

    estimator = XGBClassifier()
    try:
        estimator.load_model(path)
    except Exception as error:  # noqa: BLE001 - XGBoostError and friends: the file is not a model
        raise _unreadable(path, error) from None
    return estimator


def _load_keras(path: Path):
    from lrid.lazy_import import keras

    # Keras resolves each layer from its config's module and registered name; safe mode forbids lambdas, and
    # this check keeps the lookup inside Keras (lrid's conv1d network uses only built-in layers).
    named = set()
    for node in _dicts(_json_member(path, "config.json")):
        if isinstance(node.get("module"), str):
            named.add(node["module"])
        if node.get("registered_name") not in (None, node.get("class_name")):
            named.add(str(node["registered_name"]))
    foreign = sorted(name for name in named if name != "keras" and not name.startswith("keras."))
    if foreign:
        raise LridError(
            f"the Keras model {path} asks for {', '.join(foreign)}, which is not part of Keras; refusing to load it "
            "(use a model written by `lrid classify`)"
        )
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad file
        raise _unreadable(path, error) from None


def _load_pickle(path: Path, trust_pickle: bool):
    if not trust_pickle:
        raise LridError(
            f"{path} is a pickle, and loading it would run any code it carries; re-run `lrid classify` to save the "
            "model in a safe format, or pass --trust-pickle (in Python: trust_pickle=True) if you trust its source"
        )
    import joblib

    warnings.warn(f"loading the pickle {path}: it could have run any code it carried", PickleWarning, stacklevel=3)
    try:
        saved = joblib.load(path)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise _unreadable(path, error) from None
    return saved["model"] if isinstance(saved, dict) else saved
