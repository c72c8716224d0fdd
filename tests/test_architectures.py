"""Architectures: measured layers and grouping as in Nayebi et al., and every rule x architecture either
trains a step and records observables on tiny inputs or is refused before training with a clear reason."""

import numpy as np
import pytest
import tensorflow as tf

from lrid.config import ModelSpec, RuleSpec, RunSpec
from lrid.models import build_network, depth_groups
from lrid.observables import OBSERVABLES
from lrid.observables.recorder import Recorder
from lrid.observables.update_reach import checkpoint_reach, read_gram
from lrid.rules import RULES, get_rule

# Nayebi et al.'s table: (measured layers, early, middle, deep).
EXPECTED_LAYERS = {
    "convnet": (4, 1, 1, 2), "knet": (4, 1, 1, 2), "knetlrn": (4, 1, 1, 2), "knetc4": (5, 1, 1, 3), "knetc4lrn": (5, 1, 1, 3),
    "alexnet": (8, 2, 2, 4), "alexnetlrn": (8, 2, 2, 4), "resnet18": (22, 7, 7, 8), "resnet18v2": (22, 7, 7, 8),
    "resnet34": (38, 12, 12, 14), "resnet34v2": (38, 12, 12, 14),
}
TINY = {"mlp": ((64,), ModelSpec(hidden=(8,))), **{name: ((16, 16, 3), ModelSpec(arch=name, width=0.125)) for name in EXPECTED_LAYERS}}


@pytest.mark.parametrize("arch", sorted(EXPECTED_LAYERS))
def test_measured_layers_and_depth_groups_match_the_paper(arch):
    model = build_network(ModelSpec(arch=arch, width=0.125), (16, 16, 3), 10, None, 0)
    n, early, middle, deep = EXPECTED_LAYERS[arch]
    groups = depth_groups(len(model.measured_layers))
    assert (len(model.measured_layers), groups.count("early"), groups.count("middle"), groups.count("deep")) == (n, early, middle, deep)
    assert len({id(layer) for layer in model.measured_layers}) == n


def test_resnet18_has_the_standard_parameter_count():
    model = build_network(ModelSpec(arch="resnet18"), (32, 32, 3), 1000, None, 0)
    # 11.69 M for torchvision's ResNet-18, plus the first stage's 1x1 projection of TF's official model.
    assert abs(model.parameter_count() - 11_689_512 - 64 * 64) < 2_000


# ResNet-34 runs the same block code as ResNet-18 with more blocks, and ResNet-18 v2 the same layers in
# pre-activation order (its layers and groups are checked above); their cases take over a minute each, so
# they run with `pytest -m slow`, which keeps the default suite within its time budget.
SLOW_ARCHS = ("resnet34", "resnet34v2", "resnet18v2")
ARCH_CASES = [pytest.param(a, marks=pytest.mark.slow) if a in SLOW_ARCHS else a for a in sorted(TINY)]
# Every rule runs on the MLP and the digits conv net. On the larger architectures, one rule of each family that
# shares a train step and a feedback kind stands for the others: sgd, sgdm and adam differ there only in their
# optimizer, np_wn adds to np a weight normalisation the conv net already runs, and dtp and sdtp are both
# refused (they train only the MLP and the conv net).
EVERY_RULE_ARCHS = ("mlp", "convnet")


def _rules_to_run(arch: str) -> list[str]:
    if arch in EVERY_RULE_ARCHS:
        return sorted(RULES)
    families: dict[tuple, str] = {}
    for name in sorted(RULES):
        rule_class = get_rule(name)
        families.setdefault((rule_class.make_train_step, rule_class.feedback), name)
    return sorted(families.values())


def test_each_rule_family_is_represented_on_the_larger_architectures():
    represented = _rules_to_run("alexnet")
    assert {"fa", "ia", "ss"} <= set(represented)
    assert len({name for name in represented if get_rule(name).feedback is None}) == 3  # backprop, np, tp


