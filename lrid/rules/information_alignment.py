"""Information alignment (Kunin et al. 2020)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from lrid.lazy_import import tf
from lrid.rules import register_rule
from lrid.rules.base import ComposableHyperparameters, LearningRule

# Kunin et al.'s defaults (alpha, beta, gamma) = (2e-3, 1e-3, 1e-3) assume ~10^6 training steps. At a
# few hundred steps they leave B where feedback alignment's is (angle to W^T ~88 degrees), making IA
# indistinguishable from FA; 30x aligns B within a digits-scale budget at equal accuracy (the
# measurements are in shared/research/findings.md).
ALIGNING_SCALE = 30.0


class InformationAlignmentHyperparameters(ComposableHyperparameters):
    """Optimizer settings plus the coefficients of IA's local loss."""

    alpha: float = Field(2e-3 * ALIGNING_SCALE, ge=0, description="weight of the amp primitive")
    beta: float = Field(1e-3 * ALIGNING_SCALE, ge=0, description="weight of the null primitive")
    gamma: float = Field(1e-3 * ALIGNING_SCALE, ge=0, description="weight of the decay primitive")


@register_rule
class InformationAlignment(LearningRule):
    """Feedback kernels learned by a local loss built from Kunin et al.'s primitives.

    Each layer's feedback kernel B (W's shape; B = W is backprop) carries the backward error as in
    feedback alignment and is trained only by ``R = alpha * amp + beta * null + gamma * decay`` with the
    layer input x and forward kernel W held fixed (stop-gradient). For a dense layer:

    * amp   = -mean_n sum(P_f * P_b),  with P_f = x W and P_b = x B,
    * null  =  mean_n ||R_f||^2,       with R_f = P_f B^T (the reconstruction of x through B),
    * decay =  ||W||^2 + ||B||^2;

    for a convolution, x W is conv(x, W) and P_f B^T its transpose convolution. For inputs with
    covariance C, R's minimiser is ``B*^T = alpha (2 beta W^T C W + 2 gamma I)^-1 W^T C``, a
    ridge-regularised pseudo-inverse of W, whose angle to W is below 90 degrees. The projections omit
    the bias, as the fixed-point derivation does.

    Reference: Kunin, Nayebi, Sagastuy-Brena, Ganguli, Bloom & Yamins, "Two routes to scalable credit
    assignment without weight symmetry", ICML 2020.
    """

    name = "ia"
    description = "information alignment: feedback kernels trained by local amp + null + decay losses"
    reference = "Kunin et al. 2020"
    Hyperparameters = InformationAlignmentHyperparameters
    feedback = "learned"

    def local_loss(self, layer: Any, layer_input: Any) -> Any:
        """IA's alignment loss R for one layer (the definition; training uses its gradient in closed form)."""
        inputs = tf.stop_gradient(layer_input)
        kernel = tf.stop_gradient(tf.convert_to_tensor(layer.kernel))
        feedback = tf.convert_to_tensor(layer.feedback_kernel)
        forward_projection = layer.linear(inputs, kernel)
        backward_projection = layer.linear(inputs, feedback)
        reconstruction = layer.input_gradient(forward_projection, feedback, tf.shape(inputs))
        batch_size = tf.cast(tf.shape(inputs)[0], inputs.dtype)
        amp = -tf.reduce_sum(forward_projection * backward_projection) / batch_size
        null = tf.reduce_sum(tf.square(reconstruction)) / batch_size
        decay = tf.reduce_sum(tf.square(kernel)) + tf.reduce_sum(tf.square(feedback))
        return self.hparams.alpha * amp + self.hparams.beta * null + self.hparams.gamma * decay

    def feedback_gradient(self, layer: Any, layer_input: Any) -> Any:
        """dR/dB = K(2 beta R_f - alpha x, P_f) / N + 2 gamma B, K being the layer's kernel gradient.

        R is linear in B through P_b and R_f, so its gradient is one kernel-gradient of the layer: for a
        dense layer ``(2 beta P_f B^T - alpha x)^T P_f / N + 2 gamma B``.
        """
        inputs = tf.stop_gradient(layer_input)
        kernel = tf.stop_gradient(tf.convert_to_tensor(layer.kernel))
        feedback = tf.stop_gradient(tf.convert_to_tensor(layer.feedback_kernel))
        forward_projection = layer.linear(inputs, kernel)
        reconstruction = layer.input_gradient(forward_projection, feedback, tf.shape(inputs))
        signal = 2.0 * self.hparams.beta * reconstruction - self.hparams.alpha * inputs
        batch_size = tf.cast(tf.shape(inputs)[0], inputs.dtype)
        return layer.kernel_gradient(signal, forward_projection) / batch_size + 2.0 * self.hparams.gamma * feedback
