"""The command line, end to end, as a user runs it (in a subprocess, through the console script)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LRID = shutil.which("lrid") or str(Path(sys.executable).parent / "lrid")


def lrid(*args, cwd=None):
    return subprocess.run([LRID, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_run_generates_classifies_and_reports(tiny_sweep_file, tiny_store, tmp_path):
    # The sweep's runs are already in the store `lrid run` writes to (the session's, copied): run resumes the
    # sweep, finds nothing to train, and classifies and reports it (the runs' training is tested elsewhere).
    out = tmp_path / "out"
    shutil.copytree(tiny_store, out / "store")
    result = lrid("run", tiny_sweep_file, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "generate: 24 runs in the sweep, 24 already in" in " ".join(result.stdout.split())
    scores = json.loads((out / "results" / "scores.json").read_text())
    assert set(scores["classifiers"]) == {"linear", "rf", "xgb"}
    for name, result_ in scores["classifiers"].items():
        assert result_["accuracy_mean"] > 0.45, (name, result_["accuracy_mean"])  # chance is 0.25
        assert len(result_["accuracy_per_split"]) == 10
    report = (out / "report.md").read_text()
    assert "| linear |" in report and "figures/confusion.png" in report
    from PIL import Image

    with Image.open(out / "figures" / "confusion.png") as image:
        assert image.size[0] > 600 and image.size[1] > 300


def test_report_can_be_rerun_from_the_results_alone(tiny_store, tmp_path):
    classified = lrid("classify", "--store", tiny_store, "--out", tmp_path / "results", "--classifiers", "linear", "--splits", "3")
    assert classified.returncode == 0, classified.stderr
    reported = lrid("report", tmp_path / "results")
    assert reported.returncode == 0, reported.stderr
    assert (tmp_path / "report.md").is_file() and (tmp_path / "figures" / "confusion.png").stat().st_size > 0


def test_classify_takes_depth_contrasts_with_the_run_unit_and_progress_and_refuses_them_without(tiny_store, tmp_path):
    refused = lrid("classify", "--store", tiny_store, "--out", tmp_path / "layer", "--depth-contrasts")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "depth contrasts compare the log scales of a run's depth groups; use them with unit=run and time=progress" \
        in refused.stderr
    assert not (tmp_path / "layer" / "scores.json").exists()
    classified = lrid("classify", "--store", tiny_store, "--out", tmp_path / "run", "--classifiers", "linear",
                      "--splits", "2", "--no-control", "--unit", "run", "--time", "progress", "--points", "5", "--depth-contrasts")
    assert classified.returncode == 0, classified.stderr
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert scores["settings"]["depth_contrasts"] is True
    assert any(name.endswith("@scale@deep-middle") for name in json.loads(
        (tmp_path / "run" / "models" / "linear.json").read_text())["feature_names"])


def test_classify_with_checkpoint_schedules_then_report_and_identify(tiny_store, tmp_path):
    results = tmp_path / "results"
    classified = lrid("classify", "--store", tiny_store, "--out", results, "--classifiers", "rf", "--splits", "2",
                      "--unit", "run", "--time", "progress", "--baseline", "relative", "--schedules", "even3,log4")
    assert classified.returncode == 0, classified.stderr
    assert "rf on the test runs re-recorded (all): as recorded " in classified.stdout and ", log4 " in classified.stdout
    assert "rf: its saved model's prediction sets at 90% keep every rule of probability" in classified.stdout
    assert "rf: for runs recorded at fewer checkpoints, re-recorded test runs set: 3 points: " in classified.stdout
    scores = json.loads((results / "scores.json").read_text())
    sets = scores["classifiers"]["rf"]["prediction_sets"]
    tested_runs = {run for split in scores["splits"] for run in split["test"]}  # each counted once
    assert sets["runs"] == len(tested_runs) and sets["held"] >= 0.9 and 1.0 <= sets["mean_size"] <= 4.0
    # A threshold per number of checkpoints the test runs were re-recorded at, each on every test run.
    assert sets["points"] == 6 and [entry["points"] for entry in sets["by_points"]] == [3, 4]
    assert all(entry["runs"] == len(tested_runs) and entry["held"] >= 0.9 for entry in sets["by_points"])
    assert scores["settings"]["schedules"] == ["even3", "log4"]
    assert set(scores["classifiers"]["rf"]["accuracy_by_schedule"]) == {"as recorded", "even3", "log4"}
    reported = lrid("report", results)
    assert reported.returncode == 0, reported.stderr
    report = (tmp_path / "report.md").read_text()
    assert "## Checkpoint schedules" in report and "| classifier | as recorded | even3 | log4 |" in report
    assert "## Prediction sets at 90%" in report
    assert f"| rf | 6 points | {sets['threshold']:.3f} | {sets['runs']} |" in report
    three = sets["by_points"][0]
    assert f"| rf | 3 points | {three['threshold']:.3f} | {three['runs']} | {three['held']:.2f} |" in report
    identified = lrid("identify", results / "models" / "rf", tiny_store)
    assert identified.returncode == 0, identified.stderr
    # The saved model's prediction sets, calibrated on the splits' test runs, are a column of every answer.
    calibration = json.loads((results / "models" / "rf.json").read_text())["prediction_sets"]
    assert calibration == sets and "2 balanced splits" in calibration["method"]
    assert "at 90%" in identified.stdout and "the rules it cannot rule out" in identified.stdout
    # A run recorded at 3 points gets the threshold calibrated at 3 points, not the one of runs as recorded:
    # with those set apart (every rule as recorded, the top rule alone at 3 points), the sets show which.
    from lrid.identify.inference import identify
    from lrid.identify.schedules import at_schedule
    from lrid.store import Store

    sidecar_path = results / "models" / "rf.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["prediction_sets"]["threshold"] = 0.0
    for entry in sidecar["prediction_sets"]["by_points"]:
        entry["threshold"] = 1.0
    sidecar_path.write_text(json.dumps(sidecar))
    observables = Store(str(tiny_store)).read_observables()
    as_recorded = identify(results / "models" / "rf", observables)
    sparse = identify(results / "models" / "rf", at_schedule(observables, "even3"))
    assert as_recorded["prediction_set"].str.count(",").eq(len(scores["classes"]) - 1).all()
    assert sparse["prediction_set"].tolist() == sparse["predicted"].tolist()


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "missing.yaml", "--store", "s"], "missing.yaml does not exist"),
        (["classify", "--store", "nowhere", "--out", "r"], "no complete runs"),
        (["classify", "--store", "nowhere", "--out", "r", "--classifiers", "svm"], "unknown classifier(s) svm"),
        (["report", "nowhere"], "scores.json does not exist"),
    ],
)
def test_bad_input_gives_a_one_line_error_and_no_traceback(tmp_path, args, message):
    result = lrid(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_sweep_is_refused_before_any_training(tmp_path):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("name: bad\nrules: {sgdm: {}, fa: {lr: 0.1, alpha: 1}}\n")
    result = lrid("generate", sweep, "--store", tmp_path / "store")
    assert result.returncode == 2 and "rule 'fa': alpha: unknown key" in result.stderr
    assert not (tmp_path / "store").exists()


def test_rules_lists_every_rule_with_its_description():
    result = lrid("rules")
    assert result.returncode == 0
    for name in ("sgdm", "adam", "fa", "ia"):
        assert name in result.stdout
    assert "alpha=0.06" in result.stdout and "Kunin et al. 2020" in result.stdout


def test_usage_errors_print_click_s_message_without_a_traceback():
    result = lrid("classify")
    assert result.returncode == 2
    assert "Missing option '--store'" in result.stderr
    assert "Traceback" not in result.stderr and "MissingParameter" not in result.stderr


def test_ending_without_the_interpreters_teardown_still_joins_threads_runs_exit_handlers_and_flushes():
    # An executor left running (as joblib leaves its workers) is stopped by threading's exit hooks, as at any
    # exit; joining its idle threads without them would hang.
    program = ("import atexit, threading, time; from concurrent.futures import ThreadPoolExecutor; "
               "from lrid.lazy_import import exit_now; pool = ThreadPoolExecutor(1); pool.submit(int); "
               "atexit.register(print, 'handler ran'); "
               "threading.Thread(target=lambda: (time.sleep(0.2), print('thread joined'))).start(); "
               "print('unflushed', end=''); exit_now(3)")
    ended = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert ended.returncode == 3
    assert ended.stdout == "unflushedthread joined\nhandler ran\n"


def test_a_command_that_loaded_tensorflow_keeps_its_exit_code_and_message(tmp_path):
    # The console script ends such commands without the interpreter's teardown (lrid.cli.entry_point).
    program = ("import sys, tensorflow; from lrid.cli import entry_point; "
               f"sys.argv = ['lrid', 'identify', {str(tmp_path / 'missing.npz')!r}]; entry_point()")
    ended = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert ended.returncode == 2
    # TensorFlow may log its own start-up first (oneDNN's notice on AVX-512 hosts, which TF_CPP_MIN_LOG_LEVEL does
    # not silence); lrid's message is the last line, whole.
    assert ended.stderr.splitlines()[-1].startswith("error: input ") and "missing.npz" in ended.stderr.splitlines()[-1]
