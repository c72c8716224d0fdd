"""Dense networks in plain numpy: forward pass, backward pass with any feedback matrices, activity change.

Orientation (PyTorch's, not lrid's): a layer's weight ``W`` is [out, in] and ``z = x W^T + b``. A feedback
matrix ``B`` has W's shape and carries the error down as ``dx = delta B``; backprop is ``B = W``. Recordings
transpose W to the documented [in, out].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("tanh", "relu", "softplus")


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """The hidden nonlinearity ``name`` applied to the pre-activation ``z``."""
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "softplus":
        # np.logaddexp is exact too but about ten times slower on float32 arrays.
        return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def activation_slope(name: str, z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """f'(z), given z and h = f(z) (tanh's slope is cheapest from h)."""
    if name == "tanh":
        return 1 - h * h
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "softplus":
        return 0.5 * (1 + np.tanh(0.5 * z))  # the logistic sigmoid, without exp's overflow
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


@dataclass
class Net:
    """An MLP: hidden layers with ``activation``, then a linear readout whose outputs are the logits."""

    weights: list[np.ndarray]  # [out, in] each
    biases: list[np.ndarray]
    activation: str
    init_std: list[float]  # the standard deviation each W was drawn with

    @property
    def depth(self) -> int:
        """The number of weight layers, readout included."""
        return len(self.weights)

    # The interface the rules train through, shared with benchmarks.foreign.conv.ConvNet.

    def linear(self, index: int, layer_input: np.ndarray) -> np.ndarray:
        """Layer ``index``'s pre-activation: ``x W^T + b``."""
        return layer_input @ self.weights[index].T + self.biases[index]

    def forward(self, x: np.ndarray, noise: list[np.ndarray] | None = None):
        """:func:`forward` of this net."""
        return forward(self, x, noise)

    def backward(self, inputs, pre, outputs, grad_logits: np.ndarray, feedback: list[np.ndarray] | None = None):
        """:func:`backward` of this net."""
        return backward(self, inputs, pre, outputs, grad_logits, feedback)

    def activity_change(self, pre, outputs) -> list[np.ndarray]:
        """:func:`activity_change` of this net."""
        return activity_change(self, pre, outputs)

    def perturbation_gradients(self, coefficient: np.ndarray, noise: list[np.ndarray], inputs):
        """Node perturbation's updates: per layer, ``sum_n c_n xi_n h_n`` and ``sum_n c_n xi_n``."""
        grads_w = [(coefficient[:, None] * xi).T @ h for xi, h in zip(noise, inputs)]
        grads_b = [coefficient @ xi for xi in noise]
        return grads_w, grads_b

    def patches(self, index: int, layer_input: np.ndarray) -> np.ndarray:
        """The rows layer ``index``'s weights multiply: its input itself (a dense layer has no patches)."""
        return layer_input

    def fold(self, index: int, rows: np.ndarray, layer_input: np.ndarray) -> np.ndarray:
        """The adjoint of :meth:`patches`: the rows themselves."""
        return rows

    def overlaps(self, index: int) -> int:
        """How many rows of :meth:`patches` one input entry lies in: 1."""
        return 1


def init_net(rng: np.random.Generator, sizes: list[int], activation: str, scheme: str, gain: float,
             dtype=np.float32) -> Net:
    """Gaussian init: ``lecun`` draws W with std gain/sqrt(fan_in), ``he`` with gain*sqrt(2/fan_in); biases 0."""
    factor = {"lecun": 1.0, "he": 2.0}[scheme]
    weights, biases, stds = [], [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        std = gain * np.sqrt(factor / fan_in)
        weights.append((rng.standard_normal((fan_out, fan_in)) * std).astype(dtype))
        biases.append(np.zeros(fan_out, dtype))
        stds.append(float(std))
    return Net(weights, biases, activation, stds)


def forward(net, x: np.ndarray, noise: list[np.ndarray] | None = None):
    """Inputs of every layer, pre-activations and outputs: ``(inputs, pre, outputs)``; ``outputs[-1]`` are logits.

    ``net`` is a :class:`Net` or a :class:`~benchmarks.foreign.conv.ConvNet`: its ``linear`` gives a layer's
    pre-activation. ``noise[l]``, when given, is added to layer l's pre-activation (node perturbation's noisy
    pass).
    """
    inputs, pre, outputs = [], [], []
    h = x
    for index in range(net.depth):
        inputs.append(h)
        z = net.linear(index, h)
        if noise is not None:
            z = z + noise[index]
        h = z if index == net.depth - 1 else activate(net.activation, z)
        pre.append(z)
        outputs.append(h)
    return inputs, pre, outputs


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum for stability."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy over the batch and its gradient with respect to the logits."""
    n = len(labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(n), labels].mean()
    grad = np.exp(log_probs)
    grad[np.arange(n), labels] -= 1
    return float(loss), grad / n


def backward(net: Net, inputs, pre, outputs, grad_logits: np.ndarray, feedback: list[np.ndarray] | None = None):
    """Weight and bias gradients, the error carried down through ``feedback[l]`` (default: the weights, backprop).

    ``feedback[0]`` is never used: nothing lies below the first layer.
    """
    feedback = net.weights if feedback is None else feedback
    grads_w, grads_b = [None] * net.depth, [None] * net.depth
    delta = grad_logits
    for index in range(net.depth - 1, -1, -1):
        grads_w[index] = delta.T @ inputs[index]
        grads_b[index] = delta.sum(axis=0)
        if index:
            below = index - 1
            delta = (delta @ feedback[index]) * activation_slope(net.activation, pre[below], outputs[below])
    return grads_w, grads_b


def activity_change(net: Net, pre, outputs) -> list[np.ndarray]:
    """Per example and layer, the input-output Jacobian dy/dx summed over all entries, divided by out units.

    For y = f(W x + b) the Jacobian is diag(f'(z)) W, so its entry sum is f'(z) . (W summed over inputs).
    The readout's output is its logits (f = identity), as lrid measures its own readout.
    """
    changes = []
    for index, w in enumerate(net.weights):
        row_sums = w.sum(axis=1)
        if index == net.depth - 1:
            slope = np.ones_like(pre[index])
        else:
            slope = activation_slope(net.activation, pre[index], outputs[index])
        changes.append(slope @ row_sums / w.shape[0])
    return changes
