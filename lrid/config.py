"""Validated specifications: what a sweep asks for, and the normalised spec of each run.

Every model rejects unknown keys (``extra="forbid"``), so a typo in a sweep file is an error that names
the key rather than a silently ignored setting. A :class:`RunSpec` is normalised (rule hyperparameters
filled in with their defaults) before it is hashed, so the same run always gets the same ``run_id``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from lrid.errors import LridError

Scalar = int | float | str | bool


class StrictModel(BaseModel):
    """Base for every spec: unknown keys are errors, and specs are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(StrictModel):
    """Which task a network is trained on, and where its data are.

    ``data_dir`` overrides the task's environment variable (e.g. ``LRID_CIFAR10_DIR``). It says where the
    data are, not what the run is, so it is left out of the run id: moving a data set keeps run ids.
    """

    name: str = "digits"
    data_dir: str | None = None
    image_size: int | None = Field(None, gt=0, description="input resolution, for tasks that resize images")
    options: dict[str, Scalar | tuple[int, ...]] = Field(
        default_factory=dict, description="the task's own settings, e.g. teacher_student's sizes (see `lrid tasks`)"
    )

    @field_validator("name")
    @classmethod
    def _known_task(cls, name: str) -> str:
        from lrid.tasks import TASKS

        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
        return name


class ModelSpec(StrictModel):
    """The architecture (see ``lrid archs``); ``hidden`` and ``activation`` shape the MLP, ``width`` scales
    AlexNet's and the ResNets' layers."""

    arch: str = "mlp"
    hidden: tuple[int, ...] = (128, 128)
    activation: Literal["tanh", "relu", "sigmoid"] = "tanh"
    width: float = Field(1.0, gt=0)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        from lrid.models import ARCHITECTURES

        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)} (see `lrid archs`)")
        return arch

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, hidden: tuple[int, ...]) -> tuple[int, ...]:
        if any(width < 1 for width in hidden):
            raise ValueError("hidden widths must be positive integers")
        return hidden


class TrainSpec(StrictModel):
    """How long a run trains, its learning-rate schedule, and which seeds fix its initialisation and data order.

    The schedule is a step decay: the rule's learning rate is multiplied by ``lr_decay_factor`` at the
    start of each epoch listed in ``lr_decay_epochs`` (empty: constant).
    """

    epochs: int = Field(10, gt=0)
    batch_size: int = Field(64, gt=0)
    model_seed: int = Field(0, ge=0)
    data_seed: int = Field(0, ge=0)
    lr_decay_epochs: tuple[int, ...] = ()
    lr_decay_factor: float = Field(0.1, gt=0, le=1)

    @field_validator("lr_decay_epochs")
    @classmethod
    def _increasing_epochs(cls, epochs: tuple[int, ...]) -> tuple[int, ...]:
        if any(e < 1 for e in epochs) or list(epochs) != sorted(set(epochs)):
            raise ValueError("lr_decay_epochs must be increasing positive epoch numbers, e.g. [30, 60, 80]")
        return epochs

    def learning_rate(self, base_lr: float, epoch: int) -> float:
        """The learning rate during ``epoch`` (0-based) under the step-decay schedule."""
        return base_lr * self.lr_decay_factor ** sum(epoch >= e for e in self.lr_decay_epochs)


class ViewSpec(StrictModel):
    """A degraded view of the observables: a fraction of each layer's units, with Gaussian measurement noise.

    See :mod:`lrid.observables.degrade` for what a unit is and how the noise is drawn.
    """

    units_fraction: float = Field(1.0, gt=0, le=1, description="fraction of each layer's units recorded")
    noise_std: float = Field(0.0, ge=0, description="std of additive Gaussian noise on the recorded arrays")

    @property
    def name(self) -> str:
        """The view's name in the store, e.g. ``u0.5_n0.1``."""
        return f"u{self.units_fraction:g}_n{self.noise_std:g}"


class ObserveSpec(StrictModel):
    """When observables are recorded, on which fixed probe batch, and which degraded views are recorded too.

    ``views`` is left out of the serialised spec when empty, so specs without views keep the run ids they
    had before views existed.
    """

    points: int = Field(21, ge=2, description="evenly spaced recording steps, step 0 and the last included")
    probe_size: int = Field(256, gt=0)
    probe_seed: int = Field(0, ge=0)
    views: tuple[ViewSpec, ...] = ()

    @field_validator("views")
    @classmethod
    def _distinct_views(cls, views: tuple[ViewSpec, ...]) -> tuple[ViewSpec, ...]:
        names = [view.name for view in views]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"views listed twice: {', '.join(repeated)}; list each (units_fraction, noise_std) once")
        return views

    @model_serializer(mode="wrap")
    def _omit_empty_views(self, handler):
        data = handler(self)
        if not self.views:
            data.pop("views", None)
        return data


class RuleSpec(StrictModel):
    """A learning rule and its hyperparameters, normalised with the rule's defaults."""

    name: str
    hparams: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _validate_against_rule(self) -> RuleSpec:
        from lrid.rules import get_rule

        try:
            rule_class = get_rule(self.name)
        except LridError as error:
            raise ValueError(str(error)) from None
        try:
            normalised = rule_class.Hyperparameters(**self.hparams).model_dump()
        except ValidationError as error:
            raise ValueError(f"rule {self.name!r}: {_first_error(error)}") from None
        object.__setattr__(self, "hparams", normalised)
        return self


