"""Sign symmetry (Liao, Leibo & Poggio 2016; Xiao, Chen, Liao & Poggio 2019)."""

from __future__ import annotations

from lrid.rules import register_rule
from lrid.rules.base import LearningRule


@register_rule
class SignSymmetry(LearningRule):
    """Errors travel backwards through the signs of the forward weights, with a fixed magnitude.

    For a dense layer the feedback is ``B = s * sign(W)^T``, recomputed from W at every step, with s the
    standard deviation of W's (Glorot) initialisation; the weight update stays local, ``dW = x^T delta``.
    This is the "uniform sign-concordant feedback" (uSF) variant. Choices where the papers differ, made
    here as follows: every layer, the output layer included, uses sign feedback (Xiao et al. keep the last
    layer on backprop by default); the magnitude is the init std rather than 1, which keeps deep stacks
    from exploding; there is no batch normalisation in the digits MLP, whose presence Liao et al. found
    important for deeper networks; Batch Manhattan and no-sign-change tricks are not used.

    References: Liao, Leibo & Poggio, "How important is weight symmetry in backpropagation?", AAAI 2016;
    Xiao, Chen, Liao & Poggio, "Biologically-plausible learning algorithms can scale to large datasets",
    ICLR 2019.
    """

    name = "ss"
    description = "sign symmetry: errors sent back through s * sign(W), recomputed every step"
    reference = "Liao et al. 2016; Xiao et al. 2019"
    feedback = "sign"
