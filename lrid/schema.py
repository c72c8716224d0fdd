"""The shapes of what lrid writes to disk and hands between stages: the store's columns, views and depth
groups, run manifests, and the classify stage's input (:class:`ClassifySpec`) and output (:class:`Scores`).

TensorFlow-free and import-light, and the lowest layer of lrid but for ``errors``, so every stage (and a
reader of someone else's store) can name the columns and validate a manifest without loading models, rules
or tasks. A manifest is untrusted input: whatever a file says, a run id and the paths it names stay inside
the store.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lrid.errors import LridError

# Observables: the columns ``{measure}_{function}_{statistic}``, 45 in a fixed order (lrid.observables
# computes them and re-exports these names).
MEASURES = ("weight", "act", "actchange")
FUNCTIONS = ("raw", "abs", "sq")
STATISTICS = ("norm", "mean", "median", "q3", "var", "skew", "kurtosis")
# A layer's activity change is one number per example, so its only statistic is the probe-batch mean.
ACTCHANGE_STATISTICS = ("mean",)


def observable_names() -> list[str]:
    """All observable column names, in storage order."""
    names = []
    for measure in MEASURES:
        statistics = ACTCHANGE_STATISTICS if measure == "actchange" else STATISTICS
        names += [f"{measure}_{function}_{statistic}" for function in FUNCTIONS for statistic in statistics]
    return names


OBSERVABLES = tuple(observable_names())

# Cross-layer observables: one value per layer and recorded point that needs the layer's reader as well as
# the layer (lrid.observables.update_reach), so no statistic of one layer's arrays gives it. Stored after
# OBSERVABLES; a store written before they existed reads them as NaN.
CROSS_LAYER_OBSERVABLES = ("reach",)
STORED_OBSERVABLES = (*OBSERVABLES, *CROSS_LAYER_OBSERVABLES)

# A store's observables table: one row per (run, step, measured layer), these columns, then STORED_OBSERVABLES.
ID_COLUMNS = ["run_id", "step", "epoch", "layer", "layer_index", "depth_group"]
FULL_VIEW = "full"  # the name of the undegraded observables among a run's views

DEPTH_GROUPS = ("early", "middle", "deep")


def depth_groups(n_layers: int) -> list[str]:
    """Nayebi et al.'s grouping: the first ``n // 3`` layers early, the next ``n // 3`` middle, the rest deep.

    With fewer than three layers the groups are taken in order of depth from the deep end, so a
    two-layer network is (middle, deep) rather than all deep.
    """
    third = n_layers // 3
    if third == 0:
        return list(DEPTH_GROUPS[3 - n_layers :])
    return ["early"] * third + ["middle"] * third + ["deep"] * (n_layers - 2 * third)


RunStatus = Literal["complete", "collapsed", "diverged", "failed"]
STATUSES: tuple[str, ...] = ("complete", "collapsed", "diverged", "failed")
TRAINED_STATUSES: tuple[str, ...] = ("complete", "collapsed")  # ran to the end of their budget

# A run id names files in the store; anything else (separators, "..") could point outside it.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def confined_relpath(path: str, top: tuple[str, ...]) -> str:
    """``path`` if it is a relative POSIX path under one of the ``top`` directories with no ``..``; else ValueError."""
    normalised = posixpath.normpath(path)
    if (
        posixpath.isabs(path)
        or "\\" in path
        or normalised != path
        or normalised.split("/")[0] not in top
        or ".." in normalised.split("/")
    ):
        raise ValueError(f"path {path!r} is not inside the store (expected a relative path under {'/ or '.join(top)}/)")
    return path


class _Section(BaseModel):
    """A part of a manifest whose extra keys are kept (older and newer lrid versions add fields)."""

    model_config = ConfigDict(extra="allow")


class _Named(_Section):
    name: str


class _ModelSection(_Section):
    arch: str


class _RuleSection(_Named):
    hparams: dict[str, Any] = Field(default_factory=dict)


class ManifestSpec(_Section):
    """The parts of a run's spec that readers rely on (the rest is kept as written)."""

    task: _Named
    model: _ModelSection
    rule: _RuleSection
    train: dict[str, Any] = Field(default_factory=dict)


