"""Learning rules checked against their definitions (closed-form oracles, not recorded outputs)."""

import numpy as np
import pytest
import tensorflow as tf

from lrid.config import ModelSpec
from lrid.models import build_model
from lrid.observables.measures import activity_change
from lrid.rules import RULES, get_rule
from lrid.tasks import get_task

LOSS = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_model(feedback, seed=0, hidden=(16, 12)):
    return build_model(ModelSpec(hidden=hidden), get_task("digits"), feedback=feedback, seed=seed)


def batch(size=32, seed=0):
    task = get_task("digits")
    index = np.random.default_rng(seed).choice(len(task.x_train), size, replace=False)
    return tf.constant(task.x_train[index]), tf.constant(task.y_train[index])


def copy_forward_weights(source, target):
    for src, dst in zip(source.measured_layers, target.measured_layers):
        dst.kernel.assign(src.kernel)
        dst.bias.assign(src.bias)


def task_gradients(model, x, y):
    """Gradients of the task loss for each layer's (kernel, bias), plus the input gradient."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = LOSS(y, model(x))
    variables = [v for layer in model.measured_layers for v in (layer.kernel, layer.bias)]
    *weights, inputs = tape.gradient(loss, [*variables, x])
    return [g.numpy() for g in weights], inputs.numpy()


def test_registry_has_the_foundation_rules_with_descriptions():
    assert {"sgdm", "adam", "fa", "ia"} <= set(RULES)
    for rule in RULES.values():
        assert rule.description and rule.reference and rule.__doc__


def test_fa_with_feedback_equal_to_w_is_exactly_backprop():
    x, y = batch()
    backprop, aligned = make_model(None), make_model("fixed", seed=3)
    copy_forward_weights(backprop, aligned)
    for layer in aligned.measured_layers:
        layer.feedback_kernel.assign(layer.kernel)
    bp_weights, bp_input = task_gradients(backprop, x, y)
    fa_weights, fa_input = task_gradients(aligned, x, y)
    for bp, fa in zip(bp_weights, fa_weights):
        np.testing.assert_allclose(fa, bp, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fa_input, bp_input, rtol=1e-6, atol=1e-7)


def test_fa_with_random_feedback_keeps_last_layer_exact_and_changes_lower_layers():
    x, y = batch()
    backprop, random_feedback = make_model(None), make_model("fixed")
    copy_forward_weights(backprop, random_feedback)
    bp, fa = task_gradients(backprop, x, y)[0], task_gradients(random_feedback, x, y)[0]
    np.testing.assert_allclose(fa[-2], bp[-2], rtol=1e-6)  # output kernel
    np.testing.assert_allclose(fa[-1], bp[-1], rtol=1e-6)  # output bias
    assert not np.allclose(fa[0], bp[0], atol=1e-4)


@pytest.mark.parametrize("optimizer", ["sgdm", "adam"])
def test_fa_feedback_kernels_never_change_during_training_even_with_weight_decay(optimizer):
    kernels = {}
    for decay in (0.0, 0.5):
        rule = get_rule("fa")({"optimizer": optimizer, "weight_decay": decay})
        model = make_model(rule.feedback)
        before = [layer.feedback_kernel.numpy().copy() for layer in model.measured_layers]
        step = rule.make_train_step(model, rule.optimizer_for(model))  # decays the forward kernels only
        for seed in range(10):
            step(*batch(seed=seed))
        for layer, initial in zip(model.measured_layers, before):
            np.testing.assert_array_equal(layer.feedback_kernel.numpy(), initial)
        kernels[decay] = model.measured_layers[0].kernel.numpy()
    # Decay does act, on the forward kernels: they end up smaller than without it.
    assert np.linalg.norm(kernels[0.5]) < 0.99 * np.linalg.norm(kernels[0.0])


@pytest.mark.parametrize("name", ["adam", "fa", "ia", "np", "dtp"])
def test_a_step_given_the_optimizer_set_up_for_its_model_is_traced_once(name):
    rule = get_rule(name)({"weight_decay": 1e-3} if name != "dtp" else {}, seed=0)
    model = make_model(rule.feedback)
    step = rule.make_train_step(model, rule.optimizer_for(model))
    for seed in range(2):
        step(*batch(seed=seed))
    assert step.experimental_get_tracing_count() == 1
    # An optimizer left to create its slots in the first trace makes TensorFlow trace the step twice.
    unbuilt = rule.make_train_step(model, rule.make_optimizer())
    unbuilt(*batch(seed=0))
    assert unbuilt.experimental_get_tracing_count() == 2


def test_ia_local_loss_has_gradient_only_for_the_feedback_kernel():
    rule = get_rule("ia")()
    model = make_model(rule.feedback)
    x, _ = batch()
    layer = model.measured_layers[1]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        local = rule.local_loss(layer, model.measured_layers[0](x))
    others = [x, layer.kernel, layer.bias, *[v for l in model.measured_layers if l is not layer for v in l.trainable_variables]]
    for gradient in tape.gradient(local, others):
        assert gradient is None or not np.any(gradient.numpy())
    feedback_gradient = tape.gradient(local, layer.feedback_kernel)
    assert feedback_gradient is not None and np.any(feedback_gradient.numpy())


def test_ia_closed_form_feedback_gradient_equals_autodiff_of_its_local_loss():
    rule = get_rule("ia")({"alpha": 0.3, "beta": 0.2, "gamma": 0.1})
    model = make_model(rule.feedback)
    x, _ = batch()
    for layer, layer_input in zip(model.measured_layers, model.forward_with_activity(x)[1]):
        with tf.GradientTape() as tape:
            loss = rule.local_loss(layer, layer_input)
        expected = tape.gradient(loss, layer.feedback_kernel).numpy()
        np.testing.assert_allclose(rule.feedback_gradient(layer, layer_input).numpy(), expected, rtol=1e-4, atol=1e-6)


def test_ia_with_zero_coefficients_trains_exactly_like_fa():
    trained = {}
    for name, hparams in [("fa", {}), ("ia", {"alpha": 0.0, "beta": 0.0, "gamma": 0.0})]:
        rule = get_rule(name)(hparams)
        model = make_model(rule.feedback)
        step = rule.make_train_step(model, rule.make_optimizer())
        for seed in range(5):
            step(*batch(seed=seed))
        trained[name] = [layer.kernel.numpy() for layer in model.measured_layers]
    for fa, ia in zip(trained["fa"], trained["ia"]):
        np.testing.assert_array_equal(ia, fa)


def test_ia_feedback_converges_to_its_ridge_pseudo_inverse_fixed_point():
    """Train only B on R with W fixed and white inputs: B*^T = alpha (2 beta W^T W + 2 gamma I)^-1 W^T."""
    alpha, beta, gamma = 0.2, 0.1, 0.1
    rule = get_rule("ia")({"alpha": alpha, "beta": beta, "gamma": gamma})
    from lrid.models.layers import FeedbackDense

    layer = FeedbackDense(6, feedback="learned", seed=0)
    layer.build((None, 12))
    rng = np.random.default_rng(0)
    optimizer = tf.keras.optimizers.SGD(learning_rate=0.05)
    for _ in range(3000):
        x = tf.constant(rng.normal(size=(256, 12)).astype(np.float32))
        optimizer.apply([rule.feedback_gradient(layer, x)], [layer.feedback_kernel])
    w = layer.kernel.numpy().astype(np.float64)
    expected = alpha * np.linalg.solve(2 * beta * w.T @ w + 2 * gamma * np.eye(6), w.T).T
    b = layer.feedback_kernel.numpy()
    assert np.linalg.norm(b - expected) / np.linalg.norm(expected) < 0.05
    cosine = np.sum(b * w) / (np.linalg.norm(b) * np.linalg.norm(w))
    assert cosine > 0.9


def feedback_angle(layer) -> float:
    """Degrees between the feedback kernel and the forward kernel (0 is backprop)."""
    b, w = layer.feedback_kernel.numpy(), layer.kernel.numpy()
    cosine = np.sum(b * w) / (np.linalg.norm(b) * np.linalg.norm(w))
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def test_ia_defaults_align_feedback_within_the_demo_budget_where_fa_does_not():
    """The demo trains 8 epochs at batch 32 (~330 steps); IA must leave FA's regime in that budget."""
    task = get_task("digits")
    angles = {}
    for name in ("fa", "ia"):
        rule = get_rule(name)({"lr": 0.03})
        model = build_model(ModelSpec(), task, feedback=rule.feedback, seed=0)
        step = rule.make_train_step(model, rule.make_optimizer())
        for epoch in range(8):
            for x, y in task.epoch_batches(epoch, 32, data_seed=0):
                step(x, y)
        angles[name] = [feedback_angle(layer) for layer in model.measured_layers]
    # FA's hidden-layer feedback stays near orthogonal to W; IA's must be clearly aligned.
    assert min(angles["fa"][:2]) > 80, angles
    assert max(angles["ia"][:2]) < angles["fa"][0] - 10, angles


