"""Difference target propagation (dtp) and simplified DTP (sdtp) checked against their definitions.

Expectations come from the math of Lee et al. (2015) and Bartunov et al. (2018, Algorithm 1), as
written down in shared/research/rules.md section 8, not from recorded outputs.
"""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from lrid.config import ModelSpec, ObserveSpec, RunSpec, TrainSpec
from lrid.models import build_model
from lrid.models.layers import FeedbackDense
from lrid.rules import RULES, get_rule
from lrid.rules import target_propagation as tp
from lrid.tasks import get_task

RULE_NAMES = ("dtp", "sdtp")


def make_model(seed=0, hidden=(16, 12)):
    return build_model(ModelSpec(hidden=hidden), get_task("digits"), feedback=None, seed=seed)


def batch(size=32, seed=0):
    task = get_task("digits")
    index = np.random.default_rng(seed).choice(len(task.x_train), size, replace=False)
    return tf.constant(task.x_train[index]), tf.constant(task.y_train[index])


def random_inverse(n_out, n_in, rng, activation="tanh", scale=1.0):
    return tp.DenseInverse(
        tf.constant(scale * rng.normal(size=(n_out, n_in)).astype(np.float32)),
        tf.constant(rng.normal(size=(n_in,)).astype(np.float32)),
        tf.keras.activations.get(activation),
    )


def dense(units, n_in, activation, kernel, bias):
    layer = FeedbackDense(units, activation=activation)
    layer.build((None, n_in))
    layer.kernel.assign(kernel.astype(np.float32))
    layer.bias.assign(bias.astype(np.float32))
    return layer


def test_rules_are_registered_documented_and_validate_their_hyperparameters():
    for name in RULE_NAMES:
        rule_class = get_rule(name)
        assert RULES[name] is rule_class
        assert rule_class.description and rule_class.reference and rule_class.__doc__
        assert rule_class.feedback is None
        assert rule_class.architectures == ("mlp", "convnet")
        assert "pooling" in rule_class.unsupported_reason("knet")
        with pytest.raises(ValueError):
            rule_class({"no_such_key": 1.0})
        with pytest.raises(ValueError):
            rule_class({"noise_std": -0.1})
    assert get_rule("dtp")({"alpha": 0.2}).hparams.alpha == 0.2
    with pytest.raises(ValueError):  # SDTP uses no gradient, so it has no first-target step
        get_rule("sdtp")({"alpha": 0.2})


def test_difference_correction_is_exact_when_the_upper_target_equals_the_activity():
    """hhat_{l+1} = h_{l+1}  =>  hhat_l = h_l bit for bit, whatever the inverses are."""
    rng = np.random.default_rng(0)
    widths = [7, 5, 9, 4]
    activities = [tf.constant(rng.normal(scale=3.0, size=(6, w)).astype(np.float32)) for w in widths]
    inverses = [random_inverse(widths[k + 1], widths[k], rng, scale=5.0) for k in range(3)]
    targets = tp.propagate_targets(activities, activities[-1], inverses)
    for target, activity in zip(targets, activities):
        np.testing.assert_array_equal(target.numpy(), activity.numpy())
    # Tiny activities next to large inverse outputs: (h - g(h')) + g(h') would round h away.
    tiny = [tf.fill((2, w), 1e-9) for w in widths]
    for target, activity in zip(tp.propagate_targets(tiny, tiny[-1], inverses), tiny):
        np.testing.assert_array_equal(target.numpy(), activity.numpy())
    # ...while a displaced top target moves every lower target (unsaturated inverses, so visibly).
    gentle = [random_inverse(widths[k + 1], widths[k], rng, scale=0.1) for k in range(3)]
    moved = tp.propagate_targets(activities, activities[-1] + 0.5, gentle)
    for target, activity in zip(moved[:-1], activities[:-1]):
        assert np.abs(target.numpy() - activity.numpy()).max() > 1e-3