class Manifest(_Section):
    """One run's manifest (``runs/<run_id>.json``): its spec, how it ended, and where its observables are.

    Fields beyond these (health, versions, recorded losses, ...) are kept as written.
    """

    run_id: str
    status: RunStatus
    spec: ManifestSpec
    observables: str | None = None
    views: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    collapse_reason: str | None = None
    final_train_loss: float | None = None
    wall_time_s: float | None = None
    #: set when the run trained as a member of a population (its id, size, member index and total wall
    #: time; ``wall_time_s`` is then the member's share); absent from solo runs and older manifests
    population: dict[str, Any] | None = None

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, run_id: str) -> str:
        if not _SAFE_NAME.match(run_id):
            raise ValueError(f"run_id {run_id!r} is not a plain name (letters, digits, '_', '-', '.')")
        return run_id

    @field_validator("observables")
    @classmethod
    def _observables_inside(cls, path: str | None) -> str | None:
        return None if path is None else confined_relpath(path, ("observables",))

    @field_validator("views")
    @classmethod
    def _views_inside(cls, views: dict[str, str]) -> dict[str, str]:
        for name, path in views.items():
            if not _SAFE_NAME.match(name):
                raise ValueError(f"view name {name!r} is not a plain name")
            confined_relpath(path, ("views",))
        return views


def parse_manifest(document: Any) -> dict:
    """A manifest document checked against :class:`Manifest`, as a plain dict; ValueError names the problem."""
    if not isinstance(document, dict):
        raise ValueError(f"a manifest is a JSON object, not a {type(document).__name__}")
    try:
        return Manifest.model_validate(document).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise ValueError(first_problem(error)) from None


def first_problem(error: ValidationError) -> str:
    """The first problem pydantic found, as ``where: what`` on one line."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, so the JSON written is strict (no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


# ---- classify: its input and its output (``scores.json``) ----------------------------------------------


class ClassifySpec(BaseModel):
    """Everything ``lrid classify`` needs: where the runs are, where the results go, the classifiers, the
    outer splits and the features. ``lrid classify``'s options map one to one onto these fields.

    Attributes:
        store, view: the store (a directory or URI) and the degraded view to read (None: the full one).
        results_dir: where ``scores.json``, ``predictions.parquet`` and ``models/`` go.
        classifiers: registered classifier names (:mod:`lrid.identify.classifiers`).
        n_splits, test_fraction, seed: the outer splits (:func:`lrid.identify.splits.balanced_run_splits`).
        n_jobs: parallel jobs for the classifiers and the search.
        observables: observable subsets (``;`` separates subsets scored in turn); the first one's models
            are saved.
        points, window, stride, unit, time, baseline, depth_contrasts: the features
            (:func:`lrid.identify.features.build_features`).
        train_where, test_where: held-out filters over run metadata (:func:`lrid.identify.splits.select_runs`).
        search: choose hyperparameters per split by grouped inner cross-validation.
        control: also compute the performance-matched control (:mod:`lrid.identify.control`), in ``n_bins``
            quantile bins of final test accuracy.
        keep_collapsed: also use runs with status ``collapsed`` (trained to the end, learned nothing).
        schedules: checkpoint schedules (:mod:`lrid.identify.schedules`, e.g. ``("even6", "log6")``) at which
            every training run is also re-recorded, so the classifiers learn to read networks recorded at few
            checkpoints; test runs are scored as recorded and at each schedule (``accuracy_by_schedule``).
        partial_layers: choices of layers (:mod:`lrid.identify.partial_layers`, ``("hidden", "single")``)
            at which every training run is also seen, so the classifiers learn to read networks recorded at
            some of their layers; test runs are scored at each too (``accuracy_by_schedule``). Needs the run
            unit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str
    results_dir: Path
    view: str | None = None
    classifiers: tuple[str, ...] = ("linear", "rf", "xgb")
    n_splits: int = Field(10, ge=1)
    test_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 0
    n_jobs: int = 1
    observables: str | tuple[str, ...] = "all"
    points: int | None = Field(None, ge=1)
    window: int | None = Field(None, ge=1)
    stride: int | None = Field(None, ge=1)
    unit: str = "layer"
    time: str = "index"
    baseline: str = "none"
    depth_contrasts: bool = False
    train_where: str | None = None
    test_where: str | None = None
    search: bool = False
    control: bool = True
    n_bins: int = Field(4, ge=1)
    keep_collapsed: bool = False
    schedules: tuple[str, ...] = ()
    partial_layers: tuple[str, ...] = ()

    @field_validator("store", mode="before")
    @classmethod
    def _store_text(cls, store: Any) -> Any:
        # A path is accepted as its text; a URI (s3://, file://) must stay text, never go through Path.
        return str(store) if isinstance(store, Path) else store

    @classmethod
    def build(cls, **fields: Any) -> ClassifySpec:
        """The spec of ``fields``; an unknown or out-of-range field is one :class:`LridError` naming it."""
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            raise LridError(f"bad classify setting {first_problem(error)}") from None


