"""Validated specifications: what a sweep asks for, and the normalised spec of each run.

Every model rejects unknown keys (``extra="forbid"``), so a typo in a sweep file is an error that names
the key rather than a silently ignored setting. A :class:`RunSpec` is normalised (rule hyperparameters
filled in with their defaults) before it is hashed, so the same run always gets the same ``run_id``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from lrid import sampling
from lrid.errors import LridError

Scalar = int | float | str | bool


class StrictModel(BaseModel):
    """Base for every spec: unknown keys are errors, booleans are not numbers, and specs are immutable once
    validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _reject_bools(cls.model_fields, data)
        return data


def _admits(annotation: Any, kind: type) -> bool:
    """Whether a field annotation accepts values of type ``kind`` (through unions and Optional)."""
    if annotation is kind:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_admits(arg, kind) for arg in get_args(annotation))
    return False


def _bool_for_number(annotation: Any, value: Any) -> bool:
    """Whether ``value`` (or an item of it, for tuple fields) is a bool where the field wants a number.

    Pydantic's lax mode reads ``true`` as 1 for int and float fields; a sweep that says ``epochs: true``
    is a mistake to report, not a one-epoch run.
    """
    if isinstance(value, bool):
        return not _admits(annotation, bool) and (_admits(annotation, int) or _admits(annotation, float))
    if isinstance(value, (list, tuple)) and get_origin(annotation) is tuple:
        return any(_bool_for_number(get_args(annotation)[0], item) for item in value)
    return False


def _reject_bools(fields: dict, data: dict) -> None:
    for name, value in data.items():
        if name in fields and _bool_for_number(fields[name].annotation, value):
            what = "is" if isinstance(value, bool) else "holds"
            raise ValueError(f"{name}: {value!r} {what} a boolean where a number is expected; write a number")


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
    AlexNet's and the ResNets' layers.

    ``init_scale`` multiplies the standard deviation (and limit) of the forward kernels' Glorot-uniform
    initialisation, for the architectures that support it (mlp, convnet: ``Architecture.scales_init``;
    the others refuse a value other than 1). ``init`` (glorot, he, lecun) and ``init_distribution``
    (uniform, truncated_normal, untruncated_normal) choose the variance-scaling scheme and the shape of the
    initial weights, for the same architectures, so a sweep can cover how other codebases initialise
    (Keras: glorot/uniform, PyTorch's ReLU nets: he, JAX/Flax: lecun/truncated_normal). All three are left
    out of the serialised spec at their defaults, so specs without them keep the run ids they had before
    they existed.

    ``conv_filters`` (convnet only) sets the conv net's layers, one entry of channels (before ``width`` scales
    them) per conv layer, and ``conv_strides``, with it, each layer's stride (1 keeps the map's size; unset,
    2). Unset, it has three stride-2 layers of 32, 64 and 64 channels, and both are left out of the serialised
    spec.
    """

    arch: str = "mlp"
    hidden: tuple[int, ...] = (128, 128)
    activation: Literal["tanh", "relu", "sigmoid", "softplus", "elu", "gelu"] = "tanh"
    width: float = Field(1.0, gt=0)
    init_scale: float = Field(1.0, gt=0, description="multiplies the forward kernels' initial standard deviation")
    init: Literal["glorot", "he", "lecun"] = Field("glorot", description="the kernels' variance-scaling scheme")
    init_distribution: Literal["uniform", "truncated_normal", "untruncated_normal"] = Field(
        "uniform", description="the shape of the initial kernel entries"
    )
    conv_filters: tuple[int, ...] | None = Field(None, description="convnet: each conv layer's channels")
    conv_strides: tuple[int, ...] | None = Field(None, description="convnet: each conv layer's stride")

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

    @model_validator(mode="after")
    def _arch_scales_init(self) -> ModelSpec:
        from lrid.models import ARCHITECTURES

        if ARCHITECTURES[self.arch].scales_init:
            return self
        supported = ", ".join(name for name, arch in ARCHITECTURES.items() if arch.scales_init)
        for name, default in _INIT_DEFAULTS.items():
            if getattr(self, name) != default:
                raise ValueError(f"{name}: architecture {self.arch!r} has no {name}; it is implemented for {supported}")
        return self

    @model_validator(mode="after")
    def _conv_layers_of_the_convnet(self) -> ModelSpec:
        given = self.conv_layers
        if not given:
            return self
        if self.arch != "convnet":
            raise ValueError(
                f"conv_filters and conv_strides set the convnet's layers; architecture {self.arch!r} has none"
            )
        if not all(given.values()) or any(value < 1 for values in given.values() for value in values):
            raise ValueError("conv_filters and conv_strides must be non-empty lists of positive integers")
        if self.conv_strides is not None and len(self.conv_strides) != len(self.conv_filters or ()):
            raise ValueError(
                f"conv_strides needs conv_filters of as many conv layers: {len(self.conv_filters or ())} filters, "
                f"{len(self.conv_strides)} strides"
            )
        return self

    @property
    def conv_layers(self) -> dict:
        """The convnet builder's ``filters`` and ``strides`` keywords, where set."""
        layers: dict = {}
        if self.conv_filters is not None:
            layers["filters"] = self.conv_filters
        if self.conv_strides is not None:
            layers["strides"] = self.conv_strides
        return layers

    @property
    def initialisation(self) -> dict:
        """The builder keywords of the initialisation: ``init_scale``, ``init_scheme``, ``init_distribution``."""
        return {"init_scale": self.init_scale, "init_scheme": self.init, "init_distribution": self.init_distribution}

    @model_serializer(mode="wrap")
    def _omit_default_initialisation(self, handler):
        data = handler(self)
        for name, default in _INIT_DEFAULTS.items():
            if getattr(self, name) == default:
                data.pop(name, None)
        for name in ("conv_filters", "conv_strides"):
            if getattr(self, name) is None:
                data.pop(name, None)
        return data