def test_exact_inverses_make_the_targets_consistent_with_the_forward_map():
    """Linear square invertible f_l with g_l = f_l^-1: f_{l+1}(hhat_l) = hhat_{l+1} at every layer."""
    rng = np.random.default_rng(1)
    width, depth = 6, 4
    layers, inverses = [], []
    for _ in range(depth):
        q, _ = np.linalg.qr(rng.normal(size=(width, width)))
        kernel = q * rng.uniform(0.7, 1.4, size=width)  # well-conditioned, not orthogonal
        bias = rng.normal(size=width)
        layers.append(dense(width, width, None, kernel, bias))
        v = np.linalg.inv(kernel)
        inverses.append(tp.DenseInverse(tf.constant(v.astype(np.float32)), tf.constant((-bias @ v).astype(np.float32))))
    h = tf.constant(rng.normal(size=(5, width)).astype(np.float32))
    activities = []
    for layer in layers:
        h = layer(h)
        activities.append(h)
    top_target = activities[-1] + tf.constant(rng.normal(size=(5, width)).astype(np.float32))
    targets = tp.propagate_targets(activities, top_target, inverses[1:])
    for index in range(depth - 1):
        np.testing.assert_allclose(layers[index + 1](targets[index]).numpy(), targets[index + 1].numpy(), atol=1e-5)

    # The same through DTP's own target computation: hidden layers linear, the output layer a readout.
    rule = get_rule("dtp")({"alpha": 0.5})
    readout = dense(10, width, None, rng.normal(size=(width, 10)), rng.normal(size=10))
    network = [*layers, readout]
    outputs = [*activities, readout(activities[-1])]
    labels = tf.constant(rng.integers(0, 10, size=5), dtype=tf.int32)
    targets = rule.hidden_targets(network, dict(enumerate(inverses)), outputs, outputs[-1], labels)
    assert len(targets) == depth
    for index in range(depth - 1):
        np.testing.assert_allclose(layers[index + 1](targets[index]).numpy(), targets[index + 1].numpy(), atol=1e-5)


