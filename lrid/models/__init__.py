"""Architectures built from rule-aware layers, registered by name.

Each architecture lists its measured layers (every layer with a weight kernel) in depth order; observables
are recorded for each, grouped into early / middle / deep thirds by :func:`lrid.schema.depth_groups`
(importable from here too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lrid.schema import DEPTH_GROUPS, depth_groups  # noqa: F401 - the grouping is part of the store's layout

if TYPE_CHECKING:
    from lrid.models.base import MeasuredModel


class ModelSettings(Protocol):
    """What the builders read of a model spec (:class:`lrid.config.ModelSpec` has it). Named structurally,
    because ``lrid.config`` sits below the models and looks them up to validate a sweep."""

    @property
    def arch(self) -> str: ...
    @property
    def hidden(self) -> tuple[int, ...]: ...
    @property
    def activation(self) -> str: ...
    @property
    def width(self) -> float: ...
    @property
    def initialisation(self) -> dict[str, Any]: ...
    @property
    def conv_layers(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: how to build it, a description, the input it is meant for, and whether its
    builder honours ``model.init_scale``, ``model.init`` and ``model.init_distribution``."""

    name: str
    description: str
    builder: Callable
    default_input_shape: tuple[int, ...]
    default_classes: int
    scales_init: bool = False

    @property
    def needs_images(self) -> bool:
        """Whether the architecture needs image inputs (height, width, channels)."""
        return len(self.default_input_shape) == 3


def _mlp(spec, n_classes, feedback, seed):
    from lrid.models.mlp import MLP

    return MLP(spec.hidden, n_classes, spec.activation, feedback=feedback, seed=seed, **spec.initialisation)


def _knet(norm, conv4):
    def build(spec, n_classes, feedback, seed):
        from lrid.models.knet import KNet

        return KNet(n_classes, norm=norm, conv4=conv4, feedback=feedback, seed=seed)

    return build


def _convnet(spec, n_classes, feedback, seed):
    from lrid.models.convnet import ConvNet

    return ConvNet(
        n_classes,
        activation=spec.activation,
        feedback=feedback,
        seed=seed,
        width=spec.width,
        **spec.initialisation,
        **spec.conv_layers,
    )


def _alexnet(norm):
    def build(spec, n_classes, feedback, seed):
        from lrid.models.alexnet import AlexNet

        return AlexNet(n_classes, feedback=feedback, seed=seed, width=spec.width, norm=norm)

    return build


def _resnet(depth, version):
    def build(spec, n_classes, feedback, seed):
        from lrid.models.resnet import ResNet

        return ResNet(n_classes, depth=depth, version=version, feedback=feedback, seed=seed, width=spec.width)

    return build


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture(
            "mlp",
            "multilayer perceptron (hidden widths and activation configurable)",
            _mlp,
            (64,),
            10,
            scales_init=True,
        ),
        Architecture(
            "convnet",
            "all-convolutional net, 3 stride-2 conv + 1 dense (model.conv_filters, conv_strides), no pooling or norm (any rule, DTP included)",
            _convnet,
            (32, 32, 3),
            10,
            scales_init=True,
        ),
        Architecture(
            "knet", "KNet: Caffe CIFAR-10 net, 3 conv + 1 dense, batch norm", _knet("bn", False), (32, 32, 3), 10
        ),
        Architecture(
            "knetlrn",
            "KNet with local response normalisation (the Caffe original)",
            _knet("lrn", False),
            (32, 32, 3),
            10,
        ),
        Architecture("knetc4", "KNet-C4: 4 conv + 1 dense, batch norm", _knet("bn", True), (32, 32, 3), 10),
        Architecture("knetc4lrn", "KNet-C4 with local response normalisation", _knet("lrn", True), (32, 32, 3), 10),
        Architecture(
            "alexnet",
            "AlexNet with batch norm (Xiao et al. 2019), 5 conv + 3 dense",
            _alexnet("bn"),
            (224, 224, 3),
            1000,
        ),
        Architecture(
            "alexnetlrn",
            "AlexNet with local response normalisation (Krizhevsky et al. 2012)",
            _alexnet("lrn"),
            (224, 224, 3),
            1000,
        ),
        Architecture("resnet18", "ResNet-18 v1 (post-activation)", _resnet(18, 1), (224, 224, 3), 1000),
        Architecture("resnet18v2", "ResNet-18 v2 (pre-activation)", _resnet(18, 2), (224, 224, 3), 1000),
        Architecture("resnet34", "ResNet-34 v1 (post-activation)", _resnet(34, 1), (224, 224, 3), 1000),
        Architecture("resnet34v2", "ResNet-34 v2 (pre-activation)", _resnet(34, 2), (224, 224, 3), 1000),
    ]
}


def build_network(
    model_spec: ModelSettings, input_shape: tuple[int, ...], n_classes: int, feedback: str | None, seed: int
) -> MeasuredModel:
    """Build (and initialise) the architecture a :class:`~lrid.config.ModelSpec` names for the given input."""
    model = ARCHITECTURES[model_spec.arch].builder(model_spec, n_classes, feedback, seed)
    model.build((None, *input_shape))
    return model


def build_model(model_spec: ModelSettings, task: Any, feedback: str | None, seed: int) -> MeasuredModel:
    """Build (and initialise) the network a :class:`~lrid.config.ModelSpec` describes for ``task``."""
    return build_network(model_spec, task.input_shape, task.n_classes, feedback, seed)
