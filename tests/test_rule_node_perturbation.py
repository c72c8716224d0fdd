"""Node perturbation (np, np_wn) checked against its definition and the gradient it estimates.

The expectations come from the math of rules.md §7: NP's batch-averaged estimate is, in expectation and
to first order in sigma, the gradient of the batch mean of ``E / 2`` with ``E = sum_k (yhat_k - t_k)^2``.
Averaging K independent estimates is done by tiling the batch K times (the mean over the K*N rows is
the mean of the K batch means), with noise from a seeded generator so every test is deterministic.
"""

import numpy as np
import pandas as pd
import pydantic
import pytest
import tensorflow as tf

from lrid.config import ModelSpec, RunSpec
from lrid.models import build_network
from lrid.models.base import MeasuredModel
from lrid.models.layers import FeedbackConv2D, FeedbackDense, scheme_std
from lrid.models.mlp import MLP
from lrid.rules import get_rule
from lrid.rules.node_perturbation import (
    model_perturbation_gradients,
    node_perturbation_gradients,
    normalize_columns,
    sample_noise,
)
from lrid.tasks import get_task

CROSS_ENTROPY = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def norm_ratio(estimate, truth):
    return float(np.linalg.norm(estimate) / np.linalg.norm(truth))


def np_estimate(layers, x, t, sigma, repeats=1, seed=0, readout=None):
    """The mean of ``repeats`` independent NP estimates on the batch (x, t), as numpy arrays."""
    x, t = tf.tile(tf.constant(x), [repeats, 1]), tf.tile(tf.constant(t), [repeats, 1])
    noise = sample_noise(tf.random.Generator.from_seed(seed), layers, tf.shape(x)[0], sigma)
    gradients, _ = node_perturbation_gradients(layers, x, t, noise, sigma, readout=readout)
    return [g.numpy() for g in gradients]


def linear_problem(seed=0, n=32, n_in=20, n_out=10):
    """A 20 -> 10 dense linear layer and a random regression batch (rules.md §7 test 1)."""
    layer = FeedbackDense(n_out, activation=None, seed=seed)
    layer.build((None, n_in))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)).astype(np.float32)
    t = rng.normal(size=(n, n_out)).astype(np.float32)
    return layer, x, t


def squared_error_gradient(layers, x, t, readout=tf.identity):
    """Exact gradient (tf.GradientTape) of mean_n 1/2 ||readout(net(x_n)) - t_n||^2 for every (W, b)."""
    variables = [v for layer in layers for v in (layer.kernel, layer.bias)]
    with tf.GradientTape() as tape:
        h = tf.constant(x)
        for layer in layers:
            h = layer(h)
        loss = tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(readout(h) - t), axis=1))
    return [g.numpy() for g in tape.gradient(loss, variables)]


def test_rules_are_registered_without_feedback_and_reject_unknown_hyperparameters():
    for name in ("np", "np_wn"):
        rule = get_rule(name)
        assert rule.name == name and rule.feedback is None and rule.__doc__ and rule.reference
        defaults = rule.Hyperparameters()
        assert defaults.sigma > 0 and defaults.optimizer in ("sgd", "sgdm", "adam")
        with pytest.raises(pydantic.ValidationError):
            rule.Hyperparameters(sigmaa=1e-3)
        with pytest.raises(pydantic.ValidationError):
            rule.Hyperparameters(sigma=0.0)
    assert get_rule("np_wn").weight_norm and not get_rule("np").weight_norm