def test_dtp_first_target_is_a_per_example_step_down_the_summed_loss_gradient():
    model = make_model()
    x, y = batch(32)
    alpha = 0.3
    logits, _, outputs = model.forward_with_activity(x)
    penultimate = outputs[-2]
    with tf.GradientTape() as tape:
        tape.watch(penultimate)
        summed = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model.measured_layers[-1](penultimate))
        )
    expected = penultimate - alpha * tape.gradient(summed, penultimate)
    first = tp.dtp_first_target(penultimate, logits, y, model.measured_layers[-1].kernel, alpha)
    np.testing.assert_allclose(first.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
    # Batch-size independent: an example's target does not depend on the rest of its batch.
    small = tp.dtp_first_target(penultimate[:4], logits[:4], y[:4], model.measured_layers[-1].kernel, alpha)
    np.testing.assert_allclose(small.numpy(), first.numpy()[:4], rtol=1e-6, atol=1e-7)


def test_sdtp_targets_carry_the_label_down_through_the_output_inverse_without_gradients(monkeypatch):
    rule = get_rule("sdtp")(seed=3)
    model = make_model()
    layers = model.measured_layers
    inverses = rule.build_inverses(model)
    assert sorted(inverses) == [1, 2]  # g_2 and g_L (the output layer's inverse)
    x, y = batch(16)
    logits, _, outputs = model.forward_with_activity(x)

    def no_gradients(*args, **kwargs):
        raise AssertionError("SDTP's targets must not differentiate anything")

    monkeypatch.setattr(tf.GradientTape, "gradient", no_gradients)
    targets = rule.hidden_targets(layers, inverses, outputs, logits, y)
    monkeypatch.undo()

    g_top = inverses[2]
    expected_penultimate = outputs[1] + (g_top(tf.one_hot(y, 10)) - g_top(tf.nn.softmax(logits)))
    np.testing.assert_array_equal(targets[1].numpy(), expected_penultimate.numpy())
    expected_first = outputs[0] + (inverses[1](targets[1]) - inverses[1](outputs[1]))
    np.testing.assert_array_equal(targets[0].numpy(), expected_first.numpy())

    # Given the activities, SDTP's targets ignore the output weights (no error flows back through them);
    # DTP's first target is a gradient through exactly those weights.
    dtp = get_rule("dtp")(seed=3)
    dtp_inverses = dtp.build_inverses(model)
    dtp_before = dtp.hidden_targets(layers, dtp_inverses, outputs, logits, y)
    layers[-1].kernel.assign(2.0 * layers[-1].kernel + 0.1)
    after = rule.hidden_targets(layers, inverses, outputs, logits, y)
    for before_target, after_target in zip(targets, after):
        np.testing.assert_array_equal(after_target.numpy(), before_target.numpy())
    dtp_after = dtp.hidden_targets(layers, dtp_inverses, outputs, logits, y)
    assert not np.allclose(dtp_after[-1].numpy(), dtp_before[-1].numpy())


@pytest.mark.parametrize("denoising", [False, True])
def test_an_inverse_learns_to_invert_a_tanh_layer(denoising):
    """32-unit tanh layer, orthogonal W, sigma = 0.1, 1000 Adam steps at lr 1e-2: loss falls >= 90%."""
    width, sigma = 32, 0.1
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(width, width)))
    layer = dense(width, width, "tanh", q, np.zeros(width))
    inverse = tp.DenseInverse.initialised(width, width, tf.keras.activations.get("tanh"), seed=5, name="probe")
    optimizer = tf.keras.optimizers.Adam(learning_rate=1e-2)
    optimizer.build(inverse.variables)

    def sample(seed):
        h = tf.tanh(tf.random.stateless_normal((64, width), seed=(seed, 0)))
        return h, sigma * tf.random.stateless_normal((64, width), seed=(seed, 1))

    def loss(h, noise):
        return tp.inverse_losses([layer], {0: inverse}, [h], {0: noise}, denoising, softmax_output=False)[0]

    @tf.function
    def train(steps):
        for seed in tf.range(1, steps + 1):
            h, noise = sample(seed)
            with tf.GradientTape() as tape:
                value = loss(h, noise)
            gradients = tape.gradient(value, inverse.variables)
            with tf.control_dependencies(gradients):
                optimizer.apply(gradients, inverse.variables)

    held_out = sample(100_000)
    before = float(loss(*held_out))
    train(tf.constant(1000))
    after = float(loss(*held_out))
    assert after <= 0.1 * before, (before, after)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_inverse_losses_are_noise_preserving_for_dtp_and_denoising_for_sdtp(name):
    """DTP: ||g(f(h + eps)) - (h + eps)||^2; SDTP: ||g(f(h + eps)) - h||^2, f_L being the softmax output."""
    rule = get_rule(name)(seed=1)
    model = make_model()
    layers = model.measured_layers
    inverses = rule.build_inverses(model)
    x, y = batch(16)
    _, layer_inputs, _ = model.forward_with_activity(x)
    noises = {i: 0.2 * tf.random.stateless_normal(tf.shape(layer_inputs[i]), seed=(i, 7)) for i in inverses}
    losses = tp.inverse_losses(layers, inverses, layer_inputs, noises, rule.denoising, rule.softmax_output)
    for index, inverse in inverses.items():
        h = layer_inputs[index].numpy()
        corrupted = h + noises[index].numpy()
        outputs = layers[index](corrupted)
        if name == "sdtp" and index == len(layers) - 1:
            outputs = tf.nn.softmax(outputs)
        reconstruction = inverse(outputs).numpy()
        wanted = h if name == "sdtp" else corrupted
        expected = np.mean(np.sum((reconstruction - wanted) ** 2, axis=1))
        np.testing.assert_allclose(float(losses[index]), expected, rtol=1e-5)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_every_loss_is_local(name):
    """Forward losses touch only their own layer; inverse losses only their own inverse, never W or b.

    Everything, the forward pass and the targets included, is computed inside the tape, so only the
    rule's stop-gradients keep the losses local.
    """
    rule = get_rule(name)(seed=1)
    model = make_model()
    layers = model.measured_layers
    inverses = rule.build_inverses(model)
    x, y = batch(16)
    with tf.GradientTape(persistent=True) as tape:
        logits, layer_inputs, layer_outputs = model.forward_with_activity(x)
        targets = rule.hidden_targets(layers, inverses, layer_outputs, logits, y)
        noises = {i: 0.1 * tf.random.stateless_normal(tf.shape(layer_inputs[i]), seed=(i, 0)) for i in inverses}
        forward = tp.forward_losses(layers, layer_inputs, targets, y)
        inverse = tp.inverse_losses(layers, inverses, layer_inputs, noises, rule.denoising, rule.softmax_output)
    assert len(forward) == len(layers) and sorted(inverse) == sorted(inverses)

    def is_zero(gradient):
        return gradient is None or not np.any(tf.convert_to_tensor(gradient).numpy())

    all_inverse_variables = [v for g in inverses.values() for v in g.variables]
    for index, loss in enumerate(forward):
        own = [layers[index].kernel, layers[index].bias]
        assert not any(is_zero(g) for g in tape.gradient(loss, own)), index
        others = [v for j, layer in enumerate(layers) if j != index for v in (layer.kernel, layer.bias)]
        assert all(is_zero(g) for g in tape.gradient(loss, others + all_inverse_variables)), index
    forward_variables = [v for layer in layers for v in (layer.kernel, layer.bias)]
    for index, loss in inverse.items():
        assert not any(is_zero(g) for g in tape.gradient(loss, inverses[index].variables)), index
        others = [v for j, g in inverses.items() if j != index for v in g.variables]
        assert all(is_zero(g) for g in tape.gradient(loss, forward_variables + others)), index


