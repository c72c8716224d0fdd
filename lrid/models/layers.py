"""Layers whose backward signal the learning rule provides.

The forward pass always uses the forward kernel W. The error sent back to the layer's input uses a
feedback kernel B chosen by the rule (W itself for backprop, a fixed random tensor for feedback
alignment, a learned one for information alignment, ``s * sign(W)`` for sign symmetry), while the weight
gradient stays local (``x^T delta`` for dense layers). B always has W's shape, so B = W is backprop
exactly, for dense and convolutional layers alike. Bias and activation sit outside the custom op, so
autodiff handles them exactly.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lrid.models.base import active_capture

FEEDBACK_KINDS = (None, "fixed", "learned", "sign")

#: variance-scaling schemes: (gain, the fan the variance divides by); Keras's and PyTorch's conventions
INIT_SCHEMES = {"glorot": (1.0, "fan_avg"), "he": (2.0, "fan_in"), "lecun": (1.0, "fan_in")}
INIT_DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")


def scheme_std(kernel_shape: Any, init_scheme: str = "glorot") -> float:
    """The standard deviation a variance-scaling scheme gives a kernel of this shape, at scale 1.

    Fans are counted as Keras's initialisers count them: a dense [n_in, n_out] kernel has fans n_in and
    n_out; a conv kernel [kh, kw, c_in, c_out] has ``kh kw c_in`` and ``kh kw c_out``.
    """
    shape = [int(d) for d in kernel_shape]
    receptive_field = 1
    for d in shape[:-2]:
        receptive_field *= d
    fan_in, fan_out = receptive_field * shape[-2], receptive_field * shape[-1]
    gain, mode = INIT_SCHEMES[init_scheme]
    return (gain / {"fan_avg": (fan_in + fan_out) / 2, "fan_in": fan_in}[mode]) ** 0.5


class FeedbackLayer(keras.layers.Layer):
    """A linear map (dense or convolution) plus bias and activation, with a rule-provided backward signal.

    Subclasses define the linear map and its two adjoints: :meth:`linear` (x -> x * K),
    :meth:`input_gradient` (dy -> the input gradient through K) and :meth:`kernel_gradient`
    (x, dy -> dL/dK). Rules use the same three to write local updates that work for any layer type.

    Args:
        activation: a Keras activation name, or None for a linear (logit) layer.
        feedback: None for exact backprop; ``"fixed"`` for a random non-trainable B drawn from W's init
            distribution; ``"learned"`` for a trainable B that only the rule's feedback update changes;
            ``"sign"`` for B = s * sign(W) recomputed at every call, s being W's init standard deviation.
        seed: seeds the kernel and feedback initialisers (the feedback uses ``seed + 1``).
        init_scale: multiplies the forward kernel's initial standard deviation. The feedback kernels and
            sign symmetry's scale keep the scheme's own, so the scale varies the forward network only.
        init_scheme: the variance-scaling scheme of every kernel, forward and feedback: ``"glorot"``
            (variance 2 / (fan_in + fan_out), Keras's default), ``"he"`` (2 / fan_in, PyTorch-style ReLU
            nets) or ``"lecun"`` (1 / fan_in, JAX/Flax's default).
        init_distribution: the shape of the initial entries at that variance: ``"uniform"``,
            ``"truncated_normal"`` (cut at two standard deviations, Keras's ``*_normal``) or
            ``"untruncated_normal"`` (a plain Gaussian, as ``std * randn`` code draws it).
    """

    def __init__(
        self,
        activation: str | None = None,
        feedback: str | None = None,
        seed: int = 0,
        use_bias: bool = True,
        init_scale: float = 1.0,
        init_scheme: str = "glorot",
        init_distribution: str = "uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if feedback not in FEEDBACK_KINDS:
            raise ValueError(f"feedback must be one of {FEEDBACK_KINDS}, got {feedback!r}")
        self.activation_name = activation
        self.activation = keras.activations.get(activation)
        self.feedback = feedback
        self.seed = seed
        self.use_bias = use_bias
        if init_scheme not in INIT_SCHEMES or init_distribution not in INIT_DISTRIBUTIONS:
            raise ValueError(
                f"unknown initialisation {init_scheme!r}/{init_distribution!r}; "
                f"schemes {INIT_SCHEMES}, distributions {INIT_DISTRIBUTIONS}"
            )
        self.init_scale = init_scale
        self.init_scheme = init_scheme
        self.init_distribution = init_distribution

    def kernel_shape(self, input_shape: Any) -> tuple[int, ...]:
        """The forward kernel's shape for inputs of ``input_shape``."""
        raise NotImplementedError

    def linear(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """The layer's linear map applied with ``kernel``: ``x W`` or ``conv(x, W)``."""
        raise NotImplementedError

    def input_gradient(self, upstream: tf.Tensor, kernel: tf.Tensor, input_shape: Any) -> tf.Tensor:
        """The gradient reaching the input when ``upstream`` flows back through ``kernel``."""
        raise NotImplementedError

    def kernel_gradient(self, inputs: tf.Tensor, upstream: tf.Tensor) -> tf.Tensor:
        """The local weight gradient: ``x^T dy`` or the convolution's filter gradient."""
        raise NotImplementedError

    def _initializers(self) -> tuple[Any, Any]:
        """The forward kernel's initialiser and the feedback kernel's (None without a feedback kernel)."""
        gain, mode = INIT_SCHEMES[self.init_scheme]
        kernel = keras.initializers.VarianceScaling(
            scale=gain * self.init_scale**2, mode=mode, distribution=self.init_distribution, seed=self.seed
        )
        feedback = None
        if self.feedback in ("fixed", "learned"):
            feedback = keras.initializers.VarianceScaling(
                scale=gain, mode=mode, distribution=self.init_distribution, seed=self.seed + 1
            )
        return kernel, feedback

    def initial_values(self, input_shape: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(kernel, bias, feedback kernel)`` as :meth:`build` initialises them, without building the layer
        (a bias or feedback kernel the layer lacks is None). The seeded initialisers draw the same values."""
        shape = self.kernel_shape(input_shape)
        kernel, feedback = self._initializers()
        return (
            np.asarray(kernel(shape)),
            np.zeros(shape[-1], np.float32) if self.use_bias else None,
            None if feedback is None else np.asarray(feedback(shape)),
        )

    def build(self, input_shape: Any) -> None:
        shape = self.kernel_shape(input_shape)
        kernel_initializer, feedback_initializer = self._initializers()
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer=kernel_initializer)
        # Layers followed by batch normalisation go without a bias, which the normalisation would cancel.
        self.bias = self.add_weight(name="bias", shape=(shape[-1],), initializer="zeros") if self.use_bias else None
        # The scheme's standard deviation at scale 1: the magnitude sign-symmetric feedback carries.
        self.feedback_scale = scheme_std(shape, self.init_scheme)
        self.feedback_kernel = None
        if feedback_initializer is not None:
            self.feedback_kernel = self.add_weight(
                name="feedback_kernel",
                shape=shape,
                initializer=feedback_initializer,
                trainable=self.feedback == "learned",
            )

    def feedback_matrix(self) -> tf.Tensor | None:
        """The current feedback kernel B (W's shape), or None for exact backprop."""
        if self.feedback == "sign":
            # Derived from W at every call, so it tracks sign flips inside a compiled step.
            return self.feedback_scale * tf.sign(tf.convert_to_tensor(self.kernel))
        if self.feedback_kernel is not None:
            return tf.convert_to_tensor(self.feedback_kernel)
        return None

    def preactivation(self, inputs: tf.Tensor, exact_gradient: bool = False) -> tf.Tensor:
        """``x W + b``; with ``exact_gradient`` the backward pass is true backprop whatever the rule."""
        kernel = tf.convert_to_tensor(self.kernel)
        feedback = None if exact_gradient else self.feedback_matrix()
        if feedback is None:
            outputs = self.linear(inputs, kernel)
        else:
            outputs = self._feedback_linear(inputs, kernel, tf.stop_gradient(feedback))
        return outputs if self.bias is None else outputs + tf.convert_to_tensor(self.bias)

    def _feedback_linear(self, inputs, kernel, feedback):
        @tf.custom_gradient
        def op(x, w, b):
            def grad(upstream):
                return (
                    self.input_gradient(upstream, b, tf.shape(x)),
                    self.kernel_gradient(x, upstream),
                    tf.zeros_like(b),
                )

            return self.linear(x, w), grad

        return op(inputs, kernel, feedback)

    def call(self, inputs: tf.Tensor, exact_gradient: bool = False) -> tf.Tensor:
        capture = active_capture()
        preactivation = self.preactivation(inputs, exact_gradient or bool(capture and capture.exact_gradient))
        if capture is not None and id(self) in capture.perturbations:
            preactivation = preactivation + capture.perturbations[id(self)]
        outputs = self.activation(preactivation)
        if capture is not None:
            capture.records.append((self, inputs, outputs))
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "activation": self.activation_name,
            "feedback": self.feedback,
            "seed": self.seed,
            "use_bias": self.use_bias,
            "init_scale": self.init_scale,
            "init_scheme": self.init_scheme,
            "init_distribution": self.init_distribution,
        }


class FeedbackDense(FeedbackLayer):
    """A dense layer ``activation(x W + b)``; see :class:`FeedbackLayer`."""

    def __init__(
        self, units: int, activation: str | None = None, feedback: str | None = None, seed: int = 0, **kwargs
    ) -> None:
        super().__init__(activation=activation, feedback=feedback, seed=seed, **kwargs)
        self.units = units

    def kernel_shape(self, input_shape: Any) -> Any:
        return (int(input_shape[-1]), self.units)

    def linear(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return tf.matmul(inputs, kernel)

    def input_gradient(self, upstream: tf.Tensor, kernel: tf.Tensor, input_shape: Any) -> tf.Tensor:
        return tf.matmul(upstream, kernel, transpose_b=True)

    def kernel_gradient(self, inputs: tf.Tensor, upstream: tf.Tensor) -> tf.Tensor:
        return tf.matmul(inputs, upstream, transpose_a=True)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


class FeedbackConv2D(FeedbackLayer):
    """A 2-D convolution ``activation(conv(x, W) + b)`` (NHWC); see :class:`FeedbackLayer`."""

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        padding: str = "SAME",
        activation: str | None = None,
        feedback: str | None = None,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(activation=activation, feedback=feedback, seed=seed, **kwargs)
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"padding must be SAME or VALID, got {padding!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding.upper()

    def kernel_shape(self, input_shape: Any) -> Any:
        return (self.kernel_size, self.kernel_size, int(input_shape[-1]), self.filters)

    def linear(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return tf.nn.conv2d(inputs, kernel, self.strides, self.padding)

    def input_gradient(self, upstream: tf.Tensor, kernel: tf.Tensor, input_shape: Any) -> tf.Tensor:
        return tf.nn.conv2d_transpose(upstream, kernel, input_shape, self.strides, self.padding)

    def kernel_gradient(self, inputs: tf.Tensor, upstream: tf.Tensor) -> tf.Tensor:
        return tf.raw_ops.Conv2DBackpropFilter(
            input=inputs,
            filter_sizes=self.kernel.shape,
            out_backprop=upstream,
            strides=[1, self.strides, self.strides, 1],
            padding=self.padding,
        )

    def compute_output_shape(self, input_shape: Any) -> Any:
        height, width = input_shape[1], input_shape[2]
        if self.padding == "SAME":
            size = [None if d is None else -(-d // self.strides) for d in (height, width)]
        else:
            size = [None if d is None else (d - self.kernel_size) // self.strides + 1 for d in (height, width)]
        return (input_shape[0], *size, self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
        }
