"""Exact gradients (backpropagation) applied by SGD with momentum or by Adam."""

from __future__ import annotations

from lrid.rules import register_rule
from lrid.rules.base import AdamHyperparameters, LearningRule, SGDHyperparameters, SGDMomentumHyperparameters


@register_rule
class SGD(LearningRule):
    """Backprop with plain stochastic gradient descent: ``W <- W - lr dL/dW``.

    Reference: Rumelhart, Hinton & Williams, "Learning representations by back-propagating errors",
    Nature 323 (1986).
    """

    name = "sgd"
    description = "backprop gradients, plain SGD"
    reference = "Rumelhart et al. 1986"
    Hyperparameters = SGDHyperparameters
    optimizer = "sgd"


@register_rule
class SGDMomentum(LearningRule):
    """Backprop with SGD momentum: ``v <- m v - lr dL/dW; W <- W + v``.

    Reference: Rumelhart, Hinton & Williams (1986); Polyak (1964) for the momentum term.
    """

    name = "sgdm"
    description = "backprop gradients, SGD with momentum"
    reference = "Rumelhart et al. 1986; Polyak 1964"
    Hyperparameters = SGDMomentumHyperparameters
    optimizer = "sgdm"


@register_rule
class Adam(LearningRule):
    """Backprop with Adam: bias-corrected first and second moments, ``W <- W - lr_t m / (sqrt(v) + eps)``.

    Reference: Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015.
    """

    name = "adam"
    description = "backprop gradients, Adam"
    reference = "Kingma & Ba 2015"
    Hyperparameters = AdamHyperparameters
    optimizer = "adam"