class RunSpec(StrictModel):
    """Everything that determines one training run; its hash is the run's identity."""

    task: TaskSpec = TaskSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    rule: RuleSpec
    observe: ObserveSpec = ObserveSpec()

    @model_validator(mode="after")
    def _rule_supports_architecture(self) -> RunSpec:
        from lrid.models import ARCHITECTURES
        from lrid.rules import get_rule
        from lrid.tasks import TASK_LOSSES, task_geometry

        rule_class = get_rule(self.rule.name)
        reason = rule_class.unsupported_reason(self.model.arch)
        if reason:
            raise ValueError(f"rule {self.rule.name!r} cannot train architecture {self.model.arch!r}: {reason}")
        loss = TASK_LOSSES[self.task.name]
        if loss not in rule_class.losses:
            raise ValueError(
                f"rule {self.rule.name!r} cannot train task {self.task.name!r}: the task's loss is {loss!r} and "
                f"the rule descends only {', '.join(rule_class.losses)}; pick another rule or task"
            )
        if ARCHITECTURES[self.model.arch].needs_images:
            input_shape = task_geometry(self.task.name, self.task.image_size, **self.task.options)[0]
            if len(input_shape) != 3:
                raise ValueError(
                    f"architecture {self.model.arch!r} needs image inputs, but task {self.task.name!r} has "
                    f"inputs of shape {input_shape}; use arch mlp, an image task (cifar10, imagenet), or "
                    "digits with `options: {as_images: true}`"
                )
        return self

    @property
    def run_id(self) -> str:
        """A stable 16-hex-digit hash of the normalised spec: the same spec is the same run."""
        identity = self.model_dump(mode="json", exclude={"task": {"data_dir"}})
        if not identity["task"]["options"]:
            del identity["task"]["options"]  # runs specified before tasks took options keep their ids
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


GRID_KEYS = {**{f: "train" for f in TrainSpec.model_fields}, **{f: "model" for f in ModelSpec.model_fields}}


class SweepSpec(StrictModel):
    """A sweep: shared settings, rules with their hyperparameter grids, and a grid over training settings.

    ``rules`` maps a rule name to its hyperparameters; a list value is a grid axis. ``grid`` maps a field of
    ``train`` or ``model`` to the list of values to sweep. The runs are the Cartesian product of both.
    """

    name: str
    description: str = ""
    task: TaskSpec = TaskSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    observe: ObserveSpec = ObserveSpec()
    rules: dict[str, dict[str, Scalar | list[Scalar]]]
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _some_rules(cls, rules: dict) -> dict:
        if not rules:
            raise ValueError("a sweep needs at least one rule")
        return rules

    @field_validator("grid")
    @classmethod
    def _grid_keys_known(cls, grid: dict) -> dict:
        for key, values in grid.items():
            if key not in GRID_KEYS:
                raise ValueError(f"unknown grid key {key!r}; allowed: {', '.join(sorted(GRID_KEYS))}")
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
        return grid

    def expand(self) -> list[RunSpec]:
        """Expand the sweep into its runs, in a fixed order (rule, rule grid, then the training grid)."""
        runs = []
        grid_keys = sorted(self.grid)
        for rule_name, rule_grid in self.rules.items():
            hparam_keys = sorted(rule_grid)
            hparam_axes = [_as_list(rule_grid[k]) for k in hparam_keys]
            for hparam_values in itertools.product(*hparam_axes):
                rule = RuleSpec(name=rule_name, hparams=dict(zip(hparam_keys, hparam_values)))
                for grid_values in itertools.product(*(self.grid[k] for k in grid_keys)):
                    sections = {"train": self.train.model_dump(), "model": self.model.model_dump()}
                    for key, value in zip(grid_keys, grid_values):
                        sections[GRID_KEYS[key]][key] = value
                    runs.append(
                        RunSpec(
                            task=self.task,
                            model=ModelSpec(**sections["model"]),
                            train=TrainSpec(**sections["train"]),
                            rule=rule,
                            observe=self.observe,
                        )
                    )
        return runs


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _first_error(error: ValidationError) -> str:
    """One line naming where in the spec the first problem is and what it is."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check its spelling against the documented fields)"
    return f"{location}: {message}" if location else message


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file; any problem is a :class:`LridError` naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise LridError(f"sweep file {path} does not exist; pass the path of a YAML sweep such as pipelines/demo.yaml")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise LridError(f"{path}: not valid YAML{where}; fix the syntax and retry") from None
    if not isinstance(document, dict):
        raise LridError(f"{path}: a sweep must be a YAML mapping with at least 'name' and 'rules'")
    try:
        sweep = SweepSpec(**document)
        sweep.expand()  # validates every rule's hyperparameters before any training starts
    except ValidationError as error:
        raise LridError(f"{path}: {_first_error(error)}") from None
    return sweep
