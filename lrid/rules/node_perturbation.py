"""Node perturbation (Hiratani, Mehta, Lillicrap & Latham 2022), plain and with weight normalisation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lrid.lazy_import import tf
from lrid.rules import register_rule
from lrid.rules.base import ComposableHyperparameters, LearningRule


class NodePerturbationHyperparameters(ComposableHyperparameters):
    """Optimizer settings plus the perturbation size.

    Defaults chosen on the demo setting (digits MLP, a few hundred steps): Adam at lr 1e-3 learns with both
    ``np`` and ``np_wn``, lr 3e-3 still does, lr 1e-2 collapses to near chance; SGD-momentum learns less
    and collapses at higher rates. Accuracy is flat in sigma over several decades; 1e-3 (Hiratani et al.
    use 1e-4) leaves a wide margin against float32 cancellation in the loss difference
    (benchmarks/rule_accuracy.py measures the accuracies).
    """

    optimizer: Literal["sgd", "sgdm", "adam"] = Field("adam", description="optimizer applying the updates")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    sigma: float = Field(1e-3, gt=0, description="std of the Gaussian noise added to every pre-activation")


def sample_noise(generator: Any, layers: Any, batch_size: Any, sigma: float) -> list:
    """One perturbation per example and unit: ``xi_l ~ N(0, sigma^2 I)``, shape [batch, units], per layer."""
    return [generator.normal((batch_size, layer.units), stddev=sigma, dtype=tf.float32) for layer in layers]


def error_change_coefficients(prediction: Any, noisy_prediction: Any, targets: Any, sigma: float) -> Any:
    """``c_n = (E_noisy_n - E_n) / (2 sigma^2)`` per example, with ``E = sum_k (yhat_k - t_k)^2``.

    ``E_noisy - E = sum_k (yt - y)(yt + y - 2t)``: the difference of the outputs is formed first, rather
    than subtracting two O(1) squared errors, which in float32 would lose most of the O(sigma) change.
    """
    change = (noisy_prediction - prediction) * (noisy_prediction + prediction - 2.0 * targets)
    return tf.reduce_sum(tf.reshape(change, [tf.shape(change)[0], -1]), axis=1) / (2.0 * sigma**2)


def node_perturbation_gradients(
    layers: Any, inputs: Any, targets: Any, noise: Any, sigma: float, readout: Any = None
) -> Any:
    """NP's update signals for a stack of dense layers, with no backpropagation.

    Args:
        layers: dense layers in depth order, each with ``preactivation(h)`` (``h W + b``) and ``activation``.
        inputs: [N, n_in] network inputs.
        targets: [N, n_out] targets of the readout (one-hot labels for classification).
        noise: one [N, units] tensor per layer, ``xi_l ~ N(0, sigma^2 I)`` (see :func:`sample_noise`).
        sigma: the noise's standard deviation.
        readout: maps the last layer's output to the prediction compared with ``targets``; the softmax
            when None (Hiratani's MNIST setting), ``tf.identity`` for a linear readout.

    Returns:
        ``(gradients, logits)``: ``[dW_0, db_0, dW_1, db_1, ...]`` to be *descended*, and the clean pass's
        last-layer output. With ``E = sum_k (yhat_k - t_k)^2`` and ``c_n = (E_noisy_n - E_n) / (2 sigma^2)``,
        ``dW_l = (1/N) sum_n c_n h_{l-1,n}^T xi_{l,n}`` with the clean presynaptic activity ``h_{l-1}`` and
        ``db_l = (1/N) sum_n c_n xi_{l,n}``: in expectation (first order in sigma) the gradient of the
        batch mean of ``E / 2``.
    """
    readout = tf.nn.softmax if readout is None else readout
    inputs = tf.cast(inputs, tf.float32)
    targets = tf.cast(targets, tf.float32)
    clean, noisy = inputs, inputs
    presynaptic = []
    for layer, xi in zip(layers, noise):
        presynaptic.append(clean)
        clean = layer.activation(layer.preactivation(clean, exact_gradient=True))
        noisy = layer.activation(layer.preactivation(noisy, exact_gradient=True) + xi)
    logits = clean
    coefficient = error_change_coefficients(readout(clean), readout(noisy), targets, sigma)
    batch_size = tf.cast(tf.shape(inputs)[0], tf.float32)
    gradients = []
    for h, xi in zip(presynaptic, noise):
        weighted = coefficient[:, None] * xi / batch_size  # c_n xi_n / N
        gradients += [tf.matmul(h, weighted, transpose_a=True), tf.reduce_sum(weighted, axis=0)]
    return gradients, logits


def model_perturbation_gradients(
    model: Any, inputs: Any, targets: Any, generator: Any, sigma: float, readout: Any = None, training: bool = True
) -> Any:
    """NP's update signals for any network of feedback layers (dense or conv), with no backpropagation.

    The same estimate as :func:`node_perturbation_gradients`, for any topology: a clean pass records
    every measured layer's input ``h_{l-1}``; a noisy pass adds ``xi_l ~ N(0, sigma^2)`` (drawn from
    ``generator``, one value per example and output unit, shaped like the layer's output) to every measured
    layer's pre-activation. With ``c_n`` as there, the update of layer l's kernel and bias is the gradient
    of the surrogate ``(1/N) sum_n c_n <xi_{l,n}, u_l(h_{l-1,n})>`` with respect to them, where
    ``u_l(h) = h * W_l + b_l`` is the layer's linear map (a matrix product or a convolution) applied to the
    clean, gradient-stopped input: for a dense layer exactly ``(1/N) sum_n c_n h_{l-1,n}^T xi_{l,n}``.
    No gradient flows through the network; only each layer's own linear map is differentiated.

    Batch normalisation: both passes run in ``training`` mode, so the noisy pass normalises with its own
    batch statistics (which differ from the clean ones by O(sigma / sqrt(N))), and its update of the moving
    statistics is undone, so each step moves them once, as with any other rule. The normalisation's own
    scale and shift get no NP signal and stay at their initial values.

    Returns:
        ``(gradients, logits)``: one entry per measured layer's kernel and bias (biases only where the
        layer has one), in depth order, to be descended; and the clean pass's network output.
    """
    readout = tf.nn.softmax if readout is None else readout
    layers = model.measured_layers
    targets = tf.cast(targets, tf.float32)
    logits, layer_inputs, layer_outputs = model.forward_with_activity(inputs, exact_gradient=True, training=training)
    noise = [generator.normal(tf.shape(output), stddev=sigma, dtype=tf.float32) for output in layer_outputs]
    moving_statistics = [v for v in model.non_trainable_variables if "moving" in v.path]
    saved = [tf.identity(v) for v in moving_statistics]
    with tf.control_dependencies(saved):
        noisy_logits, _, _ = model.forward_with_activity(
            inputs, exact_gradient=True, training=training, perturbations=noise
        )
    with tf.control_dependencies([noisy_logits]):
        for variable, value in zip(moving_statistics, saved):
            variable.assign(value)
    coefficient = error_change_coefficients(readout(logits), readout(noisy_logits), targets, sigma)
    batch_size = tf.cast(tf.shape(inputs)[0], tf.float32)
    variables = [v for layer in layers for v in (layer.kernel, layer.bias) if v is not None]
    with tf.GradientTape() as tape:
        surrogate = 0.0
        for layer, layer_input, xi in zip(layers, layer_inputs, noise):
            weighted = tf.reshape(coefficient, [-1] + [1] * (len(xi.shape) - 1)) * xi / batch_size
            preactivation = layer.preactivation(tf.stop_gradient(layer_input), exact_gradient=True)
            surrogate += tf.reduce_sum(tf.stop_gradient(weighted) * preactivation)
    return tape.gradient(surrogate, variables), logits


def normalize_columns(kernel: Any, target_rms: float) -> Any:
    """``W[:, j] <- target_rms * W[:, j] / rms(W[:, j])``: each output unit's incoming weights at a fixed RMS.

    For a conv kernel, output channel j's incoming weights are ``W[..., j]`` (all positions and inputs).
    """
    rms = tf.sqrt(tf.reduce_mean(tf.square(kernel), axis=list(range(len(kernel.shape) - 1)), keepdims=True))
    return kernel * (target_rms / tf.maximum(rms, 1e-30))


def _ops_created_by(function) -> list:
    """Run ``function`` while tracing and return the graph ops it created (none when running eagerly)."""
    if tf.executing_eagerly():
        function()
        return []
    graph = tf.compat.v1.get_default_graph()
    before = len(graph.get_operations())
    function()
    return graph.get_operations()[before:]


@register_rule
class NodePerturbation(LearningRule):
    """Weights follow the correlation of random pre-activation noise with the change in error it causes.

    Each step runs the network twice on the batch: a clean pass ``u_l = h_{l-1} W_l + b_l``,
    ``h_l = phi(u_l)``, and a noisy pass with ``xi_l ~ N(0, sigma^2 I)`` added to *every* layer's
    pre-activation, logits included, the noise propagating forward:
    ``ht_l = phi(ht_{l-1} W_l + b_l + xi_l)``. With the per-example error ``E = sum_k (yhat_k - t_k)^2`` of
    the softmax output against the one-hot target (squared error, as in Hiratani et al.'s MNIST code),

        c_n  = (E_noisy_n - E_n) / (2 sigma^2),
        dW_l = (1/N) sum_n c_n h_{l-1,n}^T xi_{l,n},     db_l = (1/N) sum_n c_n xi_{l,n},

    with the clean presynaptic activity, and the rule's optimizer descends (dW, db). To first order in
    sigma this is an unbiased estimate of the gradient of the batch mean of ``E / 2``, obtained without
    any backward pass. Choices: the estimate is averaged over the batch (Hiratani's MNIST code sums it,
    his SARCOS code averages) so the learning rate does not depend on the batch size; the noise is drawn
    from a generator seeded by the rule's seed, so a run is reproducible; biases keep the model's zero
    init (Hiratani draws them Glorot-normal); the step returns the clean pass's softmax cross-entropy so
    every rule reports a comparable training loss, although NP descends the squared error (on regression
    tasks, loss "mse", the readout is linear and the reported loss is the mean squared error).

    Any architecture: conv layers are perturbed at every position and channel of their pre-activation,
    and each layer's update is the gradient of its own linear map against the noise-weighted error
    change (:func:`model_perturbation_gradients`), which for a dense layer is the formula above. Batch
    normalisation runs in training mode in both passes; its scale and shift receive no NP signal.
    Perturbing a conv layer's many units makes one estimate far noisier than for a dense layer (see the
    tests), so expect NP to need small learning rates and many steps there, as Hiratani et al. found.

    Reference: Hiratani, Mehta, Lillicrap & Latham, "On the stability and scalability of node perturbation
    learning", NeurIPS 2022.
    """

    name = "np"
    description = "node perturbation: weights follow noise-error correlations, no backward pass"
    reference = "Hiratani et al. 2022"
    Hyperparameters = NodePerturbationHyperparameters
    feedback = None
    #: rescale every output unit's incoming weights to the Glorot init std after each step
    weight_norm = False

    def perturbation_gradients(self, model: Any, x: Any, y: Any, generator: Any, training: bool = True) -> Any:
        """``(gradients, outputs)`` of :func:`model_perturbation_gradients` for batch (x, y), noise drawn
        from ``generator``. Classification compares the softmax with one-hot labels; regression (loss
        "mse") compares the linear output with the targets, Hiratani et al.'s teacher-student setting."""
        x = tf.cast(x, tf.float32)
        if self.loss == "mse":
            return model_perturbation_gradients(model, x, y, generator, self.hparams.sigma, tf.identity, training)
        n_outputs = model.measured_layers[-1].kernel.shape[-1]
        targets = tf.one_hot(tf.cast(y, tf.int32), n_outputs)
        return model_perturbation_gradients(model, x, targets, generator, self.hparams.sigma, None, training)

    def reseed(self, seed: int) -> None:
        """Restart the step's noise stream (and the health probe's) as a fresh build with ``seed`` would."""
        self.seed = seed
        self._generator.reset_from_seed(seed)
        self._health_generator.reset_from_seed(seed + 1)

    def kernel_update_signals(self, model: Any, x: Any, y: Any) -> list:
        """One NP estimate per kernel, with noise from a generator of its own (the run's stays untouched)."""
        if not hasattr(self, "_health_generator"):
            self._health_generator = tf.random.Generator.from_seed(self.seed + 1)
        gradients, _ = self.perturbation_gradients(model, x, y, self._health_generator, training=False)
        kernels = {id(layer.kernel) for layer in model.measured_layers}
        variables = [v for layer in model.measured_layers for v in (layer.kernel, layer.bias) if v is not None]
        return [g for g, v in zip(gradients, variables) if id(v) in kernels]

    def make_train_step(self, model: Any, optimizer: Any) -> Any:
        layers = model.measured_layers
        variables = [v for layer in layers for v in (layer.kernel, layer.bias) if v is not None]
        from lrid.models.layers import scheme_std

        # the forward kernels' init std: their scheme's, times the model's init_scale
        kernel_rms = [scheme_std(layer.kernel.shape, layer.init_scheme) * layer.init_scale for layer in layers]
        generator = tf.random.Generator.from_seed(self.seed)
        self._generator = generator
        self._health_generator = tf.random.Generator.from_seed(self.seed + 1)  # made eagerly, not in a trace

        @tf.function(reduce_retracing=True, autograph=False)
        def train_step(x, y):
            gradients, logits = self.perturbation_gradients(model, x, y, generator)
            task_loss = self.task_loss(y, logits)
            # Keras does not order its variable updates after reads made outside a tape: without this,
            # an update can land before the estimate that reads W is computed.
            with tf.control_dependencies([*gradients, task_loss]):
                update_ops = _ops_created_by(lambda: optimizer.apply(gradients, variables))
            if self.weight_norm:
                # Each kernel is read again, explicitly after every op of the optimizer's update.
                with tf.control_dependencies(update_ops):
                    updated = [tf.convert_to_tensor(layer.kernel) for layer in layers]
                for layer, kernel, rms in zip(layers, updated, kernel_rms):
                    layer.kernel.assign(normalize_columns(kernel, rms))
            return task_loss

        return train_step


@register_rule
class NodePerturbationWeightNorm(NodePerturbation):
    """Node perturbation followed, after every step, by weight normalisation of every layer.

    The update is :class:`NodePerturbation`'s; then each output unit's incoming weights (a column of the
    [n_in, n_out] kernel) are rescaled to a fixed RMS ``sigma_o``, the std of the kernel's initialisation
    (``sqrt(2 / (n_in + n_out))`` for Glorot's, times ``model.init_scale``, so the weights stay at their
    initial scale): ``W[:, j] <- sigma_o W[:, j] / sqrt(mean_i W[i, j]^2)``. Biases are not
    normalised. This stops the weight diffusion that makes plain NP unstable, at the cost of a bias in
    the update. Hiratani et al.'s option normalises all layers (``wreg_type=2``), as here.

    Reference: Hiratani, Mehta, Lillicrap & Latham, "On the stability and scalability of node perturbation
    learning", NeurIPS 2022 (weight-normalised variant, Fig. 4f).
    """

    name = "np_wn"
    description = "node perturbation with every unit's incoming weights renormalised to the init RMS"
    reference = "Hiratani et al. 2022"
    weight_norm = True
