"""Difference target propagation (Lee et al. 2015) and simplified DTP (Bartunov et al. 2018)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from lrid.lazy_import import keras, tf
from lrid.rules import register_rule
from lrid.rules.base import ComposableHyperparameters, LearningRule

# Networks whose every measured layer maps the previous one's output (no pooling, normalisation or skips),
# so that each has a learnable inverse.
SUPPORTED_ARCHITECTURES = ("mlp", "convnet")


class DenseInverse:
    """A learned approximate inverse ``g(h) = activation(h V + c)`` of one dense forward layer.

    For forward layer ``f_l: [N, n_in] -> [N, n_out]`` the inverse maps back to its input space, so V is
    [n_out, n_in] and c is [n_in]. ``activation`` is that of the layer whose output is reconstructed (tanh
    in the references), or None for a linear inverse.
    """

    def __init__(self, kernel: Any, bias: Any, activation: Any = None) -> None:
        self.kernel = kernel
        self.bias = bias
        self.activation = activation

    @classmethod
    def initialised(cls, n_out: int, n_in: int, activation: Any, seed: int, name: str) -> DenseInverse:
        """Glorot-uniform V (seeded, so deterministic) and zero c, as Keras variables."""
        kernel = keras.Variable(
            keras.initializers.GlorotUniform(seed=seed)((n_out, n_in)), name=f"{name}_inverse_kernel"
        )
        bias = keras.Variable(keras.initializers.Zeros()((n_in,)), name=f"{name}_inverse_bias")
        return cls(kernel, bias, activation)

    @property
    def variables(self) -> list:
        return [self.kernel, self.bias]

    def __call__(self, h: Any) -> Any:
        outputs = tf.matmul(h, tf.convert_to_tensor(self.kernel)) + tf.convert_to_tensor(self.bias)
        return outputs if self.activation is None else self.activation(outputs)


class ConvInverse:
    """A learned approximate inverse ``g(h) = activation(conv_transpose(h, V) + c)`` of one conv layer.

    V has the forward kernel's shape [k, k, c_in, c_out] and the transposed convolution uses the forward
    layer's strides and padding, so g maps the layer's output back to its input's shape; c is [c_in].
    """

    def __init__(
        self, layer: Any, input_shape: tuple[int, ...], kernel: Any, bias: Any, activation: Any = None
    ) -> None:
        self.layer = layer
        self.input_shape = input_shape  # one example's [height, width, c_in]
        self.kernel = kernel
        self.bias = bias
        self.activation = activation

    @classmethod
    def initialised(cls, layer: Any, input_shape: Any, activation: Any, seed: int) -> ConvInverse:
        """Glorot-uniform V (seeded) of the forward kernel's shape, and zero c."""
        shape = tuple(int(d) for d in layer.kernel.shape)
        kernel = keras.Variable(keras.initializers.GlorotUniform(seed=seed)(shape), name=f"{layer.name}_inverse_kernel")
        bias = keras.Variable(keras.initializers.Zeros()((shape[2],)), name=f"{layer.name}_inverse_bias")
        return cls(layer, tuple(input_shape), kernel, bias, activation)

    @property
    def variables(self) -> list:
        return [self.kernel, self.bias]

    def __call__(self, h: Any) -> Any:
        output_shape = tf.concat([tf.shape(h)[:1], self.input_shape], axis=0)
        outputs = tf.nn.conv2d_transpose(
            h, tf.convert_to_tensor(self.kernel), output_shape, self.layer.strides, self.layer.padding
        ) + tf.convert_to_tensor(self.bias)
        return outputs if self.activation is None else self.activation(outputs)


# --------------------------------------------------------------------------------------------------
# Targets. All functions take activities [N, n] and return targets with gradients stopped.
# --------------------------------------------------------------------------------------------------


