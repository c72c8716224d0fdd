"""Rule health: the angles that show whether a rule is in the regime its paper meant.

Recorded in each run's manifest at the recorded steps, never as classifier features:

* ``update_gradient_angle_deg``: per measured layer, the angle between the signal the rule hands its
  optimizer for the kernel and the true gradient of the task loss, on the batch just trained on. 0 for
  backprop; below 90 when a rule's updates still descend the loss (FA after alignment, NP on average).
* ``feedback_weight_angle_deg``: per layer with a feedback kernel (fa, ss, ia), the angle between the
  feedback kernel B and the forward kernel W (same shape, so B = W is backprop). FA's starts near 90 and
  falls as W aligns to B; IA should fall faster. None for rules without feedback kernels.

Both are measured in inference mode and leave the run untouched: no batch-norm statistics move and no
random state of the rule is drawn (rules that draw noise use a separate generator for the probe).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lrid.lazy_import import tf

if TYPE_CHECKING:
    from lrid.models.base import MeasuredModel
    from lrid.rules.base import LearningRule


def angle_degrees(a: Any, b: Any) -> Any:
    """The angle between two tensors of the same shape, flattened, in degrees (NaN if either is zero)."""
    a = tf.reshape(tf.cast(a, tf.float32), [-1])
    b = tf.reshape(tf.cast(b, tf.float32), [-1])
    norms = tf.norm(a) * tf.norm(b)
    cosine = tf.clip_by_value(tf.reduce_sum(a * b) / norms, -1.0, 1.0)
    degrees = tf.acos(cosine) * (180.0 / math.pi)
    return tf.where(norms > 0, degrees, tf.constant(float("nan")))


class HealthProbe:
    """Measures a rule's health angles on a model, one compiled call per recorded step."""

    def __init__(self, rule: LearningRule, model: MeasuredModel) -> None:
        self.rule = rule
        self.model = model
        self.has_feedback = any(layer.feedback_matrix() is not None for layer in model.measured_layers)
        self._measure = tf.function(self._angles, reduce_retracing=True, autograph=False)
        self._traces: dict[
            tuple[tuple[int, ...], tuple[int, ...]], Any
        ] = {}  # per batch shape, the trace called directly (a run's batches share one shape)

    def _angles(self, x, y):
        layers = self.model.measured_layers
        with tf.GradientTape() as tape:
            logits, _, _ = self.model.forward_with_activity(x, exact_gradient=True, training=False)
            loss = self.rule.task_loss(y, logits)
        true_gradients = tape.gradient(loss, [layer.kernel for layer in layers])
        signals = self.rule.kernel_update_signals(self.model, x, y)
        update_angles = tf.stack([angle_degrees(s, g) for s, g in zip(signals, true_gradients, strict=True)])
        if not self.has_feedback:
            return update_angles, tf.zeros([0])
        feedback_angles = tf.stack(
            [
                angle_degrees(layer.feedback_matrix(), layer.kernel)
                if layer.feedback_matrix() is not None
                else tf.constant(float("nan"))
                for layer in layers
            ]
        )
        return update_angles, feedback_angles

    def measure(self, x: Any, y: Any) -> tuple[list[float | None], list[float | None] | None]:
        """(update-vs-gradient angle per layer, feedback-vs-weight angle per layer or None), in degrees."""
        key = (tuple(x.shape), tuple(y.shape))
        if key not in self._traces:
            self._traces[key] = self._measure.get_concrete_function(x, y)
        update_angles, feedback_angles = self._traces[key](x, y)
        return _rounded(update_angles), (_rounded(feedback_angles) if self.has_feedback else None)


def _rounded(values) -> list[float | None]:
    # JSON has no NaN: a zero gradient (no angle) is written as null.
    return [round(float(v), 3) if math.isfinite(float(v)) else None for v in values.numpy()]
