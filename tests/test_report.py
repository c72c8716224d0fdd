"""report.md and its figures: every optional section renders when its input is present and is left out
cleanly when absent; every figure is written, non-empty and opens as an image."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from lrid.errors import LridError
from lrid.report import load_scores, write_report

CLASSES = ["adam", "fa", "ia", "sgdm"]


def classifier_result(accuracy):
    confusion = np.full((4, 4), (1 - accuracy) / 3) + np.eye(4) * (accuracy - (1 - accuracy) / 3)
    return {
        "accuracy_mean": accuracy, "accuracy_sem": 0.02, "accuracy_per_split": [accuracy] * 3,
        "balanced_accuracy_mean": accuracy, "confusion_per_split": [], "confusion_normalized": confusion.tolist(),
    }


def minimal_scores():
    return {
        "classifiers": {"linear": classifier_result(0.8), "rf": classifier_result(0.9)},
        "classes": CLASSES, "n_samples": 72, "n_runs": 24, "n_features": 273, "n_splits": 3,
        "test_fraction": 0.25, "seed": 0,
    }


def full_scores():
    scores = minimal_scores()
    scores["settings"] = {"observables": "all", "unit": "layer", "time": {}, "train_where": "arch=mlp",
                          "test_where": "arch=knet", "search": False}
    scores["by_subset"] = {subset: {"linear": classifier_result(a), "rf": classifier_result(a + 0.05)}
                           for subset, a in (("all", 0.8), ("weight", 0.7), ("act", 0.6))}
    for name in scores["classifiers"]:
        scores["classifiers"][name]["d_prime"] = dict(zip(CLASSES, [2.1, 1.5, 1.7, 2.5]))
    calibrated = {"threshold": 0.3, "runs": 18, "held": 0.94, "mean_size": 1.6}
    scores["classifiers"]["rf"]["prediction_sets"] = {
        "coverage": 0.9, "method": "the test runs of 3 balanced splits", "points": 21, **calibrated,
        "by_points": [{"points": 6, **calibrated, "threshold": 0.2}],
        "by_layers": [{"layers": "hidden", **calibrated, "threshold": 0.15},
                      {"layers": "single", **calibrated, "threshold": 0.1, "mean_size": 2.5}],
    }
    scores["control"] = {
        "curve_baseline": {"rf": {"accuracy_mean": 0.4, "accuracy_sem": 0.03}},
        "matched_bins": [{"bin": [0.8, 0.9], "n_test": 12, "accuracy": 0.7}, {"bin": [0.9, 1.0], "n_test": 20, "accuracy": 0.85}],
    }
    return scores


def robustness_rows():
    """Rows as ``lrid.identify.robustness`` writes them: one per view, observable subset and classifier."""
    views = {"full": (1.0, 0.0), "u50": (0.5, 0.0), "u10": (0.1, 0.0), "n05": (1.0, 0.5), "n10": (1.0, 1.0)}
    rows = []
    for view, (fraction, noise) in views.items():
        for observables in ("weight", "act"):
            rows.append({"view": view, "units_fraction": fraction, "noise_std": noise, "observables": observables,
                         "classifier": "rf", "accuracy_mean": (0.9 if observables == "weight" else 0.7) * fraction / (1 + noise), "accuracy_sem": 0.02,
                         "n_runs": 24})
    return {"rows": rows, "classes": CLASSES, "n_splits": 3, "seed": 0}


def assert_figures_open(report_path):
    """Every figure the report embeds exists, is non-empty and opens as a PNG; returns their names."""
    text = report_path.read_text()
    names = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", text)
    assert names
    for name in names:
        path = report_path.parent / name
        assert path.stat().st_size > 0
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG"
        with Image.open(path) as image:
            assert image.size[0] > 400 and image.size[1] > 250
    return {name.removeprefix("figures/") for name in names}


def test_minimal_scores_give_accuracy_and_confusion_only(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "scores.json").write_text(json.dumps(minimal_scores()))
    report = write_report(results)
    assert report == tmp_path / "report.md"
    assert assert_figures_open(report) == {"accuracy.png", "confusion.png"}
    text = report.read_text()
    assert "| rf | 0.900 ± 0.020 | 0.900 | 3 |" in text and "Chance is 0.250" in text
    for absent in ("Robustness", "Held-out", "Performance-matched", "d')"):
        assert absent not in text
    # No store is named, so importance is skipped with the reason and the fix.
    assert "Not computed:" in text and "--store" in text


def test_every_optional_section_renders_when_present(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "scores.json").write_text(json.dumps(full_scores()))
    (results / "robustness.json").write_text(json.dumps(robustness_rows()))
    report = write_report(results, tmp_path / "out", importance=False)
    figures = assert_figures_open(report)
    assert figures == {"accuracy.png", "confusion.png", "robustness.png", "control.png"}
    text = report.read_text()
    assert "## Held-out generalisation" in text and "| rf | arch=mlp | arch=knet |" in text
    assert "## Discriminability (d')" in text and "| rf | 2.100 | 1.500 | 1.700 | 2.500 |" in text
    assert "## Robustness" in text and "## Performance-matched control" in text and "| rf | 0.400 ± 0.030 |" in text
    # one row per threshold of the saved model's prediction sets: as recorded, by points, by layers
    rows = [line for line in text.splitlines() if line.startswith("| rf | ") and " | 18 | 0.94 | " in line]
    assert [row.split(" | ")[1:3] for row in rows] == [
        ["21 points", "0.300"], ["6 points", "0.200"], ["its hidden layers (no readout)", "0.150"],
        ["one hidden layer alone", "0.100"],
    ]
    assert "Observable importance" not in text
    # Each figure comes with a sentence saying what it shows.
    for name in figures:
        after = text.split(f"(figures/{name})", 1)[1].strip()
        assert len(after.split(".")[0].split()) >= 8, name


def test_corrupt_optional_input_is_a_clear_error(tmp_path):
    (tmp_path / "scores.json").write_text(json.dumps(minimal_scores()))
    (tmp_path / "robustness.json").write_text(json.dumps({"rows": [{"view": "act", "classifier": "rf"}]}))
    with pytest.raises(LridError, match="robustness.json rows lack accuracy_mean, noise_std, units_fraction"):
        write_report(tmp_path, importance=False)
    (tmp_path / "scores.json").write_text("{")
    with pytest.raises(LridError, match="is not valid JSON"):
        load_scores(tmp_path)


def test_report_of_a_real_classify_run_has_importance_and_trajectories(tiny_store, tmp_path):
    from lrid.identify import classify

    classify(tiny_store, tmp_path / "results", classifiers=("rf",), n_splits=2, progress=False)
    report = write_report(tmp_path / "results", store=tiny_store, n_repeats=1)
    figures = assert_figures_open(report)
    assert {"importance_measure.png", "importance_statistic.png", "importance_depth.png", "trajectories.png"} <= figures
    text = report.read_text()
    table = text.split("### Top 10 observables", 1)[1]
    assert len(re.findall(r"^\| \d+ \| \w+ \|", table, flags=re.M)) == 10


@pytest.fixture
def kept_figures(monkeypatch):
    """The figures the report draws, kept open (the figure functions close them once saved) for inspection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept, close = [], plt.close
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    for figure in kept:
        close(figure)