def test_estimate_equals_its_closed_form_in_a_two_layer_network():
    """A float64 numpy oracle of the update, given the noise: propagation, clean presynaptic h, 1/N."""
    sigma, n = 0.1, 8
    model = MLP((6,), 4, activation="tanh", seed=2)
    model.build((None, 5))
    layers = model.measured_layers
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    t = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=n)]
    noise = [sigma * rng.normal(size=(n, layer.units)).astype(np.float32) for layer in layers]
    gradients, _ = node_perturbation_gradients(layers, x, t, [tf.constant(xi) for xi in noise], sigma)

    (w1, b1), (w2, b2) = [(l.kernel.numpy().astype(np.float64), l.bias.numpy().astype(np.float64)) for l in layers]
    xi1, xi2 = (xi.astype(np.float64) for xi in noise)

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    h1 = np.tanh(x @ w1 + b1)
    h1_noisy = np.tanh(x @ w1 + b1 + xi1)
    e_clean = ((softmax(h1 @ w2 + b2) - t) ** 2).sum(axis=1)
    e_noisy = ((softmax(h1_noisy @ w2 + b2 + xi2) - t) ** 2).sum(axis=1)
    c = (e_noisy - e_clean) / (2 * sigma**2)
    expected = [
        x.T @ (c[:, None] * xi1) / n,
        (c[:, None] * xi1).mean(axis=0),
        h1.T @ (c[:, None] * xi2) / n,  # clean presynaptic activity, not h1_noisy
        (c[:, None] * xi2).mean(axis=0),
    ]
    for got, want in zip(gradients, expected):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-5)


def test_averaged_estimates_align_with_the_true_gradient_of_a_linear_layer():
    """rules.md §7 test 1: 20 -> 10 linear layer, 1/2 squared error, N = 32, sigma = 1e-3."""
    layer, x, t = linear_problem()
    true_w, true_b = squared_error_gradient([layer], x, t)
    for repeats, min_cosine in [(200, 0.95), (50, 0.9)]:
        est_w, est_b = np_estimate([layer], x, t, sigma=1e-3, repeats=repeats, readout=tf.identity)
        assert cosine(est_w, true_w) >= min_cosine, (repeats, cosine(est_w, true_w))
        assert 0.85 <= norm_ratio(est_w, true_w) <= 1.2, (repeats, norm_ratio(est_w, true_w))
        if repeats == 200:  # the bias has only 10 entries: a noisier cosine, checked at the larger K
            assert cosine(est_b, true_b) >= 0.9, cosine(est_b, true_b)
    # A single estimate is far noisier: what the averaging buys is real.
    single_w, _ = np_estimate([layer], x, t, sigma=1e-3, repeats=1, readout=tf.identity)
    assert cosine(single_w, true_w) < 0.8


def test_mean_estimate_does_not_depend_on_sigma():
    """rules.md §7 test 2: the estimate neither grows nor shrinks with sigma over [1e-5, 1e-2]."""
    layer, x, t = linear_problem(seed=1)
    true_w, _ = squared_error_gradient([layer], x, t)
    estimates = {}
    for seed, sigma in enumerate((1e-5, 1e-4, 1e-3, 1e-2)):
        # A different noise seed per sigma: independent estimates, each held to the same tolerance.
        estimates[sigma], _ = np_estimate([layer], x, t, sigma, repeats=200, seed=seed, readout=tf.identity)
        assert cosine(estimates[sigma], true_w) >= 0.95, (sigma, cosine(estimates[sigma], true_w))
        assert 0.85 <= norm_ratio(estimates[sigma], true_w) <= 1.2, (sigma, norm_ratio(estimates[sigma], true_w))
    assert 0.8 <= norm_ratio(estimates[1e-2], estimates[1e-5]) <= 1.25


def test_at_an_exact_fit_the_mean_update_vanishes_but_single_updates_do_not():
    """rules.md §7 test 3: with t = yhat, E_noisy - E = ||xi||^2 > 0, so every step still moves W (diffusion)."""
    layer, x, _ = linear_problem(seed=2)
    fit = layer(tf.constant(x)).numpy()
    np.testing.assert_array_equal(squared_error_gradient([layer], x, fit)[0], 0.0)
    single_w, single_b = np_estimate([layer], x, fit, sigma=1e-2, repeats=1, readout=tf.identity)
    averaged_w, _ = np_estimate([layer], x, fit, sigma=1e-2, repeats=400, seed=1, readout=tf.identity)
    # Per example the update is c xi x^T with c = ||xi||^2 / (2 sigma^2) ~ n_out / 2: of order sigma.
    assert np.linalg.norm(single_w) > 1e-3 and np.linalg.norm(single_b) > 1e-4
    # Its mean is zero (E[||xi||^2 xi] = 0): 400 averaged steps shrink it by about sqrt(400) = 20.
    assert np.linalg.norm(averaged_w) < 0.15 * np.linalg.norm(single_w)
    # Away from the fit the same noise gives an update dominated by the gradient, not by diffusion.
    _, _, t = linear_problem(seed=2)
    away_w, _ = np_estimate([layer], x, t, sigma=1e-2, repeats=400, seed=1, readout=tf.identity)
    assert np.linalg.norm(away_w) > 10 * np.linalg.norm(averaged_w)


