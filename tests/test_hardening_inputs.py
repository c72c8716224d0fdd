"""Hardening probes on user input: held-out filters that cannot run code, one-line CLI errors, user strings
printed literally, missing optional extras, and malformed raw recordings. One test per probe case, so
`pytest -v` prints one PASS/FAIL line for each. None of them trains a network."""

import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest

from lrid import cli
from lrid.errors import LridError
from lrid.identify.recording import Recording, load_recordings, write_recording
from lrid.identify.splits import run_metadata, select_runs

SWEEP = """
name: probe
task: {name: digits}
model: {arch: mlp, hidden: [32, 32], activation: tanh}
train: {epochs: 1, batch_size: 64}
rules:
  sgdm: {lr: 0.05}
  fa: {lr: 0.05}
grid:
  model_seed: [0, 1]
"""


def lrid(monkeypatch, capsys, *args):
    """Run the console entry point in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["lrid", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


# ---------------------------------------------------------------------------------------------------------
# Held-out filters: a restricted language, wherever the filter comes from


RUNS = [  # rule, arch, batch size, lr, hidden, model seed, final test accuracy
    ("sgdm", "mlp", 32, 0.05, [64, 64], 0, 0.91),
    ("sgdm", "mlp", 64, 0.1, [64, 64], 1, 0.88),
    ("fa", "mlp", 32, 0.01, [32], 0, 0.72),
    ("fa", "knet", 64, 0.02, [64, 64], 1, 0.65),
    ("adam", "knet", 32, 0.001, [32], 0, 0.95),
    ("adam", "mlp", 128, 0.005, [64, 64], 2, 0.93),
]


def manifest(index, rule, arch, batch_size, lr, hidden, model_seed, accuracy):
    hparams = {"lr": lr, **({"momentum": 0.9} if rule == "sgdm" else {})}
    spec = {"rule": {"name": rule, "hparams": hparams}, "task": {"name": "digits"},
            "model": {"arch": arch, "hidden": hidden}, "train": {"batch_size": batch_size, "model_seed": model_seed}}
    return {"run_id": f"run{index}", "status": "complete", "spec": spec, "final_test_accuracy": accuracy}


@pytest.fixture(scope="module")
def metadata():
    return run_metadata([manifest(i, *run) for i, run in enumerate(RUNS)])


def runs_where(predicate):
    return {f"run{i}" for i, run in enumerate(RUNS) if predicate(*run)}


@pytest.mark.parametrize("where, predicate", [
    ("batch_size=32", lambda r, a, b, lr, h, s, acc: b == 32),
    ("arch=mlp,batch_size=64", lambda r, a, b, lr, h, s, acc: a == "mlp" and b == 64),
    ("model.hidden=[64, 64]", lambda r, a, b, lr, h, s, acc: h == [64, 64]),
    ("rule.lr=0.05", lambda r, a, b, lr, h, s, acc: lr == 0.05),
    ("batch_size == 32", lambda r, a, b, lr, h, s, acc: b == 32),
    ("train.batch_size != 32", lambda r, a, b, lr, h, s, acc: b != 32),
    ("arch in ['mlp', 'knet'] and lr > 0.01", lambda r, a, b, lr, h, s, acc: lr > 0.01),
    ("rule not in ('fa', 'adam')", lambda r, a, b, lr, h, s, acc: r == "sgdm"),
    ("model_seed in [1, 2]", lambda r, a, b, lr, h, s, acc: s in (1, 2)),
    ("lr >= 0.02 or arch == 'knet'", lambda r, a, b, lr, h, s, acc: lr >= 0.02 or a == "knet"),
    ("not arch == 'mlp'", lambda r, a, b, lr, h, s, acc: a != "mlp"),
    ("not (arch == 'mlp' and batch_size == 32)", lambda r, a, b, lr, h, s, acc: not (a == "mlp" and b == 32)),
    ("(arch == 'mlp') & (batch_size < 100)", lambda r, a, b, lr, h, s, acc: a == "mlp" and b < 100),
    ("~(rule == 'fa') | (lr < 0.015)", lambda r, a, b, lr, h, s, acc: r != "fa" or lr < 0.015),
    ("0.005 <= lr < 0.06", lambda r, a, b, lr, h, s, acc: 0.005 <= lr < 0.06),
    ("model.hidden == '[64, 64]'", lambda r, a, b, lr, h, s, acc: h == [64, 64]),
    ("model.hidden == [32]", lambda r, a, b, lr, h, s, acc: h == [32]),
    ("`train.batch_size` == 64", lambda r, a, b, lr, h, s, acc: b == 64),
    ("batch_size == [32, 128]", lambda r, a, b, lr, h, s, acc: b in (32, 128)),
    ("rule.momentum > 0.5", lambda r, a, b, lr, h, s, acc: r == "sgdm"),
    ("rule.momentum != 0.9", lambda r, a, b, lr, h, s, acc: r != "sgdm"),
    ("final_test_accuracy > 0.9 and task == 'digits'", lambda r, a, b, lr, h, s, acc: acc > 0.9),
])
def test_legitimate_filter_selects_the_runs_it_names(metadata, where, predicate):
    assert select_runs(metadata, where) == runs_where(predicate)


@pytest.mark.parametrize("payload", [
    "@pd.io.common.os.system('touch {marker}')",
    "batch_size == @pd.io.common.os.system('touch {marker}')",
    "__import__('os').system('touch {marker}') == 0",
    "arch == __import__('os').system('touch {marker}')",
    "open('{marker}', 'w').write('x') > 0",
    "arch.__class__.__init__.__globals__['os'].system('touch {marker}') == 0",
    "(lambda: __import__('os').system('touch {marker}'))() == 0",
    "[c for c in ().__class__.__base__.__subclasses__()] == []",
])
def test_filter_that_would_run_code_is_refused_and_runs_nothing(metadata, tmp_path, payload):
    marker = tmp_path / "pwned"
    where = payload.format(marker=marker)
    with pytest.raises(LridError, match="is not allowed|not a valid filter") as raised:
        select_runs(metadata, where)
    assert "\n" not in str(raised.value)
    assert not marker.exists()


@pytest.mark.parametrize("where, offending", [
    ("arch.upper() == 'MLP'", "'arch.upper()' is not allowed (a call)"),
    ("'mlp'.upper == arch", "\"'mlp'.upper\" is not allowed (attribute access"),
    ("(lambda x: x)(arch) == 'mlp'", "'(lambda x: x)(arch)' is not allowed (a call)"),
    ("arch == (lambda: 'mlp')", "\"lambda: 'mlp'\" is not allowed (a lambda)"),
    ("arch[0] == 'm'", "'arch[0]' is not allowed (a subscript)"),
    ("lr * 2 > 0.1", "'lr * 2' is not allowed (arithmetic)"),
    ("__class__ == 1", "'__class__' is not allowed (no dunder names)"),
    ("arch.__class__ == 1", "'arch.__class__' is not allowed (no dunder names)"),
    ("batch_size == @limit", "'@' (a local variable) is not allowed"),
    ("arch", "'arch' is not allowed (a bare name where a comparison belongs)"),
    ("arch in 'mlp'", "\"'mlp'\" is not allowed (the right side of 'in' must be a list of literals)"),
    ("lr is None", "'lr is None' is not allowed (the operator 'Is')"),
])
def test_filter_outside_the_language_names_the_offending_part_and_the_allowed_form(metadata, where, offending):
    with pytest.raises(LridError) as raised:
        select_runs(metadata, where, "--test-where")
    message = str(raised.value)
    assert message.startswith("--test-where ") and offending in message, message
    assert "==, !=, <, <=, >, >=, in, not in" in message and "\n" not in message


def test_filter_ordering_text_against_a_number_is_a_one_line_error(metadata):
    with pytest.raises(LridError, match=r"compares 'mlp' with 3 by >, which have no order"):
        select_runs(metadata, "arch > 3")


def test_filter_naming_an_unknown_field_is_refused(metadata):
    with pytest.raises(LridError, match="unknown field 'pd.io.common'"):
        select_runs(metadata, "pd.io.common == 1")


def test_filter_nested_absurdly_deep_is_refused_without_a_recursion_error(metadata):
    with pytest.raises(LridError, match="nests and/or/not more than"):
        select_runs(metadata, "not " * 2000 + "arch == 'mlp'")


def test_cli_train_where_with_code_is_refused_before_reading_the_store(monkeypatch, capsys, tmp_path):
    marker = tmp_path / "pwned"
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "store", "--out", tmp_path / "results",
                        "--classifiers", "linear", "--train-where", f"@pd.io.common.os.system('touch {marker}')")
    assert_one_line_error(code, err, "--train-where", "'@' (a local variable) is not allowed")
    assert not marker.exists() and not (tmp_path / "results").exists()


def results_with_filter(tmp_path, where):
    results = tmp_path / "results"
    results.mkdir()
    accuracy = {"accuracy_mean": 0.8, "accuracy_sem": 0.02, "accuracy_per_split": [0.8] * 3, "balanced_accuracy_mean": 0.8,
                "confusion_per_split": [], "confusion_normalized": np.eye(2).tolist()}
    scores = {"classifiers": {"linear": accuracy}, "classes": ["fa", "sgdm"], "n_samples": 8, "n_runs": 8,
              "n_features": 10, "n_splits": 3, "test_fraction": 0.25, "seed": 0,
              "settings": {"store": str(tmp_path / "store"), "observables": "all", "unit": "layer", "time": {},
                           "train_where": where, "test_where": "arch=mlp", "search": False}}
    (results / "scores.json").write_text(json.dumps(scores))
    return results


def test_report_of_results_whose_scores_json_filter_runs_code_exits_with_one_line_and_runs_nothing(monkeypatch, capsys, tmp_path):
    marker = tmp_path / "pwned"
    results = results_with_filter(tmp_path, f"@pd.io.common.os.system('touch {marker}')")
    code, _, err = lrid(monkeypatch, capsys, "report", results)
    assert_one_line_error(code, err, "scores.json: a held-out filter in its settings is refused: --train-where", "is not allowed")
    assert not marker.exists()
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "figures").exists()


def test_report_importance_of_results_whose_filter_calls_a_function_exits_with_one_line(monkeypatch, capsys, tmp_path):
    marker = tmp_path / "pwned"
    results = results_with_filter(tmp_path, f"__import__('os').system('touch {marker}') == 0")
    code, _, err = lrid(monkeypatch, capsys, "report", "importance", results, "--classifier", "linear")
    assert_one_line_error(code, err, "filter in its settings is refused: --train-where", "(a call")
    assert not marker.exists()


def test_scores_json_with_plain_filters_still_loads(tmp_path):
    from lrid.report import load_scores

    results = results_with_filter(tmp_path, "lr > 0.01 and arch in ['knet', 'mlp']")
    assert load_scores(results).settings.train_where == "lr > 0.01 and arch in ['knet', 'mlp']"


# ---------------------------------------------------------------------------------------------------------
# One-line errors for bad counts and outputs


@pytest.mark.parametrize("workers", ["-1", "0"])
def test_generate_with_workers_below_one_is_a_one_line_error(monkeypatch, capsys, tmp_path, workers):
    sweep = tmp_path / "probe.yaml"
    sweep.write_text(SWEEP)
    code, _, err = lrid(monkeypatch, capsys, "generate", sweep, "--store", tmp_path / "store", "--workers", workers)
    assert_one_line_error(code, err, f"--workers must be at least 1, not {workers}")
    assert not (tmp_path / "store").exists()


def test_classify_with_zero_splits_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "store", "--out", tmp_path / "results",
                        "--classifiers", "linear", "--splits", "0")
    assert_one_line_error(code, err, "--splits must be at least 1, not 0")


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_classify_with_an_impossible_number_of_jobs_is_a_one_line_error(monkeypatch, capsys, tmp_path, jobs):
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "store", "--out", tmp_path / "results",
                        "--classifiers", "linear", "--jobs", jobs)
    assert_one_line_error(code, err, f"--jobs {jobs} is not a number of parallel jobs")


def test_classify_out_pointing_at_an_existing_file_is_a_one_line_error_and_keeps_the_file(monkeypatch, capsys, tmp_path):
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "store", "--out", taken, "--classifiers", "linear")
    assert_one_line_error(code, err, f"--out {taken} is a file, not a directory")
    assert taken.read_text() == "keep me"


def test_classify_out_under_an_existing_file_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "store", "--out", taken / "results",
                        "--classifiers", "linear")
    assert_one_line_error(code, err, f"lies under {taken}, which is a file")


# ---------------------------------------------------------------------------------------------------------
# User strings printed literally: no markup, no raw control characters


def test_markup_closing_tag_in_a_path_is_printed_literally(monkeypatch, capsys, tmp_path):
    code, _, err = lrid(monkeypatch, capsys, "report", tmp_path / "[/x]")
    assert_one_line_error(code, err, "[/x]/scores.json does not exist")


def test_markup_style_tag_in_a_path_does_not_vanish_from_the_error(monkeypatch, capsys, tmp_path):
    code, _, err = lrid(monkeypatch, capsys, "report", tmp_path / "[bold]results")
    assert_one_line_error(code, err, "[bold]results/scores.json does not exist")


def test_markup_in_a_yaml_key_is_printed_literally(monkeypatch, capsys, tmp_path):
    sweep = tmp_path / "probe.yaml"
    sweep.write_text(SWEEP.replace("sgdm: {lr: 0.05}", "sgdm: {lr: 0.05, '[/x][bold]': 1}"))
    code, _, err = lrid(monkeypatch, capsys, "generate", sweep, "--store", tmp_path / "store")
    assert_one_line_error(code, err, "[/x][bold]")
    assert not (tmp_path / "store").exists()


def test_escape_sequence_and_markup_in_a_recording_run_name_reach_the_terminal_escaped(monkeypatch, capsys, tmp_path):
    path = tmp_path / "rec.parquet"
    run = "\x1b[31m[/x]red\x1b[0m"
    write_recording(recording(act_batches=(8, 4), run=run), path)
    code, out, err = lrid(monkeypatch, capsys, "identify", tmp_path / "model.joblib", path)
    assert_one_line_error(code, err, "\\x1b[31m[/x]red\\x1b[0m")
    assert "\x1b" not in err + out


def test_control_characters_and_markup_in_table_cells_are_shown_literally(capsys):
    from rich.table import Table

    table = Table(title="runs in [/store]")
    table.add_column("run")
    table.add_row("\x1b[2J[bold]wipe\x07")
    cli.console.print(table)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J[bold]wipe\\x07" in out and "runs in [/store]" in out


def test_error_message_holding_a_line_break_stays_on_one_line(monkeypatch, capsys, tmp_path):
    code, _, err = lrid(monkeypatch, capsys, "report", tmp_path / "two\nlines")
    assert_one_line_error(code, err, "two\\nlines/scores.json does not exist")


# ---------------------------------------------------------------------------------------------------------
# Missing extras: one line naming the extra, before any work


@pytest.fixture
def without(monkeypatch):
    """Make the named modules look uninstalled to importlib.util.find_spec."""

    def hide(*modules):
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *args, **kwargs: None if name in modules else real(name, *args, **kwargs))

    return hide


EXTRA = "pip install -e '.[cpu]' (or '.[gpu]' on a GPU machine)"


@pytest.mark.parametrize("dry_run", [False, True], ids=["train", "dry-run"])
def test_generate_without_tensorflow_names_the_extra_and_writes_nothing(monkeypatch, capsys, tmp_path, without, dry_run):
    without("tensorflow")
    sweep = tmp_path / "probe.yaml"
    sweep.write_text(SWEEP)
    code, _, err = lrid(monkeypatch, capsys, "generate", sweep, "--store", tmp_path / "store", *(["--dry-run"] if dry_run else []))
    assert_one_line_error(code, err, "needs TensorFlow, which is not installed", EXTRA)
    assert not (tmp_path / "store").exists()


def test_run_without_tensorflow_names_the_extra_and_writes_nothing(monkeypatch, capsys, tmp_path, without):
    without("tensorflow")
    sweep = tmp_path / "probe.yaml"
    sweep.write_text(SWEEP)
    code, _, err = lrid(monkeypatch, capsys, "run", sweep, "--out", tmp_path / "out", "--classifiers", "linear")
    assert_one_line_error(code, err, "training networks needs TensorFlow", EXTRA)
    assert not (tmp_path / "out").exists()


def test_run_without_xgboost_is_refused_before_generating(monkeypatch, capsys, tmp_path, without):
    without("xgboost")
    sweep = tmp_path / "probe.yaml"
    sweep.write_text(SWEEP)
    code, _, err = lrid(monkeypatch, capsys, "run", sweep, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "the xgb classifier needs XGBoost", EXTRA)
    assert not (tmp_path / "out").exists()


def test_export_recording_without_tensorflow_names_the_extra(monkeypatch, capsys, tmp_path, without):
    without("tensorflow")
    code, _, err = lrid(monkeypatch, capsys, "export-recording", tmp_path / "store", "run0", tmp_path / "rec.npz")
    assert_one_line_error(code, err, "needs TensorFlow", EXTRA)
    assert not (tmp_path / "rec.npz").exists()


@pytest.mark.parametrize("classifier, module, name", [("conv1d", "tensorflow", "TensorFlow"), ("xgb", "xgboost", "XGBoost")])
def test_classify_without_the_classifier_s_library_names_the_extra(monkeypatch, capsys, tmp_path, without, classifier, module, name):
    without(module)
    code, _, err = lrid(monkeypatch, capsys, "classify", "--store", tmp_path / "store", "--out", tmp_path / "results",
                        "--classifiers", f"linear,{classifier}")
    assert_one_line_error(code, err, f"the {classifier} classifier needs {name}", EXTRA)
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------------------------------------------------
# Raw recordings


def recording(act_batches=(8, 8), run="net", actchange=False):
    rng = np.random.default_rng(0)
    steps = np.array([0, 10, 20])
    layers = ["fc1", "fc2"]
    arrays = {
        "weight": {"fc1": rng.normal(size=(3, 5, 4)), "fc2": rng.normal(size=(3, 4, 3))},
        "act": {layer: rng.normal(size=(3, batch, units)) for layer, batch, units in zip(layers, act_batches, (4, 3))},
    }
    if actchange:
        arrays["actchange"] = {layer: rng.normal(size=(3, batch)) for layer, batch in zip(layers, act_batches)}
    return Recording(run, steps, layers, arrays)


def _as_bfloat16(values):
    """``values`` rounded to bfloat16 (to nearest, ties to even), kept as float32: what a lab saving weights
    in bfloat16 and converting them back would hand over."""
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    return (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


def test_identify_warns_in_one_line_when_a_recordings_weights_hold_bfloat16_values(monkeypatch, capsys, tmp_path):
    fine, coarse = recording(run="fine"), recording(run="coarse")
    coarse.arrays["weight"] = {layer: _as_bfloat16(w) for layer, w in coarse.arrays["weight"].items()}
    for network in (fine, coarse):
        write_recording(network, tmp_path / "recordings" / f"{network.run}.npz")
    monkeypatch.setattr(sys, "argv", ["lrid", "identify", str(tmp_path / "recordings")])
    cli.main()  # returns: the command succeeded
    out, err = capsys.readouterr()
    assert "fine" in out and "coarse" in out  # both are still named
    warning = [line for line in err.splitlines() if "bfloat16" in line]
    assert len(warning) == 1 and "1 of 2 networks (coarse)" in warning[0] and "save weights in float32" in warning[0]
    # Activations in bfloat16 cost nothing measurable, and float16 weights keep 11 significant bits: no warning.
    half = recording(run="half")
    half.arrays["weight"] = {layer: w.astype(np.float16) for layer, w in half.arrays["weight"].items()}
    half.arrays["act"] = {layer: _as_bfloat16(a) for layer, a in half.arrays["act"].items()}
    write_recording(half, tmp_path / "half.npz")
    monkeypatch.setattr(sys, "argv", ["lrid", "identify", str(tmp_path / "half.npz")])
    cli.main()
    out, err = capsys.readouterr()
    assert "half" in out and "bfloat16" not in err, err


def test_empty_parquet_recording_is_a_one_line_error(tmp_path):
    path = tmp_path / "empty.parquet"
    pd.DataFrame({"run": pd.Series([], dtype=str), "step": pd.Series([], dtype=int), "layer": pd.Series([], dtype=str),
                  "kind": pd.Series([], dtype=str), "shape": pd.Series([], dtype=object),
                  "values": pd.Series([], dtype=object)}).to_parquet(path)
    with pytest.raises(LridError, match=rf"recording {path} holds no rows; "):
        load_recordings(path)


def test_empty_npz_recording_is_a_one_line_error(tmp_path):
    path = tmp_path / "empty.npz"
    np.savez(path)
    with pytest.raises(LridError, match="no `steps` array"):
        load_recordings(path)


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_act_arrays_with_different_batch_sizes_across_layers_are_refused(tmp_path, suffix):
    path = write_recording(recording(act_batches=(8, 4)), tmp_path / f"rec{suffix}")
    with pytest.raises(LridError, match=r"act arrays have different probe batch sizes across layers \(fc1 8, fc2 4\)"):
        load_recordings(path)


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_recording_with_one_probe_batch_for_every_layer_is_accepted(tmp_path, suffix):
    path = write_recording(recording(act_batches=(8, 8), actchange=True), tmp_path / f"rec{suffix}")
    (loaded,) = load_recordings(path)
    assert loaded.layers == ["fc1", "fc2"] and loaded.arrays["act"]["fc2"].shape == (3, 8, 3)


def test_sweep_name_with_control_characters_is_refused(tmp_path):
    from lrid.config import load_sweep

    path = tmp_path / "sweep.yaml"
    path.write_text('name: "demo\\x1b[31m"\nrules: {sgdm: {lr: 0.01}}\n')
    with pytest.raises(LridError, match="name: a sweep's name must be non-empty printable text"):
        load_sweep(path)
