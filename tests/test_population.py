"""Population training: members equal solo runs, diverged members are masked, sweeps group and resume."""

import json
import os

import numpy as np
import pytest

from lrid.config import RunSpec, load_sweep
from lrid.errors import LridError
from lrid.generate.population import POPULATION_RULES, group_populations, population_key, supports_population
from lrid.observables import OBSERVABLES

# The tolerance members reach against solo runs over a few dozen steps: batched kernels sum in another
# order, so values agree to float32 rounding grown by training (skew, a difference of close numbers, is
# the loosest), not bit for bit.
RTOL, ATOL = 1e-5, 1e-6
# Node perturbation's estimate divides the error change of a noisy pass by 2 sigma^2: a last-bit
# difference of the forward pass is amplified about 1 / sigma^2 times, so its members agree less closely.
PERTURBATION_RTOL, PERTURBATION_ATOL = 1e-3, 2e-4

HPARAMS = {
    "sgd": [{"lr": 0.05}, {"lr": 0.02, "weight_decay": 1e-3}],
    "sgdm": [{"lr": 0.05}, {"lr": 0.02, "momentum": 0.5, "weight_decay": 1e-3}],
    "adam": [{"lr": 3e-3}, {"lr": 1e-3, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "weight_decay": 1e-3}],
    "fa": [{"lr": 0.05}, {"lr": 0.02, "momentum": 0.5}],
    "ss": [{"lr": 0.05}, {"lr": 0.02, "weight_decay": 1e-3}],
    "ia": [{"lr": 0.05}, {"lr": 0.02, "alpha": 0.1, "beta": 0.02, "gamma": 0.01, "weight_decay": 1e-3}],
    "np": [{"lr": 3e-3}, {"lr": 1e-3, "sigma": 1e-2, "weight_decay": 1e-3}],
    "np_wn": [{"lr": 3e-3}, {"lr": 1e-3, "sigma": 1e-2}],
}


def _spec(rule, hparams, seed, epochs=1, activation="tanh", hidden=(16, 16), **observe):
    return RunSpec.model_validate({
        "model": {"hidden": list(hidden), "activation": activation},
        "train": {"epochs": epochs, "batch_size": 64, "model_seed": seed, "data_seed": seed % 2},
        "rule": {"name": rule, "hparams": hparams},
        "observe": {"points": 4, "probe_size": 32, "probe_seed": seed, **observe},
    })