def make_model(hidden=(16, 12), activation="tanh", seed=0):
    model = MLP(hidden, 10, activation=activation, seed=seed)
    model.build((None, 64))
    return model


def digits_batch(size=32, seed=0):
    task = get_task("digits")
    index = np.random.default_rng(seed).choice(len(task.x_train), size, replace=False)
    return tf.constant(task.x_train[index]), tf.constant(task.y_train[index])


def test_weight_norm_holds_every_column_at_the_glorot_std_after_each_step():
    rule = get_rule("np_wn")({"optimizer": "sgd", "lr": 0.5, "sigma": 1e-2}, seed=4)
    model = make_model()
    step = rule.make_train_step(model, rule.make_optimizer())
    for seed in range(5):
        before = [layer.kernel.numpy().copy() for layer in model.measured_layers]
        step(*digits_batch(seed=seed))
        for layer, previous in zip(model.measured_layers, before):
            kernel = layer.kernel.numpy()
            rms = np.sqrt(np.mean(kernel.astype(np.float64) ** 2, axis=0))
            np.testing.assert_allclose(rms, scheme_std(layer.kernel.shape), rtol=0, atol=1e-6)
            assert not np.allclose(kernel, previous, atol=1e-5)  # the update itself is not normalised away
    # Biases are not normalised: they moved away from zero but are free.
    assert all(np.any(layer.bias.numpy() != 0) for layer in model.measured_layers)


