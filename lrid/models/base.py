"""What every architecture shares: its measured layers, and capturing their activity in one forward pass."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

_capture = threading.local()


class ActivityCapture:
    """Collects (input, output) of every :class:`FeedbackLayer` called while it is active.

    ``perturbations``, if given, maps ``id(layer)`` to a tensor the layer adds to its pre-activation
    (node perturbation's noisy pass).
    """

    def __init__(self, exact_gradient: bool, perturbations: dict | None = None) -> None:
        self.exact_gradient = exact_gradient
        self.perturbations = perturbations or {}
        self.records: list[tuple[Any, tf.Tensor, tf.Tensor]] = []  # (layer, input, output)


def active_capture() -> ActivityCapture | None:
    """The capture in progress on this thread, if any (read by FeedbackLayer.call)."""
    return getattr(_capture, "current", None)


@contextlib.contextmanager
def capturing(exact_gradient: bool, perturbations: dict | None = None) -> Iterator[ActivityCapture]:
    """Capture every feedback layer's activity during the block (re-entrant captures are not allowed)."""
    if active_capture() is not None:
        raise RuntimeError("activity capture is already active")
    _capture.current = ActivityCapture(exact_gradient, perturbations)
    try:
        yield _capture.current
    finally:
        _capture.current = None


class MeasuredModel(keras.Model):
    """A network whose ``measured_layers`` (every layer with a weight kernel, in depth order) are recorded.

    Subclasses build their layers in ``__init__``, list the feedback layers in ``self.measured_layers``,
    and implement ``call(inputs, training=False)`` returning logits. Any topology works (residual blocks
    included): :meth:`forward_with_activity` captures each measured layer's input and output as it runs.
    """

    def build(self, input_shape: Any) -> None:
        """Create every layer's weights by running ``call`` once on a zero batch of ``input_shape``."""
        #: the shape of one example, kept so rules can size auxiliary state (e.g. DTP's inverses)
        self.example_shape = tuple(int(d) for d in input_shape[1:])
        self.call(tf.zeros((1, *input_shape[1:])))

    def forward_with_activity(
        self, inputs: tf.Tensor, exact_gradient: bool = False, training: bool = False, perturbations: Any = None
    ) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor]]:
        """Return ``(logits, layer_inputs, layer_outputs)``, one entry per measured layer in depth order.

        With ``exact_gradient`` every layer's backward pass is true backprop whatever the rule (used to
        record activity changes, which are properties of the forward map). ``perturbations``, one tensor
        per measured layer (shaped like its output), is added to each layer's pre-activation.
        """
        if perturbations is not None:
            perturbations = {id(layer): noise for layer, noise in zip(self.measured_layers, perturbations, strict=True)}
        with capturing(exact_gradient, perturbations) as capture:
            logits = self(inputs, training=training)
        by_layer = {}
        for layer, layer_input, layer_output in capture.records:
            if id(layer) in by_layer:
                raise RuntimeError(f"layer {layer.name} was called twice in one forward pass")
            by_layer[id(layer)] = (layer_input, layer_output)
        missing = [layer.name for layer in self.measured_layers if id(layer) not in by_layer]
        if missing:
            raise RuntimeError(f"measured layers not called in the forward pass: {missing}")
        pairs = [by_layer[id(layer)] for layer in self.measured_layers]
        return logits, [p[0] for p in pairs], [p[1] for p in pairs]

    def measured_readers(self) -> list[int | None]:
        """For each measured layer, the index of the measured layer that reads its output, None where none
        does alone (the readout; a branch summed with another): what update reach
        (:mod:`lrid.observables.update_reach`) reads a layer's update through. A chain by default."""
        return [*range(1, len(self.measured_layers)), None]

    def predict_logits(self, inputs: tf.Tensor) -> Any:
        """Logits for a batch of inputs, through a compiled inference-mode forward pass (for evaluation)."""
        if not hasattr(self, "_compiled_call"):
            self._compiled_call = tf.function(lambda x: self(x, training=False), reduce_retracing=True, autograph=False)
        return self._compiled_call(inputs).numpy()

    def parameter_count(self) -> int:
        """Number of trainable forward parameters (feedback kernels excluded)."""
        return int(sum(v.numpy().size for v in self.trainable_variables if "feedback" not in v.path))
