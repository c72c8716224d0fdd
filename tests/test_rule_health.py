"""Rule health (angles in the manifest): what each angle means for known rules, and that measuring it
never changes the run."""

import numpy as np
import pytest
import tensorflow as tf

from lrid.config import ModelSpec
from lrid.generate.health import HealthProbe, angle_degrees
from lrid.models import build_network
from lrid.rules import get_rule
from lrid.rules.base import restrict_weight_decay
from lrid.store import Store


def test_angle_degrees_matches_the_definition():
    a, b = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0], [0.0, 1.0]])
    expected = np.degrees(np.arccos((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b)))
    assert float(angle_degrees(a, b)) == pytest.approx(expected, abs=1e-4)
    assert float(angle_degrees(a, -a)) == pytest.approx(180.0, abs=1e-3)
    assert np.isnan(float(angle_degrees(a, np.zeros_like(a))))


def _setup(rule_name, arch="mlp", input_shape=(20,), seed=0):
    rule = get_rule(rule_name)({}, seed=seed)
    model = build_network(ModelSpec(arch=arch, hidden=(16, 12)), input_shape, 10, rule.feedback, seed=seed)
    optimizer = rule.make_optimizer()
    restrict_weight_decay(optimizer, model)
    optimizer.build(model.trainable_variables)
    step = rule.make_train_step(model, optimizer)
    rng = np.random.default_rng(seed)
    batches = [
        (tf.constant(rng.normal(size=(16, *input_shape)).astype(np.float32)), tf.constant(rng.integers(0, 10, 16)))
        for _ in range(4)
    ]
    return rule, model, step, batches


def test_backprop_updates_are_the_gradient_and_fa_hidden_updates_start_far_from_it():
    rule, model, _, batches = _setup("sgdm")
    update_angles, feedback_angles = HealthProbe(rule, model).measure(*batches[0])
    assert feedback_angles is None
    assert max(update_angles) < 0.5

    rule, model, _, batches = _setup("fa")
    update_angles, feedback_angles = HealthProbe(rule, model).measure(*batches[0])
    assert update_angles[-1] < 0.5  # the output layer's weight gradient is exact under FA
    assert min(update_angles[:-1]) > 30  # hidden layers get random feedback
    assert all(abs(angle - 90) < 15 for angle in feedback_angles)  # independent random B and W


@pytest.mark.parametrize(
    "rule_name, arch, input_shape",
    [("np", "mlp", (20,)), ("ia", "mlp", (20,)), ("dtp", "mlp", (20,)), ("fa", "knet", (32, 32, 3)), ("np", "knet", (16, 16, 3))],
)
def test_measuring_health_leaves_the_run_bit_identical(rule_name, arch, input_shape):
    """No random state drawn, no batch-norm statistics moved, no variable written by the probe."""
    final_weights = []
    for probe_between_steps in (False, True):
        rule, model, step, batches = _setup(rule_name, arch, input_shape)
        probe = HealthProbe(rule, model)
        for x, y in batches:
            if probe_between_steps:
                probe.measure(x, y)
            step(x, y)
        final_weights.append([v.numpy() for v in model.variables])
    for without, with_probe in zip(*final_weights, strict=True):
        np.testing.assert_array_equal(without, with_probe)


def test_every_manifest_carries_health_at_every_recorded_step(tiny_store):
    for manifest in Store(tiny_store).manifests():
        health = manifest["health"]
        assert health["steps"] == manifest["recorded_steps"]
        assert len(manifest["recorded_train_loss"]) == len(manifest["recorded_steps"])
        n_layers = len(health["layers"])
        assert all(len(angles) == n_layers for angles in health["update_gradient_angle_deg"])
        rule = manifest["spec"]["rule"]["name"]
        if rule in ("fa", "ia"):
            assert all(len(angles) == n_layers for angles in health["feedback_weight_angle_deg"])
        else:
            assert health["feedback_weight_angle_deg"] is None
            assert max(max(a for a in angles if a is not None) for angles in health["update_gradient_angle_deg"]) < 1
