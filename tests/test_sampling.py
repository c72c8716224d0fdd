"""Sampled sweeps (``sample:``), ``model.init_scale``, and strict sweep values (empty axes, booleans)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lrid.config import ModelSpec, RuleSpec, RunSpec, load_sweep
from lrid.errors import LridError
from lrid.generate.estimate import describe_spread

ROOT = Path(__file__).resolve().parents[1]

ZOO_LIKE = """
name: sampled
task: {name: digits}
model: {arch: mlp, hidden: [64], activation: tanh}
train: {epochs: 3}
sample:
  n: %(n)d
  seed: %(seed)d
  space:
    train.batch_size: {choice: [16, 32, 64, 128, 256]}
    train.epochs: {int_loguniform: [3, 40]}
    model.init_scale: {loguniform: [0.5, 2.0]}
    model.activation: {choice: [tanh, relu]}
    network:
      choice:
        - {model.arch: mlp, model.depth: {int_uniform: [1, 4]}, model.hidden_width: {int_loguniform: [32, 256]}}
        - {model.arch: convnet, task.options.as_images: true}
      weights: %(weights)s
rules:
%(rules)s
"""

RULES = {
    "sgdm": "  sgdm: {lr: {loguniform: [0.003, 0.3]}}",
    "fa": "  fa:\n    optimizer: {choice: [sgd, sgdm, adam]}\n    lr: {given: optimizer, cases: {sgd: {loguniform: [0.03, 1.0]}, "
          "sgdm: {loguniform: [0.005, 0.3]}, adam: {uniform: [0.0003, 0.02]}}}",
    "adam": "  adam: {lr: {loguniform: [0.0003, 0.02]}}",
}


def write_sweep(tmp_path: Path, rules=("sgdm", "fa"), n: int = 40, seed: int = 0, extra: str = "",
                weights=(3, 1)) -> Path:
    path = tmp_path / f"sweep_{'_'.join(rules)}_{n}_{seed}.yaml"
    path.write_text(ZOO_LIKE % {"n": n, "seed": seed, "rules": "\n".join(RULES[r] for r in rules),
                                "weights": list(weights)} + extra)
    return path


def run_ids_by_rule(path: Path) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for run in load_sweep(path).expand():
        ids.setdefault(run.rule.name, []).append(run.run_id)
    return ids


def test_same_file_gives_the_same_runs_and_another_seed_other_runs(tmp_path):
    path = write_sweep(tmp_path)
    first, second = load_sweep(path).expand(), load_sweep(path).expand()
    assert [r.run_id for r in first] == [r.run_id for r in second]
    assert len(first) == 80  # n per rule, two rules
    other = load_sweep(write_sweep(tmp_path, seed=1)).expand()
    assert not {r.run_id for r in first} & {r.run_id for r in other}


def test_draws_are_the_same_in_another_python_process(tmp_path):
    """Streams come from SHA-256, not Python's salted hash(): a fresh interpreter draws the same runs."""
    path = write_sweep(tmp_path, n=10)
    script = f"from lrid.config import load_sweep; print(','.join(r.run_id for r in load_sweep({str(path)!r}).expand()))"
    outputs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": salt}).stdout.strip()
        for salt in ("1", "2")
    }
    assert outputs == {",".join(r.run_id for r in load_sweep(path).expand())}


def test_adding_a_rule_leaves_the_other_rules_draws_unchanged(tmp_path):
    two = run_ids_by_rule(write_sweep(tmp_path, rules=("sgdm", "fa")))
    three = run_ids_by_rule(write_sweep(tmp_path, rules=("adam", "sgdm", "fa")))
    assert three["sgdm"] == two["sgdm"] and three["fa"] == two["fa"]
    assert len(three["adam"]) == 40  # n is per rule: the rules stay balanced