def _assert_member_equals_solo(member, solo, rtol=RTOL, atol=ATOL):
    assert member.manifest["run_id"] == solo.manifest["run_id"]
    assert set(member.manifest) - {"population"} == set(solo.manifest)
    for key in ("status", "diverged_at_step", "total_steps", "steps_run", "recorded_steps"):
        assert member.manifest[key] == solo.manifest[key], key
    metric = next(key for key in solo.manifest if key.startswith("final_test_"))
    if solo.manifest[metric] is None:  # diverged
        assert member.manifest[metric] is None
    else:  # accuracy may differ by a test example whose logits tie to rounding
        assert member.manifest[metric] == pytest.approx(solo.manifest[metric], rel=1e-4, abs=0.003)
    np.testing.assert_allclose(np.array(member.manifest["recorded_train_loss"][1:], dtype=float),
                               np.array(solo.manifest["recorded_train_loss"][1:], dtype=float), rtol=rtol)
    for angles in ("update_gradient_angle_deg", "feedback_weight_angle_deg"):
        ours, theirs = member.manifest["health"][angles], solo.manifest["health"][angles]
        assert (ours is None) == (theirs is None), angles
        if ours is not None:
            # Rounded to 3 decimals; an angle between near-equal vectors is acos of ~1, sensitive to rounding.
            np.testing.assert_allclose(np.array(ours, dtype=float), np.array(theirs, dtype=float), atol=0.05 + 1e3 * atol)
    identifiers = ["run_id", "step", "epoch", "layer", "layer_index", "depth_group"]
    assert member.observables[identifiers].equals(solo.observables[identifiers])
    np.testing.assert_allclose(member.observables[list(OBSERVABLES)].to_numpy(),
                               solo.observables[list(OBSERVABLES)].to_numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("rule", POPULATION_RULES)
def test_each_member_records_what_a_solo_run_of_its_spec_records(rule):
    from lrid.generate.population import train_population
    from lrid.generate.trainer import train_run

    specs = [_spec(rule, hparams, seed) for seed, hparams in enumerate(HPARAMS[rule])]
    members = train_population(specs, fall_back=False)
    tolerance = (PERTURBATION_RTOL, PERTURBATION_ATOL) if rule.startswith("np") else (RTOL, ATOL)
    for spec, member in zip(specs, members):
        assert member.manifest["population"]["size"] == len(specs)
        _assert_member_equals_solo(member, train_run(spec), *tolerance)


@pytest.mark.parametrize("rule", ["ss", "np_wn"])
def test_members_initialised_by_another_scheme_match_solo_runs(rule):
    """Sign symmetry's feedback magnitude and weight normalisation's target follow ``model.init``."""
    from lrid.generate.population import train_population
    from lrid.generate.trainer import train_run

    specs = []
    for seed, hparams in enumerate(HPARAMS[rule][:2]):
        spec = _spec(rule, hparams, seed).model_dump()
        spec["model"].update(init="he", init_distribution="untruncated_normal")
        specs.append(RunSpec.model_validate(spec))
    tolerance = (PERTURBATION_RTOL, PERTURBATION_ATOL) if rule.startswith("np") else (RTOL, ATOL)
    for spec, member in zip(specs, train_population(specs, fall_back=False)):
        _assert_member_equals_solo(member, train_run(spec), *tolerance)


@pytest.mark.parametrize(("rule", "activation"), [("fa", "softplus"), ("ia", "elu"), ("sgdm", "gelu")])
def test_members_with_smooth_activations_match_solo_runs(rule, activation):
    """The activations other frameworks' networks often use train the same in a population as solo."""
    from lrid.generate.population import train_population
    from lrid.generate.trainer import train_run

    specs = [_spec(rule, hparams, seed, activation=activation) for seed, hparams in enumerate(HPARAMS[rule][:2])]
    for spec, member in zip(specs, train_population(specs, fall_back=False)):
        assert spec.model.activation == activation
        _assert_member_equals_solo(member, train_run(spec))


@pytest.mark.parametrize(("rule", "lr"), [("adam", 3e-3), ("sgdm", 0.05)])
def test_members_with_their_own_learning_rate_schedules_match_solo_runs(rule, lr):
    """Adam's step size and SGD's learning rate, which the step folds into each member's loss; the two sgdm
    members share a momentum, which the fused momentum update applies."""
    from lrid.generate.population import train_population
    from lrid.generate.trainer import train_run

    specs = [_spec(rule, {"lr": lr}, 0, epochs=2), _spec(rule, {"lr": lr}, 1, epochs=2)]
    specs[1] = RunSpec.model_validate({**specs[1].model_dump(),
                                       "train": {**specs[1].train.model_dump(), "lr_decay_epochs": [1]}})
    for spec, member in zip(specs, train_population(specs, fall_back=False)):
        _assert_member_equals_solo(member, train_run(spec))


def test_populations_differing_only_in_batch_size_and_budget_share_one_trace():
    from lrid.generate.population import _STEPS, train_population

    def population(batch_size, epochs):
        specs = [_spec("sgd", {"lr": lr}, seed, epochs=epochs) for seed, lr in ((0, 0.05), (1, 0.02))]
        return [RunSpec.model_validate({**spec.model_dump(), "train": {**spec.train.model_dump(),
                                                                       "batch_size": batch_size}})
                for spec in specs]

    _STEPS.clear()
    for batch_size, epochs in ((64, 1), (32, 2)):
        results = train_population(population(batch_size, epochs), fall_back=False)
        assert {r.manifest["status"] for r in results} <= {"complete", "collapsed"}
    (step,) = _STEPS.values()
    assert step.train_step.experimental_get_tracing_count() == 1
    assert step.angles.experimental_get_tracing_count() == 1


def test_populations_of_different_rules_share_the_recorders_trace_and_record_their_own_weights():
    from lrid.generate.population import _shared_traces, train_population
    from lrid.generate.trainer import train_run

    def population(rule):
        return [_spec(rule, hparams, seed, hidden=(12, 10)) for seed, hparams in enumerate(HPARAMS[rule])]

    train_population(population("sgdm"), fall_back=False)  # traces the recorder for this shape
    observe, logits, _ = _shared_traces(tuple(_activations("tanh", layers=3)))
    traced = observe.experimental_get_tracing_count(), logits.experimental_get_tracing_count()
    assert min(traced) >= 1  # the populations' recorder and logits are the shared ones
    for rule in ("fa", "ia"):
        specs = population(rule)
        for spec, member in zip(specs, train_population(specs, fall_back=False)):
            _assert_member_equals_solo(member, train_run(spec))
    assert (observe.experimental_get_tracing_count(), logits.experimental_get_tracing_count()) == traced


def _activations(name, layers):
    import keras

    return [keras.activations.get(name)] * (layers - 1) + [keras.activations.get(None)]


def test_members_of_a_regression_task_match_solo_runs():
    from lrid.generate.population import train_population
    from lrid.generate.trainer import train_run

    specs = [RunSpec.model_validate({**_spec("fa", {"lr": lr}, seed).model_dump(),
                                     "task": {"name": "teacher_student", "options": {"n_train": 512, "n_test": 128}}})
             for seed, lr in ((0, 0.01), (1, 0.003))]
    for spec, member in zip(specs, train_population(specs, fall_back=False)):
        assert "final_test_mse" in member.manifest
        _assert_member_equals_solo(member, train_run(spec))


def test_a_diverging_member_is_recorded_at_its_step_and_the_others_go_on():
    from lrid.generate.population import train_population
    from lrid.generate.trainer import train_run

    specs = [_spec("sgdm", {"lr": lr}, seed, epochs=2, activation="relu", hidden=(32, 32))
             for seed, lr in ((0, 0.05), (1, 1e5), (2, 0.02))]
    members = train_population(specs, fall_back=False)
    statuses = [member.manifest["status"] for member in members]
    assert statuses[1] == "diverged" and "diverged" not in (statuses[0], statuses[2]), statuses
    # The diverged member was masked: zero weights that stayed finite while the others trained on.
    from lrid.generate.population import _STEPS

    model = next(step.model for step in _STEPS.values() if step.model.size == 3 and step.model.layer_names)
    assert model.members_finite().numpy().tolist() == [True, True, True]
    assert all(not np.any(variable.numpy()[1]) for variable in model.variables)
    for spec, member in zip(specs, members):
        _assert_member_equals_solo(member, train_run(spec))


def test_a_population_that_fails_as_a_whole_falls_back_to_solo_runs(monkeypatch):
    from lrid.generate import population

    def broken(specs):
        raise RuntimeError("stacked step exploded")

    monkeypatch.setattr(population, "_train_population", broken)
    specs = [_spec("fa", {"lr": 0.05}, seed) for seed in range(2)]
    fell_back = population.train_population(specs)
    assert [r.manifest["status"] for r in fell_back] == ["complete", "complete"]
    assert all("population" not in r.manifest for r in fell_back)
    failed = population.train_population(specs, fall_back=False)
    assert {r.manifest["status"] for r in failed} == {"failed"}
    assert "stacked step exploded" in failed[0].manifest["error"]


@pytest.mark.parametrize(
    ("feedback", "initialisation"),
    [(None, {}), ("fixed", {"init": "he", "init_distribution": "truncated_normal", "init_scale": 0.5}), ("sign", {})],
)
def test_members_start_from_the_weights_a_built_solo_network_starts_from(feedback, initialisation):
    """Populations draw their members' initial weights from the layers' initialisers, without building them."""
    from lrid.config import ModelSpec
    from lrid.models import ARCHITECTURES, build_model
    from lrid.tasks import get_task

    task = get_task("digits")
    spec = ModelSpec(hidden=(24, 12), activation="relu", **initialisation)
    built = build_model(spec, task, feedback, seed=5)
    drawn = ARCHITECTURES["mlp"].builder(spec, task.n_classes, feedback, 5).initial_weights(task.input_shape)
    assert [name for name, *_ in drawn] == [layer.name for layer in built.measured_layers]
    for layer, (_, kernel, bias, feedback_kernel) in zip(built.measured_layers, drawn):
        np.testing.assert_array_equal(kernel, layer.kernel.numpy())
        np.testing.assert_array_equal(bias, layer.bias.numpy())
        assert kernel.dtype == bias.dtype == np.float32
        if layer.feedback_kernel is None:
            assert feedback_kernel is None
        else:
            np.testing.assert_array_equal(feedback_kernel, layer.feedback_kernel.numpy())


@pytest.mark.parametrize("augmented", [False, True])
def test_a_populations_stacked_batches_are_each_members_own(augmented):
    """Every member's batch of a step is the one its data seed gives a solo run, augmented or not."""
    import dataclasses

    from lrid.tasks import get_task

    task = get_task("digits")
    if augmented:  # an augmentation that draws from the seed's generator, as CIFAR-10's crops do
        task = dataclasses.replace(task, augment=lambda batch, rng: batch + rng.normal(size=batch.shape))
    seeds = [3, 1, 3, 0]
    for epoch in (0, 1):
        stacked = list(task.stacked_epoch_batches(epoch, 100, seeds))
        assert len(stacked) == task.steps_per_epoch(100)
        for member, seed in enumerate(seeds):
            for (x, y), (solo_x, solo_y) in zip(stacked, task.epoch_batches(epoch, 100, seed), strict=True):
                assert x.shape == (len(seeds), *solo_x.shape) and x.dtype == solo_x.dtype
                np.testing.assert_array_equal(x[member], solo_x)
                np.testing.assert_array_equal(y[member], solo_y)


def test_populations_group_runs_that_share_a_step_and_keep_the_others_solo():
    fa = [_spec("fa", {"lr": lr}, seed) for seed, lr in enumerate((0.01, 0.02, 0.03))]
    fa_adam = _spec("fa", {"optimizer": "adam", "lr": 1e-3}, 0)
    sgdm = _spec("sgdm", {"lr": 0.01}, 0)
    longer = _spec("fa", {"lr": 0.01}, 5, epochs=2)
    viewed = RunSpec.model_validate({**fa[0].model_dump(), "observe": {"views": [{"units_fraction": 0.5}]}})
    conv = RunSpec.model_validate({"task": {"name": "digits", "options": {"as_images": True}},
                                   "model": {"arch": "convnet"}, "rule": {"name": "fa"}})
    np_run = _spec("dtp", {}, 0)
    assert population_key(fa[0]) == population_key(fa[2]) != population_key(fa_adam)
    assert population_key(fa[0]) not in (population_key(sgdm), population_key(longer))
    for solo in (viewed, conv, np_run):
        assert population_key(solo) is None and supports_population(solo)
    specs = [*fa, fa_adam, sgdm, longer, viewed, conv, np_run]
    units = group_populations(specs, 2)
    assert sorted(len(unit) for unit in units) == [1, 1, 1, 1, 1, 1, 1, 2]
    assert sorted(spec.run_id for unit in units for spec in unit) == sorted(spec.run_id for spec in specs)
    assert [spec.run_id for spec in max(units, key=len)] == [fa[0].run_id, fa[1].run_id]
    assert all(len(unit) == 1 for unit in group_populations(specs, 1))
    # Spread over workers: a lone population of three is halved to keep two workers busy, not more.
    assert [len(unit) for unit in group_populations(fa, 8, spread=2)] == [2, 1]
    assert [len(unit) for unit in group_populations(fa, 8, spread=5)] == [1, 1, 1]
    assert sorted(len(unit) for unit in group_populations(specs, 8, spread=2)) == [1, 1, 1, 1, 1, 1, 3]



def test_populations_that_share_a_step_chain_to_one_worker():
    from lrid.generate.population import population_chains, step_key

    def at_batch(spec, batch_size):
        return RunSpec.model_validate({**spec.model_dump(), "train": {**spec.train.model_dump(),
                                                                      "batch_size": batch_size}})

    fa = [_spec("fa", {"lr": lr}, seed) for seed, lr in enumerate((0.01, 0.02))]
    sgdm = [_spec("sgdm", {"lr": lr}, seed) for seed, lr in enumerate((0.01, 0.02))]
    specs = [*fa, *sgdm, *(at_batch(spec, 32) for spec in fa), *(at_batch(spec, 32) for spec in sgdm)]
    populations = group_populations(specs, 8)
    assert len(populations) == 4
    chains = population_chains(populations, workers=2)
    assert [len(chain) for chain in chains] == [2, 2]  # each rule's two batch sizes, one worker
    for chain in chains:
        assert len({step_key(population[0]) for population in chain}) == 1
    trained = sorted(spec.run_id for chain in chains for population in chain for spec in population)
    assert trained == sorted(spec.run_id for spec in specs)
    # Fewer chains than workers: the longest is split, a population never is.
    assert sorted(len(chain) for chain in population_chains(populations[:2], workers=4)) == [1, 1]
    assert [len(chain) for chain in population_chains(populations, workers=4)] == [1, 1, 1, 1]


SWEEP = """
name: pop
task: {name: digits}
model: {arch: mlp, hidden: [16, 16], activation: tanh}
train: {epochs: 1, batch_size: 64}
observe: {points: 3, probe_size: 32}
rules:
  sgdm: {lr: [0.05, 0.02]}
  ia: {lr: 0.05}
grid:
  model_seed: [0, 1]
"""


@pytest.fixture(scope="module")
def solo_sweep(tmp_path_factory):
    """The sweep's file and its store trained solo."""
    from lrid.generate import generate
    from lrid.generate.executors import SequentialExecutor

    root = tmp_path_factory.mktemp("solo")
    path = root / "pop.yaml"
    path.write_text(SWEEP)
    generate(load_sweep(path), root / "store", executor=SequentialExecutor(), progress=False)
    return path, root / "store"


def _assert_same_observables(store_root, solo_root):
    from lrid.store import Store

    ours, theirs = (Store(root).read_observables(("complete", "collapsed")) for root in (store_root, solo_root))
    ours, theirs = (frame.sort_values(["run_id", "step", "layer_index"]).reset_index(drop=True) for frame in (ours, theirs))
    assert list(ours.columns) == list(theirs.columns) and ours["run_id"].equals(theirs["run_id"])
    np.testing.assert_allclose(ours[list(OBSERVABLES)].to_numpy(), theirs[list(OBSERVABLES)].to_numpy(), rtol=RTOL, atol=ATOL)


def test_a_population_sweep_writes_what_a_solo_sweep_writes_and_resumes(solo_sweep, tmp_path):
    from lrid.generate import generate
    from lrid.generate.executors import SequentialExecutor
    from lrid.store import Store

    path, solo_store = solo_sweep
    sweep = load_sweep(path)
    # A sweep killed after part of its runs: the store holds those, and the population run trains the rest.
    part = sweep.expand()[:2]
    store = Store(tmp_path / "pop")
    generate_part = SequentialExecutor(population=4)
    assert [o["status"] for o in generate_part.map(part, store.location)] == ["complete", "complete"]
    resumed = generate(sweep, store, executor=SequentialExecutor(population=4), progress=False)
    assert resumed.skipped == 2 and resumed.complete + resumed.collapsed == len(sweep.expand()) - 2
    pop_manifests = {m["run_id"]: m for m in store.manifests()}
    solo_manifests = {m["run_id"]: m for m in Store(solo_store).manifests()}
    assert pop_manifests.keys() == solo_manifests.keys()
    sizes = sorted(m["population"]["size"] for m in pop_manifests.values())
    assert sizes == [2, 2, 2, 2, 2, 2]  # two populations of the first call, then sgdm's remaining two, ia's two
    _assert_same_observables(store.location, solo_store)
    assert all("population" not in m for m in solo_manifests.values())


def test_the_process_pool_hands_out_populations(solo_sweep, tmp_path):
    from lrid.generate import generate
    from lrid.generate.executors import make_executor
    from lrid.store import Store

    path, solo_store = solo_sweep
    summary = generate(load_sweep(path), tmp_path / "pool", executor=make_executor("process", workers=2, population=8),
                       progress=False)
    assert summary.failed == 0 and summary.complete + summary.collapsed == 6
    # Two populations (sgdm's four runs, ia's two) keep the two workers busy: neither is split.
    sizes = sorted(m.get("population", {}).get("size", 1) for m in Store(tmp_path / "pool").manifests())
    assert sizes == [2, 2, 4, 4, 4, 4]
    _assert_same_observables(tmp_path / "pool", solo_store)


def test_ray_hands_out_population_chains_as_the_pool_does(solo_sweep, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import ray

    from lrid.generate import executors, generate
    from lrid.generate.executors import make_executor
    from lrid.store import Store

    path, solo_store = solo_sweep
    executor = make_executor("ray", num_cpus=1, population=8)
    planned = []
    plan = executors.worker_tasks
    monkeypatch.setattr(executors, "worker_tasks",
                        lambda units, workers: planned.append(workers) or plan(units, workers))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = generate(load_sweep(path), tmp_path / "ray", executor=executor, progress=False)
    finally:
        ray.shutdown()
    assert planned == [2]  # as many workers as the cluster runs one-CPU tasks at once
    assert summary.failed == 0 and summary.complete + summary.collapsed == 6
    sizes = sorted(m.get("population", {}).get("size", 1) for m in Store(tmp_path / "ray").manifests())
    assert sizes == [2, 2, 4, 4, 4, 4]  # the pool's populations for two workers
    _assert_same_observables(tmp_path / "ray", solo_store)
    # A GPU task per GPU share: two GPUs of half a GPU each hold four tasks; none or no GPUs, one.
    assert executors.RayExecutor(num_gpus=0.5)._slots({"CPU": 16, "GPU": 2}) == 4
    assert executors.RayExecutor(num_cpus=4)._slots({"CPU": 16}) == 4
    assert executors.RayExecutor(num_gpus=1)._slots({"CPU": 16}) == 1


def test_population_size_below_one_is_a_one_line_error():
    from lrid.generate.executors import make_executor

    with pytest.raises(LridError, match="--population must be at least 1"):
        make_executor("sequential", population=0)


def test_manifest_schema_accepts_a_population_field_and_manifests_without_one():
    from lrid.schema import parse_manifest

    base = {"run_id": "abc", "status": "complete",
            "spec": {"task": {"name": "digits"}, "model": {"arch": "mlp"}, "rule": {"name": "fa"}}}
    assert "population" not in parse_manifest(json.loads(json.dumps(base)))
    member = {**base, "population": {"id": "f00", "size": 8, "member": 3, "wall_time_s": 1.5}}
    assert parse_manifest(member)["population"]["member"] == 3


def test_a_population_sweep_killed_mid_way_resumes_with_every_run_once(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import pyarrow.parquet as pq

    from lrid.store import Store

    sweep = tmp_path / "pop.yaml"
    sweep.write_text(SWEEP.replace("model_seed: [0, 1]", "model_seed: [0, 1, 2, 3]"))
    store = tmp_path / "store"

    def manifests():  # a killed writer may leave a hidden temporary file beside them
        return [path for path in (store / "runs").glob("*.json") if not path.name.startswith(".")]

    command = [sys.executable, "-m", "lrid.cli", "generate", str(sweep), "--store", str(store),
               "--backend", "sequential", "--population", "2"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(manifests()) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # mid-sweep: later populations hold claims, or have not started
    process.wait()
    killed_with = len(manifests())
    assert 2 <= killed_with < 12, "the sweep should be killed part-way through"

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{killed_with} already in" in resumed.stdout
    written = [json.loads(path.read_text()) for path in manifests()]
    expected = sorted(spec.run_id for spec in load_sweep(sweep).expand())
    assert sorted(m["run_id"] for m in written) == expected
    # A kill between a population's writes leaves an odd member, trained alone on resume.
    sizes = [m.get("population", {}).get("size", 1) for m in written]
    assert set(sizes) <= {1, 2} and sizes.count(2) >= len(sizes) - 2
    for path in (store / "observables").rglob("*.parquet"):
        pq.read_table(path)
    assert Store(store).orphan_observables() == []


def test_populations_ask_for_onednn_unless_the_user_chose_or_tensorflow_is_loaded(monkeypatch):
    """TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, on import: a process about to train populations asks for
    oneDNN, keeps a user's own choice, and a pool of populations asks in its workers, not in this process."""
    import sys

    from lrid.generate.executors import LocalPoolExecutor
    from lrid.lazy_import import prefer_onednn

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "unset")  # so that the teardown restores its absence
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow"))  # loaded: too late to ask
    prefer_onednn()
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    monkeypatch.delitem(sys.modules, "tensorflow")
    prefer_onednn()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    prefer_onednn()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    for onednn in (True, False):
        pool = LocalPoolExecutor(2, population=8)._pool(1, onednn)  # workers start on the first task
        assert pool._initargs[-1] is onednn
        pool.shutdown()


def test_a_pool_asks_for_onednn_only_for_populations_whose_solo_neighbours_are_mlps():
    from lrid.generate.executors import pool_prefers_onednn, work_units

    mlps = [_spec("sgdm", {"lr": lr}, seed) for seed, lr in enumerate((0.05, 0.02, 0.01))]
    conv = RunSpec.model_validate({**mlps[0].model_dump(), "model": {"arch": "convnet"},
                                   "task": {"name": "digits", "options": {"as_images": True}}})
    other_shape = _spec("sgdm", {"lr": 0.05}, 0, hidden=(8,))
    assert pool_prefers_onednn(work_units(mlps, 8))
    assert pool_prefers_onednn(work_units([*mlps, other_shape], 8))  # an MLP left solo
    assert not pool_prefers_onednn(work_units([*mlps, conv], 8))  # the conv net ran slower with oneDNN
    assert not pool_prefers_onednn(work_units(mlps, 1))  # solo sweeps keep TensorFlow's choice
    assert not pool_prefers_onednn(work_units([mlps[0], other_shape], 8))  # no population formed
