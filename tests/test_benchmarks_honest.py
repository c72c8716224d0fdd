"""Benchmark summaries judge only what the current invocation measured, never a quick run, and report
measured values as they are. Fast: no benchmark runs, only their bookkeeping on hand-made results."""

import json
import sys
from pathlib import Path

import pytest

# The benchmark scripts import their helpers as siblings, so their folder goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import classification  # noqa: E402
import harness  # noqa: E402
import population  # noqa: E402
import recording_overhead  # noqa: E402
import run_all  # noqa: E402

LOAD = [0.0, 0.0, 0.0]


@pytest.fixture
def results(tmp_path, monkeypatch):
    """An empty results folder for this test, and the invocation stamp ``current``."""
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    monkeypatch.setenv(harness.STAMP_VARIABLE, "current")
    return tmp_path


def overhead_row(share, met):
    return {"model": "mlp", "rule": "sgdm", "share_of_run": share, "target": "<= 10%", "met": met}


def test_a_planted_stale_result_is_ignored_by_the_summary(results, capsys):
    # Left by an earlier run (another stamp) and by a run before stamps existed: both claim the target met.
    (results / "recording_overhead.json").write_text(json.dumps({"run_stamp": "earlier", "runs": [overhead_row(0.01, True)]}))
    (results / "sweep_throughput.json").write_text(json.dumps({"rows": [{"workers": 2, "target": ">= 1.8x", "met": True}]}))
    harness.write_result("step_throughput", {"rows": [{"model": "mlp", "case": "sgd", "vs_keras_fit": 1.2,
                                                       "target": ">= 1.0x keras fit", "met": True}]}, LOAD)
    rows = run_all.target_rows(["step_throughput", "recording_overhead", "sweep_throughput"], "current", quick=False)
    by_name = {row["benchmark"]: row for row in rows}
    assert by_name["recording_overhead"]["measured"] == "no result from this run" and by_name["recording_overhead"]["met"] is None
    assert by_name["sweep_throughput"]["met"] is None
    assert by_name["step_throughput"]["met"] is True and len(rows) == 3
    # The measured value is printed next to its target.
    harness.print_table(rows, ["benchmark", "case", "measured", "target", "met"], "targets")
    line = next(line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith("step_throughput"))
    assert line.split()[-6:] == ["vs_keras_fit=1.2", ">=", "1.0x", "keras", "fit", "True"]


def test_a_quick_result_is_never_marked_met(results, capsys):
    path = harness.write_result("recording_overhead", {"runs": [overhead_row(0.01, True)]}, LOAD, quick=True)
    assert path == results / "recording_overhead_quick.json" and not (results / "recording_overhead.json").exists()
    written = json.loads(path.read_text())
    assert written["quick"] is True and written["run_stamp"] == "current" and written["runs"][0]["met"] is None
    assert harness.verdict(True, quick=True) is None and harness.verdict(False, quick=False) is False
    (row,) = run_all.target_rows(["recording_overhead"], "current", quick=True)
    assert row["met"] is None and row["measured"] == "share_of_run=0.01"
    # A quick summary does not read the full run's file, even one of this invocation.
    harness.write_result("recording_overhead", {"runs": [overhead_row(0.01, True)]}, LOAD)
    path.unlink()
    (row,) = run_all.target_rows(["recording_overhead"], "current", quick=True)
    assert row["measured"] == "no result from this run"
    harness.print_table([overhead_row(0.01, None)], ["model", "met"], "quick")
    assert capsys.readouterr().out.splitlines()[-1].split() == ["mlp", "not", "judged"]


def test_the_recording_overhead_is_signed_and_can_be_negative():
    seconds, share = recording_overhead.recording_cost(full_s=1.0, minimal_s=1.019)
    assert seconds == pytest.approx(-0.021) and share == pytest.approx(-0.021)
    seconds, share = recording_overhead.recording_cost(full_s=2.0, minimal_s=1.81)
    assert seconds == pytest.approx(0.21) and share == pytest.approx(0.105)


def test_a_populations_recording_share_is_signed_as_measured(monkeypatch):
    import lrid.generate.population
    import lrid.generate.trainer

    monkeypatch.setattr(population, "member_specs", lambda *args, **kwargs: [None] * 4)
    monkeypatch.setattr(lrid.generate.population, "train_population", lambda specs, fall_back: None)
    monkeypatch.setattr(lrid.generate.trainer, "train_run", lambda spec: None)
    # the population with 21 points, the same with 2 (slower, by noise), then the runs solo
    clock = iter([0.0, 1.0, 1.0, 2.019, 2.019, 12.019])
    monkeypatch.setattr(population.time, "perf_counter", lambda: next(clock))
    row = population.end_to_end("sgdm", 4, epochs=1)
    assert row["recording_share"] == pytest.approx(-0.021) and row["speedup"] == pytest.approx(10.0)