def test_weight_norm_rescales_exactly_the_plain_np_update():
    """Same init, seed and batch: one np_wn step = one np step, then each column scaled to sigma_o."""
    hparams = {"optimizer": "sgd", "lr": 0.5, "sigma": 1e-2}
    kernels = {}
    for name in ("np", "np_wn"):
        model = make_model()
        rule = get_rule(name)(hparams, seed=7)
        rule.make_train_step(model, rule.make_optimizer())(*digits_batch())
        kernels[name] = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in model.measured_layers]
    for (w_np, b_np), (w_wn, b_wn) in zip(kernels["np"], kernels["np_wn"]):
        sigma_o = (2.0 / sum(w_np.shape)) ** 0.5
        np.testing.assert_allclose(w_wn, normalize_columns(tf.constant(w_np), sigma_o).numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(b_wn, b_np)
        # Plain NP leaves the columns' RMS wherever the update puts it.
        assert np.max(np.abs(np.sqrt(np.mean(w_np**2, axis=0)) - sigma_o)) > 1e-4


def test_estimate_needs_no_backprop_path_through_the_network():
    """rules.md §7 test 4, with phi = tanh whose gradient is blocked: tf.GradientTape gets None for every
    hidden layer, yet NP's estimate for every layer aligns with backprop through the true tanh network."""
    blocked = make_model(activation=lambda u: tf.stop_gradient(tf.tanh(u)), seed=3)
    reference = make_model(activation="tanh", seed=3)
    for src, dst in zip(reference.measured_layers, blocked.measured_layers):
        dst.kernel.assign(src.kernel)
    x, y = digits_batch(seed=1)
    t = tf.one_hot(y, 10).numpy()

    with tf.GradientTape() as tape:
        loss = CROSS_ENTROPY(y, blocked(x))
    hidden_kernels = [layer.kernel for layer in blocked.measured_layers[:-1]]
    assert all(g is None for g in tape.gradient(loss, hidden_kernels))

    truth = squared_error_gradient(reference.measured_layers, x.numpy(), t, readout=tf.nn.softmax)
    estimate = np_estimate(blocked.measured_layers, x.numpy(), t, sigma=1e-3, repeats=300)
    for index in range(0, len(truth), 2):  # the kernels, layer by layer
        assert cosine(estimate[index], truth[index]) >= 0.9, (index, cosine(estimate[index], truth[index]))
        ratio = norm_ratio(estimate[index], truth[index])
        assert 0.8 <= ratio <= 1.25, (index, ratio)


def test_train_step_learns_with_a_nonlinearity_whose_gradient_is_zero():
    """phi = sign: backprop's hidden-layer gradient is exactly zero; the rule's compiled step still moves the
    hidden layer and lowers the loss (the estimate it follows is that of the noise-smoothed loss)."""
    rule = get_rule("np")({"optimizer": "adam", "lr": 3e-3, "sigma": 0.3}, seed=0)
    model = make_model(hidden=(32,), activation=tf.sign, seed=1)
    x, y = digits_batch(size=256, seed=2)
    with tf.GradientTape() as tape:
        initial = CROSS_ENTROPY(y, model(x))
    backprop_hidden = tape.gradient(initial, model.measured_layers[0].kernel)
    assert backprop_hidden is None or not np.any(backprop_hidden.numpy())
    first_kernel = model.measured_layers[0].kernel.numpy().copy()
    step = rule.make_train_step(model, rule.make_optimizer())
    for _ in range(150):
        step(x, y)
    assert float(CROSS_ENTROPY(y, model(x))) < float(initial) - 0.3
    assert np.linalg.norm(model.measured_layers[0].kernel.numpy() - first_kernel) > 1e-2


def test_step_returns_the_clean_pre_update_cross_entropy_and_is_seeded():
    x, y = digits_batch()
    runs = {}
    for seed in (5, 5, 6):
        model = make_model()
        rule = get_rule("np")({}, seed=seed)
        expected = float(CROSS_ENTROPY(y, model(x)))
        loss = float(rule.make_train_step(model, rule.make_optimizer())(x, y))
        assert loss == pytest.approx(expected, rel=1e-6)
        runs.setdefault(seed, []).append(np.concatenate([v.numpy().ravel() for v in model.trainable_variables]))
    np.testing.assert_array_equal(runs[5][0], runs[5][1])
    assert not np.array_equal(runs[5][0], runs[6][0])


@pytest.mark.parametrize("rule", ["np", "np_wn"])
def test_a_short_run_completes_and_is_bit_for_bit_reproducible(rule):
    from lrid.generate.trainer import train_run

    spec = RunSpec(
        model=ModelSpec(hidden=(32, 32)),
        train={"epochs": 1, "batch_size": 64},
        rule={"name": rule},
        observe={"points": 4, "probe_size": 64},
    )
    first, second = train_run(spec), train_run(spec)
    assert first.manifest["status"] == "complete", first.manifest.get("error")
    assert first.manifest["final_test_accuracy"] > 0.1
    pd.testing.assert_frame_equal(first.observables, second.observables, check_exact=True)


# --- Any topology: the model-level estimate (conv layers, batch norm) ------------------------------------


class TinyConvNet(MeasuredModel):
    """conv 4@3x3 (tanh) -> dense 5: small enough for a many-draw average of NP's estimate."""

    def __init__(self, seed=0):
        super().__init__()
        self.conv = FeedbackConv2D(4, 3, activation="tanh", seed=seed, name="conv")
        self.readout = FeedbackDense(5, seed=seed + 1, name="readout")
        self.measured_layers = [self.conv, self.readout]

    def call(self, inputs, training=False):
        h = self.conv(inputs)
        return self.readout(tf.reshape(h, [tf.shape(h)[0], -1]))


def test_model_level_estimate_is_the_dense_chain_estimate_on_an_mlp():
    """Same network, batch and noise stream: the surrogate-gradient form gives the closed form's numbers."""
    model = make_model()
    x, y = digits_batch()
    targets = tf.one_hot(y, 10)
    chain_noise = sample_noise(tf.random.Generator.from_seed(5), model.measured_layers, 32, 1e-2)
    chain, chain_logits = node_perturbation_gradients(model.measured_layers, x, targets, chain_noise, 1e-2)
    surrogate, logits = model_perturbation_gradients(model, x, targets, tf.random.Generator.from_seed(5), 1e-2)
    np.testing.assert_allclose(logits.numpy(), chain_logits.numpy(), rtol=1e-6, atol=1e-6)
    for got, want in zip(surrogate, chain, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


def test_conv_estimate_averaged_over_draws_aligns_with_the_true_gradient():
    model = TinyConvNet(seed=2)
    model.build((None, 6, 6, 2))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 6, 2)).astype(np.float32)
    t = rng.normal(size=(32, 5)).astype(np.float32)
    variables = [model.conv.kernel, model.conv.bias, model.readout.kernel, model.readout.bias]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(model(x) - t), axis=1))
    truth = tape.gradient(loss, variables)
    # The batch tiled: the mean over K*N rows is the mean of K independent batch estimates. Conv layers
    # perturb every position of every channel (144 noise dimensions per example here), so NP needs many
    # more draws than for a dense layer: at K = 3000 the kernels' cosines were 0.96-0.97 over four seeds.
    repeats = 3000
    estimate, _ = model_perturbation_gradients(
        model, tf.tile(x, [repeats, 1, 1, 1]), tf.tile(t, [repeats, 1]), tf.random.Generator.from_seed(1), 1e-3,
        readout=tf.identity,
    )
    for name, got, want in zip(["conv kernel", "conv bias", "dense kernel", "dense bias"], estimate, truth):
        assert cosine(got.numpy(), want.numpy()) > 0.9, (name, cosine(got.numpy(), want.numpy()))
    assert 0.85 <= norm_ratio(estimate[0].numpy(), truth[0].numpy()) <= 1.2