#: the initialisation fields and their defaults, omitted from serialised specs at these values
_INIT_DEFAULTS = {"init_scale": 1.0, "init": "glorot", "init_distribution": "uniform"}
#: the convnet's two layer fields: a sweep's drawn value of one is checked beside a stand-in for the other
_CONV_LAYER_PARTNER = {"conv_filters": "conv_strides", "conv_strides": "conv_filters"}


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
            _reject_bools(rule_class.Hyperparameters.model_fields, self.hparams)
        except ValueError as error:
            raise ValueError(f"rule {self.name!r}: {error}") from None
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

#: convenience keys of a sampled space: ``hidden = (model.hidden_width,) * model.depth``
MLP_SHAPE_KEYS = ("model.depth", "model.hidden_width")
#: the fields a sampled space may set, by section (plus ``task.options.NAME`` and :data:`MLP_SHAPE_KEYS`)
SAMPLE_FIELDS = {
    "task": ("name", "image_size"),
    "model": tuple(ModelSpec.model_fields),
    "train": tuple(TrainSpec.model_fields),
    "observe": ("points", "probe_size", "probe_seed"),
}
_SECTIONS = {"task": TaskSpec, "model": ModelSpec, "train": TrainSpec, "observe": ObserveSpec}


class SampleSpec(StrictModel):
    """Draw ``n`` configurations per rule from ``space`` (see :mod:`lrid.sampling` for the distributions).

    ``space`` maps dotted paths into the run spec (``train.batch_size``, ``model.activation``,
    ``task.options.as_images``; ``model.depth`` and ``model.hidden_width`` give ``hidden = (width,) *
    depth``) to distributions. A key without a dot is a group label: its value is a ``choice`` among
    mappings of paths to values or distributions, drawn together. Rule hyperparameters are drawn from the
    distributions written in the sweep's ``rules``. ``n`` is per rule, so the rules stay balanced.
    """

    n: int = Field(gt=0, description="configurations drawn per rule")
    seed: int = Field(0, ge=0)
    space: dict[str, Any] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _valid_space(cls, space: dict) -> dict:
        _parse_space(space)
        return space

    @property
    def entries(self) -> dict[str, sampling.Entry]:
        """The parsed space."""
        return _parse_space(self.space)


def _parse_space(raw: dict) -> dict[str, sampling.Entry]:
    """Parse and check a sampled space; ``ValueError`` naming the key on the first problem."""
    entries: dict[str, sampling.Entry] = {}
    owners: dict[str, str] = {}
    for key, value in raw.items():
        try:
            entry = sampling.parse_entry(value, group_allowed="." not in key)
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
        if "." not in key and not isinstance(entry, sampling.Group):
            raise ValueError(
                f"{key}: unknown key; keys are dotted paths such as train.batch_size or model.hidden_width, or "
                "a group label whose value is {choice: [{path: value, ...}, ...]}"
            )
        entries[key] = entry
        paths = {p for option in entry.options for p in option} if isinstance(entry, sampling.Group) else {key}
        for path in paths:
            if path in owners:
                raise ValueError(f"{path}: set both by {owners[path]} and by {key}; set it in one place")
            owners[path] = key
    sampling.check_conditionals(entries)
    for option in (o for e in entries.values() if isinstance(e, sampling.Group) for o in e.options):
        sampling.check_conditionals(option)
    if "model.hidden" in owners and any(key in owners for key in MLP_SHAPE_KEYS):
        raise ValueError("model.hidden: give either model.hidden or model.depth/model.hidden_width, not both")
    for path, candidates in sampling.leaves(entries).items():
        for candidate in candidates:
            for value in candidate.values:
                _check_sample_value(path, value)
    return entries


