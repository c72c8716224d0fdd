"""Feedback alignment (Lillicrap et al. 2016)."""

from __future__ import annotations

from lrid.rules import register_rule
from lrid.rules.base import LearningRule


@register_rule
class FeedbackAlignment(LearningRule):
    """Errors travel backwards through fixed random matrices instead of the transposed weights.

    For a dense layer ``a = x W + b``, the error sent to the input is ``delta B`` with B fixed and
    random (same init distribution as W, drawn independently), while the weight update stays local:
    ``dW = x^T delta``. The output layer's own update is therefore exact; only the errors reaching
    lower layers differ from backprop.

    Reference: Lillicrap, Cownden, Tweed & Akerman, "Random synaptic feedback weights support error
    backpropagation for deep learning", Nature Communications 7, 13276 (2016).
    """

    name = "fa"
    description = "feedback alignment: errors sent back through fixed random feedback kernels"
    reference = "Lillicrap et al. 2016"
    feedback = "fixed"