MATCHED_BINS = [  # a bin of only np and np_wn, and a bin of three rules with fa the majority
    {"bin": [0.1, 0.5], "n_test": 4, "accuracy": 0.75, "balanced_accuracy": 0.5, "chance": 0.75,
     "balanced_chance": 0.5, "rules": {"np": 3, "np_wn": 1}, "classifier": "rf"},
    {"bin": [0.5, 0.9], "n_test": 4, "accuracy": 0.5, "balanced_accuracy": 0.5, "chance": 0.5,
     "balanced_chance": 1 / 3, "rules": {"adam": 1, "fa": 2, "sgd": 1}, "classifier": "rf"},
]


def test_matched_control_draws_and_tabulates_each_bin_against_its_own_chance(tmp_path, kept_figures):
    from matplotlib.collections import LineCollection

    scores = minimal_scores()
    scores["classes"] = ["adam", "fa", "np", "np_wn", "sgd", "sgdm", "ia", "ss", "dtp"]
    scores["control"] = {"curve_baseline": {}, "matched_bins": MATCHED_BINS}
    (tmp_path / "scores.json").write_text(json.dumps(scores))
    text = write_report(tmp_path, tmp_path / "out", importance=False).read_text()
    assert "| 0.100–0.500 | 4 | np 3, np_wn 1 | 0.750 | 0.750 | 0.500 | 0.500 |" in text
    assert "| 0.500–0.900 | 4 | adam 1, fa 2, sgd 1 | 0.500 | 0.500 | 0.500 | 0.333 |" in text
    assert "predate" not in text
    control = next(f for f in kept_figures if "Performance-matched" in f.axes[0].get_title())
    marks = [c for c in control.axes[0].collections if isinstance(c, LineCollection)]
    heights = [sorted(segment[0][1] for segment in mark.get_segments()) for mark in marks]
    assert heights == [[0.5, 0.75], [1 / 3, 0.5]]  # accuracy's chance per bin, then balanced accuracy's
    assert not any(line.get_linestyle() == "--" and len(set(line.get_ydata())) == 1 for line in control.axes[0].lines)


def test_matched_control_of_older_scores_falls_back_to_balanced_rules(tmp_path):
    (tmp_path / "scores.json").write_text(json.dumps(full_scores()))  # bins without chance or rule counts
    text = write_report(tmp_path, tmp_path / "out", importance=False).read_text()
    assert "| 0.800–0.900 | 12 | – | 0.700 | 0.250 | – | 0.250 |" in text
    assert "predate per-bin chance levels: chance is taken from balanced rules (1 / 4)" in text


@pytest.mark.parametrize("subsets, classifiers", [
    (["all"], ["rf"]), (["all"], ["linear", "rf"]), (["all", "weight", "act", "actchange"], ["linear", "rf", "xgb"]),
])
def test_accuracy_figure_title_lies_inside_the_figure(tmp_path, kept_figures, subsets, classifiers):
    import pandas as pd

    from lrid.report import figures

    rows = [{"subset": s, "classifier": c, "accuracy_mean": 0.5, "accuracy_sem": 0.05} for s in subsets for c in classifiers]
    figures.plot_accuracy(pd.DataFrame(rows), 0.25, tmp_path / "accuracy.png")
    (figure,) = kept_figures
    figure.draw_without_rendering()
    renderer = figure.canvas.get_renderer()
    titles = [t for t in [figure._suptitle, *(axis.title for axis in figure.axes)] if t is not None and t.get_text()]
    assert titles
    for title in titles:
        extent = title.get_window_extent(renderer)
        inside = figure.bbox
        assert inside.x0 <= extent.x0 and extent.x1 <= inside.x1 and inside.y0 <= extent.y0 and extent.y1 <= inside.y1, title.get_text()