def test_np_trains_a_batch_norm_conv_net_moving_its_statistics_once_per_step():
    """On knet: the noisy pass's update of the moving statistics is undone, so after one NP step they are
    what one training-mode forward pass (any other rule's step) leaves; and NP lowers the loss."""
    spec = ModelSpec(arch="knet")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(16, 16, 16, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, 16).astype(np.int32))
    statistics = {}
    for name in ("np", "sgdm"):
        rule = get_rule(name)({}, seed=0)
        model = build_network(spec, (16, 16, 3), 10, rule.feedback, seed=0)
        step = rule.make_train_step(model, rule.make_optimizer())
        first_loss = float(step(x, y))
        statistics[name] = [v.numpy() for v in model.non_trainable_variables if "moving" in v.path]
        if name == "np":
            for _ in range(40):
                loss = float(step(x, y))
            assert loss < first_loss - 0.1, (first_loss, loss)
    assert statistics["np"]
    for np_value, sgdm_value in zip(statistics["np"], statistics["sgdm"], strict=True):
        np.testing.assert_allclose(np_value, sgdm_value, rtol=1e-6, atol=1e-7)


def test_weight_norm_holds_each_conv_output_channel_at_the_glorot_std():
    rule = get_rule("np_wn")({"optimizer": "sgd", "lr": 0.5, "sigma": 1e-2}, seed=4)
    model = TinyConvNet()
    model.build((None, 6, 6, 2))
    step = rule.make_train_step(model, rule.make_optimizer())
    rng = np.random.default_rng(1)
    step(tf.constant(rng.normal(size=(8, 6, 6, 2)).astype(np.float32)), tf.constant(rng.integers(0, 5, 8)))
    kernel = model.conv.kernel.numpy().astype(np.float64)
    rms = np.sqrt(np.mean(kernel**2, axis=(0, 1, 2)))
    np.testing.assert_allclose(rms, (2.0 / (9 * 2 + 9 * 4)) ** 0.5, atol=1e-6)  # Keras's conv fans: 9*2, 9*4
