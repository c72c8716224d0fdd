"""The ``lrid`` command line: generate, classify, report, or all three with ``run``.

TensorFlow is imported only by the commands that train networks, so the others start quickly.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from lrid.errors import LridError
from lrid.lazy_import import exit_now

if TYPE_CHECKING:
    import pandas as pd

    from lrid.schema import Scores

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

# C0/C1 control characters (escape sequences among them) and invisible bidirectional overrides.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class _PlainConsole(Console):
    """A console that prints every string as it is: no markup or emoji codes, control characters made visible.

    Paths, YAML keys, run names and error messages come from users and their files: read as markup, ``[/x]``
    would crash the CLI and ``[bold]`` vanish, and an escape sequence in a recording's run name would reach
    the terminal. Nothing lrid prints relies on markup, so it is off for every string, table cells included.
    """

    def __init__(self, **options):
        super().__init__(markup=False, emoji=False, **options)

    def render_str(self, text: str, **options):
        """Render ``text`` literally, with control characters shown as escapes (``\\x1b``)."""
        return super().render_str(
            _CONTROL.sub(lambda match: ascii(match.group())[1:-1], text), **{**options, "markup": False, "emoji": False}
        )


console = _PlainConsole(soft_wrap=True)
error_console = _PlainConsole(stderr=True)

ClassifierOption = Annotated[
    str,
    typer.Option("--classifiers", help="comma-separated classifiers: linear, rf, xgb, conv1d, or any registered one"),
]
JobsOption = Annotated[int, typer.Option("--jobs", help="parallel jobs for the classifiers")]
SplitsOption = Annotated[int, typer.Option("--splits", help="number of balanced 75/25 splits")]


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parse_classifiers(text: str) -> tuple[str, ...]:
    """The classifier names in ``text``, refused when unknown or when their library is not installed."""
    from lrid.identify.classifiers import CLASSIFIERS
    from lrid.lazy_import import require_extra

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in CLASSIFIERS]
    if unknown or not names:
        raise LridError(f"unknown classifier(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(CLASSIFIERS)}")
    for name in names:
        if CLASSIFIERS[name].requires:
            require_extra(*CLASSIFIERS[name].requires, purpose=f"the {name} classifier")
    return names


def _require_jobs(jobs: int) -> None:
    """``--jobs`` follows scikit-learn: a positive count, or -1 for every core."""
    if jobs == 0 or jobs < -1:
        raise LridError(f"--jobs {jobs} is not a number of parallel jobs; give a positive count, or -1 for every core")


def _require_positive(option: str, value: int | None, other: str = "") -> None:
    """A count option (workers, splits) below 1 is a one-line error, not a traceback from deep inside."""
    if value is not None and value < 1:
        raise LridError(f"{option} must be at least 1, not {value}{other}")


def _require_directory(option: str, path: Path) -> None:
    """Refuse an output directory that is, or lies under, an existing file, before anything is computed."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is" if candidate == path else f"lies under {candidate}, which is"
                raise LridError(f"{option} {path} {where} a file, not a directory; give a directory for the results")
            return


def _require_tensorflow(purpose: str) -> None:
    from lrid.lazy_import import require_extra

    require_extra("tensorflow", purpose=purpose)


BackendOption = Annotated[str, typer.Option("--backend", help="sequential, process (a local pool) or ray")]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", help="processes for --backend process (default: the machine's cores)")
]
AddressOption = Annotated[
    str | None, typer.Option("--address", help="Ray cluster address for --backend ray (default: start a local Ray)")
]
CpusOption = Annotated[float, typer.Option("--num-cpus", help="CPUs each Ray task requests")]
GpusOption = Annotated[float, typer.Option("--num-gpus", help="GPUs each Ray task requests")]


def _generate(
    spec_path: Path,
    store: str,
    retry_failed: bool,
    backend: str = "process",
    workers: int | None = None,
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    population: int = 1,
) -> None:
    _require_tensorflow("training networks")
    _require_positive("--workers", workers, " (processes for --backend process)")
    from lrid.config import load_sweep
    from lrid.generate import generate
    from lrid.generate.executors import make_executor

    sweep = load_sweep(spec_path)
    executor = make_executor(
        backend, workers=workers, address=address, num_cpus=num_cpus, num_gpus=num_gpus, population=population
    )
    _quiet_tensorflow()
    started = time.perf_counter()
    summary = generate(sweep, store, retry_failed=retry_failed, executor=executor)
    console.print(
        f"generate: {summary.total} runs in the sweep, {summary.skipped} already in {store}, "
        f"{summary.complete} complete, {summary.collapsed} collapsed, {summary.diverged} diverged, {summary.failed} failed "
        f"({time.perf_counter() - started:.1f} s)"
    )
    if summary.skipped_failed:
        console.print(
            f"{summary.skipped_failed} run(s) that failed before were skipped; add --retry-failed to retry them"
        )
    if summary.elsewhere:
        console.print(
            f"{summary.elsewhere} run(s) being trained by another process were left to it; "
            "run generate again after it ends to pick up any it did not finish"
        )
    for error in summary.errors:
        error_console.print(f"  failed run {error}")
    if summary.failed:
        raise LridError(f"{summary.failed} run(s) failed (listed above); fix the cause and re-run with --retry-failed")


