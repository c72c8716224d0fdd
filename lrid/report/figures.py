"""The report's figures, one function per PNG; each takes plain data, so notebooks can call them too.

Every figure has a title, labelled axes (with the unit: fraction of test samples, accuracy drop, epoch,
...), a legend where there is more than one series, and fonts readable when the PNG is shrunk to a
column width.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lrid.schema import DEPTH_GROUPS

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.typing import RcKeyType

STYLE: dict[RcKeyType, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
DPI = 120


@contextmanager
def _figure(path: Path, **subplots):
    """A figure in the report's style, saved to ``path`` and closed on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(STYLE):
        figure, axes = plt.subplots(constrained_layout=True, squeeze=False, **subplots)
        try:
            yield figure, axes
            path.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, dpi=DPI)
        finally:
            plt.close(figure)


def plot_accuracy(accuracy: pd.DataFrame, chance: float, path: Path) -> Path:
    """Grouped bars of test accuracy (mean ± s.e.m. over splits) per observable subset and classifier.

    ``accuracy`` has columns subset, classifier, accuracy_mean, accuracy_sem; chance is a dashed line.
    """
    subsets = list(dict.fromkeys(accuracy["subset"]))
    classifiers = list(dict.fromkeys(accuracy["classifier"]))
    width = 0.8 / len(classifiers)
    with _figure(path, figsize=(max(5.0, 1.3 * len(subsets) * max(1, len(classifiers)) / 2 + 2.5), 4.2)) as (
        figure,
        axes,
    ):
        axis = axes[0][0]
        for index, name in enumerate(classifiers):
            rows = accuracy[accuracy["classifier"] == name].set_index("subset").reindex(subsets)
            positions = np.arange(len(subsets)) + (index - (len(classifiers) - 1) / 2) * width
            axis.bar(positions, rows["accuracy_mean"], width, yerr=rows["accuracy_sem"], capsize=3, label=name)
        axis.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})")
        axis.set_xticks(range(len(subsets)), subsets, rotation=20 if len(subsets) > 3 else 0)
        axis.set_ylim(0, 1)
        axis.set_xlabel("observables used")
        axis.set_ylabel("test accuracy (fraction correct)")
        # Centred on the figure, not the axes (which the legend pushes left), and on two lines, so that a
        # narrow figure of one subset still holds it.
        figure.suptitle("Rule identification accuracy\n(mean ± s.e.m. over splits)", fontsize=STYLE["axes.titlesize"])
        axis.legend(title="classifier", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return path


def plot_confusions(
    classes: list[str],
    confusions: dict[str, np.ndarray] | dict[str, list[list[float]]],
    accuracies: dict[str, float],
    path: Path,
) -> Path:
    """One row-normalised mean confusion matrix per classifier, side by side."""
    names = list(confusions)
    with _figure(path, nrows=1, ncols=len(names), figsize=(4.3 * len(names) + 0.8, 4.5)) as (figure, axes):
        for axis, name in zip(axes[0], names):
            matrix = np.asarray(confusions[name], dtype=float)
            image = axis.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
            for (row, column), value in np.ndenumerate(matrix):
                axis.text(
                    column,
                    row,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=10,
                    color="white" if value > 0.6 else "black",
                )
            axis.set_xticks(range(len(classes)), classes, rotation=45)
            axis.set_yticks(range(len(classes)), classes)
            axis.set_xlabel("predicted rule")
            axis.set_ylabel("true rule")
            axis.set_title(f"{name} (accuracy {accuracies[name]:.2f})")
        figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="fraction of the true rule's test samples")
        figure.suptitle("Normalised confusion matrices (mean over splits)")
    return path


