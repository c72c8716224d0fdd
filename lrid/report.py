"""Stage 3: a Markdown report with the accuracy table and confusion matrices of a classify run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lrid.errors import LridError


def load_scores(results_dir: str | Path) -> dict:
    """Read ``scores.json`` from a results directory, with a clear error if it is missing or corrupt."""
    path = Path(results_dir) / "scores.json"
    if not path.is_file():
        raise LridError(f"{path} does not exist; run `lrid classify --store STORE --out {results_dir}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise LridError(f"{path} is not valid JSON; re-run `lrid classify` to rewrite it") from None


def plot_confusions(scores: dict, path: Path) -> None:
    """One row-normalised mean confusion matrix per classifier, side by side, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = scores["classes"]
    names = list(scores["classifiers"])
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.4), squeeze=False, constrained_layout=True)
    for axis, name in zip(axes[0], names):
        matrix = np.asarray(scores["classifiers"][name]["confusion_normalized"])
        image = axis.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
        for (row, column), value in np.ndenumerate(matrix):
            axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=9,
                      color="white" if value > 0.6 else "black")
        axis.set_xticks(range(len(classes)), classes, rotation=45)
        axis.set_yticks(range(len(classes)), classes)
        axis.set_xlabel("predicted rule")
        axis.set_ylabel("true rule")
        accuracy = scores["classifiers"][name]["accuracy_mean"]
        axis.set_title(f"{name} (accuracy {accuracy:.2f})")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="fraction of the true rule's test samples (mean over splits)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def accuracy_table(scores: dict) -> str:
    """The Markdown accuracy table: mean ± s.e.m. over splits, and balanced accuracy, per classifier."""
    lines = ["| classifier | accuracy (mean ± s.e.m.) | balanced accuracy | splits |", "|---|---|---|---|"]
    for name, result in scores["classifiers"].items():
        lines.append(
            f"| {name} | {result['accuracy_mean']:.3f} ± {result['accuracy_sem']:.3f} | "
            f"{result['balanced_accuracy_mean']:.3f} | {len(result['accuracy_per_split'])} |"
        )
    return "\n".join(lines)


def write_report(results_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` and ``figures/confusion.png`` to ``out_dir`` (default: the results' parent)."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir.resolve().parent
    scores = load_scores(results_dir)
    figure = out_dir / "figures" / "confusion.png"
    plot_confusions(scores, figure)
    chance = 1.0 / len(scores["classes"])
    text = f"""# Learning-rule identification report

{scores['n_runs']} runs of {len(scores['classes'])} rules ({', '.join(scores['classes'])}) gave
{scores['n_samples']} samples (one per measured layer of a run) of {scores['n_features']} features each.
Each classifier was trained and tested on {scores['n_splits']} category-balanced splits
({1 - scores['test_fraction']:.0%} train / {scores['test_fraction']:.0%} test, by run: no network has
layers on both sides). Chance is {chance:.3f}.

## Accuracy

{accuracy_table(scores)}

## Confusion matrices

![Mean confusion matrices]({figure.relative_to(out_dir).as_posix()})

Each panel shows, for one classifier, how the test samples of each true rule (rows) were labelled,
averaged over splits; a strong diagonal means the rules are told apart, and off-diagonal mass shows
which rules are confused with each other.
"""
    report = out_dir / "report.md"
    report.write_text(text)
    return report
