"""Convolutional networks in plain numpy: k x k convolutions as products with patch matrices, a dense readout.

Orientation (PyTorch's kernels, channels-last images): an image batch is [N, H, W, C]; a conv kernel ``W`` is
[out, in, k, k] and acts on patches laid out [in, k, k]; padding is k // 2 on every side (PyTorch's
``padding=1`` for k = 3), so a stride-s layer maps H to (H - 1) // s + 1. The readout is [classes, in] on the
last map flattened. A feedback kernel ``B`` has W's shape and carries the error down as the transposed
convolution with B; backprop is ``B = W``. Recordings transpose kernels to lrid's [k, k, in, out].

:class:`ConvNet` offers the same methods as :class:`benchmarks.foreign.network.Net`, so every rule of
:mod:`benchmarks.foreign.rules` trains either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.foreign.network import activation_slope, forward


def _padding(kernel_size: int) -> int:
    return kernel_size // 2


def image_patches(images: np.ndarray, kernel_size: int, stride: int) -> np.ndarray:
    """Every output position's receptive field, one row each: [N, H, W, C] -> [N * Ho * Wo, C * k * k]."""
    pad = _padding(kernel_size)
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel_size, kernel_size), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # [N, Ho, Wo, C, k, k]
    return windows.reshape(-1, windows.shape[3] * kernel_size * kernel_size)


def fold_patches(rows: np.ndarray, image_shape: tuple[int, ...], kernel_size: int, stride: int) -> np.ndarray:
    """The adjoint of :func:`image_patches`: each row's entries added back onto the image positions they were
    read from ([N * Ho * Wo, C * k * k] -> ``image_shape``). It carries an error down a convolution."""
    n, height, width, channels = image_shape
    pad = _padding(kernel_size)
    out_h, out_w = (height - 1) // stride + 1, (width - 1) // stride + 1
    blocks = rows.reshape(n, out_h, out_w, channels, kernel_size, kernel_size)
    padded = np.zeros((n, height + 2 * pad, width + 2 * pad, channels), rows.dtype)
    for i in range(kernel_size):
        for j in range(kernel_size):
            padded[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride] += blocks[..., i, j]
    return padded[:, pad:pad + height, pad:pad + width]