@pytest.mark.parametrize("arch", ARCH_CASES)
def test_every_rule_trains_a_step_and_records_on_every_architecture_or_refuses_clearly(arch):
    input_shape, model_spec = TINY[arch]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(8, *input_shape)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, size=8).astype(np.int32))
    recorded_feedback_kinds = set()
    for name in _rules_to_run(arch):
        rule_class = get_rule(name)
        if rule_class.unsupported_reason(arch):
            with pytest.raises(ValueError, match=f"rule '{name}' cannot train architecture '{arch}'"):
                RunSpec(model=model_spec, rule=RuleSpec(name=name))
            continue
        rule = rule_class({}, seed=0)
        model = build_network(model_spec, input_shape, 10, rule.feedback, seed=0)
        before = [v.numpy().copy() for v in model.trainable_variables]
        kernels_before = [layer.kernel.numpy() for layer in model.measured_layers]
        step = rule.make_train_step(model, rule.optimizer_for(model))  # as the trainer builds it
        loss = float(step(x, y))
        assert np.isfinite(loss), (name, arch)
        changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
        assert changed > 0, (name, arch)
        # Each layer's reader, as the trainer records update reach through it, takes the layer's units.
        readers = model.measured_readers()
        for layer, reader in enumerate(readers):
            if reader is not None:
                units = model.measured_layers[layer].kernel.shape[-1]
                assert read_gram(model.measured_layers[reader].kernel.numpy(), units, "channels_last") is not None, (name, arch)
        if arch.startswith("resnet"):  # only a block's first conv is read alone, by the block's second
            assert sum(reader is not None for reader in readers) == len(model.blocks), (name, arch)
        reach = checkpoint_reach(kernels_before, [layer.kernel.numpy() for layer in model.measured_layers], readers, "channels_last")
        assert reach.shape == (len(readers),) and np.isnan(reach[[r is None for r in readers]]).all(), (name, arch)
        # The recorder's graph depends only on the layers' feedback kind; on the ResNets, whose traces take
        # seconds, one recording per kind covers every rule.
        if arch.startswith("resnet") and rule.feedback in recorded_feedback_kinds:
            continue
        recorded_feedback_kinds.add(rule.feedback)
        values = Recorder(model, x.numpy()).record()
        assert values.shape == (len(model.measured_layers), len(OBSERVABLES)), (name, arch)
        assert np.isfinite(values[:, OBSERVABLES.index("weight_raw_norm")]).all(), (name, arch)


def test_the_convnets_layers_are_set_by_conv_filters_and_strides_and_its_default_keeps_its_run_ids():
    default = RunSpec(rule=RuleSpec(name="fa"), model=ModelSpec(arch="convnet"), task={"name": "digits", "options": {"as_images": True}})
    spelled = default.model_copy(update={"model": ModelSpec(arch="convnet", conv_filters=None)})
    assert spelled.run_id == default.run_id
    assert not {"conv_filters", "conv_strides"} & set(default.model_dump()["model"])
    two_layers = ModelSpec(arch="convnet", conv_filters=(6, 8), conv_strides=(1, 2))
    assert default.model_copy(update={"model": two_layers}).run_id != default.run_id
    # The layers built: a stride-1 layer keeps the 8x8 image's size, a stride-2 one halves it.
    model = build_network(two_layers, (8, 8, 1), 10, "fixed", 0)
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32))
    _, _, outputs = model.forward_with_activity(x)
    assert [tuple(o.shape) for o in outputs] == [(4, 8, 8, 6), (4, 4, 4, 8), (4, 10)]
    default_model = build_network(ModelSpec(arch="convnet"), (8, 8, 1), 10, None, 0)
    assert [layer.kernel.shape[-1] for layer in default_model.measured_layers] == [32, 64, 64, 10]
    assert [layer.strides for layer in default_model.convs] == [2, 2, 2]
    # DTP, whose inverses follow each layer's stride, trains a step on it too.
    rule = get_rule("dtp")({}, seed=0)
    model = build_network(two_layers, (8, 8, 1), 10, rule.feedback, 0)
    step = rule.make_train_step(model, rule.optimizer_for(model))
    assert np.isfinite(float(step(x, tf.constant([0, 1, 2, 3], dtype=tf.int32))))
    for bad, message in ((dict(arch="mlp", conv_filters=(4,)), "architecture 'mlp' has none"),
                         (dict(arch="convnet", conv_strides=(2, 2, 2)), "needs conv_filters of as many conv layers: 0 filters"),
                         (dict(arch="convnet", conv_filters=(4, 4, 4), conv_strides=(1, 2)), "3 filters, 2 strides"),
                         (dict(arch="convnet", conv_filters=(4, 0)), "non-empty lists of positive integers"),
                         (dict(arch="convnet", conv_filters=()), "non-empty lists of positive integers")):
        with pytest.raises(ValueError, match=message):
            ModelSpec(**bad)
