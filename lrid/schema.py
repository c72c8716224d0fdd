"""The shapes of what lrid writes to disk: the store's columns, views and depth groups, and run manifests.

TensorFlow-free and import-light, and the lowest layer of lrid but for ``errors``, so every stage (and a
reader of someone else's store) can name the columns and validate a manifest without loading models, rules
or tasks. A manifest is untrusted input: whatever a file says, a run id and the paths it names stay inside
the store.
"""

from __future__ import annotations

import math
import posixpath
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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

# A store's observables table: one row per (run, step, measured layer), these columns, then OBSERVABLES.
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
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{location}: {message}" if location else message) from None


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, so the JSON written is strict (no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value