def test_ranges_and_pairings_are_honoured(tmp_path):
    runs = load_sweep(write_sweep(tmp_path, n=300)).expand()
    assert {r.train.batch_size for r in runs} == {16, 32, 64, 128, 256}
    epochs = [r.train.epochs for r in runs]
    assert min(epochs) == 3 and max(epochs) == 40  # both ends of an int range are included
    assert all(0.5 <= r.model.init_scale <= 2.0 for r in runs)
    assert {r.model.activation for r in runs} == {"tanh", "relu"}
    sgdm_lr = [r.rule.hparams["lr"] for r in runs if r.rule.name == "sgdm"]
    assert all(0.003 <= lr <= 0.3 for lr in sgdm_lr)
    # log-uniform: the median sits near the geometric mean of the ends (0.03), far below the midpoint
    assert 0.015 < sorted(sgdm_lr)[len(sgdm_lr) // 2] < 0.06
    ranges = {"sgd": (0.03, 1.0), "sgdm": (0.005, 0.3), "adam": (0.0003, 0.02)}
    fa = [r.rule.hparams for r in runs if r.rule.name == "fa"]
    assert {h["optimizer"] for h in fa} == set(ranges)
    assert all(ranges[h["optimizer"]][0] <= h["lr"] <= ranges[h["optimizer"]][1] for h in fa)
    for run in runs:  # a group is drawn as a whole: the conv net always gets image inputs
        if run.model.arch == "convnet":
            assert run.task.options == {"as_images": True}
        else:
            assert run.task.options == {} and 1 <= len(run.model.hidden) <= 4
            assert len(set(run.model.hidden)) == 1 and 32 <= run.model.hidden[0] <= 256
    share = sum(r.model.arch == "mlp" for r in runs) / len(runs)
    assert 0.65 < share < 0.85  # weights [3, 1]


def test_run_ids_hash_the_sampled_values_like_any_spec(tmp_path):
    run = load_sweep(write_sweep(tmp_path, n=3)).expand()[0]
    rebuilt = RunSpec(**run.model_dump())
    assert rebuilt.run_id == run.run_id


def test_sample_combines_with_a_grid(tmp_path):
    path = write_sweep(tmp_path, n=5, extra="grid:\n  model_seed: [0, 1]\n  data_seed: [0, 1, 2]\n")
    runs = load_sweep(path).expand()
    assert len(runs) == 2 * 5 * 6
    assert {(r.train.model_seed, r.train.data_seed) for r in runs} == {(m, d) for m in (0, 1) for d in (0, 1, 2)}


def test_spread_summarises_ranges_and_counts_choices(tmp_path):
    spread = dict(describe_spread(load_sweep(write_sweep(tmp_path, n=50)).sampled_values()))
    assert spread["train.epochs"].startswith("min 3, median") and spread["train.epochs"].endswith("max 40 (100 draws)")
    counts = dict(item.split(": ") for item in spread["model.activation"].split(", "))
    assert sum(map(int, counts.values())) == 100 and set(counts) == {"relu", "tanh"}
    assert "fa.lr [optimizer=adam]" in spread and spread["sgdm.lr"].startswith("min ")


BAD_SAMPLES = [
    ("rules: {sgdm: {lr: {normal: [0, 1]}}}\nsample: {n: 2}", "lr: not a distribution (unknown: 'normal')"),
    ("rules: {sgdm: {lr: {uniform: [0.3, 0.1]}}}\nsample: {n: 2}", "lr: uniform [0.3, 0.1]: lo is above hi"),
    ("rules: {sgdm: {lr: {loguniform: [0, 0.1]}}}\nsample: {n: 2}", "lr: loguniform [0, 0.1]: lo must be > 0"),
    ("rules: {sgdm: {lr: {choice: []}}}\nsample: {n: 2}", "lr: choice takes a non-empty list"),
    ("rules: {sgdm: {}}\nsample: {n: 2, space: {train.batchsize: {choice: [16]}}}", "train.batchsize: unknown key"),
    ("rules: {sgdm: {}}\nsample: {n: 2, space: {model.depth: {int_uniform: [0, 3]}}}", "model.depth: 0 is not a positive"),
    ("rules: {sgdm: {}}\nsample: {n: 2, space: {train.batch_size: {int_uniform: [0, 8]}}}",
     "train.batch_size: Input should be greater than 0"),
    ("rules: {sgdm: {}}\nsample: {n: 2, space: {train.epochs: [3, 5]}}", "train.epochs: a list is ambiguous"),
    ("rules: {sgdm: {lr: {loguniform: [0.01, 0.1]}}}", "lr is a distribution, which needs a `sample"),
    ("rules: {fa: {optimizer: {choice: [sgd, adam]}, lr: {given: optimizer, cases: {sgd: 0.1}}}}\nsample: {n: 2}",
     "lr: no case for optimizer = adam"),
    ("rules: {fa: {optimizer: {choice: [sgd, rmsprop]}}}\nsample: {n: 2}", "rule 'fa': optimizer: Input should be"),
    ("rules: {sgdm: {}}\nsample: {n: 2, space: {train.batch_size: {choice: [16]}}}\ngrid: {batch_size: [8]}",
     "grid key 'batch_size' is also drawn"),
]


@pytest.mark.parametrize(("body", "message"), BAD_SAMPLES)
def test_bad_distributions_are_one_line_errors_naming_the_key(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\n" + body + "\n")
    with pytest.raises(LridError) as caught:
        load_sweep(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("body", "message"), [
    ("rules: {sgdm: {lr: []}}", "rule 'sgdm': lr is an empty list"),
    ("rules: {sgdm: {lr: 0.1}}\ntrain: {epochs: true}", "train: epochs: True is a boolean"),
    ("rules: {sgdm: {lr: 0.1}}\nmodel: {hidden: [64, true]}", "model: hidden: [64, True] holds a boolean"),
    ("rules: {sgdm: {lr: true}}", "rule 'sgdm': lr: True is a boolean"),
    ("rules: {sgdm: {lr: 0.1}}\nsample: {n: true}", "sample: n: True is a boolean"),
])
def test_empty_axes_and_booleans_for_numbers_are_errors(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\n" + body + "\n")
    with pytest.raises(LridError) as caught:
        load_sweep(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_every_shipped_sweep_still_loads():
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        assert load_sweep(path).expand(), path


def test_init_scale_at_its_default_keeps_existing_run_ids():
    """The shipped sample store's runs were made before init_scale: the sweep must still name them."""
    shipped = {p.stem for p in (ROOT / "data" / "sample_store" / "runs").glob("*.json")}
    assert {run.run_id for run in load_sweep(ROOT / "pipelines" / "sample.yaml").expand()} == shipped
    default = RunSpec(rule=RuleSpec(name="sgdm"))
    assert "init_scale" not in default.model_dump()["model"]
    scaled = RunSpec(rule=RuleSpec(name="sgdm"), model=ModelSpec(init_scale=2.0))
    assert scaled.model_dump()["model"]["init_scale"] == 2.0 and scaled.run_id != default.run_id


def test_init_scale_is_refused_where_the_architecture_ignores_it(tmp_path):
    path = tmp_path / "knet.yaml"
    path.write_text(textwrap.dedent("""\
        name: knet
        task: {name: cifar10}
        model: {arch: knet, init_scale: 2.0}
        rules: {sgdm: {lr: 0.1}}
    """))
    with pytest.raises(LridError, match="architecture 'knet' has no init_scale"):
        load_sweep(path)


@pytest.mark.parametrize(("arch", "input_shape"), [("mlp", (64,)), ("convnet", (8, 8, 1))])
def test_init_scale_multiplies_the_initial_weights_std(arch, input_shape):
    import numpy as np

    from lrid.models import build_network

    def kernels(scale):
        spec = ModelSpec(arch=arch, hidden=(32, 16), init_scale=scale)
        model = build_network(spec, input_shape, 10, feedback="fixed", seed=3)
        return [(layer.kernel.numpy(), layer.feedback_kernel.numpy()) for layer in model.measured_layers]

    for (base, base_b), (scaled, scaled_b) in zip(kernels(1.0), kernels(2.5)):
        assert math.isclose(scaled.std() / base.std(), 2.5, rel_tol=1e-5)
        np.testing.assert_allclose(scaled, 2.5 * base, atol=1e-6)
        np.testing.assert_array_equal(scaled_b, base_b)  # feedback kernels keep the scheme's own scale


@pytest.mark.parametrize(("arch", "input_shape"), [("mlp", (64,)), ("convnet", (8, 8, 1))])
def test_init_scheme_and_distribution_set_the_initial_weights(arch, input_shape):
    """He doubles LeCun's variance, Glorot's divides by the mean fan; the distribution sets the kurtosis
    (uniform 1.8, Gaussian 3, cut at 2 std in between); feedback kernels and sign symmetry follow the scheme."""
    import numpy as np

    from lrid.models import build_network

    def first_layer(**init):
        model = build_network(ModelSpec(arch=arch, hidden=(400,), **init), input_shape, 10, feedback="fixed", seed=5)
        layer = model.measured_layers[0 if arch == "mlp" else 1]
        kernel = layer.kernel.numpy()
        receptive_field = int(np.prod(kernel.shape[:-2]))  # 1 for a dense kernel
        return layer, kernel, receptive_field * kernel.shape[-2], receptive_field * kernel.shape[-1]

    def kurtosis(values):
        centred = values.ravel() - values.mean()
        return np.mean(centred**4) / np.mean(centred**2) ** 2

    for scheme, expected_variance in [("glorot", lambda i, o: 2 / (i + o)), ("he", lambda i, o: 2 / i),
                                      ("lecun", lambda i, o: 1 / i)]:
        for distribution, expected_kurtosis in [("uniform", 1.8), ("untruncated_normal", 3.0),
                                                ("truncated_normal", 2.4)]:
            layer, kernel, fan_in, fan_out = first_layer(init=scheme, init_distribution=distribution)
            variance = expected_variance(fan_in, fan_out)
            assert math.isclose(kernel.var(), variance, rel_tol=0.08), (scheme, distribution)
            assert math.isclose(layer.feedback_kernel.numpy().var(), variance, rel_tol=0.08)
            assert math.isclose(layer.feedback_scale**2, variance, rel_tol=1e-6)
            assert abs(kurtosis(kernel) - expected_kurtosis) < 0.25, (scheme, distribution, kurtosis(kernel))
    default, _, _, _ = first_layer()
    glorot_uniform, _, _, _ = first_layer(init="glorot", init_distribution="uniform")
    np.testing.assert_array_equal(default.kernel.numpy(), glorot_uniform.kernel.numpy())


def test_initialisation_at_its_defaults_keeps_run_ids_and_is_refused_where_ignored(tmp_path):
    default = RunSpec(rule=RuleSpec(name="fa"))
    spelled_out = RunSpec(rule=RuleSpec(name="fa"), model=ModelSpec(init="glorot", init_distribution="uniform"))
    assert spelled_out.run_id == default.run_id
    assert not {"init", "init_distribution"} & set(default.model_dump()["model"])
    he = RunSpec(rule=RuleSpec(name="fa"), model=ModelSpec(init="he"))
    assert he.model_dump()["model"]["init"] == "he" and he.run_id != default.run_id
    path = tmp_path / "knet.yaml"
    path.write_text(textwrap.dedent("""\
        name: knet
        task: {name: cifar10}
        model: {arch: knet, init_distribution: untruncated_normal}
        rules: {sgdm: {lr: 0.1}}
    """))
    with pytest.raises(LridError, match="architecture 'knet' has no init_distribution"):
        load_sweep(path)
    path.write_text("name: x\nmodel: {init: xavier}\nrules: {sgdm: {lr: 0.1}}\n")
    with pytest.raises(LridError, match="init"):
        load_sweep(path)


def test_digits_standardize_centres_and_scales_each_pixel_on_the_training_images():
    import numpy as np

    from lrid.tasks import get_task

    plain, standard = get_task("digits"), get_task("digits", standardize=True)
    varying = plain.x_train.std(axis=0) > 0
    np.testing.assert_allclose(standard.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(standard.x_train.std(axis=0)[varying], 1, rtol=1e-4)
    expected = (plain.x_test - plain.x_train.mean(axis=0)) / np.where(varying, plain.x_train.std(axis=0), 1)
    np.testing.assert_allclose(standard.x_test, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(standard.y_train, plain.y_train)


def test_estimate_times_one_run_per_family_and_scales_the_rest(tmp_path, monkeypatch):
    """With step times linear in work (as the estimate assumes), a few timings predict every run exactly."""
    from lrid.generate import estimate

    def macs(run):
        widths = [64, *run.model.hidden, 10]
        return sum(a * b for a, b in zip(widths, widths[1:]))

    timed = []

    def fake_timing(run, batch, timing_seconds, record=True):
        timed.append(run.run_id)
        return estimate.ConfigurationTiming(1.0, 1e-3 + 1e-9 * batch * macs(run), 1e-2 + 1e-8 * macs(run), 0.5)

    monkeypatch.setattr(estimate, "time_configuration", fake_timing)
    sweep = load_sweep(write_sweep(tmp_path, rules=("sgdm", "adam"), n=30, weights=(1, 0)))  # MLPs only
    runs = sweep.expand()
    rows = estimate.estimate_sweep(sweep, max_timing_batch=1024)
    assert len(timed) == 3  # adam's least and most work (the curve), one sgdm representative; not 60 runs
    expected_train = sum(r.train.epochs * (1347 // r.train.batch_size) * (1e-3 + 1e-9 * r.train.batch_size * macs(r))
                         for r in runs)
    expected_record = sum(r.observe.points * (1e-2 + 1e-8 * macs(r)) for r in runs)
    assert math.isclose(sum(row.train_s for row in rows), expected_train, rel_tol=1e-9)
    assert math.isclose(sum(row.record_s for row in rows), expected_record, rel_tol=1e-9)
    assert sum(row.runs for row in rows) == len(runs) == 60
    assert sum(row.configurations for row in rows) == 60  # every drawn configuration compiles once


def test_dry_run_of_a_sampled_sweep_shows_the_spread_and_writes_nothing(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(textwrap.dedent("""\
        name: small
        task: {name: digits}
        model: {arch: mlp, hidden: [32]}
        train: {epochs: 1}
        observe: {points: 2, probe_size: 32}
        sample:
          n: 4
          space:
            train.batch_size: {choice: [32, 64]}
            model.hidden_width: {int_loguniform: [16, 64]}
        rules:
          sgd: {lr: {loguniform: [0.01, 0.1]}}
    """))
    store = tmp_path / "store"
    lrid = Path(sys.executable).with_name("lrid")
    result = subprocess.run([lrid, "generate", path, "--store", store, "--dry-run"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "Sampled values over the 4 configurations drawn per rule" in result.stdout
    assert "model.hidden_width" in result.stdout and "sgd.lr" in result.stdout and "min " in result.stdout
    assert "runs per rule: sgd 4" in result.stdout and "nothing was written" in result.stdout
    assert not store.exists() or not any(store.iterdir())


@pytest.mark.parametrize("init", ["glorot", "he"])
def test_np_wn_holds_the_columns_at_the_scaled_initial_std(init):
    """Weight-normalised NP keeps each unit's weights at their initial scale: the scheme's, times init_scale."""
    import numpy as np

    from lrid.models import build_network
    from lrid.rules import get_rule
    from lrid.tasks import get_task

    rule = get_rule("np_wn")({"optimizer": "sgd", "lr": 0.5, "sigma": 1e-2}, seed=4)
    model = build_network(ModelSpec(hidden=(32,), init_scale=2.0, init=init), (64,), 10, rule.feedback, seed=0)
    task = get_task("digits")
    rule.make_train_step(model, rule.make_optimizer())(task.x_train[:32], task.y_train[:32])
    for layer in model.measured_layers:
        fan_in, fan_out = layer.kernel.shape
        expected = (2 / (fan_in + fan_out)) ** 0.5 if init == "glorot" else (2 / fan_in) ** 0.5
        rms = np.sqrt(np.mean(layer.kernel.numpy().astype(np.float64) ** 2, axis=0))
        np.testing.assert_allclose(rms, 2.0 * expected, rtol=0, atol=1e-6)


def test_dry_run_of_an_imagenet_grid_times_few_small_steps(tmp_path, monkeypatch):
    """An ImageNet grid at 224 px is estimated from small steps of the cheapest architecture only: one timing
    per rule, at the capped batch and a downsampled image, however many architectures and batch sizes."""
    from lrid.generate import estimate

    path = tmp_path / "imagenet.yaml"
    path.write_text(textwrap.dedent("""\
        name: imagenet-small
        task: {name: imagenet, image_size: 224}
        model: {arch: resnet18}
        train: {epochs: 90}
        observe: {points: 21, probe_size: 16}
        rules:
          sgdm: {lr: 0.1}
          fa: {lr: 0.1}
        grid:
          arch: [alexnet, resnet18]
          batch_size: [128, 256]
    """))
    compiled, inputs = [], []
    real_step = estimate.compiled_step

    def counting_step(rule, model):
        step = real_step(rule, model)
        compiled.append(type(rule).name)

        def run_step(x, y):
            inputs.append(tuple(x.shape))
            return step(x, y)

        return run_step

    monkeypatch.setattr(estimate, "compiled_step", counting_step)
    rows = estimate.estimate_sweep(load_sweep(path), timing_seconds=0.05, max_timing_batch=8)
    assert sorted(compiled) == ["fa", "sgdm"]  # one compiled step per rule, none per architecture or batch
    assert inputs and all(shape[0] <= 8 and shape[1:3] == (32, 32) for shape in inputs)
    assert len(inputs) <= 2 * (3 + 200)  # a first call, two warm-ups, at most 200 timed steps per compile
    by_key = {(row.arch, row.rule, row.batch_size): row for row in rows}
    assert len(by_key) == 8 and sum(row.runs for row in rows) == 8
    assert all(row.how.startswith("timed") for row in rows if row.arch == "alexnet")
    assert all(row.how.startswith("scaled by multiply-adds from alexnet") for row in rows if row.arch == "resnet18")
    assert "sgdm" in by_key[("resnet18", "sgdm", 128)].how  # the rule's cost ratio is said
    for arch in ("alexnet", "resnet18"):  # a 224 px step costs far more than the timed 32 px ones
        assert by_key[(arch, "fa", 256)].step_s == pytest.approx(2 * by_key[(arch, "fa", 128)].step_s)
    assert by_key[("resnet18", "fa", 128)].step_s > by_key[("alexnet", "fa", 128)].step_s


def test_a_sampled_space_draws_the_convnets_layers_together_and_a_mismatch_is_one_line(tmp_path):
    path = tmp_path / "convs.yaml"
    sweep = textwrap.dedent("""\
        name: convs
        task: {name: digits, options: {as_images: true}}
        model: {arch: convnet}
        sample:
          n: 12
          seed: 0
          space:
            layers:
              choice:
                - {model.conv_filters: {choice: [[8, 16]]}, model.conv_strides: {choice: [[1, 2]]}}
                - {model.conv_filters: {choice: [[8, 8, 8]]}, model.conv_strides: {choice: [STRIDES]}}
        rules: {sgdm: {lr: 0.01}}
    """)
    path.write_text(sweep.replace("STRIDES", "[1, 2, 2]"))
    drawn = {(spec.model.conv_filters, spec.model.conv_strides) for spec in load_sweep(path).expand()}
    assert drawn == {((8, 16), (1, 2)), ((8, 8, 8), (1, 2, 2))}
    path.write_text(sweep.replace("STRIDES", "[1, 2]"))  # two strides for three conv layers
    with pytest.raises(LridError, match=r"conv_strides needs conv_filters of as many conv layers: 3 filters, 2 strides") as error:
        load_sweep(path).expand()
    assert "\n" not in str(error.value)