def _check_sample_value(path: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``path`` is a key a space may set and ``value`` a valid value for it."""
    section, _, field = path.partition(".")
    if path in MLP_SHAPE_KEYS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: {value!r} is not a positive integer")
        return
    if section == "task" and field.startswith("options.") and len(field) > len("options."):
        arguments: dict[str, Any] = {"options": {field.removeprefix("options."): value}}
    elif field in SAMPLE_FIELDS.get(section, ()):
        arguments = {field: value}
        if section == "model" and field in _CONV_LAYER_PARTNER and isinstance(value, (list, tuple)):
            # Checked as a convnet's, beside a partner of its length: whether the drawn architecture and the
            # other field fit it is checked when the sweep expands.
            arguments.update({"arch": "convnet", _CONV_LAYER_PARTNER[field]: [1] * len(value)})
    else:
        known = [f"{s}.{f}" for s, fields in SAMPLE_FIELDS.items() for f in fields]
        raise ValueError(
            f"{path}: unknown key; known: {', '.join([*known, *MLP_SHAPE_KEYS, 'task.options.NAME'])} "
            "(rule hyperparameters are drawn under rules: RULE: {lr: {loguniform: [lo, hi]}})"
        )
    try:
        _SECTIONS[section](**arguments)
    except ValidationError as error:
        raise ValueError(f"{section}.{_first_error(error)}") from None


def _rule_space(rule_name: str, hparams: dict) -> dict[str, sampling.Entry]:
    """The drawn (and fixed) hyperparameters of one rule, parsed and checked; grid axes are left out."""
    entries = {}
    for key, value in hparams.items():
        if isinstance(value, list):
            continue
        try:
            entries[key] = sampling.parse_entry(value)
        except ValueError as error:
            raise ValueError(f"rule {rule_name!r}: {key}: {error}") from None
    axes = tuple(key for key, value in hparams.items() if isinstance(value, list))
    try:
        sampling.check_conditionals(entries, axes)
    except ValueError as error:
        raise ValueError(f"rule {rule_name!r}: {error}") from None
    # Drawn values are checked beside the fixed ones; fixed values are checked with the whole rule on expansion.
    fixed = {key: value for key, value in hparams.items() if not isinstance(value, (list, dict))}
    for key, candidates in sampling.leaves(entries).items():
        drawn = (candidate for candidate in candidates if isinstance(candidate, sampling.Distribution))
        for value in (v for candidate in drawn for v in candidate.values):
            try:
                RuleSpec(name=rule_name, hparams={**fixed, key: value})
            except ValidationError as error:
                raise ValueError(_first_error(error)) from None
    return entries


class SweepSpec(StrictModel):
    """A sweep: shared settings, rules with their hyperparameter grids, and a grid over training settings.

    ``rules`` maps a rule name to its hyperparameters; a list value is a grid axis, a mapping a distribution
    (with ``sample``). ``grid`` maps a field of ``train`` or ``model`` to the list of values to sweep. With
    ``sample``, each rule gets ``sample.n`` drawn configurations; the runs are every configuration (one,
    without ``sample``) times the rule's grid times the training grid.
    """

    name: str
    description: str = ""
    task: TaskSpec = TaskSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    observe: ObserveSpec = ObserveSpec()
    rules: dict[str, dict[str, Scalar | list[Scalar] | dict[str, Any]]]
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    sample: SampleSpec | None = None

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        # The name labels progress bars and messages on the user's terminal.
        if not name or not name.isprintable():
            raise ValueError("a sweep's name must be non-empty printable text (no control characters)")
        return name

    @field_validator("rules")
    @classmethod
    def _some_rules(cls, rules: dict) -> dict:
        if not rules:
            raise ValueError("a sweep needs at least one rule")
        for rule_name, hparams in rules.items():
            for key, value in hparams.items():
                if isinstance(value, list) and not value:
                    raise ValueError(
                        f"rule {rule_name!r}: {key} is an empty list, which gives no runs; list at least one value"
                    )
            _rule_space(rule_name, hparams)
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

    @model_validator(mode="after")
    def _sampling_consistent(self) -> SweepSpec:
        for rule_name, hparams in self.rules.items():
            drawn = [key for key, value in hparams.items() if isinstance(value, dict)]
            if drawn and self.sample is None:
                raise ValueError(
                    f"rule {rule_name!r}: {drawn[0]} is a distribution, which needs a `sample: {{n: N}}` section "
                    "saying how many configurations to draw per rule"
                )
        if self.sample is not None:
            paths = sampling.leaves(self.sample.entries)
            for key in self.grid:
                path = f"{GRID_KEYS[key]}.{key}"
                if path in paths or (key == "hidden" and any(k in paths for k in MLP_SHAPE_KEYS)):
                    raise ValueError(f"grid key {key!r} is also drawn in sample.space; sweep it in one place")
        return self

    def _configurations(self, rule_name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The rule's (drawn settings by path, hyperparameters with their grid axes) configurations."""
        hparams = self.rules[rule_name]
        if self.sample is None:
            return [({}, dict(hparams))]
        n, seed = self.sample.n, self.sample.seed
        settings = sampling.draw_space(self.sample.entries, n, seed, (rule_name, "space"))
        drawn = sampling.draw_space(_rule_space(rule_name, hparams), n, seed, (rule_name, "rules"))
        axes = {key: value for key, value in hparams.items() if isinstance(value, list)}
        return [(setting, {**values, **axes}) for setting, values in zip(settings, drawn)]

    def _sections(self, settings: dict[str, Any]) -> dict[str, dict]:
        """The run's task, model, train and observe settings: the sweep's, with ``settings`` (by path) applied."""
        sections = {name: getattr(self, name).model_dump() for name in _SECTIONS}
        for path, value in settings.items():
            section, _, field = path.partition(".")
            if path in MLP_SHAPE_KEYS:
                continue
            if field.startswith("options."):
                sections["task"]["options"] = {**sections["task"]["options"], field.removeprefix("options."): value}
            else:
                sections[section][field] = value
        if any(key in settings for key in MLP_SHAPE_KEYS):
            hidden = sections["model"]["hidden"]
            depth = settings.get("model.depth", len(hidden))
            width = settings.get("model.hidden_width", hidden[0] if hidden else 1)
            sections["model"]["hidden"] = (width,) * depth
        return sections

    def expand(self) -> list[RunSpec]:
        """Expand the sweep into its runs, in a fixed order (rule, drawn configuration, rule grid, then the
        training grid). Drawn configurations that coincide give one run."""
        runs, seen = [], set()
        grid_keys = sorted(self.grid)
        for rule_name in self.rules:
            for settings, rule_grid in self._configurations(rule_name):
                hparam_keys = sorted(rule_grid)
                hparam_axes = [_as_list(rule_grid[k]) for k in hparam_keys]
                for hparam_values in itertools.product(*hparam_axes):
                    rule = RuleSpec(name=rule_name, hparams=dict(zip(hparam_keys, hparam_values)))
                    for grid_values in itertools.product(*(self.grid[k] for k in grid_keys)):
                        sections = self._sections(settings)
                        for key, value in zip(grid_keys, grid_values):
                            sections[GRID_KEYS[key]][key] = value
                        run = RunSpec(
                            task=TaskSpec(**sections["task"]),
                            model=ModelSpec(**sections["model"]),
                            train=TrainSpec(**sections["train"]),
                            rule=rule,
                            observe=ObserveSpec(**sections["observe"]),
                        )
                        if run.run_id not in seen:
                            seen.add(run.run_id)
                            runs.append(run)
        return runs

    def sampled_values(self) -> dict[str, list]:
        """The values drawn for every sampled key, over all drawn configurations (empty without ``sample``).

        Keys are the space's paths and ``RULE.HPARAM`` for rule hyperparameters; a conditional key also
        appears per case, as ``KEY [GIVEN=VALUE]``.
        """
        if self.sample is None:
            return {}
        values: dict[str, list] = {}
        space_conditionals = _conditionals(self.sample.entries)
        for rule_name, hparams in self.rules.items():
            rule_space = _rule_space(rule_name, hparams)
            drawn_keys = [key for key, entry in rule_space.items() if not isinstance(entry, sampling.Fixed)]
            conditionals = [
                *space_conditionals,
                *(
                    (f"{rule_name}.{key}", f"{rule_name}.{given}", entry)
                    for key, given, entry in _conditionals(rule_space)
                ),
            ]
            for settings, rule_values in self._configurations(rule_name):
                drawn = {**settings, **{f"{rule_name}.{key}": rule_values[key] for key in drawn_keys}}
                for key, given, _ in conditionals:
                    if key in drawn and given in drawn:
                        case = f"{key} [{given.removeprefix(rule_name + '.')}={sampling.case_name(drawn[given])}]"
                        values.setdefault(case, []).append(drawn[key])
                for key, value in drawn.items():
                    values.setdefault(key, []).append(value)
        return values


def _conditionals(space: dict[str, sampling.Entry]) -> list[tuple[str, str, sampling.Conditional]]:
    """(key, given key, conditional) for every conditional of a space, group options' included."""
    found = []
    for key, entry in space.items():
        if isinstance(entry, sampling.Conditional):
            found.append((key, entry.given, entry))
        elif isinstance(entry, sampling.Group):
            found.extend(c for option in entry.options for c in _conditionals(option))
    return found


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