def difference_target(activity: Any, activity_above: Any, target_above: Any, inverse: Any) -> Any:
    """``hhat_l = h_l + (g(hhat_{l+1}) - g(h_{l+1}))``, the difference correction.

    Written with the difference in brackets, so ``hhat_{l+1} == h_{l+1}`` gives ``hhat_l == h_l`` bit
    for bit (``(h - a) + a`` would not, in floating point). The correction is reshaped to ``activity``'s
    shape: a readout's inverse returns the flattened conv activity its layer reads.
    """
    return activity + tf.reshape(inverse(target_above) - inverse(activity_above), tf.shape(activity))


def propagate_targets(activities: Any, top_target: Any, inverses: Any) -> Any:
    """Targets for every entry of ``activities = [h_1, ..., h_K]`` from the target of ``h_K``.

    ``inverses[k]`` maps ``h_{k+2}`` back to ``h_{k+1}`` (0-based list of K - 1 inverses: ``g_2 .. g_K``).
    Returns ``[hhat_1, ..., hhat_K]`` with ``hhat_K = top_target``; gradients are stopped.
    """
    if len(inverses) != len(activities) - 1:
        raise ValueError(f"need {len(activities) - 1} inverses for {len(activities)} activities, got {len(inverses)}")
    activities = [tf.stop_gradient(h) for h in activities]
    targets = [tf.stop_gradient(top_target)]
    for index in range(len(activities) - 2, -1, -1):
        targets.insert(
            0,
            tf.stop_gradient(difference_target(activities[index], activities[index + 1], targets[0], inverses[index])),
        )
    return targets


def dtp_first_target(penultimate: Any, logits: Any, labels: Any, output_kernel: Any, alpha: float) -> Any:
    """DTP's penultimate target ``hhat_{L-1} = h_{L-1} - alpha dL_sum/dh_{L-1}``.

    ``L_sum`` is the softmax cross-entropy summed over the batch, so the per-example step is alpha whatever
    the batch size. For linear logits ``z = h W + b`` its gradient is ``(softmax(z) - onehot(y)) W^T``,
    computed here in closed form (exact, and it needs no tape).
    """
    error = tf.nn.softmax(logits) - tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
    gradient = tf.matmul(error, tf.convert_to_tensor(output_kernel), transpose_b=True)
    # The readout reads the penultimate activity flattened (a conv net's feature map included).
    return tf.stop_gradient(penultimate - alpha * tf.reshape(gradient, tf.shape(penultimate)))


# --------------------------------------------------------------------------------------------------
# Local losses. Sum of squares over units, mean over the batch (Lee et al.'s util.mse).
# --------------------------------------------------------------------------------------------------


def squared_error(prediction: Any, target: Any) -> Any:
    """``mean_n sum_units (prediction - target)^2`` (a conv activity's units: every position and channel)."""
    squared = tf.square(prediction - target)
    return tf.reduce_mean(tf.reduce_sum(tf.reshape(squared, [tf.shape(squared)[0], -1]), axis=1))


