"""Sweep validation: clear one-line errors for bad input, stable run ids, and the demo's grid."""

import pytest

from lrid.config import RuleSpec, RunSpec, TrainSpec, load_sweep
from lrid.errors import LridError

from conftest import REPO


def write(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_demo_sweep_has_four_rules_with_at_least_24_runs_each():
    runs = load_sweep(REPO / "pipelines" / "demo.yaml").expand()
    per_rule = {}
    for run in runs:
        per_rule[run.rule.name] = per_rule.get(run.rule.name, 0) + 1
    assert set(per_rule) == {"sgdm", "adam", "fa", "ia"}
    assert min(per_rule.values()) >= 24
    assert len({run.run_id for run in runs}) == len(runs)
    assert {run.train.batch_size for run in runs} == {32, 64}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\nrules: {sgdm: {}}\ntrain: {epoch: 3}\n", "train.epoch: unknown key"),
        ("name: x\nrules: {sgdm: {}}\nbogus: 1\n", "bogus: unknown key"),
        ("name: x\nrules: {backprop: {}}\n", "unknown rule 'backprop'"),
        ("name: x\nrules: {fa: {lrr: 0.1}}\n", "rule 'fa': lrr: unknown key"),
        ("name: x\nrules: {adam: {lr: -1}}\n", "rule 'adam': lr: Input should be greater than 0"),
        ("name: x\nrules: {sgdm: {}}\ngrid: {seed: [1, 2]}\n", "unknown grid key 'seed'"),
        ("name: x\nrules: {}\n", "at least one rule"),
        ("name: x\nrules: {sgdm: {}}\ntask: {name: mnist}\n", "unknown task 'mnist'"),
        ("name: [unclosed\n", "not valid YAML at line"),
        ("- a list\n", "must be a YAML mapping"),
        ("name: x\nrules: {sgdm: {}}\nextra: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_bad_sweeps_raise_one_line_errors_naming_the_problem(tmp_path, text, expected):
    with pytest.raises(LridError) as caught:
        load_sweep(write(tmp_path, text))
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert str(tmp_path / "sweep.yaml") in message


def test_missing_sweep_file_is_a_clear_error(tmp_path):
    with pytest.raises(LridError, match="does not exist"):
        load_sweep(tmp_path / "nope.yaml")


def test_run_id_is_stable_normalised_and_sensitive_to_every_setting():
    explicit = RunSpec(rule=RuleSpec(name="fa", hparams={"lr": 0.01, "optimizer": "sgdm"}))
    implicit = RunSpec(rule=RuleSpec(name="fa"))
    assert explicit.run_id == implicit.run_id  # defaults are filled in before hashing
    assert RunSpec(rule=RuleSpec(name="fa", hparams={"lr": 0.02})).run_id != implicit.run_id
    assert RunSpec(rule=RuleSpec(name="fa"), train=TrainSpec(data_seed=1)).run_id != implicit.run_id
    assert len(implicit.run_id) == 16


def test_grid_and_rule_lists_expand_to_their_cartesian_product(tmp_path):
    sweep = load_sweep(
        write(tmp_path, "name: x\nrules: {sgdm: {lr: [0.1, 0.2], momentum: [0.5, 0.9]}, adam: {}}\n"
              "grid: {batch_size: [16, 32, 64], hidden: [[8], [8, 8]]}\n")
    )
    runs = sweep.expand()
    assert len(runs) == (4 + 1) * 3 * 2
    assert {run.model.hidden for run in runs} == {(8,), (8, 8)}
    assert {(run.rule.hparams["lr"], run.rule.hparams["momentum"]) for run in runs if run.rule.name == "sgdm"} == {
        (0.1, 0.5), (0.1, 0.9), (0.2, 0.5), (0.2, 0.9)
    }


def test_a_convolutional_architecture_on_flat_inputs_is_refused_before_training(tmp_path):
    with pytest.raises(LridError, match="architecture 'knet' needs image inputs, but task 'digits'"):
        load_sweep(write(tmp_path, "name: x\nmodel: {arch: knet}\nrules: {sgdm: {}}\n"))
    with pytest.raises(LridError, match="rule 'dtp' cannot train architecture 'knet'"):
        load_sweep(write(tmp_path, "name: x\ntask: {name: cifar10}\nmodel: {arch: knet}\nrules: {dtp: {}}\n"))


@pytest.mark.parametrize("name, runs, archs", [
    ("cifar10", 192, {"knet", "knetlrn", "knetc4", "knetc4lrn"}),
    ("imagenet", 288, {"alexnet", "alexnetlrn", "resnet18", "resnet18v2", "resnet34", "resnet34v2"}),
])
def test_paper_sweeps_express_the_grid(name, runs, archs):
    expanded = load_sweep(REPO / "pipelines" / f"{name}.yaml").expand()
    assert len(expanded) == runs
    assert {run.model.arch for run in expanded} == archs
    assert {run.rule.name for run in expanded} == {"sgdm", "adam", "fa", "ia"}
    assert {run.train.batch_size for run in expanded} == {128, 256, 512}
    assert {(run.train.model_seed, run.train.data_seed) for run in expanded} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert all(run.train.lr_decay_epochs for run in expanded)
