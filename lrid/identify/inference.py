"""Apply a saved classifier to new trajectories: which rule trained these networks?

``lrid classify`` saves each model as a JSON sidecar ``models/NAME.json`` holding the classifier's name, its
classes, its feature names, the exact :func:`lrid.identify.features.build_features` keyword arguments that
made its columns and the file format, next to the model file(s) (:mod:`lrid.identify.model_files`).
:func:`identify` rebuilds those columns from new observables, checks that they are the same (same
observables, time points and depth groups), and predicts.

For a layer-level model each run's prediction averages its layers' class probabilities (every measured
layer is one noisy view of the same rule, and averaging probabilities keeps the per-layer confidence that a
majority vote would throw away); the predicted rule is the most probable class of the average.

Model files load without running code: skops archives are checked against an explicit list of lrid's own
types, XGBoost and Keras models are read by their own loaders (Keras in safe mode). The ``.joblib`` pickles of
older lrid versions load only with ``trust_pickle=True`` (``lrid identify --trust-pickle``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lrid.errors import LridError
from lrid.identify.features import build_features
from lrid.identify.model_files import load_fitted
from lrid.identify.prediction_sets import prediction_sets, thresholds_for
from lrid.identify.schedules import points_per_run
from lrid.schema import SetCalibration

__all__ = ["among_candidates", "check_candidates", "identify", "load_fitted", "read_input"]


def read_input(location: str | Path) -> pd.DataFrame:
    """Observables in the store's long format from an lrid store (directory or URI), a recording file, or a
    directory of recording files (``.npz``/``.parquet``, one network or more each).

    A store gives its complete runs. Recordings go to ``lrid.identify.recording.read_recording``; run names
    must be unique across the files of a directory.
    """
    from lrid.store import Store

    text = str(location)
    recordings = _recording_files(text)
    if "://" in text or (Path(text).is_dir() and not recordings):
        observables = Store(text).read_observables(("complete",))
        if observables.empty:
            raise LridError(
                f"{text} holds no complete runs and no recordings; give an lrid store written by `lrid generate`, "
                "a recording file, or a directory of .npz/.parquet recordings"
            )
        return observables
    if not Path(text).exists():
        raise LridError(f"input {text} does not exist; give an lrid store directory or a recording file")
    from lrid.identify.recording import read_recording

    if not Path(text).is_dir():
        return read_recording(text)
    frames = [read_recording(path) for path in tqdm(recordings, desc="read recordings", unit="file", disable=None)]
    first_file: dict[str, Path] = {}
    for path, frame in zip(recordings, frames):
        for run in frame["run_id"].unique():
            if run in first_file:
                raise LridError(
                    f"run name {run!r} is in both {first_file[run].name} and {path.name}; give each network its own name"
                )
            first_file[run] = path
    return pd.concat(frames, ignore_index=True)


def among_candidates(probabilities: pd.DataFrame, candidates: Sequence[str]) -> pd.DataFrame:
    """Each row's probabilities of the ``candidates`` columns, renormalised to sum to one: conditioned on one of
    them being the rule. A row that gives none of them any probability gets them all equally."""
    kept = probabilities[list(candidates)]
    return kept.div(kept.sum(axis=1).where(lambda total: total > 0), axis=0).fillna(1.0 / len(candidates))


def check_candidates(candidates: Sequence[str], classes: Sequence[str]) -> list[str]:
    """The candidate rules in the model's class order; a one-line error if one is not the model's or too few."""
    unknown = [rule for rule in candidates if rule not in classes]
    if unknown:
        raise LridError(
            f"candidate rule(s) {', '.join(unknown)} are not among the model's rules ({', '.join(classes)}); "
            "give --rules from those"
        )
    if len(set(candidates)) < 2:
        raise LridError(f"--rules {','.join(candidates)} names fewer than two rules; give at least two candidates")
    return [rule for rule in classes if rule in set(candidates)]


def _recording_files(location: str) -> list[Path]:
    """The recording files directly inside ``location`` if it is a local directory that is not a store."""
    path = Path(location)
    if "://" in location or not path.is_dir() or (path / "runs").is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.suffix in (".npz", ".parquet") and p.is_file())


def identify(
    model_path: str | Path,
    observables: pd.DataFrame,
    *,
    trust_pickle: bool = False,
    candidates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per run: the predicted rule and one probability column per class, from a model saved by ``classify``.

    ``observables`` is the store's long format (:meth:`lrid.store.Store.read_observables`, or
    :func:`read_input`). Returns one row per run: ``run_id``, ``predicted``, a column per class holding its
    probability, ``n_samples`` (layers averaged), and ``rule`` (the true rule) when the input has it.
    Features that differ from the model's (other observables, time points or layers) are an error.
    ``trust_pickle`` allows a ``.joblib`` model of an older lrid (see :func:`load_fitted`).

    ``candidates``, a subset of the model's rules, asks which of those rules trained each run: the
    probabilities of the other rules are dropped and the rest renormalised, which is the model's posterior
    once the prior is restricted to the candidates (an experimenter testing a few hypotheses). The columns
    are then the candidates only; a run given none of them any probability gets them all equally.

    A model saved with calibrated prediction sets (its sidecar's ``prediction_sets``) adds two columns:
    ``prediction_set``, the rules it cannot rule out for the run (:func:`lrid.identify.prediction_sets.prediction_sets`),
    most probable first and comma-separated, and ``set_coverage``, the share of held-out runs whose sets held
    the true rule. A run recorded at fewer checkpoints than the model's calibration runs gets the threshold
    calibrated at its number of points, where the model has one, and a run recorded at some of its network's
    layers the one calibrated on runs seen so, where the model was trained on them (``lrid classify
    --partial-layers``; :func:`lrid.identify.prediction_sets.thresholds_for`). Among ``candidates`` the same
    threshold applies to the renormalised probabilities, which are at least the unrestricted ones, so a set
    among candidates holds the true rule whenever the full set would have.
    """
    from lrid.identify.recording import PartialLayersWarning, partial_layer_counts, require_measures

    estimator, sidecar = load_fitted(model_path, trust_pickle=trust_pickle)
    partial = partial_layer_counts(observables)
    if len(partial) and not sidecar.get("partial_layers"):
        warnings.warn(PartialLayersWarning(partial), stacklevel=2)
    # A recording without, say, activity-change arrays would otherwise be classified from NaN features.
    require_measures(observables, sidecar["feature_names"])
    features = build_features(observables, **sidecar["feature_options"])
    if features.feature_names != sidecar["feature_names"]:
        expected, got = sidecar["feature_names"], features.feature_names
        differing = next(
            (f"{a} vs {b}" for a, b in zip(expected, got) if a != b), f"{len(expected)} vs {len(got)} columns"
        )
        raise LridError(
            f"the input's features do not match the model's (model vs input: {differing}); give trajectories with "
            "the observables, recorded points and depth groups the model was trained on"
        )
    classes = list(sidecar["classes"])
    kept = check_candidates(candidates, classes) if candidates is not None else classes
    probabilities = np.zeros((len(features.X), len(classes)))
    known = np.asarray(estimator.classes_).astype(int)
    probabilities[:, known] = estimator.predict_proba(features.X)
    per_sample = pd.DataFrame(probabilities, columns=classes).assign(run_id=features.groups)
    per_run = per_sample.groupby("run_id", sort=True)[classes].mean()
    if kept != classes:
        # Renormalising the run's averaged probabilities, not each layer's, keeps the average over layers what
        # it is without candidates: one posterior per run, then conditioned on the candidate set.
        per_run = among_candidates(per_run, kept)
        classes = kept
    result = per_run.reset_index()
    result.insert(1, "predicted", np.asarray(classes)[np.argmax(per_run.to_numpy(), axis=1)])
    result["n_samples"] = per_sample.groupby("run_id", sort=True).size().to_numpy()
    if sidecar.get("prediction_sets") is not None:
        calibration = SetCalibration.model_validate(sidecar["prediction_sets"])
        points = points_per_run(observables).reindex(per_run.index)
        partial_layers = partial["recorded"].reindex(per_run.index, fill_value=0)
        sets = prediction_sets(per_run, thresholds_for(calibration, points.to_numpy(), partial_layers.to_numpy()))
        result["prediction_set"] = [",".join(rules) for rules in sets]
        result["set_coverage"] = calibration.coverage
    true_rules = features.samples.drop_duplicates("run_id").set_index("run_id")["rule"]
    if true_rules.notna().all():
        result["rule"] = result["run_id"].map(true_rules)
    return result
