"""``report.md``: what was classified, how well, which observables carried the answer, and, when the results
hold them, robustness, held-out generalisation and the performance-matched control.

Each optional section is written only when its input is present (``by_subset``, ``d_prime``, ``control``,
``settings.train_where``/``test_where``, ``robustness.json``, a reachable store for importance and
trajectories) and is left out cleanly otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lrid.errors import LridError
from lrid.identify.partial_layers import DESCRIPTIONS
from lrid.report import figures
from lrid.report.results import as_scores, chance_level, load_robustness, load_scores
from lrid.schema import ControlScores, LayersCalibration, PointsCalibration, Scores, SetCalibration

IMPORTANCE_LEVELS = ("measure", "statistic", "depth")
TOP_TRAJECTORIES = 4


def accuracy_frame(scores: Scores | dict) -> pd.DataFrame:
    """Accuracy per observable subset and classifier (columns subset, classifier, accuracy_mean,
    accuracy_sem, balanced_accuracy_mean), from ``by_subset`` (the main results for older files)."""
    rows = [
        {
            "subset": subset,
            "classifier": name,
            "accuracy_mean": result.accuracy_mean,
            "accuracy_sem": result.accuracy_sem,
            "balanced_accuracy_mean": np.nan
            if result.balanced_accuracy_mean is None
            else result.balanced_accuracy_mean,
        }
        for subset, results in as_scores(scores).by_subset.items()
        for name, result in results.items()
    ]
    return pd.DataFrame(rows)


def accuracy_table(scores: Scores | dict) -> str:
    """The Markdown accuracy table: mean ± s.e.m. over splits, and balanced accuracy, per classifier."""
    lines = ["| classifier | accuracy (mean ± s.e.m.) | balanced accuracy | splits |", "|---|---|---|---|"]
    for name, result in as_scores(scores).classifiers.items():
        lines.append(
            f"| {name} | {result.accuracy_mean:.3f} ± {result.accuracy_sem:.3f} | "
            f"{_number(result.balanced_accuracy_mean)} | {len(result.accuracy_per_split)} |"
        )
    return "\n".join(lines)


def importance_markdown(table: pd.DataFrame, level: str, top: int = 10) -> str:
    """The top rows of a :func:`~lrid.identify.importance.summarize_importance` table as Markdown."""
    lines = [
        f"| rank | {level} | permutation (mean ± s.d.) | model's own (mean ± s.d.) |",
        "|---|---|---|---|",
    ]
    for row in table.head(top).itertuples():
        lines.append(
            f"| {row.rank} | {row.group} | {_mean_sd(row.permutation_mean, row.permutation_sd)} | "
            f"{_mean_sd(row.model_mean, row.model_sd)} |"
        )
    return "\n".join(lines)


def write_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    store: str | Path | None = None,
    importance: bool = True,
    n_repeats: int = 3,
) -> Path:
    """Write ``report.md`` and ``figures/*.png`` to ``out_dir`` (default: the results' parent).

    Args:
        results_dir: a directory written by ``lrid classify``.
        out_dir: where the report and its figures go.
        store: the store the results came from, when ``scores.json`` does not name it (for the importance
            and trajectory sections; they are skipped, with the reason, when no store is reachable).
        importance: compute observable importance of the best classifier's per-split models (cached).
        n_repeats: permutations per group for permutation importance.

    Returns:
        The path of ``report.md``.
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir.resolve().parent
    scores = load_scores(results_dir)
    figure_dir = out_dir / "figures"
    chance = chance_level(scores)
    sections = [_overview(scores, chance)]
    sections.append(_accuracy_section(scores, chance, figure_dir, out_dir))
    sections.append(_confusion_section(scores, figure_dir, out_dir))
    optional_sections = (
        _d_prime_section(scores),
        _held_out_section(scores),
        _schedules_section(scores),
        _prediction_sets_section(scores),
    )
    for optional in optional_sections:
        if optional:
            sections.append(optional)
    if importance:
        sections.append(_importance_section(results_dir, scores, store, n_repeats, figure_dir, out_dir))
    robustness = load_robustness(results_dir)
    if robustness is not None:
        sections.append(_robustness_section(robustness, chance, figure_dir, out_dir))
    if scores.control is not None:
        sections.append(_control_section(scores.control, len(scores.classes), figure_dir, out_dir))
    report = out_dir / "report.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n\n".join(section.strip() for section in sections) + "\n")
    return report


def _overview(scores: Scores, chance: float) -> str:
    settings = scores.settings
    sample = "one per run, its layers pooled" if settings.unit == "run" else "one per measured layer of a run"
    source = f" from the store `{settings.store}`" if settings.store else ""
    return f"""# Learning-rule identification report

{scores.n_runs} runs of {len(scores.classes)} rules ({", ".join(scores.classes)}){source} gave
{scores.n_samples} samples ({sample}) of {scores.n_features} features each.
Each classifier was trained and tested on {scores.n_splits} category-balanced splits
({1 - scores.test_fraction:.0%} train / {scores.test_fraction:.0%} test, by run: no network has
layers on both sides). Chance is {chance:.3f}."""


def _accuracy_section(scores: Scores, chance: float, figure_dir: Path, out_dir: Path) -> str:
    frame = accuracy_frame(scores)
    path = figures.plot_accuracy(frame, chance, figure_dir / "accuracy.png")
    return f"""## Accuracy

{accuracy_table(scores)}

![Accuracy by classifier and observable subset]({_relative(path, out_dir)})

Test accuracy of each classifier for each subset of observables (bars: mean over splits, whiskers:
s.e.m.), against chance (dashed line)."""


def _confusion_section(scores: Scores, figure_dir: Path, out_dir: Path) -> str:
    results = scores.classifiers
    path = figures.plot_confusions(
        scores.classes,
        {name: result.confusion_normalized for name, result in results.items()},
        {name: result.accuracy_mean for name, result in results.items()},
        figure_dir / "confusion.png",
    )
    return f"""## Confusion matrices

![Mean confusion matrices]({_relative(path, out_dir)})

Each panel shows, for one classifier, how the test samples of each true rule (rows) were labelled,
averaged over splits; a strong diagonal means the rules are told apart, and off-diagonal mass shows
which rules are confused with each other."""


def _d_prime_section(scores: Scores) -> str | None:
    with_d_prime = {name: result.d_prime for name, result in scores.classifiers.items() if result.d_prime}
    if not with_d_prime:
        return None
    classes = scores.classes
    lines = ["| classifier | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for name, values in with_d_prime.items():
        lines.append(f"| {name} | " + " | ".join(_number(values.get(rule)) for rule in classes) + " |")
    return (
        "## Discriminability (d')\n\n"
        + "\n".join(lines)
        + (
            "\n\nd' of each rule against the others (hit rate vs false-alarm rate, in units of a standard normal); "
            "0 is chance, above 2 is well separated."
        )
    )


def _held_out_section(scores: Scores) -> str | None:
    train_where, test_where = scores.settings.train_where, scores.settings.test_where
    if not (train_where or test_where):
        return None
    lines = [
        "| classifier | trained on | tested on | accuracy (mean ± s.e.m.) | balanced accuracy |",
        "|---|---|---|---|---|",
    ]
    for name, result in scores.classifiers.items():
        lines.append(
            f"| {name} | {train_where or 'the rest'} | {test_where or 'the rest'} | "
            f"{result.accuracy_mean:.3f} ± {result.accuracy_sem:.3f} | {_number(result.balanced_accuracy_mean)} |"
        )
    return (
        "## Held-out generalisation\n\n"
        + "\n".join(lines)
        + (
            "\n\nClassifiers trained on one part of the store and tested on another it never saw: accuracy well "
            "above chance means the signature of the rule transfers across the held-out factor."
        )
    )


def _prediction_sets_section(scores: Scores) -> str | None:
    calibrated = {name: result.prediction_sets for name, result in scores.classifiers.items() if result.prediction_sets}
    if not calibrated:
        return None
    coverage = next(iter(calibrated.values())).coverage
    lines = [
        "| classifier | runs recorded at | threshold | test runs | held the true rule | rules per set |",
        "|---|---|---|---|---|---|",
    ]
    for name, sets in calibrated.items():
        recorded = f"{sets.points} points" if sets.points is not None else "as recorded"
        labelled: list[tuple[str, SetCalibration | PointsCalibration | LayersCalibration]] = [(recorded, sets)]
        labelled += [(f"{entry.points} points", entry) for entry in sets.by_points]
        labelled += [(DESCRIPTIONS[entry.layers].removeprefix("at "), entry) for entry in sets.by_layers]
        for label, entry in labelled:
            lines.append(
                f"| {name} | {label} | {entry.threshold:.3f} | {entry.runs} | {entry.held:.2f} | {entry.mean_size:.1f} |"
            )
    return (
        f"## Prediction sets at {coverage:.0%}\n\n"
        + "\n".join(lines)
        + (
            f"\n\n`lrid identify` names, beside each answer of a saved model, the rules it cannot rule out: every "
            f"rule whose probability reaches the threshold. The threshold is calibrated on the splits' test runs "
            f"(split conformal), so that sets made this way hold the true rule of at least {coverage:.0%} of runs "
            "like them; the fewer rules per set, the more decisive the model. A model trained with `--schedules` "
            "has a threshold for each number of checkpoints, calibrated on the test runs re-recorded so: a run "
            "recorded at fewer points gets the one of the most points it reaches. A model trained with "
            "`--partial-layers` has one for each choice of layers, calibrated on the test runs seen so: a recording "
            "of one layer gets the `single` one, of several the `hidden` one."
        )
    )


def _schedules_section(scores: Scores) -> str | None:
    by_classifier = {name: result.schedule_summary() for name, result in scores.classifiers.items()}
    schedules = next((list(summary) for summary in by_classifier.values() if summary), None)
    if not schedules:
        return None
    lines = ["| classifier | " + " | ".join(schedules) + " |", "|---|" + "---|" * len(schedules)]
    for name, summary in by_classifier.items():
        cells = (f"{summary[s][0]:.3f} ± {summary[s][1]:.3f}" if s in summary else "-" for s in schedules)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return (
        "## Checkpoint schedules\n\n"
        + "\n".join(lines)
        + (
            f"\n\nThe classifiers were also trained on every training run re-recorded at the checkpoint schedules "
            f"{', '.join(scores.settings.schedules)} (even<k>: k evenly spaced recorded points; log<k>: denser "
            "early), and each column is their accuracy (mean ± s.e.m. over splits) on the test runs recorded so: "
            "how well they read networks recorded a few times."
        )
    )


def _importance_section(
    results_dir: Path, scores: Scores, store, n_repeats: int, figure_dir: Path, out_dir: Path
) -> str:
    from lrid.identify.importance import best_classifier, observable_importance, summarize_importance

    classifier = best_classifier(scores)
    try:
        per_split = observable_importance(results_dir, classifier, store=store, n_repeats=n_repeats)
    except LridError as error:
        return f"## Observable importance\n\nNot computed: {error}."
    text = [
        "## Observable importance",
        f"Importance for `{classifier}` (the most accurate classifier with an importance of its own), over {per_split['split'].nunique()} splits: "
        "the held-out accuracy drop when a group of columns is permuted together (permutation), and the "
        "model's own importance summed over the group (random-forest impurity, XGBoost gain, or mean |coefficient| "
        "of the linear model, as a share of the total), of the models `lrid classify` fitted on each split. "
        "`lrid report importance RESULTS --by LEVEL` prints any level."
        + (f" Note: {per_split.attrs['note']}." if per_split.attrs.get("note") else ""),
        "### Top 10 observables\n\n" + importance_markdown(summarize_importance(per_split, "observable"), "observable"),
    ]
    for level in IMPORTANCE_LEVELS:
        table = summarize_importance(per_split, level)
        path = figures.plot_importance(table, level, classifier, figure_dir / f"importance_{level}.png")
        what = {
            "measure": "which measured quantity (weights, activations, activity changes) the classifier relies on",
            "statistic": "which summary statistic of those quantities carries the rule",
            "depth": "how much the classifier relies on the observables of early, middle and deep layers "
            "(permutation within the test samples of that depth) and on the depth one-hot",
        }[level]
        text.append(
            f"![Importance by {level}]({_relative(path, out_dir)})\n\nImportance by {level} "
            f"(bars: mean over splits, whiskers: s.d.): {what}."
        )
    trajectories = _trajectory_figure(results_dir, scores, store, per_split, figure_dir)
    if trajectories is not None:
        path, names = trajectories
        text.append(
            f"![Trajectories of the top observables]({_relative(path, out_dir)})\n\nThe {len(names)} most "
            f"important observables ({', '.join(names)}) over training for each rule and depth group: "
            "median over runs (line) and inter-quartile band."
        )
    return "\n\n".join(text)


def _trajectory_figure(results_dir: Path, scores: Scores, store, per_split: pd.DataFrame, figure_dir: Path):
    from lrid.identify.importance import column_levels, summarize_importance
    from lrid.store import Store

    location = store if store is not None else scores.settings.store
    if location is None:
        return None
    ranked = summarize_importance(per_split, "observable")["group"]
    observables = Store(location).read_observables(("complete",))
    names = [name for name in ranked if name in observables.columns and column_levels(name).measure != "other"]
    names = names[:TOP_TRAJECTORIES]
    if not names or observables.empty:
        return None
    return figures.plot_trajectories(observables, names, figure_dir / "trajectories.png"), names


def _robustness_section(rows: pd.DataFrame, chance: float, figure_dir: Path, out_dir: Path) -> str:
    path = figures.plot_robustness(rows, chance, figure_dir / "robustness.png")
    return f"""## Robustness

![Robustness curves]({_relative(path, out_dir)})

Identification accuracy as fewer units are observed (left) and as measurement noise grows (right), across
the degraded views the store recorded, for each observable subset and classifier (mean ± s.e.m. over
splits; chance dashed)."""


def _control_section(control: ControlScores, n_classes: int, figure_dir: Path, out_dir: Path) -> str:
    text = ["## Performance-matched control"]
    if control.curve_baseline:
        lines = ["| classifier | accuracy from task performance alone (mean ± s.e.m.) |", "|---|---|"]
        lines += [
            f"| {name} | {r.accuracy_mean:.3f} ± {r.accuracy_sem:.3f} |" for name, r in control.curve_baseline.items()
        ]
        text.append(
            "\n".join(lines) + "\n\nHow well the rule is told from task performance alone: if this "
            "matches the main accuracy, the observables add nothing beyond how well each rule trains."
        )
    from lrid.identify.control import bins_with_chance  # importing lrid.identify loads scikit-learn

    # As written: a bin from before per-bin chance has no chance key, and the note below says so.
    bins = [entry.model_dump(exclude_unset=True) for entry in control.matched_bins]
    if bins:
        frame = pd.DataFrame(bins_with_chance(bins, n_classes))
        if "n_test" not in frame:
            frame["n_test"] = np.nan
        path = figures.plot_matched_control(frame, figure_dir / "control.png")
        who = f" of `{frame['classifier'].iloc[0]}`" if "classifier" in frame else ""
        text.append(
            f"![Performance-matched control]({_relative(path, out_dir)})\n\nIdentification accuracy{who} among "
            "networks of similar final task performance (one group per bin, n = test samples), each bar against "
            "its own bin's chance: rules are not balanced within a bin, so chance there is the majority rule's "
            "share of the bin's test samples for accuracy, and 1 / (rules in the bin) for balanced accuracy. "
            "Accuracy above its bin's chance means the rule is identified beyond how well it trains."
        )
        text.append(_bins_table(frame))
        if not any("chance" in entry for entry in bins):
            source = (
                "their rule counts"
                if any(entry.rules for entry in control.matched_bins)
                else f"balanced rules (1 / {n_classes})"
            )
            text.append(
                f"These results predate per-bin chance levels: chance is taken from {source}; re-run "
                "`lrid classify` for the balanced accuracy per bin."
            )
    return "\n\n".join(text)


def _bins_table(bins: pd.DataFrame) -> str:
    lines = [
        "| final test accuracy bin | test samples | rules (test samples) | accuracy | chance (majority share) "
        "| balanced accuracy | chance (1 / rules) |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in bins.to_dict("records"):
        rules = entry.get("rules")
        rules = (
            ", ".join(f"{rule} {count}" for rule, count in rules.items()) if isinstance(rules, dict) and rules else "–"
        )
        count = entry["n_test"]
        lines.append(
            f"| {entry['bin'][0]:.3f}–{entry['bin'][1]:.3f} | {'–' if pd.isna(count) else int(count)} | {rules} "
            f"| {_number(entry['accuracy'])} | {_number(entry['chance'])} | {_number(entry['balanced_accuracy'])} "
            f"| {_number(entry['balanced_chance'])} |"
        )
    return "\n".join(lines)


def _relative(path: Path, out_dir: Path) -> str:
    return path.relative_to(out_dir).as_posix()


def _number(value) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def _mean_sd(mean: float, sd: float) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.4f} ± {0.0 if np.isnan(sd) else sd:.4f}"