def _classify(store: str, results: Path, classifiers: str, splits: int, jobs: int, **options) -> Scores:
    from lrid.identify import classify
    from lrid.identify.classifiers import CLASSIFIERS
    from lrid.identify.splits import check_held_out_filters
    from lrid.schema import ClassifySpec

    started = time.perf_counter()
    names = _parse_classifiers(classifiers)
    _require_positive("--splits", splits)
    _require_jobs(jobs)
    _require_directory("--out", results)
    check_held_out_filters(options.get("train_where"), options.get("test_where"))
    if any(CLASSIFIERS[name].needs_tensorflow for name in names):
        _quiet_tensorflow()
    spec = ClassifySpec.build(
        store=store, results_dir=results, classifiers=names, n_splits=splits, n_jobs=jobs, **options
    )
    scores = classify(spec)
    table = Table(
        title=f"Rule identification: {scores.n_runs} runs, {scores.n_samples} samples, chance {scores.chance:.3f}"
    )
    for column in ("observables", "classifier", "accuracy", "± s.e.m.", "balanced"):
        table.add_column(column, justify="left" if column in ("observables", "classifier") else "right")
    for subset, results_by_classifier in scores.by_subset.items():
        for name, result in results_by_classifier.items():
            table.add_row(
                subset,
                name,
                f"{result.accuracy_mean:.3f}",
                f"{result.accuracy_sem:.3f}",
                f"{result.balanced_accuracy_mean:.3f}",
            )
    console.print(table)
    for name, result in scores.classifiers.items():
        by_schedule = result.schedule_summary()
        if by_schedule:
            measured = ", ".join(f"{schedule} {mean:.3f} ± {sem:.3f}" for schedule, (mean, sem) in by_schedule.items())
            console.print(
                f"{name} on the test runs re-recorded ({scores.settings.observables.split(';')[0]}): {measured}"
            )
    for name, result in scores.classifiers.items():
        sets = result.prediction_sets
        if sets is not None:
            console.print(
                f"{name}: its saved model's prediction sets at {sets.coverage:.0%} keep every rule of probability "
                f"{sets.threshold:.3f} or more; on the {sets.runs} test runs they held the true rule for "
                f"{sets.held:.2f}, with {sets.mean_size:.1f} rules on average"
            )
            if sets.by_points:
                sparse = "; ".join(
                    f"{entry.points} points: {entry.threshold:.3f}, held {entry.held:.2f} with {entry.mean_size:.1f} rules"
                    for entry in sets.by_points
                )
                console.print(f"{name}: for runs recorded at fewer checkpoints, re-recorded test runs set: {sparse}")
            if sets.by_layers:
                partial = "; ".join(
                    f"{entry.layers}: {entry.threshold:.3f}, held {entry.held:.2f} with {entry.mean_size:.1f} rules"
                    for entry in sets.by_layers
                )
                console.print(f"{name}: for runs recorded at some of their layers, test runs seen so set: {partial}")
    control = scores.control
    if control is not None:
        baseline = ", ".join(
            f"{n} {r.accuracy_mean:.3f} ± {r.accuracy_sem:.3f}" for n, r in control.curve_baseline.items()
        )
        seen = control.curve_features
        console.print(f"control: performance-only baseline ({len(seen)} features, {seen[0]} .. {seen[-1]}): {baseline}")
        bins = "; ".join(
            f"[{b.bin[0]:.3f}, {b.bin[1]:.3f}] {b.accuracy:.3f} (chance {b.chance:.3f}), "
            f"balanced {b.balanced_accuracy:.3f} (chance {b.balanced_chance:.3f}), n={b.n_test}"
            for b in control.matched_bins
            if b.accuracy is not None
        )
        if bins:
            console.print(
                f"control: {control.matched_bins[0].classifier} accuracy within final-test-accuracy bins "
                f"(chance: the bin's majority rule share; balanced: 1 / its rules): {bins}"
            )
    console.print(f"classify: scores in {results / 'scores.json'} ({time.perf_counter() - started:.1f} s)")
    return scores


@app.command()
def generate(
    spec: Annotated[Path, typer.Argument(help="sweep YAML, e.g. pipelines/demo.yaml")],
    store: Annotated[str, typer.Option("--store", help="store directory or URI (s3://..., file://...)")],
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="re-run runs that failed before")] = False,
    backend: BackendOption = "process",
    workers: WorkersOption = None,
    address: AddressOption = None,
    num_cpus: CpusOption = 1,
    num_gpus: GpusOption = 0,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="print runs per rule and architecture and an estimated cost; write nothing"),
    ] = False,
    timing_batch: Annotated[
        int, typer.Option("--timing-batch", help="with --dry-run: largest batch to time steps at")
    ] = 64,
    population: Annotated[
        int,
        typer.Option(
            "--population",
            help="train up to K runs of one MLP shape, rule and schedule together in one step (1: every run alone)",
        ),
    ] = 1,
) -> None:
    """Train every run of a sweep that the store does not hold yet, recording its observables."""
    if dry_run:
        _dry_run(spec, store, timing_batch)
        return
    _generate(spec, store, retry_failed, backend, workers, address, num_cpus, num_gpus, population)


