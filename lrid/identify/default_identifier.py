"""The identifier that ships with lrid: ``lrid identify INPUT`` with no model.

It is trained on the zoo (``pipelines/zoo.yaml`` and ``pipelines/zoo_activations.yaml``: every rule over
widths, depths, activations, batch sizes, learning rates, budgets, optimizers and initialisations) with the features that transferred
best in ``benchmarks/transfer.py``, and saved in formats that load without running code
(:mod:`lrid.identify.model_files`). A recording carries what its experimenter could measure, so there is
one model per combination of measures (:data:`VARIANTS`: weights only, activations only, both, and all
three with the activity change); :func:`identify_default` picks the one that uses the most of what the input has.
A lab may record some of a network's layers only: recordings that say so (:mod:`lrid.identify.recording`)
go to a partial variant (:data:`PARTIAL_VARIANTS`), trained on the zoo's runs also seen at their hidden
layers and at one hidden layer alone (:mod:`lrid.identify.partial_layers`).

``make default-identifier`` regenerates it: it generates the zoo if needed, fits every variant on all of
the zoo's runs that learned (collapsed runs left out), and writes ``card.json`` (the model card that
``lrid identify --about`` prints) with the zoo's spread and, when ``benchmarks/results/transfer.json``
exists, its transfer accuracy.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import lrid
from lrid.errors import LridError
from lrid.identify.partial_layers import DESCRIPTIONS, PARTIAL_LAYERS, with_copies
from lrid.identify.prediction_sets import (
    CALIBRATION_FOLDS,
    DEFAULT_COVERAGE,
    cross_fitted_calibration,
)
from lrid.identify.schedules import (
    AS_RECORDED,
    parse_schedule,
    points_per_run,
    recorded_points,
    training_label,
)
from lrid.observables import OBSERVABLES

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "default_model"
DIRECTORY_VARIABLE = "LRID_DEFAULT_IDENTIFIER"  # points lrid at another build (a lab's own zoo, a test's)
KINDS = ("weight", "act", "actchange")
# The features that transferred best in benchmarks/transfer.py (README, "Identifying rules in networks lrid
# did not train"): its configuration 8.
DEFAULT_FEATURES = {"unit": "run", "time": "progress", "baseline": "relative", "depth_contrasts": True}
# The checkpoint schedules every zoo run is also trained on (lrid.identify.schedules): a few evenly spaced
# points and denser-early ones, the schedules of labs that record a network a handful of times. Set before
# any measurement; benchmarks/transfer.py measures the identifier on these and on schedules it never saw.
DEFAULT_SCHEDULES = ("even11", "even6", "even4", "log11", "log6")
# Observable subsets by the measures a recording carries, most complete first; an input uses the first
# whose measures it all carries (actchange alone is too little to go on, and rarely recorded without both
# weights and activations, so it comes only with both).
VARIANTS = ("weight,act,actchange", "weight,act", "weight", "act")
# For recordings of some of a network's layers: the measures of a lab that records a few areas' activity
# (electrophysiology, imaging), or their weights too (a network of its own). Each is trained on every zoo
# run as its whole variant is, and also seen at each choice of PARTIAL_LAYERS.
PARTIAL = "partial"
# How the transfer benchmark's ``by_layers`` names the identifiers trained as the partial variants are.
PARTIALLY_TRAINED = "+ " + ",".join(PARTIAL_LAYERS)
PARTIAL_VARIANTS = tuple(f"{PARTIAL}:{measures}" for measures in ("weight,act", "act"))
# With a zoo that recorded update reach (lrid.observables.update_reach), each whole variant that reads weights
# has a second model that reads the reach too. A run whose layer under the readout has a reach is named by it,
# any other by the variant without: the reach of a conv readout over several positions, or one whose flatten
# order a recording does not say, is unlike any the zoo's conv nets (one position) showed, and no model is
# shown a value it never met (benchmarks/update_reach.py, README "Update reach").
REACH_SUFFIX = ",reach"
REACH_VARIANTS = tuple(variant + REACH_SUFFIX for variant in VARIANTS if "weight" in variant.split(","))


def measures_of(variant: str) -> str:
    """The observable subset a variant's model reads: ``partial:act`` reads ``act``."""
    return variant.removeprefix(f"{PARTIAL}:")


def carried_measures(observables: pd.DataFrame) -> tuple[str, ...]:
    """The measures every run of ``observables`` carries (a measure is missing where all its columns are NaN)."""
    carried = []
    for kind in KINDS:
        columns = [name for name in OBSERVABLES if name.startswith(f"{kind}_")]
        present = observables[columns].notna().any(axis=1).groupby(observables["run_id"]).any()
        if len(present) and present.all():
            carried.append(kind)
    return tuple(carried)


def variant_for(observables: pd.DataFrame, available: Collection[str] = VARIANTS) -> str:
    """The variant of ``available`` that uses every measure the input carries, a partial one when some run
    was recorded at some of its network's layers (if one fits); a one-line error if none fits."""
    from lrid.identify.recording import partial_layer_counts

    carried = set(carried_measures(observables))
    candidates = list(VARIANTS)
    if len(partial_layer_counts(observables)):
        candidates = [variant for variant in PARTIAL_VARIANTS if variant in available] + candidates
    for variant in candidates:
        if set(measures_of(variant).split(",")) <= carried:
            return variant
    raise LridError(
        f"the input carries {','.join(sorted(carried)) or 'no measure'} for every run; the default identifier needs "
        "weight or act arrays (record weight/<layer> or act/<layer>)"
    )