def plot_importance(table: pd.DataFrame, level: str, classifier: str, path: Path, top: int = 15) -> Path:
    """Horizontal bars of both importance kinds at one level (mean ± s.d. over splits), most important on top.

    ``table`` is :func:`lrid.identify.importance.summarize_importance`'s output.
    """
    shown = table.head(top).iloc[::-1]
    height = max(3.0, 0.32 * len(shown) + 1.6)
    with _figure(path, nrows=1, ncols=2, figsize=(11, height), sharey=True) as (figure, axes):
        panels = (
            ("permutation", "held-out accuracy drop when permuted\n(fraction of test samples)", "tab:blue"),
            ("model", "model's own importance\n(share of the total)", "tab:orange"),
        )
        for axis, (kind, label, colour) in zip(axes[0], panels):
            means = shown[f"{kind}_mean"].to_numpy(dtype=float)
            spreads = shown[f"{kind}_sd"].fillna(0).to_numpy(dtype=float)
            positions = np.arange(len(shown))
            axis.barh(
                positions, np.nan_to_num(means), xerr=spreads, color=colour, capsize=2, label=f"{kind} (mean ± s.d.)"
            )
            for position, value in zip(positions, means):
                if np.isnan(value):
                    axis.text(0, position, " n/a", va="center", fontsize=9, color="grey")
            axis.axvline(0, color="black", linewidth=0.8)
            axis.set_yticks(positions, shown["group"])
            axis.set_xlabel(label)
            axis.legend(loc="lower right")
        axes[0][0].set_ylabel(level)
        figure.suptitle(f"Which {level} identifies the rule ({classifier}, over {int(table['n_splits'].max())} splits)")
    return path


def plot_trajectories(observables: pd.DataFrame, names: list[str], path: Path) -> Path:
    """Median (line) and inter-quartile band over runs of each observable per rule, against epoch, for
    each depth group: one row per observable, one column per depth group."""
    groups = [group for group in DEPTH_GROUPS if (observables["depth_group"] == group).any()]
    rules = sorted(observables["rule"].unique())
    colours = {rule: f"C{index}" for index, rule in enumerate(rules)}
    # Runs are compared point by point (the k-th recording of each), placed at the points' median epoch:
    # runs of different batch sizes record at slightly different epochs, and grouping by the epoch
    # itself would alternate between them and draw a saw-tooth.
    observables = observables.sort_values(["run_id", "layer_index", "step"])
    observables = observables.assign(point=observables.groupby(["run_id", "layer_index"]).cumcount())
    with _figure(
        path,
        nrows=len(names),
        ncols=len(groups),
        figsize=(4.0 * len(groups) + 1.5, 2.7 * len(names) + 0.6),
        sharex=True,
    ) as (figure, axes):
        for row, name in enumerate(names):
            for column, group in enumerate(groups):
                axis = axes[row][column]
                subset = observables[observables["depth_group"] == group]
                for rule in rules:
                    by_rule = subset[subset["rule"] == rule]
                    quantiles = by_rule.groupby("point")[name].quantile([0.25, 0.5, 0.75]).unstack()
                    epochs = by_rule.groupby("point")["epoch"].median()
                    axis.plot(epochs, quantiles[0.5], color=colours[rule], label=rule)
                    axis.fill_between(epochs, quantiles[0.25], quantiles[0.75], color=colours[rule], alpha=0.2)
                axis.set_title(f"{name}, {group} layers", fontsize=10)
                if column == 0:
                    axis.set_ylabel("value (a.u.)")
                if row == len(names) - 1:
                    axis.set_xlabel("training time (epochs)")
        axes[0][-1].legend(title="rule (median, IQR)", loc="upper left", bbox_to_anchor=(1.02, 1.0))
        figure.suptitle(
            "Trajectories of the most important observables per rule (median and inter-quartile band over runs)"
        )
    return path