def _dry_run(spec_path: Path, store: str, timing_batch: int) -> None:
    _require_tensorflow("estimating a sweep's cost (--dry-run times training steps)")
    from lrid.config import load_sweep
    from lrid.generate.estimate import describe_spread, estimate_sweep
    from lrid.generate.sweep import pending_runs
    from lrid.store import Store

    sweep = load_sweep(spec_path)
    pending, done = pending_runs(sweep, Store(store))
    spread = describe_spread(sweep.sampled_values())
    if spread and sweep.sample is not None:
        table = Table(title=f"Sampled values over the {sweep.sample.n} configurations drawn per rule")
        table.add_column("key")
        table.add_column("spread")
        for key, line in spread:
            table.add_row(key, line)  # the consoles print text literally (no markup)
        console.print(table)
    _quiet_tensorflow()
    console.print(
        f"{spec_path}: {len(pending) + done} runs, {done} already in {store}; timing each rule on the "
        "cheapest architecture, scaling the others by multiply-adds..."
    )
    estimates = estimate_sweep(sweep, max_timing_batch=timing_batch)
    table = Table(title="Estimated cost on this machine, one worker")
    for column in (
        "task",
        "arch",
        "rule",
        "batch",
        "runs",
        "configs",
        "steps/run",
        "s/step",
        "compile s",
        "minutes",
        "estimated from",
    ):
        table.add_column(column, justify="left" if column in ("task", "arch", "rule", "estimated from") else "right")
    by_rule: dict[str, list[int]] = {}
    for e in sorted(estimates, key=lambda e: (e.task, e.arch, e.rule, e.batch_size)):
        table.add_row(
            e.task,
            e.arch,
            e.rule,
            str(e.batch_size),
            str(e.runs),
            str(e.configurations),
            f"{e.steps_per_run:,.0f}",
            f"{e.step_s:.4f}",
            f"{e.compile_s:.1f}",
            f"{e.total_seconds / 60:.1f}",
            e.how,
        )
        by_rule.setdefault(e.rule, []).append(e.runs)
    console.print(table)
    runs_by_arch: dict[str, int] = {}
    for e in estimates:
        runs_by_arch[e.arch] = runs_by_arch.get(e.arch, 0) + e.runs
    console.print("runs per rule: " + ", ".join(f"{r} {sum(n)}" for r, n in sorted(by_rule.items())))
    console.print("runs per architecture: " + ", ".join(f"{a} {n}" for a, n in sorted(runs_by_arch.items())))
    total = sum(e.total_seconds for e in estimates)
    console.print(
        f"total: {total / 60:.1f} minutes ({total / 3600:.2f} hours) of one worker on this machine "
        "(compile s: once per configuration); nothing was written"
    )


@app.command()
def status(
    store: Annotated[str, typer.Argument(help="store directory or URI")],
    spec: Annotated[Path | None, typer.Argument(help="a sweep YAML: also list its runs still missing")] = None,
) -> None:
    """Runs in a store by rule, architecture, task and status; with a sweep, what is still missing."""
    from lrid.schema import STATUSES
    from lrid.store import Store

    target = Store(store)
    if "://" not in store and not Path(store).is_dir() and spec is None:
        raise LridError(f"no store at {store}; give the directory `lrid generate --store` wrote")
    runs = target.runs_table()
    table = Table(title=f"{len(runs)} runs in {store}")
    for column in ("task", "arch", "rule", *STATUSES):
        table.add_column(column, justify="right" if column in STATUSES else "left")
    if len(runs):
        counts = runs.groupby(["task", "arch", "rule", "status"]).size().unstack(fill_value=0)
        for (task_name, arch, rule), row in counts.iterrows():
            table.add_row(task_name, arch, rule, *(str(row.get(s, 0)) for s in STATUSES))
    console.print(table)
    if len(runs) and (runs["status"] == "collapsed").any():
        console.print(
            "collapsed runs trained to the end but learned nothing (their manifests say why); "
            "classify leaves them out unless given --keep-collapsed"
        )
    orphans = target.orphan_observables()
    if orphans:
        console.print(f"{len(orphans)} observables file(s) without a manifest (interrupted runs; redone on resume)")
    if spec is not None:
        from lrid.config import load_sweep
        from lrid.generate.sweep import pending_runs

        missing, present = pending_runs(load_sweep(spec), target, retry_failed=True)
        console.print(f"sweep {spec}: {present} of {present + len(missing)} runs done (failed runs count as missing)")
        by_rule: dict[str, int] = {}
        for run in missing:
            by_rule[run.rule.name] = by_rule.get(run.rule.name, 0) + 1
        for rule, count in sorted(by_rule.items()):
            console.print(f"  missing: {count} run(s) of {rule}")