@dataclass
class ConvNet:
    """Conv layers with ``activation`` (their strides in ``strides``), then a linear readout on the last map."""

    weights: list[np.ndarray]  # conv kernels [out, in, k, k], then the readout [classes, in]
    biases: list[np.ndarray]
    activation: str
    init_std: list[float]
    strides: list[int]
    kernel_size: int
    image_shape: tuple[int, int, int]  # H, W, C of one input image

    @property
    def depth(self) -> int:
        """The number of weight layers, readout included."""
        return len(self.weights)

    def is_conv(self, index: int) -> bool:
        """Whether layer ``index`` is a convolution (every layer but the readout)."""
        return index < len(self.strides)

    def patches(self, index: int, layer_input: np.ndarray) -> np.ndarray:
        """Layer ``index``'s input as the rows its kernel multiplies: patches for a conv layer, the flattened map
        for the readout."""
        if self.is_conv(index):
            return image_patches(layer_input, self.kernel_size, self.strides[index])
        return layer_input.reshape(len(layer_input), -1)

    def fold(self, index: int, rows: np.ndarray, layer_input: np.ndarray) -> np.ndarray:
        """The adjoint of :meth:`patches`: rows shaped like its output, back in ``layer_input``'s shape."""
        if self.is_conv(index):
            return fold_patches(rows, layer_input.shape, self.kernel_size, self.strides[index])
        return rows.reshape(layer_input.shape)

    def overlaps(self, index: int) -> int:
        """How many of layer ``index``'s patches one input entry can lie in at most (1 for the readout)."""
        if not self.is_conv(index):
            return 1
        per_axis = -(-self.kernel_size // self.strides[index])  # ceil(k / stride)
        return per_axis * per_axis

    def _matrix(self, kernel: np.ndarray) -> np.ndarray:
        return kernel.reshape(len(kernel), -1)

    def linear(self, index: int, layer_input: np.ndarray) -> np.ndarray:
        """Layer ``index``'s pre-activation: the convolution of its input map with W plus b (a map), or the
        readout's ``x W^T + b`` on the flattened map."""
        w = self.weights[index]
        z = self.patches(index, layer_input) @ self._matrix(w).T + self.biases[index]
        if not self.is_conv(index):
            return z
        stride, (n, height, width) = self.strides[index], layer_input.shape[:3]
        return z.reshape(n, (height - 1) // stride + 1, (width - 1) // stride + 1, len(w))

    def forward(self, x: np.ndarray, noise: list[np.ndarray] | None = None):
        """Inputs of every layer (maps), pre-activations and outputs, as :func:`benchmarks.foreign.network.forward`."""
        return forward(self, x, noise)

    def backward(self, inputs, pre, outputs, grad_logits: np.ndarray, feedback: list[np.ndarray] | None = None):
        """Weight and bias gradients, the error carried down through ``feedback[l]`` (default: the weights)."""
        feedback = self.weights if feedback is None else feedback
        grads_w, grads_b = [None] * self.depth, [None] * self.depth
        delta = grad_logits
        for index in range(self.depth - 1, -1, -1):
            rows = delta.reshape(-1, len(self.weights[index]))
            grads_w[index] = (rows.T @ self.patches(index, inputs[index])).reshape(self.weights[index].shape)
            grads_b[index] = rows.sum(axis=0)
            if index:
                below = index - 1
                carried = self.fold(index, rows @ self._matrix(feedback[index]), inputs[index])
                delta = carried * activation_slope(self.activation, pre[below], outputs[below])
        return grads_w, grads_b

    def perturbation_gradients(self, coefficient: np.ndarray, noise: list[np.ndarray], inputs):
        """Node perturbation's updates: per layer, ``sum_n c_n xi_n`` against the layer's input rows."""
        grads_w, grads_b = [], []
        for index, (xi, layer_input) in enumerate(zip(noise, inputs)):
            weighted = coefficient.reshape(-1, *([1] * (xi.ndim - 1))) * xi
            rows = weighted.reshape(-1, len(self.weights[index]))
            grads_w.append((rows.T @ self.patches(index, layer_input)).reshape(self.weights[index].shape))
            grads_b.append(rows.sum(axis=0))
        return grads_w, grads_b

    def activity_change(self, pre, outputs) -> list[np.ndarray]:
        """Per example and layer, the input-output Jacobian summed over all its entries, divided by the output
        entries (H * W * channels for a conv layer).

        For y = f(conv(x, W) + b), sum_ij dy_i/dx_j = sum_i f'(z_i) conv(1, W)_i: the convolution of an
        all-ones input (zero-padded as x is) says how much of the kernel each output position sums.
        """
        changes = []
        for index, w in enumerate(self.weights):
            last = index == self.depth - 1
            slope = np.ones_like(pre[index]) if last else activation_slope(self.activation, pre[index], outputs[index])
            if self.is_conv(index):
                ones = np.ones((1, *(pre[index - 1].shape[1:] if index else self.image_shape)), w.dtype)
                kernel_sums = (self.patches(index, ones) @ self._matrix(w).T).reshape(pre[index].shape[1:])
            else:
                kernel_sums = w.sum(axis=1)
            per_example = slope.reshape(len(slope), -1) @ kernel_sums.reshape(-1)
            changes.append(per_example / kernel_sums.size)
        return changes


def init_conv_net(rng: np.random.Generator, image_shape: tuple[int, int, int], channels: list[int],
                  strides: list[int], n_classes: int, activation: str, scheme: str, gain: float,
                  kernel_size: int = 3, dtype=np.float32) -> ConvNet:
    """Gaussian init as :func:`benchmarks.foreign.network.init_net` draws it, fan-in a kernel's in * k * k (the
    readout's, the last map's entries); biases 0."""
    factor = {"lecun": 1.0, "he": 2.0}[scheme]
    weights, biases, stds = [], [], []
    height, width, fan = image_shape
    for out, stride in zip(channels, strides):
        std = gain * np.sqrt(factor / (fan * kernel_size * kernel_size))
        weights.append((rng.standard_normal((out, fan, kernel_size, kernel_size)) * std).astype(dtype))
        biases.append(np.zeros(out, dtype))
        stds.append(float(std))
        height, width, fan = (height - 1) // stride + 1, (width - 1) // stride + 1, out
    std = gain * np.sqrt(factor / (height * width * fan))
    weights.append((rng.standard_normal((n_classes, height * width * fan)) * std).astype(dtype))
    biases.append(np.zeros(n_classes, dtype))
    stds.append(float(std))
    return ConvNet(weights, biases, activation, stds, list(strides), kernel_size, tuple(image_shape))
