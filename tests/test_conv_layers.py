"""FeedbackConv2D: the rule-provided backward signal for convolutions, checked against autodiff."""

import numpy as np
import pytest
import tensorflow as tf

from lrid.models.layers import FeedbackConv2D
from lrid.rules import get_rule

SHAPE = (2, 9, 9, 3)


def conv_pair(feedback, strides, padding, seed=0):
    """A conv layer with the given feedback and an exact-backprop twin sharing its forward weights."""
    exact = FeedbackConv2D(4, 3, strides=strides, padding=padding, activation="tanh", seed=seed)
    other = FeedbackConv2D(4, 3, strides=strides, padding=padding, activation="tanh", feedback=feedback, seed=seed)
    for layer in (exact, other):
        layer.build(SHAPE)
    other.kernel.assign(exact.kernel)
    other.bias.assign(tf.random.stateless_normal((4,), seed=(0, 1)))
    exact.bias.assign(other.bias)
    return exact, other


def gradients(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(layer(x)))
    return [g.numpy() for g in tape.gradient(loss, [x, layer.kernel, layer.bias])]


@pytest.mark.parametrize("strides, padding", [(1, "SAME"), (2, "SAME"), (1, "VALID"), (2, "VALID")])
def test_conv_with_feedback_equal_to_w_is_exactly_backprop(strides, padding):
    x = tf.random.stateless_normal(SHAPE, seed=(1, 2))
    exact, fa = conv_pair("fixed", strides, padding)
    fa.feedback_kernel.assign(fa.kernel)
    for bp, other in zip(gradients(exact, x), gradients(fa, x)):
        np.testing.assert_allclose(other, bp, rtol=1e-5, atol=1e-6)
    assert fa.compute_output_shape(SHAPE) == tuple(fa(x).shape)


def test_conv_random_feedback_changes_only_the_input_gradient():
    x = tf.random.stateless_normal(SHAPE, seed=(3, 4))
    exact, fa = conv_pair("fixed", 2, "SAME")
    (bp_x, bp_w, bp_b), (fa_x, fa_w, fa_b) = gradients(exact, x), gradients(fa, x)
    np.testing.assert_allclose(fa_w, bp_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fa_b, bp_b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fa_x, bp_x, atol=1e-3)


def test_conv_sign_feedback_with_all_positive_weights_sends_back_s_times_ones():
    x = tf.random.stateless_normal(SHAPE, seed=(5, 6))
    _, ss = conv_pair("sign", 1, "SAME")
    ss.kernel.assign(tf.abs(ss.kernel) + 0.01)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = ss.preactivation(x)
    upstream = tf.random.stateless_normal(outputs.shape, seed=(7, 8))
    dx = tape.gradient(outputs, x, output_gradients=upstream)
    expected = tf.nn.conv2d_transpose(upstream, ss.feedback_scale * tf.ones(ss.kernel.shape), SHAPE, 1, "SAME")
    np.testing.assert_allclose(dx.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_ia_closed_form_feedback_gradient_matches_autodiff_for_convolutions():
    rule = get_rule("ia")({"alpha": 0.3, "beta": 0.2, "gamma": 0.1})
    layer = FeedbackConv2D(4, 3, strides=2, padding="SAME", feedback="learned", seed=0)
    layer.build(SHAPE)
    x = tf.random.stateless_normal(SHAPE, seed=(9, 10))
    with tf.GradientTape() as tape:
        loss = rule.local_loss(layer, x)
    expected = tape.gradient(loss, layer.feedback_kernel).numpy()
    np.testing.assert_allclose(rule.feedback_gradient(layer, x).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_ia_amp_equals_minus_squared_projection_when_feedback_equals_w():
    rule = get_rule("ia")({"alpha": 1.0, "beta": 0.0, "gamma": 0.0})
    layer = FeedbackConv2D(4, 3, feedback="learned", seed=0)
    layer.build(SHAPE)
    layer.feedback_kernel.assign(layer.kernel)
    x = tf.random.stateless_normal(SHAPE, seed=(11, 12))
    projection = layer.linear(x, layer.kernel)
    expected = -tf.reduce_sum(tf.square(projection)) / SHAPE[0]
    np.testing.assert_allclose(rule.local_loss(layer, x).numpy(), expected.numpy(), rtol=1e-5)