@app.command()
def classify(
    store: Annotated[str, typer.Option("--store", help="store directory or URI written by `lrid generate`")],
    out: Annotated[Path, typer.Option("--out", help="results directory")],
    classifiers: ClassifierOption = "linear,rf,xgb",
    splits: SplitsOption = 10,
    jobs: JobsOption = 1,
    observables: Annotated[
        list[str] | None,
        typer.Option(
            "--observables",
            help="observable subset: weight, act, actchange, admissible, all (the 45 statistics), reach (update "
            "reach), or a comma list combining them; separate subsets to score each with ';' or repeat the option "
            "(the first one's models are saved)",
        ),
    ] = None,
    points: Annotated[int | None, typer.Option("--points", help="keep N evenly spaced recorded points")] = None,
    window: Annotated[int | None, typer.Option("--window", help="keep only the first K recorded points")] = None,
    stride: Annotated[int | None, typer.Option("--stride", help="keep every S-th recorded point")] = None,
    unit: Annotated[
        str, typer.Option("--unit", help="layer: one sample per layer; run: a run's layers pooled by depth group")
    ] = "layer",
    time_axis: Annotated[
        str,
        typer.Option(
            "--time",
            help="index: recorded point k; fraction: resampled onto --points fractions of training (runs recorded differently compare); progress: each trajectory scaled to its largest value and resampled onto the run's own progress (free of scale and learning speed)",
        ),
    ] = "index",
    baseline: Annotated[
        str,
        typer.Option(
            "--baseline",
            help="none: values as recorded; relative: from each trajectory's start (log ratios for scales, differences otherwise)",
        ),
    ] = "none",
    depth_contrasts: Annotated[
        bool,
        typer.Option(
            "--depth-contrasts",
            help="with --unit run --time progress: also each observable's log scale differences between adjacent depth groups (deep - middle, middle - early)",
        ),
    ] = False,
    train_where: Annotated[
        str | None,
        typer.Option(
            "--train-where",
            help="train only on runs matching this: key=value[,key=value] or comparisons of fields "
            "with literals joined by and/or/not, e.g. 'batch_size=32' or \"arch in ['knet', 'alexnet'] and lr > 0.01\"",
        ),
    ] = None,
    test_where: Annotated[
        str | None, typer.Option("--test-where", help="test only on runs matching this (same forms)")
    ] = None,
    search: Annotated[
        bool,
        typer.Option(
            "--search/--no-search", help="choose hyperparameters per split by inner CV grouped by run (slower)"
        ),
    ] = False,
    control: Annotated[
        bool, typer.Option("--control/--no-control", help="also score the performance-matched control")
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="seeds the splits and the classifiers")] = 0,
    view: Annotated[
        str | None,
        typer.Option(
            "--view",
            help="classify a degraded view recorded with observe.views, e.g. u0.5_n0.1 (`lrid robustness` scores them all)",
        ),
    ] = None,
    keep_collapsed: Annotated[
        bool,
        typer.Option(
            "--keep-collapsed", help="also use runs that trained to the end but learned nothing (status collapsed)"
        ),
    ] = False,
    schedules: Annotated[
        str | None,
        typer.Option(
            "--schedules",
            help="also train on every run re-recorded at these checkpoint schedules, e.g. even6,log6 (even<k>: k "
            "evenly spaced points; log<k>: denser early), to read networks recorded a few times; test runs are "
            "scored as recorded and at each schedule. Needs --time fraction or progress",
        ),
    ] = None,
    partial_layers: Annotated[
        str | None,
        typer.Option(
            "--partial-layers",
            help="also train on every run seen at some of its layers, to read networks recorded at a few areas: "
            "hidden (every layer but the readout), single (one hidden layer), or hidden,single; test runs are "
            "scored at each too. Needs --unit run",
        ),
    ] = None,
) -> None:
    """Score classifiers that identify the rule from trajectories, on balanced splits grouped by run."""
    _classify(
        store,
        out,
        classifiers,
        splits,
        jobs,
        view=view,
        observables=tuple(observables or ["all"]),
        points=points,
        window=window,
        stride=stride,
        unit=unit,
        time=time_axis,
        baseline=baseline,
        depth_contrasts=depth_contrasts,
        train_where=train_where,
        test_where=test_where,
        search=search,
        control=control,
        seed=seed,
        keep_collapsed=keep_collapsed,
        schedules=tuple(name.strip() for name in (schedules or "").split(",") if name.strip()),
        partial_layers=tuple(name.strip() for name in (partial_layers or "").split(",") if name.strip()),
    )