class _Kept(BaseModel):
    """A part of ``scores.json`` whose extra keys are kept (newer lrid versions may add fields)."""

    model_config = ConfigDict(extra="allow")


class SubsetScores(_Kept):
    """One classifier's accuracy on one observable subset, over the outer splits."""

    accuracy_mean: float
    accuracy_sem: float = 0.0
    balanced_accuracy_mean: float | None = None  # lrid's first scores carried it; some hand-made ones do not


class PointsCalibration(_Kept):
    """The prediction sets' threshold for runs recorded at ``points`` checkpoints, calibrated on ``runs``
    calibration runs re-recorded at that many (:mod:`lrid.identify.schedules`); there the sets held the true
    rule for ``held`` of them, with ``mean_size`` rules on average."""

    points: int
    threshold: float
    runs: int
    held: float
    mean_size: float


class LayersCalibration(_Kept):
    """The prediction sets' threshold for runs recorded at some of their network's layers, calibrated on
    ``runs`` calibration runs seen at the partial layers ``layers`` (``hidden`` or ``single``,
    :mod:`lrid.identify.partial_layers`); there the sets held the true rule for ``held`` of them, with
    ``mean_size`` rules on average."""

    layers: str
    threshold: float
    runs: int
    held: float
    mean_size: float


class SetCalibration(_Kept):
    """How a model's prediction sets were calibrated (:mod:`lrid.identify.prediction_sets`), in its sidecar and
    its scores: a rule stays in a run's set at probability ``threshold`` or more, which held the true rule for
    at least ``coverage`` of ``runs`` calibration runs that the model (or the fit that named them) was not
    trained on, held out as ``method`` says; on those runs the sets held the true rule for ``held`` of them,
    with ``mean_size`` rules on average.

    ``points`` is how many checkpoints those runs were recorded at (their median). A model trained on runs
    also re-recorded at fewer checkpoints carries a threshold for each such number in ``by_points``, since a
    run recorded at fewer points is read less surely and needs a lower threshold for its sets to hold as
    often (:func:`lrid.identify.prediction_sets.thresholds_for`). Models calibrated before these fields
    existed have neither, and use ``threshold`` for every run. A model trained on runs also seen at some of
    their layers (``lrid classify --partial-layers``) carries a threshold for each such choice in
    ``by_layers``, for recordings of some layers, which are read less surely still.
    """

    coverage: float
    threshold: float
    runs: int
    method: str
    held: float
    mean_size: float
    points: int | None = None
    by_points: list[PointsCalibration] = Field(default_factory=list)
    by_layers: list[LayersCalibration] = Field(default_factory=list)


class ClassifierScores(SubsetScores):
    """One classifier's full results on the first observable subset (see :mod:`lrid.identify.evaluate`)."""

    accuracy_per_split: list[float]
    confusion_per_split: list[list[list[int]]] = Field(default_factory=list)
    confusion_normalized: list[list[float]]
    d_prime: dict[str, float | None] = Field(default_factory=dict)  # written since the identification stage
    best_params_per_split: list[dict[str, Any] | None] | None = None  # with search only
    best_params_final: dict[str, Any] | None = None
    # With schedules: per schedule (and "as recorded"), the accuracy per split on the test runs re-recorded so.
    accuracy_by_schedule: dict[str, list[float]] | None = None
    # The saved model's prediction sets, calibrated on the splits' test runs (written since prediction sets).
    prediction_sets: SetCalibration | None = None

    def schedule_summary(self) -> dict[str, tuple[float, float]]:
        """Per schedule of ``accuracy_by_schedule``: the accuracy's mean over the splits and its s.e.m."""
        summary = {}
        for schedule, values in (self.accuracy_by_schedule or {}).items():
            mean = sum(values) / len(values)
            spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
            summary[schedule] = (mean, spread / math.sqrt(len(values)))
        return summary

    def summary(self) -> SubsetScores:
        """The part that ``by_subset`` keeps: mean and s.e.m. of the accuracy, and the balanced accuracy."""
        return SubsetScores.model_validate(self.model_dump(include=set(SubsetScores.model_fields)))


class TimeSettings(_Kept):
    points: int | None = None
    window: int | None = None
    stride: int | None = None