def plot_robustness(rows: pd.DataFrame, chance: float, path: Path) -> Path:
    """Accuracy (mean ± s.e.m.) against the fraction of units kept (at the lowest noise) and against the
    measurement-noise s.d. (with all units kept): one line per observable subset and classifier, across
    the recorded views."""
    series = ["observables", "classifier"] if "observables" in rows else ["classifier"]
    cleanest = rows["noise_std"].min()
    fullest = rows["units_fraction"].max()
    panels = (
        (rows[rows["noise_std"] == cleanest], "units_fraction", "fraction of units kept", f"noise s.d. {cleanest:g}"),
        (
            rows[rows["units_fraction"] == fullest],
            "noise_std",
            "measurement noise added (s.d.)",
            f"units kept {fullest:g}",
        ),
    )
    with _figure(path, nrows=1, ncols=2, figsize=(11, 4.2), sharey=True) as (figure, axes):
        for axis, (subset, x, label, fixed) in zip(axes[0], panels):
            for key, line in subset.groupby(series, sort=True):
                line = line.sort_values(x)
                axis.errorbar(
                    line[x],
                    line["accuracy_mean"],
                    yerr=line["accuracy_sem"],
                    marker="o",
                    capsize=3,
                    label=" / ".join(map(str, key if isinstance(key, tuple) else (key,))),
                )
            axis.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})")
            axis.set_xlabel(label)
            axis.set_title(f"Accuracy vs {label.split(' (')[0]} ({fixed})", fontsize=11)
            axis.set_ylim(0, 1)
            axis.legend(title=" / ".join(series), fontsize=8)
        axes[0][0].set_ylabel("test accuracy (fraction correct)")
        figure.suptitle("Robustness to unit subsampling and measurement noise")
    return path


def plot_matched_control(bins: pd.DataFrame, path: Path) -> Path:
    """Identification accuracy within bins of matched network performance, each bar against its bin's chance.

    ``bins`` has columns bin ([low, high]), n_test, accuracy and chance, and optionally balanced_accuracy and
    balanced_chance (drawn as a second bar where known). Rules are not balanced within a bin, so each bar
    gets its own chance mark rather than one line for all.
    """
    labels = [f"{lo:.2f}–{hi:.2f}" for lo, hi in bins["bin"]]
    series = [("accuracy", "chance", "tab:green", "accuracy", "chance: majority rule's share of the bin")]
    if "balanced_accuracy" in bins and pd.to_numeric(bins["balanced_accuracy"], errors="coerce").notna().any():
        series.append(
            ("balanced_accuracy", "balanced_chance", "tab:purple", "balanced accuracy", "chance: 1 / rules in the bin")
        )
    width = 0.8 / len(series)
    with _figure(path, figsize=(max(8.0, 0.9 * len(labels) * len(series) + 4.5), 4.4)) as (figure, axes):
        axis = axes[0][0]
        for index, (value_key, chance_key, color, label, chance_label) in enumerate(series):
            positions = np.arange(len(labels)) + (index - (len(series) - 1) / 2) * width
            values = pd.to_numeric(bins[value_key], errors="coerce")
            chances = pd.to_numeric(bins[chance_key], errors="coerce")
            axis.bar(positions, values, width, color=color, label=label)
            axis.hlines(
                chances,
                positions - width / 2,
                positions + width / 2,
                colors="black",
                linestyles="--" if index == 0 else ":",
                linewidth=1.5,
                label=chance_label,
            )
        tops = pd.concat([pd.to_numeric(bins[key], errors="coerce") for key, *_ in series], axis=1).max(axis=1)
        for position, (top, count) in enumerate(zip(tops, bins["n_test"])):
            if not (np.isnan(top) or pd.isna(count)):
                axis.text(position, min(top, 1.0) + 0.02, f"n={int(count)}", ha="center", fontsize=9)
        axis.set_xticks(range(len(labels)), labels, rotation=30)
        axis.set_ylim(0, 1.12)
        axis.set_xlabel("bin of the networks' final test accuracy (fraction correct)")
        axis.set_ylabel("rule identification accuracy\n(fraction correct)")
        axis.set_title("Performance-matched control:\nidentification within bins of task performance")
        axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return path