@app.command()
def identify(
    model_or_input: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL|INPUT",
            help="a saved model (RESULTS/models/NAME, "
            "or any of its files) followed by INPUT; or INPUT alone, for lrid's default identifier",
        ),
    ] = None,
    input_: Annotated[
        str | None,
        typer.Argument(
            metavar="INPUT", help="an lrid store (directory or URI) or a recording file", show_default=False
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="also write the predictions to a .csv or .parquet file")
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="allow a .joblib model of an older lrid: a pickle, "
            "which runs any code it carries (only from sources you trust)",
        ),
    ] = False,
    about: Annotated[
        bool,
        typer.Option(
            "--about", help="print the default identifier's model card: rules, training distribution, transfer accuracy"
        ),
    ] = False,
    rules: Annotated[
        str | None,
        typer.Option(
            "--rules",
            help="comma-separated candidate rules (e.g. sgdm,adam,fa,ia): name which of them trained each run, "
            "the model's probabilities renormalised over them",
        ),
    ] = None,
) -> None:
    """Predict the rule that trained each run of INPUT (a store or a raw recording), with a model saved by
    `lrid classify`, or with lrid's default identifier when no model is given."""
    import warnings

    import pandas as pd

    from lrid.identify.default_identifier import (
        PARTIAL_VARIANTS,
        conv_note,
        describe_card,
        identify_default,
        measured_band,
        partial_note,
        read_card,
        reliability_note,
        schedule_note,
        set_note,
    )
    from lrid.identify.inference import check_candidates, read_input
    from lrid.identify.inference import identify as predict_rules
    from lrid.identify.model_files import PickleWarning
    from lrid.identify.prediction_sets import SET_COLUMNS
    from lrid.identify.recording import CONV_RECORDING, CoarseWeightsWarning, PartialLayersWarning
    from lrid.identify.schedules import recorded_points

    if about:
        for line in describe_card(read_card()):
            console.print(line)
        return
    if model_or_input is None:
        raise LridError("give INPUT (a store or a recording), optionally after a MODEL; see `lrid identify --help`")
    if output is not None and output.suffix not in (".csv", ".parquet"):
        raise LridError(f"--output {output} must end in .csv or .parquet")
    model = Path(model_or_input) if input_ is not None else None
    source = input_ if input_ is not None else model_or_input
    candidates = [rule.strip() for rule in rules.split(",") if rule.strip()] if rules is not None else None
    # Before reading the input: a missing identifier is the first thing to say.
    card = read_card() if model is None else None
    if candidates is not None and card is not None:
        check_candidates(candidates, card["rules"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PickleWarning)
        warnings.simplefilter("always", CoarseWeightsWarning)
        warnings.simplefilter("always", PartialLayersWarning)
        observables = read_input(source)
        if model is None:
            predictions, variant = identify_default(observables, candidates=candidates)
            title = f"default identifier ({variant})"
        else:
            predictions = predict_rules(model, observables, trust_pickle=trust_pickle, candidates=candidates)
            title = model.stem
        if candidates is not None:
            title += f", among {', '.join(c for c in predictions.columns if c in candidates)}"
    # The card's measured figures are quoted beside the answers of whole networks; recordings of some layers
    # (named by a partial variant, even in an input that mixes both) get what was measured of such cuts.
    named_by = predictions["variant"] if model is None else pd.Series("", index=predictions.index)
    partial_rows = named_by.isin(PARTIAL_VARIANTS)
    whole_variant = next(iter(named_by[~partial_rows]), None) if model is None else None
    quoted = card if whole_variant is not None else None
    coarse = [warning.message.run for warning in caught if isinstance(warning.message, CoarseWeightsWarning)]
    if coarse:
        error_console.print(
            f"warning: the weights of {len(coarse)} of {observables['run_id'].nunique()} networks ({coarse[0]}"
            f"{', ...' if len(coarse) > 1 else ''}) hold bfloat16 values, and lrid's identifiers learned from "
            "float32 ones: where learning leaves a statistic unchanged, it records bfloat16's coarser rounding, "
            "and such networks are named less reliably (README, 'Raw recordings'); save weights in float32",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for warning in caught:
        if issubclass(warning.category, CoarseWeightsWarning):
            continue
        if issubclass(warning.category, (PickleWarning, PartialLayersWarning)):
            error_console.print(f"warning: {warning.message}", markup=False, highlight=False, soft_wrap=True)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    classes = [
        c for c in predictions.columns if c not in ("run_id", "predicted", "n_samples", "rule", "variant", *SET_COLUMNS)
    ]
    benchmark = None
    if quoted is not None and measured_band(quoted, 1.0, candidates) is not None:
        # What the benchmark measured for answers this confident: the column a scientist reads each answer by.
        bands = [
            None if partial else measured_band(quoted, float(row[row["predicted"]]), candidates)
            for (_, row), partial in zip(predictions.iterrows(), partial_rows)
        ]
        benchmark = [f"{band['accuracy']:.2f} of {band['networks']}" if band else "-" for band in bands]
    set_column = None
    if "prediction_set" in predictions and len(predictions):
        coverage = float(predictions["set_coverage"].iloc[0])
        set_column = f"at {coverage:.0%}"
    every_rule = _every_probability_fits(predictions, classes, benchmark, set_column)
    title = f"{title}: predicted rule per run ({len(predictions)} runs)"
    console.print(_prediction_table(predictions, classes, title, every_rule, benchmark, set_column))
    if set_column is not None:
        console.print(set_note(coverage, quoted, candidates, recorded_points(observables)))
    if benchmark is not None:
        console.print(
            "benchmark: of the foreign networks (trained by another implementation) its transfer benchmark named "
            "at least as confidently, the share named right, and how many there were"
        )
    if len(classes) > 2 and not every_rule and output is None:
        console.print(f"identify: the probabilities of all {len(classes)} rules are written by --output FILE.csv")
    if "rule" in predictions:
        console.print(
            f"accuracy against the true rules: {(predictions['rule'] == predictions['predicted']).mean():.3f}"
        )
    if partial_rows.any():
        console.print(partial_note(named_by[partial_rows].iloc[0], card))
    if quoted is not None and whole_variant is not None:
        console.print(reliability_note(quoted, candidates))
        whole_runs = observables[observables["run_id"].isin(predictions.loc[~partial_rows, "run_id"])]
        conv_runs = (
            int(whole_runs.groupby("run_id")["arch"].first().eq(CONV_RECORDING).sum()) if "arch" in observables else 0
        )
        on_conv_nets = conv_note(whole_variant, quoted, conv_runs)
        if on_conv_nets is not None:
            console.print(on_conv_nets)
        fewer_points = schedule_note(quoted, observables)
        if fewer_points is not None:
            console.print(fewer_points)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix == ".csv":
            predictions.to_csv(output, index=False)
        else:
            predictions.to_parquet(output, index=False)
        console.print(f"identify: predictions in {output}")


def _every_probability_fits(
    predictions: pd.DataFrame, classes: list[str], benchmark: list[str] | None, set_column: str | None = None
) -> bool:
    """Whether a column per rule fits the terminal beside the run names (each cell ``0.123``), and beside the
    prediction sets under ``set_column`` if given."""
    run_width = max((len(str(run)) for run in predictions["run_id"]), default=3)
    needed = run_width + max(len("predicted"), *(len(c) for c in classes)) + sum(max(len(c), 5) + 3 for c in classes)
    needed += max(len("benchmark"), *map(len, benchmark)) + 3 if benchmark else 0
    if set_column is not None:
        needed += max(len(set_column), *(len(cell.replace(",", ", ")) for cell in predictions["prediction_set"])) + 3
    return needed + 10 <= console.width


def _prediction_table(
    predictions: pd.DataFrame,
    classes: list[str],
    title: str,
    every_rule: bool,
    benchmark: list[str] | None = None,
    set_column: str | None = None,
) -> Table:
    """Each run's predicted rule with a column per rule's probability (``every_rule``) or, where those would not
    fit the terminal (ten rules in 80 columns), its probability and the runner-up's (or, with prediction sets,
    which name the other rules in play, its probability alone), so no cell is cut short; then its prediction
    set under ``set_column`` and the ``benchmark`` cells, if given."""
    narrow = ["probability"] if set_column is not None else ["probability", "runner-up"]
    columns = ["run", "predicted", *(classes if every_rule else narrow)]
    columns += [set_column] if set_column is not None else []
    columns += ["benchmark"] if benchmark is not None else []
    table = Table(title=title)
    for column in [*columns, *(["true rule"] if "rule" in predictions else [])]:
        # A run's name is what the row is read by: never folded or cut, whatever else has to wrap.
        table.add_column(
            column,
            justify="right" if column in (*classes, "probability", "benchmark") else "left",
            no_wrap=column in ("run", "predicted"),
        )
    for row, values in enumerate(predictions.to_dict("records")):
        if every_rule:
            cells = [f"{values[c]:.3f}" for c in classes]
        else:
            ranked = sorted(classes, key=lambda c: -values[c])
            cells = [f"{values[values['predicted']]:.3f}"]
            cells += [f"{ranked[1]} {values[ranked[1]]:.3f}"] if set_column is None else []
        cells += [values["prediction_set"].replace(",", ", ")] if set_column is not None else []
        cells += [benchmark[row]] if benchmark is not None else []
        table.add_row(
            str(values["run_id"]), values["predicted"], *cells, *([str(values["rule"])] if "rule" in values else [])
        )
    return table


class _ReportGroup(TyperGroup):
    """``lrid report RESULTS`` means ``lrid report write RESULTS``; ``lrid report importance RESULTS`` queries."""

    def parse_args(self, ctx, args):
        if not args:
            args = ["--help"]
        elif args[0] not in self.commands and args[0] != "--help":
            args = ["write", *args]
        return super().parse_args(ctx, args)


report_app = typer.Typer(
    cls=_ReportGroup,
    no_args_is_help=True,
    help="Write report.md and figures (`lrid report RESULTS`), or query observable importance "
    "(`lrid report importance RESULTS --by measure`).",
)
app.add_typer(report_app, name="report")
StoreOption = Annotated[
    str | None, typer.Option("--store", help="the store the results came from, if scores.json does not name it")
]


@report_app.command("write")
def report_write(
    results: Annotated[Path, typer.Argument(help="results directory written by `lrid classify`")],
    out: Annotated[Path | None, typer.Option("--out", help="where report.md goes (default: RESULTS/..)")] = None,
    store: StoreOption = None,
    importance: Annotated[
        bool,
        typer.Option(
            "--importance/--no-importance",
            help="compute observable importance of the best classifier's models of each split (cached)",
        ),
    ] = True,
) -> None:
    """Write report.md and figures/*.png: accuracy, confusion, importance, trajectories, robustness, controls."""
    from lrid.report import write_report

    console.print(f"report: {write_report(results, out, store=store, importance=importance)}")


@report_app.command("importance")
def report_importance(
    results: Annotated[Path, typer.Argument(help="results directory written by `lrid classify`")],
    by: Annotated[
        str, typer.Option("--by", help="observable, measure, function, statistic, depth or time")
    ] = "observable",
    classifier: Annotated[
        str | None,
        typer.Option(
            "--classifier", help="classifier in the results (default: the most accurate with an importance of its own)"
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="rows to show (0: all)")] = 10,
    output_format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    output: Annotated[Path | None, typer.Option("--output", help="write csv/json here instead of stdout")] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="rank by permutation (held-out accuracy drop) or model (impurity/gain)")
    ] = "permutation",
    repeats: Annotated[int, typer.Option("--repeats", help="permutations per group and split")] = 3,
    store: StoreOption = None,
    jobs: JobsOption = 1,
) -> None:
    """Observable importance aggregated --by a level, mean and spread over the classify splits."""
    from lrid.identify.importance import LEVELS, best_classifier, observable_importance, summarize_importance
    from lrid.report import load_scores

    if by not in LEVELS:
        raise LridError(f"unknown --by {by!r}; choose from {', '.join(LEVELS)}")
    if output_format not in ("table", "csv", "json"):
        raise LridError(f"unknown --format {output_format!r}; choose from table, csv, json")
    if output is not None and output_format == "table":
        raise LridError("--output writes csv or json; add --format csv or --format json")
    if repeats < 1:
        raise LridError(f"--repeats must be at least 1, not {repeats}")
    classifier = classifier or best_classifier(load_scores(results))
    per_split = observable_importance(results, classifier, store=store, n_repeats=repeats, n_jobs=jobs)
    if per_split.attrs.get("note"):
        error_console.print(f"note: {per_split.attrs['note']}")
    table = summarize_importance(per_split, by, kind=kind)
    if top > 0:
        table = table.head(top)
    if output_format == "table":
        rich_table = Table(
            title=f"Importance by {by}: {classifier}, mean ± s.d. over {int(table['n_splits'].max())} splits, ranked by {kind}"
        )
        for column in ("rank", by, "permutation (accuracy drop)", "model (share)"):
            rich_table.add_column(column, justify="left" if column == by else "right")
        for row in table.itertuples():
            rich_table.add_row(
                str(row.rank),
                str(row.group),
                _mean_sd(row.permutation_mean, row.permutation_sd),
                _mean_sd(row.model_mean, row.model_sd),
            )
        console.print(rich_table)
        return
    table = table.rename(columns={"group": by}).assign(classifier=classifier)
    text = table.to_csv(index=False) if output_format == "csv" else table.to_json(orient="records", indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        console.print(f"importance: {output}")


def _mean_sd(mean: float, sd: float) -> str:
    if mean != mean:  # NaN: this kind has no value at this level
        return "n/a"
    return f"{mean:.4f} ± {0.0 if sd != sd else sd:.4f}"


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="sweep YAML, e.g. pipelines/demo.yaml")],
    out: Annotated[Path, typer.Option("--out", help="output directory: OUT/store, OUT/results, OUT/report.md")],
    classifiers: ClassifierOption = "linear,rf,xgb",
    splits: SplitsOption = 10,
    jobs: JobsOption = 1,
    backend: BackendOption = "process",
    workers: WorkersOption = None,
) -> None:
    """Generate, classify and report in one go (resumes an interrupted generation)."""
    from lrid.report import write_report

    # Refused before generating, not after the sweep has trained for an hour.
    _require_tensorflow("training networks")
    _parse_classifiers(classifiers)
    _require_positive("--splits", splits)
    _require_jobs(jobs)
    _require_directory("--out", out)
    started = time.perf_counter()
    _generate(spec, str(out / "store"), retry_failed=False, backend=backend, workers=workers)
    _classify(str(out / "store"), out / "results", classifiers, splits, jobs)
    console.print(f"report: {write_report(out / 'results', out, store=out / 'store')}")
    console.print(f"run: done in {time.perf_counter() - started:.1f} s")