def task_loss(logits: Any, labels: Any) -> Any:
    """Mean softmax cross-entropy of the batch (the loss every rule reports)."""
    labels = tf.cast(labels, tf.int32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def forward_losses(layers: Any, layer_inputs: Any, hidden_targets: Any, labels: Any) -> Any:
    """One local loss per forward layer.

    Hidden layer l: ``||f_l(sg h_{l-1}) - sg hhat_l||^2``; output layer: the task loss on ``sg h_{L-1}``.
    Each depends on that layer's parameters only.
    """
    if len(hidden_targets) != len(layers) - 1:
        raise ValueError(f"need {len(layers) - 1} hidden targets, got {len(hidden_targets)}")
    losses = [
        squared_error(layer(tf.stop_gradient(inputs)), tf.stop_gradient(target))
        for layer, inputs, target in zip(layers[:-1], layer_inputs[:-1], hidden_targets)
    ]
    losses.append(task_loss(layers[-1](tf.stop_gradient(layer_inputs[-1])), labels))
    return losses


def inverse_losses(
    layers: Any, inverses: Any, layer_inputs: Any, noises: Any, denoising: bool, softmax_output: bool
) -> Any:
    """One reconstruction loss per inverse, the forward parameters held constant.

    ``inverses`` maps a layer index i >= 1 to the inverse g of ``layers[i]``; ``noises[i]`` is the
    corruption added to that layer's input h. With ``htilde = h + noise``:
    noise-preserving (DTP, ``denoising=False``): ``||g(sg f(htilde)) - htilde||^2``;
    denoising (SDTP, ``denoising=True``): ``||g(sg f(htilde)) - h||^2``.
    With ``softmax_output`` the last layer's f is the softmax of its logits (SDTP's output activity).
    """
    losses = {}
    for index, inverse in inverses.items():
        clean = tf.stop_gradient(layer_inputs[index])
        corrupted = clean + tf.stop_gradient(noises[index])
        outputs = layers[index](corrupted)
        if softmax_output and index == len(layers) - 1:
            outputs = tf.nn.softmax(outputs)
        reconstruction = inverse(tf.stop_gradient(outputs))
        losses[index] = squared_error(reconstruction, clean if denoising else corrupted)
    return losses


# --------------------------------------------------------------------------------------------------
# The rules.
# --------------------------------------------------------------------------------------------------


# Defaults: Adam for both weight sets as in Bartunov et al.; lr 1e-3 (Keras's Adam default, as for the
# `adam` baseline), inverse_lr 1e-3, noise_std 0.1 (Bartunov searched 0.01-0.3, Lee used 0.36), alpha 0.1
# (Bartunov searched 0.01-0.2). On the digits MLP they train the hidden layers to about backprop+Adam's
# accuracy, clearly above a network whose hidden layers are frozen, and the result is flat over lr,
# inverse_lr and noise_std around these values (benchmarks/rule_accuracy.py measures the accuracies).
# With Adam the forward step is nearly invariant to alpha's scale; with sgd/sgdm alpha scales the hidden
# layers' effective learning rate.


class TargetPropagationHyperparameters(ComposableHyperparameters):
    """Forward optimizer settings (Adam by default, as in Bartunov et al.) plus the inverses' training.

    The inverses are trained by their own Adam with ``inverse_lr`` and the ``beta_1``, ``beta_2`` and
    ``epsilon`` fields.
    """

    optimizer: Literal["sgd", "sgdm", "adam"] = Field("adam", description="optimizer applying the forward updates")
    lr: float = Field(1e-3, gt=0, description="forward learning rate")
    inverse_lr: float = Field(1e-3, gt=0, description="learning rate of the inverses' Adam")
    noise_std: float = Field(0.1, ge=0, description="std of the Gaussian corruption in the inverse losses")


class DifferenceTargetPropagationHyperparameters(TargetPropagationHyperparameters):
    """Target-propagation settings plus DTP's first-target step size."""

    alpha: float = Field(0.1, gt=0, description="penultimate target step on the sum-reduced task loss")


class _TargetPropagation(LearningRule):
    """Shared machinery: inverses, noise, the parallel schedule. Subclasses define the targets."""

    feedback = None
    # The first target and the output layer's local loss are the softmax cross-entropy's.
    losses: ClassVar[tuple[str, ...]] = ("cross_entropy",)
    architectures: ClassVar[tuple[str, ...]] = SUPPORTED_ARCHITECTURES
    architecture_note = "targets need invertible layers: no pooling, normalisation or residual blocks"
    denoising: ClassVar[bool]
    softmax_output: ClassVar[bool]

    @classmethod
    def check_supported(cls, model) -> None:
        """Raise ValueError unless the measured layers are dense or conv layers ending in a dense readout."""
        from lrid.models.layers import FeedbackConv2D, FeedbackDense

        layers = getattr(model, "measured_layers", None)
        if not layers or not hasattr(model, "forward_with_activity"):
            raise ValueError(f"rule {cls.name!r} needs a model with measured_layers and forward_with_activity")
        for layer in layers:
            if not isinstance(layer, (FeedbackDense, FeedbackConv2D)):
                raise ValueError(
                    f"rule {cls.name!r} supports {', '.join(cls.architectures)} only (dense and conv layers); "
                    f"layer {layer.name!r} is a {type(layer).__name__}"
                )
        if not isinstance(layers[-1], FeedbackDense):
            raise ValueError(f"rule {cls.name!r} needs a dense readout; layer {layers[-1].name!r} is not one")

    def inverted_layers(self, n_layers: int) -> range:
        """Indices (0-based) of the forward layers that get an inverse."""
        raise NotImplementedError

    def build_inverses(self, model) -> dict:
        """One inverse per inverted layer (:class:`DenseInverse` or :class:`ConvInverse`), seeded from the
        rule seed and the layer index."""
        from lrid.models.layers import FeedbackConv2D

        layers = model.measured_layers
        # One eager pass on a single zero example gives each layer's input shape.
        _, layer_inputs, _ = model.forward_with_activity(tf.zeros((1, *model.example_shape)))
        inverses: dict[int, DenseInverse | ConvInverse] = {}
        for index in self.inverted_layers(len(layers)):
            layer = layers[index]
            seed = (self.seed * 7919 + 104729 * (index + 1)) % (2**31 - 1)
            # g_l reconstructs h_{l-1}, so it ends in the activation of the layer that produced h_{l-1}.
            activation = layers[index - 1].activation
            if isinstance(layer, FeedbackConv2D):
                inverses[index] = ConvInverse.initialised(layer, layer_inputs[index].shape[1:], activation, seed)
            else:
                n_in = int(layer.kernel.shape[0])
                inverses[index] = DenseInverse.initialised(layer.units, n_in, activation, seed, layer.name)
        return inverses

    def make_inverse_optimizer(self):
        """Adam with ``inverse_lr`` for the inverses."""
        return keras.optimizers.Adam(
            learning_rate=self.hparams.inverse_lr,
            beta_1=self.hparams.beta_1,
            beta_2=self.hparams.beta_2,
            epsilon=self.hparams.epsilon,
        )

    def hidden_targets(self, layers, inverses, layer_outputs, logits, labels):
        """Targets ``[hhat_1, ..., hhat_{L-1}]`` of the hidden layers (gradients stopped)."""
        raise NotImplementedError

    def reseed(self, seed: int) -> None:
        """Give the inverses, their optimizer and the corruption noise the state a fresh build with ``seed``
        would have."""
        self.seed = seed
        for index, fresh in self.build_inverses(self._model).items():
            for variable, initial in zip(self.inverses[index].variables, fresh.variables, strict=True):
                variable.assign(initial)
        for variable in self.inverse_optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        self.inverse_optimizer.learning_rate = self.hparams.inverse_lr  # its variables include the rate
        self._noise_counter.assign(0)
        self._noise_seed.assign(seed % (2**62))

    def kernel_update_signals(self, model, x, y) -> list:
        """The gradients of the forward layers' local losses (targets from the current inverses)."""
        layers = model.measured_layers
        logits, layer_inputs, layer_outputs = model.forward_with_activity(x, training=False)
        targets = self.hidden_targets(layers, self.inverses, layer_outputs, logits, y)
        with tf.GradientTape() as tape:
            total = tf.add_n(forward_losses(layers, layer_inputs, targets, y))
        return tape.gradient(total, [layer.kernel for layer in layers])

    def make_train_step(self, model, optimizer):
        """A compiled step: targets, then the forward and inverse updates from the same batch (parallel).

        The inverses and their optimizer are created here and kept as ``self.inverses`` (a dict from layer
        index to :class:`DenseInverse`) and ``self.inverse_optimizer``.
        """
        self.check_supported(model)
        layers = model.measured_layers
        inverses = self.build_inverses(model)
        inverse_variables = [v for inverse in inverses.values() for v in inverse.variables]
        inverse_optimizer = self.make_inverse_optimizer()
        if inverse_variables:
            inverse_optimizer.build(inverse_variables)
        self.inverses, self.inverse_optimizer = inverses, inverse_optimizer
        forward_variables = [v for layer in layers for v in (layer.kernel, layer.bias)]
        # A variable, not a constant, so that reseed() can give a reused step another run's noise.
        noise_seed = tf.Variable(self.seed % (2**62), dtype=tf.int64, trainable=False, name=f"{self.name}_noise_seed")
        self._noise_seed, self._model = noise_seed, model
        # Counts steps so the corruption noise is fresh every step yet fixed by the rule seed.
        counter = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{self.name}_noise_counter")
        self._noise_counter = counter
        noise_std = self.hparams.noise_std

        @tf.function(reduce_retracing=True, autograph=False)
        def train_step(x, y):
            logits, layer_inputs, layer_outputs = model.forward_with_activity(x, training=True)
            loss = task_loss(logits, y)
            targets = self.hidden_targets(layers, inverses, layer_outputs, logits, y)
            step_index = counter.assign_add(1)
            noises = {
                index: noise_std
                * tf.random.stateless_normal(
                    tf.shape(layer_inputs[index]),
                    seed=tf.stack([noise_seed, step_index * len(layers) + index]),
                    dtype=layer_inputs[index].dtype,
                )
                for index in inverses
            }
            with tf.GradientTape(persistent=True) as tape:
                forward_total = tf.add_n(forward_losses(layers, layer_inputs, targets, y))
                inverse_terms = inverse_losses(
                    layers, inverses, layer_inputs, noises, self.denoising, self.softmax_output
                )
                # Summed inside the tape: add_n outside it would cut the inverses off from their gradients.
                inverse_total = tf.add_n(list(inverse_terms.values())) if inverses else None
            forward_gradients = tape.gradient(forward_total, forward_variables)
            inverse_gradients = tape.gradient(inverse_total, inverse_variables) if inverses else []
            del tape
            # Keras does not order its variable updates after reads made outside a tape (the targets read
            # the inverses, the inverse losses read W): make every update wait for every signal.
            with tf.control_dependencies([loss, *forward_gradients, *inverse_gradients]):
                optimizer.apply(forward_gradients, forward_variables)
                if inverses:
                    inverse_optimizer.apply(inverse_gradients, inverse_variables)
            return loss

        return train_step


@register_rule
class DifferenceTargetPropagation(_TargetPropagation):
    """Each hidden layer regresses onto a target propagated down by learned inverses (Lee et al. 2015).

    Forward layers ``h_l = f_l(h_{l-1}) = tanh(h_{l-1} W_l + b_l)``; logits ``z = h_{L-1} W_L + b_L``.
    Inverses ``g_l(h_l) = tanh(h_l V_l + c_l)`` for the hidden layers above the first (l = 2 .. L-1).

    * first target: ``hhat_{L-1} = h_{L-1} - alpha dL_sum/dh_{L-1}``, the gradient of the batch-summed
      cross-entropy through the output layer only, so alpha is a per-example step;
    * lower targets (difference correction): ``hhat_l = h_l + g_{l+1}(hhat_{l+1}) - g_{l+1}(h_{l+1})``;
    * forward losses, each local (inputs and targets gradient-stopped): ``||f_l(h_{l-1}) - hhat_l||^2``
      for the hidden layers, the task loss on ``h_{L-1}`` for the output layer;
    * inverse losses, noise-preserving, forward parameters held constant, ``htilde = h_{l-1} + eps``,
      ``eps ~ N(0, noise_std^2)``: ``||g_l(f_l(htilde)) - htilde||^2``.

    Squared errors are summed over units and averaged over the batch. The forward gradients go to the
    optimizer passed to ``make_train_step``; the inverses have their own Adam (``inverse_lr``).

    Schedule: *parallel* -- every step computes the targets with the current inverses, then applies both
    the forward and the inverse update from that same batch. Lee et al. alternate whole epochs and
    Bartunov et al. found alternating more stable; parallel is chosen because it fits one compiled step
    with a single read-then-update of every variable (ordering a second phase's reads after Keras's
    updates is not guaranteed, see base.py), keeps every step's forward update (the demo budget is only
    ~330 steps), and trains well on the digits MLP at the defaults. Changes from Lee's code: the output
    layer's kernel and bias are both trained (Lee's list omits W6 and B5), alpha applies to the summed
    loss, Glorot rather than orthogonal init, Adam rather than RMSprop.

    Architectures: networks whose measured layers each read the previous one's output, dense or conv,
    ending in a dense readout: ``mlp`` and ``convnet`` (no pooling, normalisation or residual blocks, which
    have no learnable inverse). A conv layer's inverse is a transposed convolution with the layer's
    strides and padding (:class:`ConvInverse`); squared errors then sum over positions and channels.

    Reference: Lee, Zhang, Fischer & Bengio, "Difference Target Propagation", ECML-PKDD 2015.
    """

    name = "dtp"
    description = "difference target propagation: local regression onto targets sent down by learned inverses"
    reference = "Lee et al. 2015"
    Hyperparameters = DifferenceTargetPropagationHyperparameters
    denoising = False
    softmax_output = False

    def inverted_layers(self, n_layers: int) -> range:
        # g_2 .. g_{L-1}: the output layer is reached by the gradient step, not by an inverse.
        return range(1, n_layers - 1)

    def hidden_targets(self, layers: Any, inverses: Any, layer_outputs: Any, logits: Any, labels: Any) -> Any:
        hidden = layer_outputs[:-1]
        if not hidden:
            return []
        top = dtp_first_target(hidden[-1], logits, labels, layers[-1].kernel, self.hparams.alpha)
        return propagate_targets(hidden, top, [inverses[index] for index in range(1, len(layers) - 1)])


@register_rule
class SimplifiedDifferenceTargetPropagation(_TargetPropagation):
    """DTP with no gradient anywhere: the penultimate target also comes from a learned inverse (Bartunov et al.).

    As :class:`DifferenceTargetPropagation`, except (Bartunov et al. 2018, Algorithm 1):

    * the output activity is the softmax ``h_L = softmax(z)``, its target the correct label,
      ``hhat_L = onehot(y)`` (the argmin of the cross-entropy);
    * the penultimate target uses the inverse of the output layer, ``g_L(h_L) = tanh(h_L V_L + c_L)``:
      ``hhat_{L-1} = h_{L-1} + g_L(hhat_L) - g_L(h_L)``, and lower targets follow by difference correction;
    * inverse losses are *denoising*: ``||g_l(f_l(h_{l-1} + eps)) - h_{l-1}||^2`` (for l = L, f_L is
      the softmax of the logits).

    The output layer still minimises the task loss on ``stop_gradient(h_{L-1})``, a local delta rule
    (its own weight gradient ``h_{L-1}^T (softmax(z) - onehot(y))``); no error is carried through any
    layer. Schedule: parallel, as for ``dtp`` (see there for why). Algorithm 1's ``f(htilde; theta_{l-1})``
    is read as theta_l (an index typo). Architectures: as for ``dtp``.

    Reference: Bartunov, Santoro, Richards, Marris, Hinton & Lillicrap, "Assessing the Scalability of
    Biologically-Motivated Deep Learning Algorithms and Architectures", NeurIPS 2018.
    """

    name = "sdtp"
    description = "simplified DTP: targets from the label sent down by learned inverses, no gradients"
    reference = "Bartunov et al. 2018"
    Hyperparameters = TargetPropagationHyperparameters
    denoising = True
    softmax_output = True

    def inverted_layers(self, n_layers: int) -> range:
        # g_2 .. g_L, the output layer's inverse included (it carries the label down).
        return range(1, n_layers)

    def hidden_targets(self, layers: Any, inverses: Any, layer_outputs: Any, logits: Any, labels: Any) -> Any:
        hidden = layer_outputs[:-1]
        if not hidden:
            return []
        probabilities = tf.nn.softmax(logits)
        top = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
        targets = propagate_targets([*hidden, probabilities], top, [inverses[index] for index in range(1, len(layers))])
        return targets[:-1]