def test_activity_change_equals_the_analytic_jacobian_sum():
    model = make_model(None)
    layer = model.measured_layers[0]
    x, _ = batch(8)
    computed = activity_change(layer, x).numpy()
    w, b = layer.kernel.numpy(), layer.bias.numpy()
    derivative = 1 - np.tanh(x.numpy() @ w + b) ** 2  # [n, out]
    expected = (derivative * w.sum(axis=0)).sum(axis=1) / w.shape[1]
    np.testing.assert_allclose(computed, expected, rtol=1e-5)


def test_activity_change_uses_the_forward_jacobian_not_the_feedback_path():
    backprop, random_feedback = make_model(None), make_model("fixed")
    copy_forward_weights(backprop, random_feedback)
    for bp_layer, fa_layer in zip(backprop.measured_layers, random_feedback.measured_layers):
        inputs = tf.random.stateless_normal((8, bp_layer.kernel.shape[0]), seed=(1, 2))
        np.testing.assert_allclose(
            activity_change(fa_layer, inputs).numpy(), activity_change(bp_layer, inputs).numpy(), rtol=1e-6
        )


def test_sign_symmetry_equals_backprop_when_every_weight_has_the_feedback_magnitude():
    x, y = batch()
    backprop, sign = make_model(None), make_model("sign")
    for bp_layer, ss_layer in zip(backprop.measured_layers, sign.measured_layers):
        magnitude_matched = ss_layer.feedback_scale * np.sign(bp_layer.kernel.numpy())
        bp_layer.kernel.assign(magnitude_matched)
        ss_layer.kernel.assign(magnitude_matched)
        ss_layer.bias.assign(bp_layer.bias)
    for bp, ss in zip(*(task_gradients(m, x, y)[0] for m in (backprop, sign))):
        np.testing.assert_allclose(ss, bp, rtol=1e-6, atol=1e-8)


def test_sign_feedback_tracks_sign_flips_inside_a_compiled_step():
    model = make_model("sign")
    layer = model.measured_layers[1]

    @tf.function
    def input_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(layer.preactivation(x))
        return tape.gradient(total, x)

    x = tf.ones((1, layer.kernel.shape[0]))
    # dx = 1 @ B^T with B = s sign(W), so dx_i = s * sum_j sign(W_ij).
    expected = layer.feedback_scale * np.sign(layer.kernel.numpy()).sum(axis=1)
    np.testing.assert_allclose(input_gradient(x).numpy()[0], expected, rtol=1e-6, atol=1e-6)
    layer.kernel.assign(-layer.kernel)
    np.testing.assert_allclose(input_gradient(x).numpy()[0], -expected, rtol=1e-6, atol=1e-6)