@app.command()
def robustness(
    store: Annotated[
        str, typer.Option("--store", help="store generated with observe.views (e.g. pipelines/robustness.yaml)")
    ],
    out: Annotated[Path, typer.Option("--out", help="results directory: robustness.json and views/<view>/")],
    classifiers: ClassifierOption = "linear,rf",
    splits: SplitsOption = 10,
    jobs: JobsOption = 1,
    observables: Annotated[
        str,
        typer.Option("--observables", help="observable subsets; ';' separates subsets scored apart, e.g. 'weight;act'"),
    ] = "all",
) -> None:
    """Classify every degraded view the store recorded (units kept, measurement noise) and tabulate the accuracy."""
    from lrid.identify.robustness import robustness as score_views

    _require_positive("--splits", splits)
    _require_jobs(jobs)
    _require_directory("--out", out)
    started = time.perf_counter()
    table = score_views(
        store, out, classifiers=_parse_classifiers(classifiers), n_splits=splits, n_jobs=jobs, observables=observables
    )
    chance = 1 / len(table["classes"])
    rich_table = Table(title=f"Robustness: accuracy per view ({splits} splits, chance {chance:.3f})")
    for column in ("view", "units kept", "noise std", "observables", "classifier", "accuracy", "± s.e.m.", "runs"):
        rich_table.add_column(
            column,
            justify="left" if column in ("view", "observables", "classifier") else "right",
            no_wrap=column == "view",
        )
    for row in table["rows"]:
        rich_table.add_row(
            row["view"],
            f"{row['units_fraction']:g}",
            f"{row['noise_std']:g}",
            row["observables"],
            row["classifier"],
            f"{row['accuracy_mean']:.3f}",
            f"{row['accuracy_sem']:.3f}",
            str(row["n_runs"]),
        )
    console.print(rich_table)
    console.print(f"robustness: table in {out / 'robustness.json'} ({time.perf_counter() - started:.1f} s)")