def top_reach_present(observables: pd.DataFrame) -> pd.Series:
    """Whether each run (by run id) has an update reach at the layer under its readout, which the reach
    variants (:data:`REACH_VARIANTS`) need."""
    if "reach" not in observables:
        return pd.Series(False, index=pd.Index(observables["run_id"].unique()))
    under_readout = observables.groupby("run_id")["layer_index"].transform("max") - 1
    rows = observables[observables["layer_index"] == under_readout]
    present = rows["reach"].notna().groupby(rows["run_id"]).any()
    return present.reindex(observables["run_id"].unique(), fill_value=False)


def _model_name(variant: str) -> str:
    return variant.replace(",", "+").replace(":", "-")


def default_directory() -> Path:
    """Where the default identifier is read from: ``$LRID_DEFAULT_IDENTIFIER``, else the one lrid ships."""
    return Path(os.environ.get(DIRECTORY_VARIABLE) or DEFAULT_DIRECTORY)


def model_path(variant: str, directory: Path = DEFAULT_DIRECTORY) -> Path:
    """Where the default identifier's model for ``variant`` lives (its sidecar's stem)."""
    return directory / _model_name(variant)


def read_card(directory: Path | None = None) -> dict:
    """The model card (of :func:`default_directory` unless given), or a one-line error saying how to build it."""
    directory = default_directory() if directory is None else directory
    path = directory / "card.json"
    if not path.is_file():
        raise LridError(
            f"no default identifier at {directory}; build it with `make default-identifier`, or pass a model "
            "saved by `lrid classify` (lrid identify MODEL INPUT)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise LridError(f"{path} is not valid JSON; rebuild it with `make default-identifier`") from None


def identify_default(
    observables: pd.DataFrame, directory: Path | None = None, candidates: Sequence[str] | None = None
) -> tuple[pd.DataFrame, str]:
    """The rule of each run of ``observables`` by the default identifier, and the variant that named them.

    Runs recorded at some of their network's layers and whole networks in one input are named apart, each by
    the variant for what it holds (:func:`variant_for`); each run's is in the ``variant`` column, and the
    returned description names both (``weight,act for 3 runs; partial:act for 2 runs``). ``candidates``
    restricts the answer to those of its rules (:func:`lrid.identify.inference.identify`, which also gives
    each run's prediction set).
    """
    from lrid.identify.inference import identify
    from lrid.identify.recording import partial_layer_counts

    directory = default_directory() if directory is None else directory
    available = read_card(directory).get("variants", VARIANTS)
    partial = observables["run_id"].isin(partial_layer_counts(observables).index)
    parts = [observables[~partial], observables[partial]] if partial.any() and not partial.all() else [observables]
    named, used = [], {}
    for part in parts:
        variant = variant_for(part, available)
        by_variant = {variant: part}
        if variant + REACH_SUFFIX in available:
            reached = part["run_id"].map(top_reach_present(part))
            by_variant = {variant + REACH_SUFFIX: part[reached], variant: part[~reached]}
        for name, runs in by_variant.items():
            if len(runs):
                named.append(identify(model_path(name, directory), runs, candidates=candidates).assign(variant=name))
                used[name] = runs["run_id"].nunique()
    predictions = pd.concat(named, ignore_index=True).sort_values("run_id", ignore_index=True)
    described = "; ".join(f"{name} for {n} run{'s' if n > 1 else ''}" for name, n in used.items())
    return predictions, next(iter(used)) if len(used) == 1 else described


def train_default(
    store: str,
    directory: Path = DEFAULT_DIRECTORY,
    *,
    classifier: str = "linear",
    feature_options: dict | None = None,
    transfer_results: Path | None = None,
    sweep: str = "pipelines/zoo.yaml",
    runs: Collection[str] | None = None,
    schedules: Sequence[str] = DEFAULT_SCHEDULES,
    coverage: float = DEFAULT_COVERAGE,
    calibration_folds: int = CALIBRATION_FOLDS,
    only: Collection[str] | None = None,
    reach: bool = False,
) -> dict:
    """Fit every variant on the store's complete runs, save them under ``directory``, write and return the card.

    ``feature_options`` are :func:`lrid.identify.features.build_features` keywords other than ``subset``
    (default: :data:`DEFAULT_FEATURES`). ``runs``, when given, are the only runs trained on (a sweep's, out
    of a store that also holds others); ``sweep`` names them on the card. Every run is also trained on as
    re-recorded at each checkpoint schedule of ``schedules`` (:mod:`lrid.identify.schedules`), so that
    recordings with fewer or other checkpoints than the zoo's are read as well. The partial variants
    (:data:`PARTIAL_VARIANTS`) are also trained on every run seen at each choice of
    :data:`lrid.identify.partial_layers.PARTIAL_LAYERS`, and their prediction sets get a threshold per choice,
    calibrated on those copies (``by_layers``).

    ``only`` refits just those variants and keeps every other one, model and card entry, from the identifier
    already in ``directory``, which must have been built from the same runs.

    ``reach`` also fits :data:`REACH_VARIANTS`, which :func:`identify_default` uses for the runs that have an
    update reach under their readouts; the store's runs must have recorded it. The card then quotes only a
    transfer benchmark that named runs so (``benchmarks/transfer.py --reach``).

    Each variant's prediction sets are calibrated at ``coverage`` on the zoo's runs as recorded and, one
    threshold per number of checkpoints, on their copies at ``schedules``, each named by a model fitted in
    ``calibration_folds`` folds without the run (:mod:`lrid.identify.prediction_sets`): every fold fits the
    variant again, so calibration costs about as many fits as it has folds.
    """
    from lrid.identify.classifiers import make_classifier
    from lrid.identify.features import build_features
    from lrid.identify.model_files import save_model
    from lrid.identify.splits import run_metadata
    from lrid.store import Store

    options = dict(DEFAULT_FEATURES if feature_options is None else feature_options)
    source = Store(store)
    observables = source.read_observables(("complete",))
    manifests = [m for m in source.manifests() if m["status"] == "complete"]
    if runs is not None:
        kept = set(runs)
        observables = observables[observables["run_id"].isin(kept)]
        manifests = [m for m in manifests if m["run_id"] in kept]
    if observables.empty:
        raise LridError(f"{store} holds no complete runs of {sweep}; generate it first (make default-identifier does)")
    if reach and observables["reach"].isna().all():
        raise LridError(f"{store} recorded no update reach; regenerate its runs with this lrid, or build without it")
    every_variant = VARIANTS + PARTIAL_VARIANTS + (REACH_VARIANTS if reach else ())
    unknown = sorted(set(only or ()) - set(every_variant))
    if unknown:
        raise LridError(f"unknown variant {unknown[0]!r}; variants are {', '.join(every_variant)}")
    variants, calibrations = {}, {}
    if only is not None:
        previous = read_card(directory)
        variants = {name: entry for name, entry in previous["variants"].items() if name not in only}
        calibrations = {
            name: entry for name, entry in previous["prediction_sets"]["in_zoo"].items() if name in variants
        }
    directory.mkdir(parents=True, exist_ok=True)
    points = recorded_points(observables)
    building = [variant for variant in every_variant if only is None or variant in only]
    # The runs with their copies: at the checkpoint schedules, and for the partial variants at some layers too.
    trained_on = {
        seen_partially: with_copies(observables, schedules, PARTIAL_LAYERS if seen_partially else ())
        for seen_partially in {variant in PARTIAL_VARIANTS for variant in building}
    }
    points_of = {copy: n for table in trained_on.values() for copy, n in points_per_run(table).items()}
    for variant in building:
        seen_partially = variant in PARTIAL_VARIANTS
        partial_layers = PARTIAL_LAYERS if seen_partially else ()
        features = build_features(trained_on[seen_partially], subset=measures_of(variant), **options)
        classes = sorted(set(features.y))
        labels = np.array([classes.index(rule) for rule in features.y])
        fresh_model = functools.partial(
            make_classifier, classifier, 1, 0, n_points=features.n_points, n_static=features.n_static
        )
        calibration = cross_fitted_calibration(
            features,
            classes,
            [*schedules, *partial_layers],
            fresh_model,
            coverage,
            calibration_folds,
            round(points),
            points_of,
            layers=partial_layers,
        )
        calibrations[variant] = {
            "held": calibration.held,
            "mean_size": calibration.mean_size,
            "by_points": [entry.model_dump(include={"points", "held", "mean_size"}) for entry in calibration.by_points],
            "by_layers": [entry.model_dump(include={"layers", "held", "mean_size"}) for entry in calibration.by_layers],
        }
        model = fresh_model().fit(features.X, labels)
        save_model(model, directory, _model_name(variant), classes, features, partial_layers, calibration)
        variants[variant] = {"model": _model_name(variant), "n_features": int(features.X.shape[1])}
        if partial_layers:
            variants[variant]["partial_layers"] = list(partial_layers)
    order = VARIANTS + PARTIAL_VARIANTS + REACH_VARIANTS
    variants = dict(sorted(variants.items(), key=lambda item: order.index(item[0])))
    calibrations = dict(sorted(calibrations.items(), key=lambda item: order.index(item[0])))
    metadata = run_metadata(manifests)
    # The reach is among the features the card names, so that a transfer benchmark of features without it is
    # not quoted for an identifier that names some runs with it.
    card_features = {**options, "reach": True} if any(name in REACH_VARIANTS for name in variants) else options
    card = {
        "name": "lrid default identifier",
        "lrid_version": lrid.__version__,
        "created": time.strftime("%Y-%m-%d", time.gmtime()),
        "classifier": classifier,
        "features": card_features,
        "rules": sorted(metadata["rule"].unique().tolist()),
        "variants": variants,
        "training": {**_training_summary(metadata, sweep), "points": points, "schedules": list(schedules)},
        "prediction_sets": {"coverage": coverage, "calibration_folds": calibration_folds, "in_zoo": calibrations},
        "transfer": _transfer_summary(transfer_results, classifier, card_features, list(schedules)),
    }
    (directory / "card.json").write_text(json.dumps(card, indent=2))
    return card


def refresh_transfer(directory: Path, transfer_results: Path) -> dict:
    """Quote a newer transfer benchmark on the card of the identifier in ``directory``, without refitting it:
    the card's ``transfer`` becomes what ``transfer_results`` measured for its classifier, features and
    schedules (None if it measured another identifier). Writes and returns the card."""
    card = read_card(directory)
    training = card.get("training") or {}
    card["transfer"] = _transfer_summary(
        transfer_results, card["classifier"], card["features"], list(training.get("schedules") or [])
    )
    (directory / "card.json").write_text(json.dumps(card, indent=2))
    return card


# The measures of a foreign network the card quotes for conv nets, from benchmarks/shipped_identifier.py.
_CONV_MEASURES = ("networks", "named_right", "paper_among_four", "sets_held", "mean_set_size")


def quote_foreign_conv(directory: Path, results_path: Path) -> dict:
    """Quote on the card of the identifier in ``directory`` what ``benchmarks/shipped_identifier.py --arch conv``
    (its JSON, ``results_path``) measured of that identifier on foreign conv nets, whole, per variant, as
    ``foreign_conv``. The card's other figures come from MLPs; this is what ``lrid identify`` says beside them
    for a recording with conv layers. A refit writes a new card without it. Writes and returns the card."""
    from lrid.identify.recording import CONV_RECORDING

    card = read_card(directory)
    try:
        results = json.loads(results_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise LridError(
            f"cannot read {results_path}; write it with `python benchmarks/shipped_identifier.py --arch conv`"
        ) from None
    whole = [row for row in results.get("rows", []) if row.get("cut") == "whole"]
    if not whole or set(results.get("architectures") or {}) != {CONV_RECORDING}:
        raise LridError(
            f"{results_path} does not hold the shipped identifier's measurement on conv nets alone; run "
            "`python benchmarks/shipped_identifier.py --arch conv`"
        )
    card["foreign_conv"] = {
        "sets": len(results.get("sets", [])),
        "finished_at": results.get("finished_at"),
        # By the measures a recording carries: the conv nets of one measurement may be named by a variant and
        # by its reach twin (the row's variant then says how many each), and lrid identify quotes them for either.
        "by_variant": {
            row.get("measures", row["variant"]): {name: row[name] for name in _CONV_MEASURES} for row in whole
        },
    }
    (directory / "card.json").write_text(json.dumps(card, indent=2))
    return card


def conv_note(variant: str, card: dict, conv_runs: int) -> str | None:
    """One line for an input of which ``conv_runs`` networks have conv layers: what ``variant`` did on foreign
    conv nets (the card's other figures come from MLPs), where the card quotes it."""
    conv = card.get("foreign_conv") or {}
    measured = (conv.get("by_variant") or {}).get(variant.removesuffix(REACH_SUFFIX))
    if not conv_runs or measured is None:
        return None
    among = measured.get("paper_among_four")
    return (
        f"default identifier: of foreign conv nets ({measured['networks']} in {conv['sets']} sets, another "
        f"implementation) this model named {measured['named_right']:.2f} correctly"
        + (f" ({among:.2f} among sgdm, adam, fa and ia)" if among is not None else "")
        + f" and its prediction sets held the true rule for {measured['sets_held']:.2f} of them, where the figures "
        f"above come from MLPs; this input has {conv_runs} network{'s' if conv_runs > 1 else ''} with conv layers "
        "(README, 'Foreign conv nets')"
    )


def _training_summary(metadata: pd.DataFrame, sweep: str) -> dict:
    from lrid.identify.splits import spec_field

    def spread(column: str) -> dict | None:
        return _spread_of(pd.to_numeric(metadata[column], errors="coerce")) if column in metadata else None

    def counts(column: str) -> dict | None:
        return (
            {str(k): int(v) for k, v in metadata[column].astype(str).value_counts().sort_index().items()}
            if column in metadata
            else None
        )

    initialisations = (
        spec_field(metadata, "model.init", "glorot") + "/" + spec_field(metadata, "model.init_distribution", "uniform")
    )
    inputs = spec_field(metadata, "task.options.standardize", False).map({True: "standardised", False: "[0, 1]"})
    widths = metadata["model.hidden"].map(lambda h: json.loads(h) if isinstance(h, str) else list(h or []))
    return {
        "sweep": sweep,
        "runs": int(len(metadata)),
        "runs_per_rule": counts("rule"),
        "architectures": counts("arch"),
        "activations": counts("model.activation"),
        "hidden_layers": {str(k): int(v) for k, v in widths.map(len).value_counts().sort_index().items()},
        "hidden_width": _spread_of(widths.map(lambda w: float(np.mean(w)) if w else np.nan)),
        "batch_size": spread("train.batch_size"),
        "epochs": spread("train.epochs"),
        "learning_rate": spread("rule.lr"),
        "optimizers": counts("rule.optimizer"),
        "init_scale": spread("model.init_scale"),
        "initialisations": {str(k): int(v) for k, v in initialisations.value_counts().sort_index().items()},
        "inputs": {str(k): int(v) for k, v in inputs.value_counts().sort_index().items()},
        "final_test_accuracy": spread("final_test_accuracy"),
    }


def _spread_of(values: pd.Series) -> dict | None:
    values = values.dropna()
    return (
        {"min": float(values.min()), "median": float(values.median()), "max": float(values.max())}
        if len(values)
        else None
    )


def _transfer_summary(path: Path | None, classifier: str, options: dict, schedules: list[str]) -> dict | None:
    """What the transfer benchmark measured for this classifier, these features and schedules, or None."""
    if path is None or not Path(path).is_file():
        return None
    result = json.loads(Path(path).read_text())
    if (
        result.get("quick")
        or result.get("chosen_options") not in (None, options)
        or result.get("schedules", []) != schedules
    ):
        # a smoke run, or a measurement of other features or of an identifier trained on other schedules, says
        # nothing about this identifier
        return None
    foreign = result.get("foreign", {})
    mine = [row for row in foreign.get("summary", []) if row.get("classifier") == classifier]
    # The targets are judged with one classifier: quote them only if it is this identifier's.
    targets = result.get("targets") if result.get("targets_classifier") in (None, classifier) else None
    draws = foreign.get("zoo_draws") or {}
    seeded = foreign.get("fit_seeds") or {}
    return {
        "benchmark": "benchmarks/transfer.py",
        "finished_at": result.get("finished_at"),
        "features": result.get("chosen_features"),
        "targets": targets,
        "foreign": mine,
        "confidence": [row for row in foreign.get("confidence", []) if row.get("classifier") == classifier],
        "by_schedule": [row for row in foreign.get("by_schedule", []) if row.get("classifier") == classifier],
        "prediction_sets": [row for row in foreign.get("prediction_sets", []) if row.get("classifier") == classifier],
        # The foreign networks at some of their layers, named by identifiers trained as the partial variants are.
        "by_layers": [
            row
            for row in foreign.get("by_layers", [])
            if row.get("classifier") == classifier and row.get("trained_on") == PARTIALLY_TRAINED
        ],
        "in_distribution": [
            {key: row[key] for key in ("rules", "splits", "mean", "sem", "recall", "most_mistaken_for") if key in row}
            for row in result.get("in_distribution", [])
            if row.get("classifier") == classifier
        ],
        "zoo_draws": {key: draws[key] for key in ("draws", "fraction", "runs", "spread") if key in draws}
        if draws.get("classifier") == classifier
        else None,
        # The same zoo's identifiers fitted with other classifier seeds: how much of the foreign score is this fit's.
        "fit_seeds": {key: seeded[key] for key in ("seeds", "spread") if key in seeded}
        if seeded.get("classifier") == classifier
        else None,
    }


# Nayebi et al.'s four rules: the transfer benchmark's targets are set on them, and it measures foreign accuracy
# among them (``--rules sgdm,adam,fa,ia``).
PAPER_RULES = ("adam", "fa", "ia", "sgdm")


def _is_paper_question(candidates: Sequence[str] | None) -> bool:
    return candidates is not None and sorted(set(candidates)) == list(PAPER_RULES)


def measured_band(card: dict, probability: float, candidates: Sequence[str] | None = None) -> dict | None:
    """What the transfer benchmark measured for foreign networks answered at least this confidently: the band's
    ``accuracy`` (share named right) and ``networks`` (how many it held), with its level ``at_least``.

    The band is the highest measured level at or below ``probability`` (every answer, then 0.5, 0.6, ...),
    for the question asked: over every rule, or among the paper's four with ``candidates``. None where the
    benchmark did not measure that question for this build.
    """
    naming = "all" if candidates is None else "paper candidates" if _is_paper_question(candidates) else None
    bands = [
        row
        for row in (card.get("transfer") or {}).get("confidence") or []
        if row.get("naming") == naming and row.get("accuracy") is not None and row["at_least"] <= probability
    ]
    return max(bands, key=lambda row: row["at_least"]) if bands else None


def reliability_note(card: dict, candidates: Sequence[str] | None = None) -> str:
    """One line on how far the default identifier's answers can be trusted, from its measured transfer
    (among ``candidates``, when the benchmark measured that choice)."""
    rows = (card.get("transfer") or {}).get("foreign") or []
    if not rows:
        return "default identifier: its transfer accuracy was not measured for this build (lrid identify --about)"
    networks = sum(row["networks"] for row in rows)
    sets = f" in {len(rows)} sets" if len(rows) > 1 else ""
    among = [row.get("accuracy_paper_candidates") for row in rows]
    if _is_paper_question(candidates) and None not in among:
        return (
            f"default identifier: among sgdm, adam, fa and ia, {np.mean(among):.2f} of foreign networks trained by "
            "those rules were named correctly in its benchmark; see `lrid identify --about` before relying on an answer"
        )
    return (
        f"default identifier: {np.mean([row['accuracy_all'] for row in rows]):.2f} of foreign networks ({networks}{sets}, "
        "trained by another implementation) were named correctly in its benchmark; see `lrid identify --about` "
        "before relying on an answer"
    )


def partial_note(variant: str, card: dict | None = None) -> str:
    """One line, in place of the whole networks' transfer figures, for inputs named by the partial ``variant``:
    what its benchmark measured of foreign networks recorded at some layers, where ``card`` quotes it."""
    measured = _measured_layers(card or {}, measures_of(variant))
    said = (
        f"default identifier: networks recorded at some of their layers are named by its {variant} model, trained "
        f"on every run of its zoo also seen {' and '.join(DESCRIPTIONS[name] for name in PARTIAL_LAYERS)}; "
    )
    if not measured:
        return said + (
            "its transfer benchmark measured whole networks, and README, 'Recorded at some layers', says what it "
            "names of foreign ones recorded so"
        )
    return said + "its transfer benchmark named foreign networks recorded so right over all their rules: " + measured


def _measured_layers(card: dict, measures: str) -> str | None:
    """The card's foreign accuracy at some layers for identifiers reading ``measures``, in words, or None."""
    rows = {
        row["layers"]: row
        for row in (card.get("transfer") or {}).get("by_layers") or []
        if row["measures"] == measures and row["layers"] != "whole"
    }
    if "hidden" not in rows:
        return None
    single = [row["accuracy_all"] for layers, row in rows.items() if layers.startswith("single:")]
    words = f"{rows['hidden']['accuracy_all']:.2f} at their hidden layers"
    if single:
        spread = f"{min(single):.2f}" + (f"-{max(single):.2f}" if max(single) > min(single) else "")
        words += f", {spread} at one hidden layer alone"
    return words + f" ({rows['hidden']['networks']} networks)"


def _measured_schedules(card: dict) -> list[dict]:
    """The benchmark's rows for an identifier trained as this one was (on its schedules, in the benchmark's
    naming) on foreign networks re-recorded at fewer checkpoints."""

    trained_as_this = training_label((card.get("training") or {}).get("schedules") or [])
    return [
        row
        for row in (card.get("transfer") or {}).get("by_schedule") or []
        if row["trained_on"] == trained_as_this and row["schedule"] != AS_RECORDED
    ]


def schedule_note(card: dict, observables: pd.DataFrame) -> str | None:
    """One line for inputs recorded at fewer checkpoints than the zoo was: how well the benchmark named
    foreign networks re-recorded at about as few (the schedules with the nearest number of points), or None
    when the input has as many points as the zoo or nothing was measured."""
    points = recorded_points(observables)
    zoo_points = (card.get("training") or {}).get("points")
    rows = _measured_schedules(card)
    if zoo_points is None or points >= zoo_points or not rows:
        return None
    nearest = min(abs(row["points"] - points) for row in rows)
    measured = [row for row in rows if abs(row["points"] - points) == nearest]
    return (
        f"default identifier: this input has {points:g} recorded points per network (its zoo {zoo_points:g}); "
        "foreign networks re-recorded at "
        + " and ".join(f"{row['schedule']} were named {row['accuracy_all']:.2f} right" for row in measured)
        + " in its benchmark (even<k>: evenly spaced, log<k>: denser early)"
    )


def _measured_sets(card: dict, candidates: Sequence[str] | None, points: float | None = None) -> list[dict]:
    """The benchmark's pooled coverage of the foreign networks' prediction sets, for the question asked: as
    recorded, or for an input recorded at fewer ``points`` than the zoo, re-recorded at the schedules with the
    nearest number of points (as :func:`schedule_note` picks them)."""
    naming = "all" if candidates is None else "paper candidates" if _is_paper_question(candidates) else None
    rows = [row for row in _pooled_set_rows(card) if row.get("naming") == naming]
    zoo_points = (card.get("training") or {}).get("points")
    sparse = [row for row in rows if not _as_recorded(row)]
    if points is None or zoo_points is None or points >= zoo_points or not sparse:
        return [row for row in rows if _as_recorded(row)][:1]
    nearest = min(abs(parse_schedule(row["schedule"])[1] - points) for row in sparse)
    return [row for row in sparse if abs(parse_schedule(row["schedule"])[1] - points) == nearest]


def _as_recorded(row: dict) -> bool:
    """Whether a benchmark row measured networks as recorded (rows written before schedules have none)."""
    return row.get("schedule", AS_RECORDED) == AS_RECORDED


def _pooled_set_rows(card: dict) -> list[dict]:
    """The benchmark's set coverage of every foreign network, as recorded and re-recorded at each schedule, per
    way of naming (its other rows break it down by set and by true rule)."""
    return [
        row
        for row in (card.get("transfer") or {}).get("prediction_sets") or []
        if row.get("set") == "pooled" and row.get("rule") is None
    ]


def set_note(
    coverage: float, card: dict | None = None, candidates: Sequence[str] | None = None, points: float | None = None
) -> str:
    """One line on what the prediction-set column means and, for the default identifier's ``card``, how often
    such sets held the true rule of foreign networks in its benchmark (re-recorded at about ``points``, the
    input's recorded points per network, where those are fewer than the zoo's)."""
    note = (
        f"at {coverage:.0%}: the rules it cannot rule out, most probable first; on runs it was not trained on, such "
        f"sets held the true rule at least {coverage:.0%} of the time"
    )
    measured = _measured_sets(card, candidates, points) if card is not None else []
    if measured:
        held = " and ".join(
            f"{row['coverage']:.2f} with {row['mean_size']:.1f} rules on average"
            + ("" if _as_recorded(row) else f" re-recorded at {row['schedule']}")
            for row in measured
        )
        note += f"; of {measured[0]['networks']} foreign networks (another implementation), {held}"
    return note


def _set_sizes(in_zoo: dict) -> str:
    """A variant's mean set size in the zoo as recorded, then at each number of checkpoints and each choice of
    partial layers it was calibrated at."""
    sparse = ", ".join(f"{entry['mean_size']:.1f} at {entry['points']}" for entry in in_zoo.get("by_points", []))
    partial = ", ".join(f"{entry['mean_size']:.1f} {entry['layers']}" for entry in in_zoo.get("by_layers", []))
    details = [part for part in (sparse and f"{sparse} points", partial and f"{partial} layers") if part]
    return f"{in_zoo['mean_size']:.1f}" + (f" ({'; '.join(details)})" if details else "")


def _partial_layers(card: dict) -> list[str]:
    """The partial layers the card's partial variants were trained on (none in builds from before them)."""
    return next(
        (entry["partial_layers"] for entry in card.get("variants", {}).values() if "partial_layers" in entry), []
    )


def describe_card(card: dict) -> list[str]:
    """The model card as lines of text, for ``lrid identify --about``."""
    training = card.get("training") or {}

    def spread(name: str) -> str:
        value = training.get(name)
        return f"{value['min']:g}..{value['max']:g} (median {value['median']:g})" if value else "-"

    lines = [
        f"{card.get('name')} (lrid {card.get('lrid_version')}, built {card.get('created')})",
        f"classifier: {card.get('classifier')}; features: {card.get('features')}",
        f"rules ({len(card.get('rules', []))}): {', '.join(card.get('rules', []))}",
        f"variants (chosen by the measures a recording carries): {', '.join(card.get('variants', {}))}",
        *(
            [
                f"  {PARTIAL}: for recordings of some of a network's layers, trained on every run also seen "
                + " and ".join(DESCRIPTIONS.get(name, name) for name in partial_layers)
                + " (README, 'Recorded at some layers'); their prediction sets have a threshold for recordings of "
                "one layer and one for several, calibrated on those copies"
            ]
            if (partial_layers := _partial_layers(card))
            else []
        ),
        *(
            [
                f"  {', '.join(reach_variants)}: the same with update reach (README, 'Update reach'), for the runs "
                "with a reach under their readouts (MLPs; conv nets whose readout reads one position, or says how it "
                "flattened its map)"
            ]
            if (reach_variants := [name for name in card.get("variants", {}) if name in REACH_VARIANTS])
            else []
        ),
        f"trained on {training.get('runs')} runs of {training.get('sweep')}: "
        + ", ".join(f"{rule} {n}" for rule, n in (training.get("runs_per_rule") or {}).items()),
        f"  architectures {training.get('architectures')}; activations {training.get('activations')}",
        f"  hidden layers {training.get('hidden_layers')}; mean hidden width {spread('hidden_width')}",
        f"  batch size {spread('batch_size')}; epochs {spread('epochs')}; learning rate {spread('learning_rate')}",
        f"  optimizers {training.get('optimizers')}; init scale {spread('init_scale')}",
        f"  initialisations {training.get('initialisations', '-')}; inputs {training.get('inputs', '-')}",
        f"  final test accuracy {spread('final_test_accuracy')}",
        "  every run as recorded and re-recorded at the checkpoint schedules "
        + (", ".join(training["schedules"]) if training.get("schedules") else "-")
        + " (fewer points: even<k> evenly spaced, log<k> denser early)",
    ]
    sets = card.get("prediction_sets")
    if sets:
        lines.append(
            f"prediction sets at {sets['coverage']:.0%} (the rules an answer cannot rule out): calibrated on the zoo's "
            f"runs, each named by a fit in {sets['calibration_folds']} folds without it, as recorded and (a "
            "threshold each) at fewer checkpoints; rules per set there, on average: "
            + "; ".join(f"{variant} {_set_sizes(entry)}" for variant, entry in sets["in_zoo"].items())
        )
    transfer = card.get("transfer")
    if not transfer:
        lines.append("transfer accuracy: not measured for this build (run benchmarks/transfer.py, then rebuild)")
    else:
        lines.append(f"transfer accuracy (benchmarks/transfer.py, {transfer.get('finished_at')}):")
        for target in transfer.get("targets") or []:
            measured = target.get("measured")
            lines.append(
                f"  {target['target']}: {measured:.3f}" if measured is not None else f"  {target['target']}: -"
            )
        for foreign in transfer.get("foreign") or []:
            paper = foreign.get("accuracy_paper_rules")
            among = foreign.get("accuracy_paper_candidates")
            named = f"set {foreign['set']}, " if foreign.get("set") else ""
            lines.append(
                f"  foreign recordings ({named}{foreign['networks']} networks of another implementation): "
                f"{foreign['accuracy_all']:.3f} named right"
                + (f", {paper:.3f} of those trained by sgdm/adam/fa/ia" if paper is not None else "")
                + (f" ({among:.3f} with --rules sgdm,adam,fa,ia)" if among is not None else "")
            )
        conv = card.get("foreign_conv")
        if conv:
            lines.append(
                f"  foreign conv nets ({conv['sets']} sets of another implementation, benchmarks/shipped_identifier.py "
                f"--arch conv, {conv.get('finished_at')}), this build as shipped: "
                + "; ".join(
                    f"{variant} {row['named_right']:.3f} named right"
                    + (
                        f" ({row['paper_among_four']:.3f} with --rules)"
                        if row.get("paper_among_four") is not None
                        else ""
                    )
                    + f", sets held {row['sets_held']:.2f} with {row['mean_set_size']:.1f} rules ({row['networks']} networks)"
                    for variant, row in conv["by_variant"].items()
                )
            )
        for naming, question in (("all", "over all its rules"), ("paper candidates", "with --rules sgdm,adam,fa,ia")):
            bands = [row for row in transfer.get("confidence") or [] if row["naming"] == naming and row["at_least"] > 0]
            if bands:
                lines.append(
                    f"  foreign networks by the probability of the answer {question}: "
                    + "; ".join(
                        f">= {row['at_least']:.1f}: {row['accuracy']:.2f} right ({row['coverage']:.0%} of them)"
                        for row in bands
                        if row["accuracy"] is not None
                    )
                )
        set_rows = _pooled_set_rows(card)
        for row in filter(_as_recorded, set_rows):
            question = "over all its rules" if row["naming"] == "all" else "with --rules sgdm,adam,fa,ia"
            lines.append(
                f"  foreign networks' prediction sets at {row['coverage_asked']:.0%} {question}: held the true rule "
                f"for {row['coverage']:.2f} of {row['networks']}, {row['mean_size']:.1f} rules on average"
            )
        sparse_sets = [row for row in set_rows if row["naming"] == "all" and not _as_recorded(row)]
        if sparse_sets:
            lines.append(
                "  their prediction sets re-recorded at fewer checkpoints, over all rules (held, rules on average): "
                + "; ".join(f"{row['schedule']} {row['coverage']:.2f}, {row['mean_size']:.1f}" for row in sparse_sets)
            )
        at_layers = {
            variant: measured
            for variant in PARTIAL_VARIANTS
            if (measured := _measured_layers(card, measures_of(variant))) is not None
        }
        if at_layers:
            lines.append(
                "  foreign networks recorded at some of their layers, named right over all rules by identifiers "
                "trained as the partial models are: "
                + "; ".join(f"{variant} {measured}" for variant, measured in at_layers.items())
            )
        schedules = _measured_schedules(card)
        if schedules:
            lines.append(
                "  foreign networks re-recorded at fewer checkpoints, named right over all rules: "
                + "; ".join(f"{row['schedule']} {row['accuracy_all']:.2f}" for row in schedules)
            )
        for within in transfer.get("in_distribution") or []:
            rules = "trained on the paper's four rules only" if within.get("rules") == "paper 4" else "all its rules"
            weakest = sorted((within.get("recall") or {}).items(), key=lambda item: item[1])[:2]
            lines.append(
                f"  in its own zoo ({within['splits']} held-out splits), {rules}: {within['mean']:.3f} +- "
                f"{within['sem']:.3f} named right"
                + "".join(
                    f"; {rule} {recall:.2f} (else read as {within['most_mistaken_for'].get(rule, '-')})"
                    for rule, recall in weakest
                )
            )
        over_sets = " (mean over the sets)" if len(transfer.get("foreign") or []) > 1 else ""
        draws = transfer.get("zoo_draws")
        if draws:
            zoos = f"{draws['runs']} runs" if draws.get("runs") else f"{draws['fraction']:.2f} of its runs"
            lines.append(
                f"  trained on {draws['draws']} random zoos of {zoos} instead, foreign accuracy{over_sets} ranged: "
                + _ranges(draws["spread"])
            )
        seeded = transfer.get("fit_seeds")
        if seeded:
            seeds = ", ".join(map(str, seeded["seeds"]))
            lines.append(
                f"  fitted with classifier seeds {seeds} instead of this build's, foreign accuracy{over_sets} ranged: "
                + _ranges(seeded["spread"])
            )
    return lines


def _ranges(spread: dict) -> str:
    """Each quoted foreign measure's range over draws or seeds: ``all rules 0.74-0.80; ...``."""
    return "; ".join(
        f"{_DRAW_MEASURES[name]} {value['min']:.2f}-{value['max']:.2f}"
        for name, value in spread.items()
        if name in _DRAW_MEASURES
    )


_DRAW_MEASURES = {
    "accuracy_all": "all rules",
    "accuracy_paper_rules": "sgdm/adam/fa/ia",
    "accuracy_paper_candidates": "the same with --rules sgdm,adam,fa,ia",
}
