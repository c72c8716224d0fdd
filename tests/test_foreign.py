"""The foreign (independent numpy) learning-rule implementation: its maths against oracles, its recordings
against lrid's reader.

Tiers by oracle: finite differences (backprop, IA's local loss, the activity change; dense and conv nets, and
the patches' fold as their adjoint), exact identities (FA with B = W is backprop, SS's feedback), closed forms
(Adam, SGD with momentum), a statistical estimate (NP), then end-to-end behaviour (learning, alignment,
reproducibility, lrid compatibility, independence).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from benchmarks.foreign import generate as foreign
from benchmarks.foreign.conv import fold_patches, image_patches, init_conv_net
from benchmarks.foreign.data import load
from benchmarks.foreign.network import activity_change, backward, cross_entropy, forward, init_net, softmax
from benchmarks.foreign.rules import (
    RULES,
    FeedbackAlignment,
    InformationAlignment,
    NodePerturbation,
    Optimizer,
    Rule,
    SignSymmetry,
)

FOREIGN = Path(foreign.__file__).parent


def tiny_net(activation="tanh", seed=0, sizes=(4, 3, 3, 2)):
    """A float64 4-3-3-2 net with nonzero biases, so bias paths are exercised too."""
    rng = np.random.default_rng(seed)
    net = init_net(rng, list(sizes), activation, "lecun", 1.0, dtype=np.float64)
    for b in net.biases:
        b += rng.normal(0, 0.3, b.shape)
    return net, rng


def tiny_batch(rng, n=5, n_in=4, n_classes=2):
    return rng.standard_normal((n, n_in)), rng.integers(0, n_classes, n)


def numeric_gradient(loss, array, eps=1e-6):
    """Central differences of ``loss()`` with respect to every entry of ``array`` (perturbed in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        up = loss()
        array[index] = saved - eps
        down = loss()
        array[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


# --- finite differences ---------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_backprop_gradients_match_central_differences(activation):
    net, rng = tiny_net(activation)
    x, y = tiny_batch(rng)
    inputs, pre, outputs = forward(net, x)
    _, grad_logits = cross_entropy(outputs[-1], y)
    grads_w, grads_b = backward(net, inputs, pre, outputs, grad_logits)
    loss = lambda: cross_entropy(forward(net, x)[2][-1], y)[0]  # noqa: E731
    for param, grad in zip(net.weights + net.biases, grads_w + grads_b):
        np.testing.assert_allclose(grad, numeric_gradient(loss, param), rtol=1e-5, atol=1e-8)


def test_ia_feedback_update_is_the_gradient_of_its_local_loss():
    net, rng = tiny_net()
    rule = InformationAlignment(net, Optimizer("sgd", 0.1), rng, alpha=0.7, beta=0.4, gamma=0.2, feedback_lr=0.05)
    x, y = tiny_batch(rng)
    inputs = forward(net, x)[0]
    for index in range(1, net.depth):
        analytic = rule.local_gradient(index, inputs[index])
        numeric = numeric_gradient(lambda: rule.local_loss(index, inputs[index]), rule.matrices[index])
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    # A training step moves B by feedback_lr times that gradient (taken before W moves), and R moves only B:
    # W descends the task loss sent down through the current B, as in FA.
    before = [b.copy() for b in rule.matrices]
    expected_b = [before[i] - 0.05 * rule.local_gradient(i, inputs[i]) for i in range(1, net.depth)]
    inputs, pre, outputs = forward(net, x)
    task_w, _ = backward(net, inputs, pre, outputs, cross_entropy(outputs[-1], y)[1], before)
    expected_w = [w - 0.1 * g for w, g in zip(net.weights, task_w)]
    rule.step(x, y)
    for index, matrix in zip(range(1, net.depth), expected_b):
        np.testing.assert_allclose(rule.matrices[index], matrix, rtol=1e-12)
    np.testing.assert_array_equal(rule.matrices[0], before[0])
    for got, want in zip(net.weights, expected_w):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_activity_change_matches_a_finite_difference_jacobian():
    net, rng = tiny_net("softplus", sizes=(4, 5, 3, 2))
    x = rng.standard_normal((3, 4))
    inputs, pre, outputs = forward(net, x)
    changes = activity_change(net, pre, outputs)
    for index in range(net.depth):
        last = index == net.depth - 1

        def layer(v, index=index, last=last):
            z = v @ net.weights[index].T + net.biases[index]
            return z if last else np.logaddexp(0, z)  # the readout's output is its logits

        for n in range(len(x)):
            point = inputs[index][n].copy()
            jacobian = np.stack([(layer(point + e) - layer(point - e)) / 2e-6 for e in np.eye(len(point)) * 1e-6], axis=1)
            expected = jacobian.sum() / jacobian.shape[0]
            assert changes[index][n] == pytest.approx(expected, rel=1e-6, abs=1e-9)


def tiny_conv_net(activation="tanh", seed=0, strides=(1, 2)):
    """A float64 conv net on 5x5x2 images (3 and 2 channels, then 3 classes), with nonzero biases."""
    rng = np.random.default_rng(seed)
    net = init_conv_net(rng, (5, 5, 2), [3, 2], list(strides), 3, activation, "lecun", 1.0, dtype=np.float64)
    for b in net.biases:
        b += rng.normal(0, 0.3, b.shape)
    return net, rng


@pytest.mark.parametrize("activation,strides", [("tanh", (1, 2)), ("relu", (2, 2))])
def test_conv_backprop_gradients_match_central_differences(activation, strides):
    net, rng = tiny_conv_net(activation, strides=strides)
    x, y = rng.standard_normal((4, 5, 5, 2)), rng.integers(0, 3, 4)
    inputs, pre, outputs = net.forward(x)
    assert [o.shape for o in outputs] == [(4, 5 if strides[0] == 1 else 3, 5 if strides[0] == 1 else 3, 3),
                                          (4, 3 if strides[0] == 1 else 2, 3 if strides[0] == 1 else 2, 2), (4, 3)]
    grads_w, grads_b = net.backward(inputs, pre, outputs, cross_entropy(outputs[-1], y)[1])
    loss = lambda: cross_entropy(net.forward(x)[2][-1], y)[0]  # noqa: E731
    for param, grad in zip(net.weights + net.biases, grads_w + grads_b):
        np.testing.assert_allclose(grad, numeric_gradient(loss, param), rtol=1e-5, atol=1e-8)


def test_folding_patches_is_the_adjoint_of_taking_them():
    rng = np.random.default_rng(4)
    for shape, stride in (((2, 5, 5, 3), 1), ((2, 8, 8, 1), 2), ((1, 7, 6, 2), 2)):
        images = rng.standard_normal(shape)
        rows = image_patches(images, 3, stride)
        other = rng.standard_normal(rows.shape)
        assert np.sum(rows * other) == pytest.approx(np.sum(images * fold_patches(other, shape, 3, stride)), rel=1e-12)
    # A 3x3 patch of a stride-1 'same' conv is the pixel's neighbourhood, zero outside the image.
    image = np.arange(9.0).reshape(1, 3, 3, 1)
    np.testing.assert_array_equal(image_patches(image, 3, 1)[4], np.arange(9.0))
    np.testing.assert_array_equal(image_patches(image, 3, 1)[0], [0, 0, 0, 0, 0, 1, 0, 3, 4])


def test_conv_ia_feedback_update_is_the_gradient_of_its_local_loss():
    net, rng = tiny_conv_net()
    rule = InformationAlignment(net, Optimizer("sgd", 0.1), rng, alpha=0.7, beta=0.4, gamma=0.2, feedback_lr=0.05)
    inputs = net.forward(rng.standard_normal((3, 5, 5, 2)))[0]
    for index in range(1, net.depth):  # a conv layer (its reconstruction a transposed convolution), the readout
        analytic = rule.local_gradient(index, inputs[index])
        local_loss = lambda index=index: rule.local_loss(index, inputs[index])  # noqa: E731
        numeric = numeric_gradient(local_loss, rule.matrices[index])
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_conv_activity_change_matches_a_finite_difference_jacobian():
    net, rng = tiny_conv_net("softplus")
    x = rng.standard_normal((2, 5, 5, 2))
    inputs, pre, outputs = net.forward(x)
    changes = net.activity_change(pre, outputs)
    for index in range(net.depth):
        last = index == net.depth - 1

        def layer(v, index=index, last=last):
            w = net.weights[index]
            z = net.patches(index, v[None]) @ w.reshape(len(w), -1).T + net.biases[index]
            return z if last else np.logaddexp(0, z)

        for n in range(len(x)):
            point = inputs[index][n]
            steps = np.eye(point.size).reshape(point.size, *point.shape) * 1e-6
            total = sum(np.sum(layer(point + e) - layer(point - e)) / 2e-6 for e in steps)
            assert changes[index][n] == pytest.approx(total / layer(point).size, rel=1e-6, abs=1e-9)


def test_conv_feedback_rules_follow_their_kernels():
    net, rng = tiny_conv_net("relu")
    x, y = rng.standard_normal((4, 5, 5, 2)), rng.integers(0, 3, 4)
    fa = FeedbackAlignment(net, Optimizer("sgd", 0.1), rng)
    assert [b.shape for b in fa.matrices] == [w.shape for w in net.weights]
    _, bp_w, _ = Rule(net, Optimizer("sgd", 0.1), rng).gradients(x, y)
    fa.matrices = [w.copy() for w in net.weights]
    for got, want in zip(fa.gradients(x, y)[1], bp_w):
        np.testing.assert_array_equal(got, want)
    ss = SignSymmetry(net, Optimizer("sgd", 0.1), rng)
    for feedback, w, std in zip(ss.feedback(), net.weights, net.init_std):
        np.testing.assert_array_equal(feedback, np.sign(w) * std)
    # Weight-normalised node perturbation keeps each output channel's whole kernel at its initial RMS.
    rule = NodePerturbation(net, Optimizer("sgd", 0.5), rng, sigma=1e-2, weight_norm=True)
    for _ in range(3):
        rule.step(x, y)
    for w, std in zip(net.weights, net.init_std):
        np.testing.assert_allclose(np.sqrt(np.mean(w * w, axis=tuple(range(1, w.ndim)))), std, rtol=1e-10)


# --- exact identities -----------------------------------------------------------------------------------


def test_fa_with_feedback_equal_to_the_weights_is_backprop():
    net, rng = tiny_net()
    x, y = tiny_batch(rng)
    fa = FeedbackAlignment(net, Optimizer("sgd", 0.1), rng)
    _, random_w, random_b = fa.gradients(x, y)
    _, bp_w, bp_b = Rule(net, Optimizer("sgd", 0.1), rng).gradients(x, y)
    # With random B, only the readout's own gradients are exact.
    np.testing.assert_array_equal(random_w[-1], bp_w[-1])
    assert not np.allclose(random_w[0], bp_w[0])
    fa.matrices = [w.copy() for w in net.weights]
    _, fa_w, fa_b = fa.gradients(x, y)
    for got, want in zip(fa_w + fa_b, bp_w + bp_b):
        np.testing.assert_array_equal(got, want)


def test_ss_feedback_is_the_sign_of_the_weights_times_the_init_std():
    rng = np.random.default_rng(1)
    sizes = [6, 5, 4, 3]
    net = init_net(rng, sizes, "relu", "he", 1.1, dtype=np.float64)
    rule = SignSymmetry(net, Optimizer("sgd", 0.5), rng)
    stds = [1.1 * np.sqrt(2 / fan_in) for fan_in in sizes[:-1]]
    np.testing.assert_allclose(net.init_std, stds)
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    for _ in range(3):  # the sign is read afresh after every step
        for feedback, w, std in zip(rule.feedback(), net.weights, stds):
            np.testing.assert_array_equal(feedback, np.sign(w) * std)
        rule.step(x, y)
    # When every |W| equals s, SS is backprop.
    for w, std in zip(net.weights, stds):
        w[...] = np.sign(w) * std
    _, ss_w, _ = rule.gradients(x, y)
    _, bp_w, _ = Rule(net, Optimizer("sgd", 0.5), rng).gradients(x, y)
    for got, want in zip(ss_w, bp_w):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# --- closed forms ---------------------------------------------------------------------------------------


def test_adam_first_steps_match_the_closed_form():
    lr, g1, g2 = 0.01, np.array([0.3, -2.0, 1e-3]), np.array([-0.1, -1.0, 2e-3])
    w = np.zeros(3)
    adam = Optimizer("adam", lr)
    adam.step([w], [g1.copy()])
    # Step 1: the bias-corrected moments are g and g^2, so the step is lr * g / (|g| + eps).
    np.testing.assert_allclose(w, -lr * g1 / (np.abs(g1) + 1e-8), rtol=1e-12)
    first = w.copy()
    adam.step([w], [g2.copy()])
    m_hat = (0.9 * 0.1 * g1 + 0.1 * g2) / (1 - 0.9**2)
    v_hat = (0.999 * 0.001 * g1**2 + 0.001 * g2**2) / (1 - 0.999**2)
    np.testing.assert_allclose(w, first - lr * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-12)
    # A constant gradient moves every coordinate by lr per step, whatever its scale.
    w, adam = np.zeros(3), Optimizer("adam", lr)
    for _ in range(5):
        adam.step([w], [g1.copy()])
    np.testing.assert_allclose(w, -5 * lr * g1 / (np.abs(g1) + 1e-8), rtol=1e-9)


def test_sgd_momentum_on_a_constant_gradient_matches_the_closed_form():
    lr, m, g = 0.05, 0.9, np.array([1.0, -3.0])
    w, sgdm = np.zeros(2), Optimizer("sgdm", lr, momentum=m)
    for _ in range(7):
        sgdm.step([w], [g.copy()])
    np.testing.assert_allclose(w, -lr * g * sum((1 - m**i) / (1 - m) for i in range(1, 8)), rtol=1e-12)


# --- statistical ----------------------------------------------------------------------------------------


def test_node_perturbation_averages_to_the_gradient_of_half_the_squared_error():
    net, rng = tiny_net("tanh", seed=3)
    x, y = tiny_batch(rng, n=8)
    rule = NodePerturbation(net, Optimizer("sgd", 0.1), rng, sigma=1e-3)
    draws = [rule.gradients(x, y)[1] for _ in range(3000)]
    estimate = [np.mean([d[i] for d in draws], axis=0) for i in range(net.depth)]
    # Oracle: backprop of mean_n 1/2 |softmax - t|^2 through the softmax Jacobian.
    inputs, pre, outputs = forward(net, x)
    p = softmax(outputs[-1])
    error = p - np.eye(2)[y]
    grad_logits = p * (error - np.sum(p * error, axis=1, keepdims=True)) / len(x)
    true, _ = backward(net, inputs, pre, outputs, grad_logits)
    for got, want in zip(estimate, true):
        cosine = np.sum(got * want) / np.linalg.norm(got) / np.linalg.norm(want)
        assert cosine > 0.9
        assert 0.7 < np.linalg.norm(got) / np.linalg.norm(want) < 1.4


def test_np_weight_norm_keeps_every_unit_at_its_initial_rms():
    net, rng = tiny_net("relu")
    rule = NodePerturbation(net, Optimizer("sgd", 0.5), rng, sigma=1e-2, weight_norm=True)
    x, y = tiny_batch(rng)
    for _ in range(5):
        rule.step(x, y)
    for w, std in zip(net.weights, net.init_std):
        np.testing.assert_allclose(np.sqrt(np.mean(w * w, axis=1)), std, rtol=1e-10)


# --- behaviour ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load()


def test_every_rule_learns_digits_in_its_default_setting(digits):
    for rule in RULES:
        rng = np.random.default_rng([7, RULES.index(rule)])
        settings = foreign.sample_settings(rule, rng, len(digits.y_train))
        trained = foreign.train_network(rule, settings, digits, rng)
        assert trained is not None, f"{rule} diverged"
        floor = 0.9 if rule in ("sgdm", "adam") else 0.5  # chance is 0.1
        assert trained.accuracy > floor, (rule, settings, trained.accuracy)


def test_ia_feedback_aligns_with_the_weights_where_fa_does_not(digits):
    angles = {}
    for rule in ("fa", "ia"):
        rng = np.random.default_rng(11)
        settings = foreign.sample_settings(rule, rng, len(digits.y_train))
        learner = foreign.train_network(rule, settings, digits, rng).learner
        pairs = list(zip(learner.matrices[1:], learner.net.weights[1:]))
        angles[rule] = np.mean([np.degrees(np.arccos(np.sum(b * w) / np.linalg.norm(b) / np.linalg.norm(w))) for b, w in pairs])
    assert angles["ia"] < angles["fa"] - 10, angles


def test_same_seed_writes_byte_identical_files(tmp_path):
    first = foreign.generate_networks(tmp_path / "a", 2, seed=5, rules=("ss", "np"))
    np.random.seed(123)  # nothing may depend on numpy's global generator
    second = foreign.generate_networks(tmp_path / "b", 2, seed=5, rules=("ss", "np"))
    assert [rule for _, rule in first] == ["ss", "np"] == [rule for _, rule in second]
    for (a, _), (b, _) in zip(first, second):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a/labels.csv").read_bytes() == (tmp_path / "b/labels.csv").read_bytes()
    other = foreign.generate_networks(tmp_path / "c", 1, seed=6, rules=("ss",))
    assert other[0][0].read_bytes() != first[0][0].read_bytes()


def test_recordings_are_read_by_lrid(tmp_path):
    from lrid.identify.recording import load_recordings, read_recording

    (path, rule), = foreign.generate_networks(tmp_path, 1, seed=2, rules=("fa",))
    labels = (tmp_path / "labels.csv").read_text().splitlines()
    assert labels[1].startswith(f"{path.stem},fa,")
    with np.load(path, allow_pickle=False) as archive:
        steps, layers = archive["steps"], list(archive["layers"])
        weights = [archive[f"weight/{layer}"].shape for layer in layers]
        acts = [archive[f"act/{layer}"].shape for layer in layers]
    assert len(steps) == foreign.POINTS and steps[0] == 0 and layers[-1] == "readout"
    assert weights[0][1] == 64 and weights[-1][2] == 10  # [T, in, out]: digits' 64 pixels in, 10 logits out
    assert all(a == (len(steps), 200, w[2]) for a, w in zip(acts, weights))
    (recording,) = load_recordings(path)
    assert recording.layers == layers
    observables = read_recording(path)
    assert sorted(set(observables["layer"])) == sorted(layers)
    assert sorted(set(observables["step"])) == steps.tolist()
    assert (observables["run_id"] == path.stem).all()
    assert not observables.filter(regex="^(weight|act|actchange)_").isna().any().any()


def test_conv_nets_learn_and_their_recordings_are_read_by_lrid(tmp_path, digits):
    from lrid.identify.recording import read_recording

    # IA is the rule whose conv form adds most (its transposed-convolution reconstruction, its step cap).
    rng = np.random.default_rng([5, RULES.index("ia")])
    settings = foreign.sample_settings("ia", rng, len(digits.y_train), arch="conv")
    trained = foreign.train_network("ia", settings, digits, rng)
    assert trained is not None and trained.accuracy > 0.5, settings
    written = foreign.generate_networks(tmp_path, 1, seed=3, rules=("ss",), arch="conv")
    (path, rule), = written
    assert path.name == "foreign-conv-s3-0000.npz" and rule == "ss"
    labels = (tmp_path / "labels.csv").read_text().splitlines()
    assert labels[0].endswith(",arch,strides") and ",conv," in labels[1]
    with np.load(path, allow_pickle=False) as archive:
        layers = list(archive["layers"])
        assert layers[0] == "conv1" and layers[-1] == "readout"
        kernel, act = archive["weight/conv1"], archive["act/conv1"]
        assert kernel.shape[1:4] == (3, 3, 1)  # [T, k, k, in, out]: one input channel
        first_stride = int(labels[1].rsplit(",", 1)[1].split("-")[0])
        side = 8 if first_stride == 1 else 4  # 8x8 digits, 'same' padding
        assert act.shape[1:] == (200, side, side, kernel.shape[4])
    observables = read_recording(path)
    assert sorted(set(observables["layer"])) == sorted(layers)
    assert not observables.filter(regex="^(weight|act|actchange)_").isna().any().any()


def test_cli_writes_recordings_and_rejects_an_unknown_rule(tmp_path, capsys):
    foreign.main(["--out", str(tmp_path), "--networks", "2", "--seed", "1", "--rules", "adam,np_wn"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign-s1-0000.npz", "foreign-s1-0001.npz", "labels.csv"]
    assert "np_wn" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        foreign.main(["--out", str(tmp_path / "x"), "--rules", "sgdm,bogus"])
    assert exit_info.value.code == 2
    assert "unknown rule(s) bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        foreign.main(["--out", str(tmp_path / "y"), "--arch", "resnet"])
    assert "invalid choice: 'resnet'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        foreign.generate_networks(tmp_path / "z", 1, arch="resnet")


def test_the_implementation_imports_nothing_from_lrid():
    for source in FOREIGN.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "lrid" or n.startswith("lrid.") for n in names), (source.name, names)