@app.command("export-recording")
def export_recording(
    store: Annotated[str, typer.Argument(help="store directory or URI holding the run")],
    run_id: Annotated[str, typer.Argument(help="the run's id (see `lrid status` or the store's runs/)")],
    out: Annotated[Path, typer.Argument(help="the recording to write: .npz or .parquet")],
) -> None:
    """Re-run a run of the store and write its raw weights and activations as a recording (the format lrid identify reads)."""
    from lrid.generate.export import export_recording as export

    _require_tensorflow("re-running a run to export its recording")
    _quiet_tensorflow()
    started = time.perf_counter()
    path = export(store, out, run_id=run_id)
    console.print(
        f"export-recording: wrote {path} ({time.perf_counter() - started:.1f} s); the README's "
        '"Raw recordings" section describes the format'
    )


@app.command()
def rules() -> None:
    """List the registered learning rules with their hyperparameters and references."""
    from lrid.rules import RULES, load_plugins

    load_plugins()
    table = Table(title="Learning rules")
    for column in ("name", "description", "hyperparameters (defaults)", "reference"):
        table.add_column(column)
    for name, rule in sorted(RULES.items()):
        hparams = ", ".join(f"{key}={default}" for key, default, _ in rule.hyperparameter_table())
        table.add_row(name, rule.description, hparams, rule.reference)
    console.print(table)


