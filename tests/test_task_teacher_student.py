"""The teacher-student regression task, and Hiratani et al.'s node-perturbation instability on it."""

import numpy as np
import pytest

from lrid.config import RunSpec
from lrid.errors import LridError
from lrid.generate.trainer import train_run
from lrid.tasks import get_task
from lrid.tasks.teacher_student import teacher_outputs


def test_targets_are_the_teachers_outputs_plus_the_mismatch_noise():
    clean = get_task("teacher_student", input_dim=20, output_dim=3, n_train=4000, n_test=50, seed=3)
    noisy = get_task("teacher_student", input_dim=20, output_dim=3, n_train=4000, n_test=50, seed=3, noise_std=0.5)
    assert clean.loss == "mse" and clean.n_classes == 3 and clean.input_shape == (20,)
    np.testing.assert_array_equal(clean.x_train, noisy.x_train)  # same teacher and inputs for one seed
    residual = noisy.y_train - clean.y_train
    assert residual.std() == pytest.approx(0.5, rel=0.05)
    assert np.abs(residual.mean()) < 0.05
    assert clean.y_train.std() == pytest.approx(1.0, rel=0.1)  # N(0, 1/fan_in) weights: unit-scale outputs
    np.testing.assert_array_equal(clean.y_test, noisy.y_test)  # test targets are noiseless


def test_a_perfect_student_scores_zero_and_predicting_zero_scores_the_target_variance():
    task = get_task("teacher_student", input_dim=8, output_dim=2, teacher_hidden=(5,), n_train=64, n_test=300, seed=1)
    rng = np.random.default_rng(1)  # the teacher is drawn first from the task's seed
    weights = [rng.normal(0, 1 / np.sqrt(fan_in), size=(fan_in, fan_out)) for fan_in, fan_out in [(8, 5), (5, 2)]]
    assert task.evaluate(lambda x: teacher_outputs(x, weights)) == pytest.approx(0.0, abs=1e-9)
    assert task.evaluate(lambda x: np.zeros((len(x), 2))) == pytest.approx(np.mean(task.y_test**2))


def test_bad_options_and_rules_that_cannot_regress_are_refused_before_training():
    with pytest.raises(LridError, match="positive integers"):
        get_task("teacher_student", input_dim=0)
    with pytest.raises(ValueError, match="rule 'dtp' cannot train task 'teacher_student'.*cross_entropy"):
        RunSpec(task={"name": "teacher_student"}, rule={"name": "dtp"})
    assert RunSpec(task={"name": "teacher_student"}, rule={"name": "np"}).run_id


def _weight_norms(rule: str) -> tuple[np.ndarray, dict]:
    spec = RunSpec(
        task={"name": "teacher_student", "options": {"noise_std": 0.32, "n_train": 1024}},
        rule={"name": rule, "hparams": {"optimizer": "sgd", "lr": 0.02} if rule.startswith("np") else {"lr": 0.02}},
        model={"hidden": [64]},
        train={"epochs": 8, "batch_size": 32},
        observe={"points": 5, "probe_size": 32},
    )
    result = train_run(spec)
    assert result.manifest["status"] == "complete", result.manifest.get("error")
    norms = result.observables.pivot(index="step", columns="layer_index", values="weight_raw_norm")
    return norms[0].to_numpy(), result.manifest


def test_with_model_mismatch_np_weights_diffuse_while_np_wn_and_sgd_stay_bounded():
    """Hiratani et al. 2022: with teacher-student mismatch, plain NP's weight norm keeps growing."""
    np_norms, np_manifest = _weight_norms("np")
    wn_norms, wn_manifest = _weight_norms("np_wn")
    sgd_norms, _ = _weight_norms("sgd")
    assert np.all(np.diff(np_norms) > 0), np_norms  # grows at every recorded step
    assert np_norms[-1] > 1.3 * np_norms[0], np_norms
    assert np.abs(wn_norms / wn_norms[0] - 1).max() < 0.01, wn_norms
    assert np.abs(sgd_norms / sgd_norms[0] - 1).max() < 0.05, sgd_norms
    # Both NP variants still learn the teacher: the test MSE falls below predicting zero (about 1).
    assert np_manifest["final_test_mse"] < 0.6 and wn_manifest["final_test_mse"] < 0.6
