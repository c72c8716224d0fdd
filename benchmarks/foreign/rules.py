"""Learning rules written from their papers' equations (see ``shared/research/rules.md``), in plain numpy.

A rule turns one batch into updates for a network through an optimizer: a dense
:class:`~benchmarks.foreign.network.Net` or a :class:`~benchmarks.foreign.conv.ConvNet`, through the methods
they share. The optimizers follow PyTorch's forms (momentum buffer of gradients; Adam's epsilon added to the
bias-corrected root), not Keras's.
"""

from __future__ import annotations

import numpy as np

from benchmarks.foreign.network import Net, cross_entropy, softmax

RULES = ("sgdm", "adam", "fa", "ss", "ia", "np", "np_wn")
OPTIMIZERS = ("sgd", "sgdm", "adam")


class Optimizer:
    """Plain SGD, SGD with momentum (``buf = m buf + g; w -= lr buf``) or Adam, over a list of arrays."""

    def __init__(self, kind: str, lr: float, momentum: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8):
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")
        self.kind, self.lr, self.momentum, self.betas, self.eps = kind, lr, momentum, betas, eps
        self.t = 0
        self.state: list[list[np.ndarray]] | None = None

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Update ``params`` in place from ``grads``."""
        self.t += 1
        if self.kind == "sgd":
            for p, g in zip(params, grads):
                p -= self.lr * g
            return
        if self.state is None:
            self.state = [[np.zeros_like(p) for p in params] for _ in range(1 if self.kind == "sgdm" else 2)]
        if self.kind == "sgdm":
            for p, g, buf in zip(params, grads, self.state[0]):
                buf *= self.momentum
                buf += g
                p -= self.lr * buf
            return
        beta1, beta2 = self.betas
        correction1, correction2 = 1 - beta1**self.t, 1 - beta2**self.t
        for p, g, m, v in zip(params, grads, *self.state):
            m += (1 - beta1) * (g - m)
            v += (1 - beta2) * (g * g - v)
            p -= self.lr * (m / correction1) / (np.sqrt(v / correction2) + self.eps)


class Rule:
    """Backprop: exact gradients of the mean cross-entropy (``sgdm`` and ``adam`` differ only by optimizer)."""

    def __init__(self, net: Net, optimizer: Optimizer, rng: np.random.Generator):
        self.net, self.optimizer, self.rng = net, optimizer, rng

    def feedback(self) -> list[np.ndarray]:
        """The matrices that carry the error down, one per layer (W itself for backprop)."""
        return self.net.weights

    def gradients(self, x: np.ndarray, y: np.ndarray):
        """(loss, weight updates, bias updates) that the optimizer descends."""
        inputs, pre, outputs = self.net.forward(x)
        loss, grad_logits = cross_entropy(outputs[-1], y)
        grads_w, grads_b = self.net.backward(inputs, pre, outputs, grad_logits, self.feedback())
        self.after_forward(inputs, pre)
        return loss, grads_w, grads_b

    def after_forward(self, inputs, pre) -> None:
        """Hook for rules with their own local learning (IA's feedback); nothing for backprop."""

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """Train on one batch; returns the batch loss before the update."""
        loss, grads_w, grads_b = self.gradients(x, y)
        self.optimizer.step(self.net.weights + self.net.biases, grads_w + grads_b)
        return loss


class FeedbackAlignment(Rule):
    """Lillicrap et al. 2016: the error goes down through fixed random B, drawn like W but independently."""

    def __init__(self, net, optimizer, rng):
        super().__init__(net, optimizer, rng)
        self.matrices = [(rng.standard_normal(w.shape) * std).astype(w.dtype) for w, std in zip(net.weights, net.init_std)]

    def feedback(self):
        return self.matrices


class SignSymmetry(Rule):
    """Liao et al. 2016 (uSF): B = s sign(W), recomputed every step, s the std W was initialised with."""

    def feedback(self):
        return [np.sign(w) * np.asarray(std, w.dtype) for w, std in zip(self.net.weights, self.net.init_std)]


class InformationAlignment(FeedbackAlignment):
    """Kunin et al. 2020: B starts random and descends R = alpha amp + beta null + gamma decay, layer-locally.

    With x the layer input, P_f = x W^T + b, P_b = x B^T + b and R_f = P_f B (NA's defaults add the forward
    bias to both projections): amp = -mean_n sum P_f P_b, null = mean_n |R_f|^2, decay = |W|^2 + |B|^2. W,
    b and x are constants in R, so R moves B alone; B takes plain SGD steps of ``feedback_lr``. In a conv
    layer the projections are convolutions (products with the input's patches, summed over positions) and
    R_f the transposed convolution of P_f with B (the patches folded back onto the input).
    """

    def __init__(self, net, optimizer, rng, alpha: float, beta: float, gamma: float, feedback_lr: float):
        super().__init__(net, optimizer, rng)
        self.alpha, self.beta, self.gamma, self.feedback_lr = alpha, beta, gamma, feedback_lr

    def local_loss(self, index: int, x: np.ndarray) -> float:
        """R for layer ``index`` on layer input ``x`` (the oracle the gradient is tested against)."""
        w, b, feedback = self.net.weights[index], self.net.biases[index], self.matrices[index]
        rows, w_matrix, feedback_matrix = self.net.patches(index, x), w.reshape(len(w), -1), feedback.reshape(len(w), -1)
        forward_projection, backward_projection = rows @ w_matrix.T + b, rows @ feedback_matrix.T + b
        reconstruction = self.net.fold(index, forward_projection @ feedback_matrix, x)
        n = len(x)
        amp = -np.sum(forward_projection * backward_projection) / n
        null = np.sum(reconstruction**2) / n
        decay = np.sum(w**2) + np.sum(feedback**2)
        return float(self.alpha * amp + self.beta * null + self.gamma * decay)

    def local_gradient(self, index: int, x: np.ndarray) -> np.ndarray:
        """dR/dB for layer ``index``: -alpha P_f^T x / N + 2 beta P_f^T R_f / N + 2 gamma B (x and R_f as the
        patches a conv layer reads)."""
        w, b, feedback = self.net.weights[index], self.net.biases[index], self.matrices[index]
        rows, feedback_matrix = self.net.patches(index, x), feedback.reshape(len(w), -1)
        forward_projection = rows @ w.reshape(len(w), -1).T + b
        reconstruction = self.net.patches(index, self.net.fold(index, forward_projection @ feedback_matrix, x))
        n = len(x)
        gradient = (forward_projection.T @ (2 * self.beta * reconstruction - self.alpha * rows)) / n
        return gradient.reshape(feedback.shape) + 2 * self.gamma * feedback

    def after_forward(self, inputs, pre) -> None:
        # Layer 0's B never carries an error (nothing lies below), so only the upper layers learn theirs.
        for index in range(1, self.net.depth):
            x = inputs[index]
            # R's curvature in B is at most 2 beta tr(P_f^T P_f)/N + 2 gamma (pre[index] is P_f), times the
            # patches an input entry lies in for a conv layer; a larger step than its inverse would overshoot, so
            # the step is capped there (a bound, cheaper than an eigenvalue).
            overlaps = self.net.overlaps(index)
            curvature = 2 * self.beta * overlaps * float(np.sum(pre[index] ** 2)) / len(x) + 2 * self.gamma
            step = min(self.feedback_lr, 1 / curvature)
            self.matrices[index] -= step * self.local_gradient(index, x)


class NodePerturbation(Rule):
    """Hiratani et al. 2022: perturb every pre-activation (logits too) with N(0, sigma^2) noise, compare the
    squared error on the softmax outputs, E = sum_k (p_k - t_k)^2, of the noisy and the clean pass, and move
    W_l along c_n xi_l,n h_l-1,n with c_n = (E~_n - E_n) / (2 sigma^2) and the clean presynaptic h.

    The update is averaged over the batch (Hiratani's SARCOS form) so the learning rate does not scale with
    it. With ``weight_norm`` every unit's incoming weights are rescaled to their initial RMS after each step.
    """

    def __init__(self, net, optimizer, rng, sigma: float, weight_norm: bool = False):
        super().__init__(net, optimizer, rng)
        self.sigma, self.weight_norm = sigma, weight_norm

    def gradients(self, x: np.ndarray, y: np.ndarray):
        """(clean squared error, weight updates, bias updates) from one noise draw per example."""
        inputs, _, outputs = self.net.forward(x)
        noise = [(self.rng.standard_normal(o.shape) * self.sigma).astype(o.dtype) for o in outputs]
        _, _, noisy = self.net.forward(x, noise)
        target = np.eye(outputs[-1].shape[1], dtype=x.dtype)[y]
        clean_error = np.sum((softmax(outputs[-1]) - target) ** 2, axis=1)
        noisy_error = np.sum((softmax(noisy[-1]) - target) ** 2, axis=1)
        coefficient = (noisy_error - clean_error) / (2 * self.sigma**2) / len(x)
        grads_w, grads_b = self.net.perturbation_gradients(coefficient, noise, inputs)
        return float(clean_error.mean()), grads_w, grads_b

    def step(self, x, y):
        loss = super().step(x, y)
        if self.weight_norm:
            for w, std in zip(self.net.weights, self.net.init_std):
                # A unit's incoming weights: a row of a dense W, an output channel's whole kernel.
                w *= std / np.sqrt(np.mean(w * w, axis=tuple(range(1, w.ndim)), keepdims=True))
        return loss


def make_rule(name: str, net: Net, rng: np.random.Generator, settings: dict) -> Rule:
    """The rule ``name`` with its optimizer, from a network's sampled ``settings``."""
    optimizer = Optimizer(settings["optimizer"], settings["lr"])
    if name in ("sgdm", "adam"):
        return Rule(net, optimizer, rng)
    if name == "fa":
        return FeedbackAlignment(net, optimizer, rng)
    if name == "ss":
        return SignSymmetry(net, optimizer, rng)
    if name == "ia":
        return InformationAlignment(net, optimizer, rng, *settings["ia_coefficients"], settings["feedback_lr"])
    if name in ("np", "np_wn"):
        return NodePerturbation(net, optimizer, rng, settings["sigma"], weight_norm=name == "np_wn")
    raise ValueError(f"unknown rule {name!r}; choose from {', '.join(RULES)}")