@app.command()
def archs() -> None:
    """List the architectures with their measured layers (early/middle/deep) and parameter counts."""
    _require_tensorflow("building the architectures to count their parameters")
    _quiet_tensorflow()
    from lrid.config import ModelSpec
    from lrid.models import ARCHITECTURES, build_network, depth_groups

    table = Table(title="Architectures (parameters at the default input; feedback kernels not counted)")
    for column in ("name", "description", "measured layers", "early/middle/deep", "parameters", "input"):
        table.add_column(column, justify="right" if column in ("measured layers", "parameters") else "left")
    for name, architecture in ARCHITECTURES.items():
        model = build_network(
            ModelSpec(arch=name), architecture.default_input_shape, architecture.default_classes, None, 0
        )
        groups = depth_groups(len(model.measured_layers))
        split = "/".join(str(groups.count(g)) for g in ("early", "middle", "deep"))
        shape = "x".join(map(str, architecture.default_input_shape))
        table.add_row(
            name,
            architecture.description,
            str(len(model.measured_layers)),
            split,
            f"{model.parameter_count():,}",
            f"{shape}, {architecture.default_classes} classes",
        )
    console.print(table)


@app.command()
def tasks() -> None:
    """List the registered tasks, their loss and the options a sweep's ``task.options`` may set."""
    import inspect

    from lrid.tasks import TASK_LOSSES, TASKS

    table = Table("task", "loss", "options (defaults)", "description")
    for name, loader in sorted(TASKS.items()):
        options = [
            f"{parameter.name}={parameter.default!r}"
            for parameter in inspect.signature(loader).parameters.values()
            if parameter.name not in ("data_dir", "image_size")
        ]
        table.add_row(name, TASK_LOSSES[name], ", ".join(options), (loader.__doc__ or "").strip().splitlines()[0])
    console.print(table)


def main() -> None:
    """Console entry point: runs the app and turns :class:`LridError` into a one-line message."""
    _quiet_tensorflow()
    try:
        app(standalone_mode=False)
    except LridError as error:
        # One line even when a path or name in the message holds a line break.
        error_console.print("error: " + str(error).replace("\n", "\\n"), highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        error_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        error_console.print("interrupted: completed runs are saved; re-run the same command to resume")
        sys.exit(130)
    except typer.TyperException as error:
        # Usage errors (a missing option, a bad value) carry their own message. typer bundles its own
        # click, so they are typer's exceptions, not the installed click's.
        if hasattr(error, "show"):
            error.show()
            sys.exit(getattr(error, "exit_code", 2))
        raise


def entry_point() -> None:
    """The ``lrid`` command: :func:`main`, then, where the command loaded TensorFlow, an end without the
    interpreter's teardown of it (:func:`lrid.lazy_import.exit_now`; about 2 CPU-seconds of every such command)."""
    code: str | int | None = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
    if "tensorflow" in sys.modules and (code is None or isinstance(code, int)):
        exit_now(code or 0)
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