def test_only_networks_of_dense_and_conv_feedback_layers_are_supported():
    class ConvLike:
        measured_layers = [tf.keras.layers.Conv2D(4, 3, name="conv0")]

        def forward_with_activity(self, x):  # pragma: no cover - never reached
            raise AssertionError

    for name in RULE_NAMES:
        rule = get_rule(name)()
        with pytest.raises(ValueError, match="dense and conv layers"):
            rule.make_train_step(ConvLike(), rule.make_optimizer())


@pytest.mark.parametrize("name", RULE_NAMES)
def test_steps_report_the_task_loss_update_both_weight_sets_and_are_deterministic(name):
    """A step returns the batch's mean cross-entropy before the update and changes every forward and
    inverse parameter; with the same model and rule seeds, two runs end bit-identical."""
    finals = []
    for _ in range(2):
        rule = get_rule(name)(seed=11)
        model = make_model(seed=4)
        step = rule.make_train_step(model, rule.make_optimizer())
        x, y = batch(seed=0)
        expected_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x)))
        forward_before = [v.numpy().copy() for v in model.trainable_variables]
        inverse_before = [v.numpy().copy() for g in rule.inverses.values() for v in g.variables]
        np.testing.assert_allclose(float(step(x, y)), float(expected_loss), rtol=1e-6)
        inverse_variables = [v for g in rule.inverses.values() for v in g.variables]
        for variable, before in zip([*model.trainable_variables, *inverse_variables], forward_before + inverse_before):
            assert not np.array_equal(variable.numpy(), before), variable.name
        for seed in range(1, 10):
            step(*batch(seed=seed))
        finals.append([v.numpy() for v in [*model.trainable_variables, *inverse_variables]])
    for first, second in zip(*finals):
        np.testing.assert_array_equal(first, second)
    # The inverses' initialisation is a function of the rule seed alone.
    model = make_model(seed=4)
    initial = {seed: get_rule(name)(seed=seed).build_inverses(model)[1].kernel.numpy() for seed in (11, 12)}
    np.testing.assert_array_equal(get_rule(name)(seed=11).build_inverses(model)[1].kernel.numpy(), initial[11])
    assert not np.array_equal(initial[11], initial[12])