class ScoreSettings(_Kept):
    """How the scores were made. Files from before a setting existed read as that setting's old behaviour:
    ``keep_collapsed`` false, ``time_axis`` index, ``baseline`` none, ``depth_contrasts`` false (all added after
    the first release)."""

    store: str | None = None
    observables: str = "all"
    time: TimeSettings = Field(default_factory=TimeSettings)
    unit: str = "layer"
    time_axis: str = "index"
    baseline: str = "none"
    depth_contrasts: bool = False
    train_where: str | None = None
    test_where: str | None = None
    search: bool = False
    view: str | None = None
    keep_collapsed: bool = False
    schedules: list[str] = Field(default_factory=list)
    partial_layers: list[str] = Field(default_factory=list)

    def feature_options(self) -> dict[str, Any]:
        """The :func:`lrid.identify.features.build_features` keywords of the first observable subset."""
        return {
            "subset": self.observables.split(";")[0],
            "unit": self.unit,
            "time": self.time_axis,
            "baseline": self.baseline,
            "depth_contrasts": self.depth_contrasts,
            "points": self.time.points,
            "window": self.time.window,
            "stride": self.time.stride,
        }


class MatchedBin(_Kept):
    """One bin of the performance-matched control. Bins written before per-bin chance have no ``chance``,
    ``balanced_*`` or ``rules`` (:func:`lrid.identify.control.bins_with_chance` fills them in)."""

    bin: tuple[float, float]
    accuracy: float | None
    n_test: int | None = None
    balanced_accuracy: float | None = None
    chance: float | None = None
    balanced_chance: float | None = None
    rules: dict[str, Any] | None = None
    classifier: str | None = None


class ControlScores(_Kept):
    curve_baseline: dict[str, SubsetScores] = Field(default_factory=dict)
    curve_features: list[str] = Field(default_factory=list)
    matched_bins: list[MatchedBin] = Field(default_factory=list)
    matched_bins_by_classifier: dict[str, list[MatchedBin]] = Field(default_factory=dict)


class RunSplit(BaseModel):
    """One outer split: the run ids trained on and tested on."""

    train: list[str]
    test: list[str]


class Scores(_Kept):
    """``scores.json``: what ``lrid classify`` measured, and how.

    Every shape lrid has written loads: the first release had no ``settings``, ``by_subset``, ``d_prime``
    or ``control``; ``by_subset`` is then filled from the main results under the settings' subset. Files
    without ``splits`` predate the per-split models that importance reads (it refits those splits).
    """

    classifiers: dict[str, ClassifierScores]
    classes: list[str] = Field(min_length=1)
    n_samples: int
    n_runs: int
    n_features: int
    n_splits: int
    test_fraction: float
    seed: int = 0
    lrid_version: str | None = None
    settings: ScoreSettings = Field(default_factory=ScoreSettings)
    by_subset: dict[str, dict[str, SubsetScores]] = Field(default_factory=dict)
    control: ControlScores | None = None
    splits: list[RunSplit] | None = None  # the outer splits' run ids (written since importance reads saved models)

    @model_validator(mode="after")
    def _by_subset_of_older_files(self) -> Scores:
        if not self.by_subset:
            self.by_subset = {
                self.settings.observables: {name: result.summary() for name, result in self.classifiers.items()}
            }
        return self

    @property
    def chance(self) -> float:
        """Accuracy of guessing on balanced classes: 1 / number of rules."""
        return 1.0 / len(self.classes)

    def to_json(self) -> str:
        """Strict JSON (non-finite numbers written as null), as ``scores.json`` holds it."""
        return json.dumps(json_safe(self.model_dump(mode="json", exclude_unset=True)), indent=2, allow_nan=False)

    @classmethod
    def read(cls, path: Path) -> Scores:
        """The scores at ``path``; a missing, unreadable or malformed file is one :class:`LridError` naming it."""
        if not path.is_file():
            results = path.parent
            raise LridError(f"{path} does not exist; run `lrid classify --store STORE --out {results}` first")
        try:
            document = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, RecursionError, ValueError):
            raise LridError(f"{path} is not valid JSON; re-run `lrid classify` to rewrite it") from None
        if not isinstance(document, dict):
            raise LridError(f"{path} is not a scores file of `lrid classify` (a JSON object); re-run `lrid classify`")
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            raise LridError(
                f"{path} is not a scores file lrid can read ({first_problem(error)}); "
                "re-run `lrid classify` to rewrite it"
            ) from None