def test_the_demo_row_times_the_sweeps_fixed_cost_and_judges_the_whole_sweep(monkeypatch, tmp_path):
    from lrid.config import load_sweep

    fixed = population.fixed_cost_sweep(harness.REPO / "pipelines" / "demo.yaml", 2, tmp_path)
    runs = load_sweep(fixed).expand()
    assert len(runs) == 2 and {run.train.epochs for run in runs} == {1} and len({run.run_id for run in runs}) == 2

    commands = []
    monkeypatch.setattr("subprocess.run", lambda command, **kwargs: commands.append(command))
    clock = iter([0.0, 30.0, 30.0, 50.0, 50.0, 60.0])  # solo 30 s, populations 20 s, the fixed sweep 10 s
    monkeypatch.setattr(population.time, "perf_counter", lambda: next(clock))
    row = population.demo_sweep(2, 32, None)
    assert [command[-2:] for command in commands[:2]] == [["--workers", "2"], ["--population", "32"]]
    assert commands[2][4].endswith("fixed.yaml")
    assert (row["speedup"], row["fixed_s"], row["beyond_fixed"]) == (1.5, 10.0, 2.0)


def lrid_row(accuracies, s_per_split=1.0, fits=13):
    return {"classifier": "lrid rf (search)", "accuracy_per_split": accuracies, "s_per_split": s_per_split,
            "fits_per_split": fits, "s_per_fit": s_per_split / fits}


def reference_rows(accuracies, s_per_split=10.0, fits=76):
    return [{"classifier": name, "accuracy_per_split": accuracies, "s_per_split": s_per_split, "fits_per_split": fits,
             "s_per_fit": s_per_split / fits} for name in ("reference rf (15-config grid)", "reference svm (84-config grid)")]


def test_classification_states_both_speed_ups_and_judges_accuracy_only_over_all_splits():
    assert classification.fits_per_split(4, 3) == 13 and classification.fits_per_split(1, 0) == 1
    ours = [0.9, 0.8, 0.85, 0.95]
    row = lrid_row(ours)
    classification.compare([row], reference_rows([0.7]), quick=False)  # the reference ran one split of four
    assert row["speedup_per_split"] == 10.0 and row["speedup_per_fit"] == pytest.approx(round(10 / 76 * 13, 1))
    assert row["accuracy_shared"] == "0.900 ± – (1 split)" and row["reference_accuracy_shared"] == "0.700 ± – (1 split)"
    assert row["speed_met"] is True and row["accuracy_met"] is None and row["met"] is None
    assert "1 of 4 outer splits" in row["note"]

    row = lrid_row(ours)
    classification.compare([row], reference_rows([0.95, 0.9, 0.9, 0.95]), quick=False)
    assert row["accuracy_shared"] == "0.875 ± 0.032 (4 splits)" and row["reference_accuracy_shared"] == "0.925 ± 0.014 (4 splits)"
    assert row["accuracy_met"] is False and row["met"] is False  # faster, but less accurate over the four splits

    row = lrid_row(ours)
    classification.compare([row], reference_rows([0.8, 0.8, 0.8, 0.8]), quick=False)
    assert row["accuracy_met"] is True and row["met"] is True
    row = lrid_row(ours)
    classification.compare([row], reference_rows([0.8, 0.8, 0.8, 0.8]), quick=True)
    assert row["met"] is None


def test_run_all_hands_its_stamp_to_each_benchmark_and_summarises_only_their_results(results, monkeypatch):
    (results / "recording_overhead.json").write_text(json.dumps({"run_stamp": "earlier", "runs": [overhead_row(0.01, True)]}))

    def benchmark_process(command, env):
        """step_throughput writes its result with the stamp it was given; recording_overhead fails before writing."""
        name = Path(command[1]).stem
        if name == "recording_overhead":
            return type("Completed", (), {"returncode": 1})()
        document = {"run_stamp": env[harness.STAMP_VARIABLE],
                    "rows": [{"model": "mlp", "case": "sgd", "vs_keras_fit": 1.2, "target": ">= 1.0x keras fit", "met": True}]}
        (results / f"{name}.json").write_text(json.dumps(document))
        return type("Completed", (), {"returncode": 0})()

    monkeypatch.setattr(run_all.subprocess, "run", benchmark_process)
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--only", "step_throughput,recording_overhead"])
    with pytest.raises(SystemExit, match="recording_overhead"):
        run_all.main()
    summary = json.loads((results / "summary.json").read_text())
    assert summary["failed"] == ["recording_overhead"] and summary["run_stamp"] != "earlier"
    by_name = {row["benchmark"]: row for row in summary["targets"]}
    assert by_name["step_throughput"]["met"] is True
    assert by_name["recording_overhead"] == {"benchmark": "recording_overhead", "case": "", "target": "",
                                             "measured": "no result from this run", "met": None}