@pytest.mark.parametrize("name", RULE_NAMES)
def test_a_training_run_completes_and_repeats_exactly(name):
    from lrid.generate.trainer import train_run

    spec = RunSpec(
        model=ModelSpec(hidden=(32, 32)),
        train=TrainSpec(epochs=1, batch_size=32, model_seed=1, data_seed=2),
        rule={"name": name, "hparams": {"lr": 0.005}},  # a faster forward lr, for the one-epoch budget
        observe=ObserveSpec(points=4, probe_size=64),
    )
    first, second = train_run(spec), train_run(spec)
    for result in (first, second):
        assert result.manifest["status"] == "complete", result.manifest.get("error")
    pd.testing.assert_frame_equal(first.observables, second.observables)
    assert first.manifest["final_train_loss"] == second.manifest["final_train_loss"]
    assert first.manifest["final_test_accuracy"] == second.manifest["final_test_accuracy"]
    assert first.manifest["final_test_accuracy"] > 0.3  # ten classes; chance is 0.1


# --- Conv nets without pooling (convnet) ---------------------------------------------------------------------


def convnet_and_batch(seed=0, n=16):
    from lrid.models import build_network

    model = build_network(ModelSpec(arch="convnet", width=0.25), (8, 8, 1), 10, None, seed=seed)
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.random(size=(n, 8, 8, 1)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, n).astype(np.int32))
    return model, x, y


@pytest.mark.parametrize("name", RULE_NAMES)
def test_conv_inverses_map_each_layer_output_back_to_its_input_shape(name):
    model, x, _ = convnet_and_batch()
    rule = get_rule(name)(seed=2)
    inverses = rule.build_inverses(model)
    _, layer_inputs, layer_outputs = model.forward_with_activity(x)
    assert sorted(inverses) == list(rule.inverted_layers(len(model.measured_layers)))
    for index, inverse in inverses.items():
        output = layer_outputs[index]
        if index == len(model.measured_layers) - 1 and rule.softmax_output:
            output = tf.nn.softmax(output)
        assert inverse(output).shape == layer_inputs[index].shape, index


@pytest.mark.parametrize("name", RULE_NAMES)
def test_on_a_conv_net_the_inverse_losses_fall_and_the_targets_lower_the_loss(name):
    """Repeated steps on one batch. With the forward weights all but frozen (a tiny forward lr), every
    inverse learns to reconstruct its layer's input; with both learning, the task loss falls."""
    model, x, y = convnet_and_batch(seed=1)
    rule = get_rule(name)({"lr": 1e-7, "inverse_lr": 0.01}, seed=1)
    step = rule.make_train_step(model, rule.make_optimizer())
    _, layer_inputs, _ = model.forward_with_activity(x)
    zeros = {index: tf.zeros_like(layer_inputs[index]) for index in rule.inverses}

    def inverse_loss_values():
        losses = tp.inverse_losses(model.measured_layers, rule.inverses, layer_inputs, zeros, rule.denoising,
                                   rule.softmax_output)
        return {index: float(loss) for index, loss in losses.items()}

    initial = inverse_loss_values()
    for _ in range(60):
        step(x, y)
    trained = inverse_loss_values()
    for index in initial:
        assert trained[index] < 0.7 * initial[index], (index, initial[index], trained[index])

    model, x, y = convnet_and_batch(seed=1)
    rule = get_rule(name)({"lr": 0.01, "inverse_lr": 0.01}, seed=1)
    step = rule.make_train_step(model, rule.make_optimizer())
    first = float(step(x, y))
    for _ in range(120):
        last = float(step(x, y))
    assert last < first - 0.5, (first, last)
