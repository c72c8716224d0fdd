"""Transfer: does the identifier name the rule of networks trained unlike the ones it learned from?

Four measurements on a zoo store (``pipelines/zoo.yaml`` and ``pipelines/zoo_activations.yaml``; ``--generate``
makes it), one table each:

1. **Feature comparison** (when more than one configuration is given). For each feature configuration (unit, time axis, baseline, observable subset),
   the mean and the worst held-out-level accuracy per run over every nuisance factor below, with the
   paper's four rules and with all rules. This is how lrid's default features were chosen.
2. **Leave one level out** (the chosen features): for each nuisance factor of the zoo (width, depth,
   activation, batch size, learning-rate tercile within each rule, budget, the feedback rules'
   optimizer, initialisation scale, initialisation scheme and distribution, input scaling, architecture)
   and each of its levels, train on the other levels and
   test on that one; accuracy per run (and per layer for the layer unit), for each classifier. Factor
   levels are fixed bins, set before any result was seen (:data:`FACTORS`); a level is scored only if
   every rule has runs on both sides.
3. **Foreign recordings**: the identifier trained on the whole zoo names the rule of networks trained by
   ``benchmarks/foreign`` (an independent numpy implementation, its own initialisation, data order,
   ranges and probe), read from their raw ``.npz`` recordings as a user's would be; accuracy per rule.
   The networks of the paper's four rules are also named among those four (``lrid identify --rules``)
   and by an identifier trained on those four only, as the held-out levels' "paper 4" rows are. Several
   foreign sets (``--foreign A,B`` or ``--foreign-seeds``) are scored each and judged by their mean; then
   ``--zoo-draws`` identifiers trained on random parts of the zoo give foreign accuracy its spread. The
   all-rule identifier's prediction sets at 90 %, calibrated on the zoo as the default identifier's are (the
   rules ``lrid identify`` says an answer cannot rule out), are scored by how often they held the true rule.
   The identifiers that name foreign networks are trained, as the default identifier is, on every zoo run
   as recorded and re-recorded at each of ``--schedules`` (:mod:`lrid.identify.schedules`).
4. **Checkpoint schedules**: the foreign recordings re-recorded at fewer checkpoints (evenly spaced, or
   denser early), named by the all-rule identifier trained on the zoo as recorded and by the one trained
   on ``--schedules`` too; some of the schedules are ones it never trained on.

With ``--reach`` the chosen features are measured as the default identifier built with ``--reach`` names
runs: a run with an update reach under its readout by an identifier that also reads the reach, any other
(a foreign conv net whose recording does not say how its readout flattened) by one without. Every zoo run
has the reach, so the held-out levels and the in-distribution splits measure the first; foreign networks
are named by whichever fits each, and their prediction sets use that identifier's calibration.

Runs that collapsed (trained to the end without learning) are left out, as ``lrid classify`` does.
Every number is a held-out accuracy; nothing is tuned on the held-out levels or the foreign networks.

    python benchmarks/transfer.py --store ZOO/store [--generate] [--foreign DIR] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import REPO, load_average, print_table, write_result  # noqa: E402
from lrid.errors import LridError  # noqa: E402
from lrid.identify.default_identifier import DEFAULT_SCHEDULES, PAPER_RULES  # noqa: E402
from lrid.identify.prediction_sets import CALIBRATION_FOLDS, DEFAULT_COVERAGE  # noqa: E402
from lrid.identify.schedules import parse_schedule  # noqa: E402
from lrid.identify.splits import spec_field  # noqa: E402

# The sweeps the default identifier's zoo is made of.
ZOO_SWEEPS = ",".join(str(REPO / "pipelines" / name) for name in ("zoo.yaml", "zoo_activations.yaml"))
BACKPROP_RULES = ("sgd", "sgdm", "adam")


REACH_FALL_BACK = ", reach fall-back"


@dataclass(frozen=True)
class FeatureConfig:
    """One way of turning trajectories into features (the keyword arguments of ``build_features``)."""

    name: str
    unit: str
    time: str
    baseline: str
    subset: str
    depth_contrasts: bool = False
    # Named as the default identifier built with --reach names: a run with an update reach under its readout by
    # a second identifier that also reads the reach (features subset + ",reach"), any other by this one.
    reach: bool = False

    def options(self) -> dict:
        """Keyword arguments for :func:`lrid.identify.features.build_features` (``depth_contrasts`` only when on,
        as the features' own options record it, so that results and identifiers from before it still match)."""
        options = {"unit": self.unit, "time": self.time, "baseline": self.baseline, "subset": self.subset}
        return {**options, "depth_contrasts": True} if self.depth_contrasts else options

    def with_reach(self) -> FeatureConfig:
        """This configuration named with the fall-back to the reach (:attr:`reach`)."""
        return replace(self, name=self.name + REACH_FALL_BACK, reach=True)

    def reach_features(self) -> FeatureConfig:
        """The features of the identifier that names runs with a reach under their readouts."""
        return replace(self, name=self.name.removesuffix(REACH_FALL_BACK) + " + reach", subset=f"{self.subset},reach",
                       reach=False)

    def model_features(self) -> dict[str, FeatureConfig]:
        """The features of each model that names runs: ``plain``, and with :attr:`reach` also ``reach``."""
        if not self.reach:
            return {"plain": self}
        return {"plain": replace(self, reach=False), "reach": self.reach_features()}

    def zoo_features(self) -> FeatureConfig:
        """The features the zoo's own runs are named by: every run lrid trains records a reach under its readout,
        so with :attr:`reach` the second identifier's."""
        return self.reach_features() if self.reach else self


CONFIGS = [
    FeatureConfig("paper: layer, index, as recorded, all", "layer", "index", "none", "all"),
    FeatureConfig("layer, fraction, relative, all", "layer", "fraction", "relative", "all"),
    FeatureConfig("run, fraction, as recorded, all", "run", "fraction", "none", "all"),
    FeatureConfig("run, fraction, relative, all", "run", "fraction", "relative", "all"),
    FeatureConfig("run, fraction, relative, weight,act", "run", "fraction", "relative", "weight,act"),
    FeatureConfig("run, fraction, relative, act", "run", "fraction", "relative", "act"),
    FeatureConfig("run, fraction, relative, weight", "run", "fraction", "relative", "weight"),
    FeatureConfig("run, progress, relative, all", "run", "progress", "relative", "all"),
    FeatureConfig("run, progress, relative, depth contrasts, all", "run", "progress", "relative", "all", True),
]


def _widths(hidden) -> list[int]:
    """An MLP's hidden widths from run metadata, which may hold them as a list or as its JSON text."""
    return json.loads(hidden) if isinstance(hidden, str) else list(hidden) if hidden is not None else []


def _mean_width(hidden) -> float:
    widths = _widths(hidden)
    return float(np.mean(widths)) if widths else np.nan


def _bins(values: pd.Series, edges: list[float], names: list[str]) -> pd.Series:
    return pd.cut(values, [-np.inf, *edges, np.inf], labels=names).astype(object)


def _lr_tercile(metadata: pd.DataFrame) -> pd.Series:
    """Each run's learning rate as a tercile of its own rule's learning rates (rules' ranges differ)."""
    def terciles(lr: pd.Series) -> pd.Series:
        log_lr = np.log(lr.astype(float))
        edges = np.quantile(log_lr, [1 / 3, 2 / 3])
        return pd.Series(np.array(["low", "mid", "high"])[np.searchsorted(edges, log_lr, side="right")], index=lr.index)

    return metadata.groupby("rule")["rule.lr"].transform(terciles)


def _optimizer(metadata: pd.DataFrame) -> pd.Series:
    # A backprop rule's optimizer is its identity (holding out Adam would hold out the rule adam), so the
    # optimizer factor varies only the rules that take an `optimizer:`; backprop runs always train.
    optimizer = metadata.get("rule.optimizer", pd.Series(np.nan, index=metadata.index))
    return optimizer.where(~metadata["rule"].isin(BACKPROP_RULES))


FACTORS = {
    "width": lambda m: _bins(m["model.hidden"].map(_mean_width).where(m["arch"] == "mlp"), [64, 128],
                             ["<=64", "65-128", ">128"]),
    "depth": lambda m: m["model.hidden"].map(lambda hidden: len(_widths(hidden))).where(m["arch"] == "mlp"),
    "activation": lambda m: m["model.activation"],
    "batch_size": lambda m: _bins(m["train.batch_size"].astype(float), [32, 64], ["<=32", "33-64", ">64"]),
    "lr_tercile": _lr_tercile,
    "budget": lambda m: _bins(m["train.epochs"].astype(float), [8, 20], ["<=8 epochs", "9-20", ">20"]),
    "optimizer": _optimizer,
    "init_scale": lambda m: _bins(spec_field(m, "model.init_scale", 1.0),
                                  [0.8, 1.25], ["<=0.8", "0.8-1.25", ">1.25"]),
    "init": lambda m: spec_field(m, "model.init", "glorot") + "/" + spec_field(m, "model.init_distribution", "uniform"),
    "input": lambda m: spec_field(m, "task.options.standardize", False).map({True: "standardised", False: "[0, 1]"}),
    "arch": lambda m: m["arch"],
}


def load_zoo(location: str, sweep: str | None = None):
    """The zoo's classified observables and one metadata row per run with a column per nuisance factor.

    ``sweep``, a sweep YAML (or several, comma-separated), keeps only the runs they expand to.
    """
    from lrid.identify.splits import run_metadata
    from lrid.store import Store

    store = Store(location)
    observables = store.read_observables(("complete",))
    manifests = [m for m in store.manifests() if m["status"] == "complete"]
    if sweep is not None:
        from lrid.config import load_sweep

        runs = {spec.run_id for path in sweep.split(",") for spec in load_sweep(path).expand()}
        manifests = [m for m in manifests if m["run_id"] in runs]
        observables = observables[observables["run_id"].isin(runs)]
        print(f"zoo: {len(manifests)} complete runs of the {len(runs)} that {sweep} expands to")
    if not manifests:
        raise LridError(f"{location} holds no complete runs{' of ' + sweep if sweep else ''}; generate the zoo into it "
                        "first (--generate, or make default-identifier)")
    metadata = run_metadata(manifests).set_index("run_id")
    for factor, level_of in FACTORS.items():
        metadata[f"factor.{factor}"] = level_of(metadata)
    return observables, metadata


def _fit(name: str, features, train: np.ndarray, classes: list[str], n_jobs: int, seed: int = 0):
    from lrid.identify.classifiers import make_classifier

    labels = np.array([classes.index(rule) for rule in features.y[train]])
    model = make_classifier(name, n_jobs, seed, n_points=features.n_points, n_static=features.n_static)
    return model.fit(features.X[train], labels)


def _scores(model, features, test: np.ndarray, classes: list[str]) -> dict:
    """Per-run accuracy (a run's layers' probabilities averaged) and per-sample accuracy; ``named``: each test
    run's true ``rule`` and the rule it was ``predicted`` to be, indexed by run."""
    probabilities = model.predict_proba(features.X[test])
    truth = features.y[test]
    per_sample = float(np.mean(np.array(classes)[probabilities.argmax(1)] == truth))
    by_run = pd.DataFrame(probabilities).groupby(features.groups[test]).mean()
    run_truth = pd.Series(truth, index=features.groups[test]).groupby(level=0).first().loc[by_run.index]
    predicted = np.array(classes)[by_run.to_numpy().argmax(1)]
    return {"run_accuracy": float(np.mean(predicted == run_truth.to_numpy())), "sample_accuracy": per_sample,
            "n_test_runs": len(by_run), "named": pd.DataFrame({"rule": run_truth, "predicted": predicted})}


def _read_as(names: pd.Series) -> str:
    """What a group of networks was named, most often first: ``"fa 10, ia 3"``."""
    return ", ".join(f"{name} {count}" for name, count in names.value_counts().items())


def leave_one_level_out(features, metadata: pd.DataFrame, factor: str, classifier: str, n_jobs: int) -> list[dict]:
    """One row per scorable level of ``factor``: train on the other levels, test on it. ``read_as`` gives, for
    each rule of the level's runs, what those runs were named (:func:`_read_as`)."""
    level = metadata.loc[features.groups, f"factor.{factor}"].to_numpy(dtype=object)
    known = pd.notna(level)
    classes = sorted(set(features.y))
    rows = []
    for held in sorted({str(value) for value in level[known]}):
        test = known & (level.astype(str) == held)
        train = ~test  # runs without a level for this factor (e.g. backprop for the optimizer) always train
        test_rules, train_rules = set(features.y[test]), set(features.y[train])
        if not test.any() or not test_rules <= train_rules:
            continue
        model = _fit(classifier, features, train, classes, n_jobs)
        result = _scores(model, features, test, classes)
        read_as = {rule: _read_as(runs["predicted"]) for rule, runs in result.pop("named").groupby("rule")}
        rows.append({"factor": factor, "level": held, "classifier": classifier, **result, "read_as": read_as})
    return rows


def worst_level_readings(matrix: list[dict]) -> list[dict]:
    """For each rule set and classifier of a leave-one-level-out matrix, its worst level's runs by true rule and
    what they were read as, the true rule among them: where a target is missed, which rules are confused."""
    worst: dict[tuple, dict] = {}
    for row in matrix:
        key = (row.get("rules"), row["classifier"])
        if key not in worst or row["run_accuracy"] < worst[key]["run_accuracy"]:
            worst[key] = row
    return [{"rules": rules, "classifier": classifier, "level": f"{row['factor']}={row['level']}", "rule": rule,
             "read_as": read_as} for (rules, classifier), row in worst.items() for rule, read_as in row["read_as"].items()]


def _restrict(observables: pd.DataFrame, rules) -> pd.DataFrame:
    return observables[observables["rule"].isin(rules)] if rules else observables


def compare_features(observables, metadata, configs, classifier: str, rule_sets: dict, factors, n_jobs: int) -> list[dict]:
    """For each configuration and rule set: held-out-level accuracy per run, mean and worst over every level."""
    from lrid.identify.features import build_features

    rows = []
    for config in configs:
        for rule_set, rules in rule_sets.items():
            started = time.perf_counter()
            features = build_features(_restrict(observables, rules), **config.options())
            levels = [row for factor in factors for row in leave_one_level_out(features, metadata, factor, classifier, n_jobs)]
            accuracies = [row["run_accuracy"] for row in levels]
            worst = min(levels, key=lambda row: row["run_accuracy"])
            rows.append({"features": config.name, "rules": rule_set, "classifier": classifier, "levels": len(levels),
                         "mean": float(np.mean(accuracies)), "sd": float(np.std(accuracies)), "worst": worst["run_accuracy"],
                         "worst_level": f"{worst['factor']}={worst['level']}", "seconds": time.perf_counter() - started})
            print_table(rows[-1:], ["features", "rules", "classifier", "levels", "mean", "sd", "worst", "worst_level"], "")
    return rows


def in_distribution(observables, config: FeatureConfig, classifier: str, n_splits: int, n_jobs: int,
                    rules=None, rule_set: str = "all") -> dict:
    """Accuracy per run on the zoo itself (``rules`` only, if given): balanced 75/25 splits grouped by run, mean
    and s.e.m., each rule's recall over every split, and what each rule was most often mistaken for.

    This is the ceiling a held-out level or a foreign set is read against: runs the zoo's own identifier
    cannot tell apart, no transfer will.
    """
    from lrid.identify.features import build_features
    from lrid.identify.splits import balanced_run_splits

    features = build_features(_restrict(observables, rules), **config.options())
    classes = sorted(set(features.y))
    run_rules = dict(zip(features.groups, features.y))
    accuracies, named = [], []
    for train_runs, test_runs in balanced_run_splits(run_rules, n_splits=n_splits, seed=0):
        train, test = np.isin(features.groups, train_runs), np.isin(features.groups, test_runs)
        scores = _scores(_fit(classifier, features, train, classes, n_jobs), features, test, classes)
        accuracies.append(scores["run_accuracy"])
        named.append(scores["named"])
    pairs = pd.concat(named, ignore_index=True)
    recall = pairs.assign(right=pairs["rule"] == pairs["predicted"]).groupby("rule")["right"].mean()
    mistaken = pairs[pairs["rule"] != pairs["predicted"]].groupby("rule")["predicted"].agg(lambda p: p.value_counts().index[0])
    return {"rules": rule_set, "classifier": classifier, "features": config.name, "splits": n_splits,
            "mean": float(np.mean(accuracies)), "sem": float(np.std(accuracies, ddof=1) / np.sqrt(len(accuracies))),
            "accuracies": accuracies, "recall": {rule: round(float(value), 3) for rule, value in recall.items()},
            "most_mistaken_for": mistaken.to_dict()}


@dataclass
class ForeignSet:
    """Foreign recordings that learned: their labels (one row per network) and their observables."""

    name: str
    labels: pd.DataFrame
    recordings: pd.DataFrame
    read_seconds: float
    _features: dict = field(default_factory=dict, repr=False)

    def features(self, config: FeatureConfig):
        """The recordings' features under ``config``, built once."""
        from lrid.identify.features import build_features

        if config.name not in self._features:
            self._features[config.name] = build_features(self.recordings, **config.options())
        return self._features[config.name]


def learned_networks(labels: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of a foreign set's ``labels`` (indexed by run) whose networks learned, saying how many did not."""
    from lrid.generate.trainer import COLLAPSE_GAP_FRACTION

    # As lrid leaves out its own runs that learned nothing, so here: chance on digits is 1/10.
    threshold = 0.1 + COLLAPSE_GAP_FRACTION * 0.9
    learned = labels.index[labels["final_test_accuracy"] >= threshold]
    print(f"foreign {name}: {len(labels) - len(learned)} of {len(labels)} networks ended below test accuracy "
          f"{threshold:.2f} (they learned nothing) and are left out")
    return labels.loc[learned]


def read_foreign(directory: Path) -> ForeignSet:
    """The recordings in ``directory`` (with its ``labels.csv``) of networks that learned, read as a user's would be."""
    from lrid.identify.recording import read_recording

    labels = learned_networks(pd.read_csv(directory / "labels.csv").set_index("run"), directory.name)
    started = time.perf_counter()
    recordings = pd.concat([read_recording(directory / f"{run}.npz") for run in labels.index], ignore_index=True)
    read_seconds = time.perf_counter() - started
    recordings["rule"] = labels.loc[recordings["run_id"], "rule"].to_numpy()
    return ForeignSet(directory.name, labels, recordings, read_seconds)


@dataclass
class Identifier:
    """Models trained on a whole zoo, named as the default identifier names with them: ``models["plain"]``
    (a classifier and its classes) names every run or, with the reach (:attr:`FeatureConfig.reach`),
    only the runs without a reach under their readout, which ``models["reach"]`` names."""

    config: FeatureConfig
    models: dict[str, tuple]

    def parts(self, recordings: pd.DataFrame) -> pd.Series:
        """Which model names each run (indexed by run id): ``reach`` or ``plain``."""
        from lrid.identify.default_identifier import top_reach_present

        present = top_reach_present(recordings) if "reach" in self.models else pd.Series(False, index=recordings["run_id"].unique())
        return present.map({True: "reach", False: "plain"})

    def probabilities(self, recordings: pd.DataFrame, features=None, parts: pd.Series | None = None) -> pd.DataFrame:
        """Each run's probability per rule, indexed by run id. ``features``, a config -> features function for
        these recordings (:meth:`ForeignSet.features`), saves building them; ``parts``, :meth:`parts` if the
        caller has it already."""
        from lrid.identify.features import build_features

        parts = self.parts(recordings) if parts is None else parts
        named = []
        for part, runs in parts.groupby(parts).groups.items():
            config = self.config.model_features()[part]
            if features is not None:
                test = features(config)
            else:
                test = build_features(recordings[recordings["run_id"].isin(runs)], **config.options())
            named.append(_run_probabilities(self.models[part], test, runs))
        return pd.concat(named).loc[parts.index]


def _fit_all(observables, config: FeatureConfig, classifier: str, n_jobs: int, schedules=(), seed: int = 0
             ) -> Identifier:
    """An identifier trained on all of ``observables`` and on their runs re-recorded at each checkpoint
    schedule of ``schedules`` (as the default identifier is), the classifier seeded with ``seed``."""
    from lrid.identify.features import build_features
    from lrid.identify.schedules import rerecorded

    copies = rerecorded(observables, schedules)
    models = {}
    for part, features in config.model_features().items():
        train = build_features(copies, **features.options())
        classes = sorted(set(train.y))
        models[part] = _fit(classifier, train, np.ones(len(train.y), bool), classes, n_jobs, seed), classes
    return Identifier(config, models)


def _run_probabilities(fitted, test, runs=None) -> pd.DataFrame:
    """One model's probabilities per rule for each run of ``test`` (only ``runs``, if given), its samples' mean."""
    model, classes = fitted
    kept = np.ones(len(test.groups), bool) if runs is None else np.isin(test.groups, np.asarray(runs))
    return pd.DataFrame(model.predict_proba(test.X[kept]), columns=classes).groupby(test.groups[kept]).mean()


def _among_paper_rules(every_rule: pd.DataFrame) -> pd.DataFrame:
    """All-rule probabilities renormalised over the paper's four rules, as ``lrid identify --rules`` does."""
    from lrid.identify.inference import among_candidates

    return among_candidates(every_rule, PAPER_RULES)


def foreign_predictions(observables, config: FeatureConfig, classifier: str, foreign_sets: list[ForeignSet],
                        n_jobs: int, schedules=(), everything=None, seed: int = 0) -> dict[str, pd.DataFrame]:
    """For each foreign set, its networks' rules as named three ways, one column each, indexed by network:

    * ``all``: the identifier trained on every rule of the zoo (what ``lrid identify`` answers);
    * ``paper candidates``: the same identifier asked which of the paper's four rules it is
      (``lrid identify --rules sgdm,adam,fa,ia``: probabilities renormalised over them);
    * ``paper identifier``: an identifier trained on the paper's four rules only, the setting of the
      held-out levels' "paper 4" rows.

    Each identifier is fitted once (on ``schedules`` too, as :func:`_fit_all`, with the classifier's ``seed``)
    and names every set; ``everything``, the all-rule identifier's :func:`_fit_all` if the caller has it
    already, is not refitted.
    """
    if everything is None:
        everything = _fit_all(observables, config, classifier, n_jobs, schedules, seed)
    paper = _fit_all(_restrict(observables, PAPER_RULES), config, classifier, n_jobs, schedules, seed)
    named = {}
    for foreign_set in foreign_sets:
        every_rule = everything.probabilities(foreign_set.recordings, foreign_set.features)
        paper_rules = paper.probabilities(foreign_set.recordings, foreign_set.features)
        among = _among_paper_rules(every_rule)
        named[foreign_set.name] = pd.DataFrame({"all": every_rule.idxmax(axis=1),
                                                "paper candidates": among.idxmax(axis=1),
                                                "paper identifier": paper_rules.idxmax(axis=1),
                                                "all probability": every_rule.max(axis=1),
                                                "paper candidates probability": among.max(axis=1)})
    return named


# The probability an answer must reach to count in a band; 0 is every answer.
CONFIDENCE_LEVELS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def confidence_bands(named: dict[str, pd.DataFrame], foreign_sets: list[ForeignSet], classifier: str) -> list[dict]:
    """How often foreign networks named with at least each probability were named right, pooled over the sets.

    For the identifier's answer over every rule and among the paper's four (``--rules``): per level of
    :data:`CONFIDENCE_LEVELS`, the share of networks answered that confidently (coverage) and their accuracy.
    This is what ``lrid identify`` quotes beside each answer of the default identifier.
    """
    rows = []
    for naming in ("all", "paper candidates"):
        answered = []
        for foreign_set in foreign_sets:
            predictions = named[foreign_set.name]
            truth = foreign_set.labels.loc[predictions.index, "rule"]
            if naming != "all":
                predictions, truth = predictions[truth.isin(PAPER_RULES)], truth[truth.isin(PAPER_RULES)]
            answered.append(pd.DataFrame({"probability": predictions[f"{naming} probability"],
                                          "right": predictions[naming] == truth}))
        pooled = pd.concat(answered)
        for level in CONFIDENCE_LEVELS:
            confident = pooled[pooled["probability"] >= level]
            rows.append({"naming": naming, "classifier": classifier, "at_least": level, "networks": len(confident),
                         "coverage": len(confident) / len(pooled) if len(pooled) else None,
                         "accuracy": float(confident["right"].mean()) if len(confident) else None})
    return rows


def prediction_set_coverage(observables, config: FeatureConfig, classifier: str, foreign_sets: list[ForeignSet],
                            n_jobs: int, schedules=(), everything=None, coverage: float = DEFAULT_COVERAGE,
                            folds: int = CALIBRATION_FOLDS) -> list[dict]:
    """The all-rule identifier's prediction sets at ``coverage`` (the column ``lrid identify`` prints), calibrated
    on the zoo as the default identifier's are (:func:`lrid.identify.prediction_sets.cross_fitted_calibration`,
    which fits the identifier once per fold): how often they held the true rule of the foreign networks and how
    many rules they held, over every rule and among the paper's four (``naming``; ``--rules``, renormalised, the
    same threshold). Rows: each set and the sets pooled, as recorded; pooled, per true rule (``rule``); and
    pooled, re-recorded at each of :data:`TEST_SCHEDULES` (``schedule``). Each network's threshold is the
    one of the model that names it for its number of checkpoints
    (:func:`lrid.identify.prediction_sets.thresholds_for`); ``threshold`` is their mean. ``everything`` as :func:`foreign_predictions`."""
    from lrid.identify.classifiers import make_classifier
    from lrid.identify.features import build_features
    from lrid.identify.prediction_sets import (
        coverage_and_size,
        cross_fitted_calibration,
        prediction_sets,
        thresholds_for,
    )
    from lrid.identify.schedules import AS_RECORDED, at_schedule, points_per_run, recorded_points, rerecorded

    copies = rerecorded(observables, schedules)
    if everything is None:
        everything = _fit_all(observables, config, classifier, n_jobs, schedules)
    # Each model's sets are calibrated on the zoo's runs as that model reads them, as the default identifier's
    # variants are, and a network gets the threshold of the model that names it.
    calibrations = {}
    for part, (_, classes) in everything.models.items():
        train = build_features(copies, **config.model_features()[part].options())
        make_model = functools.partial(make_classifier, classifier, n_jobs, 0, n_points=train.n_points,
                                       n_static=train.n_static)
        calibrations[part] = cross_fitted_calibration(train, classes, schedules, make_model, coverage, folds,
                                                      round(recorded_points(observables)),
                                                      points_per_run(copies).to_dict())

    def row(set_name, naming, sets, true_rules, thresholds, schedule=AS_RECORDED, rule=None):
        held, size = coverage_and_size(sets, list(true_rules))
        return {"set": set_name, "naming": naming, "schedule": schedule, "rule": rule, "classifier": classifier,
                "coverage_asked": coverage, "threshold": float(np.mean(thresholds)), "networks": len(sets),
                "coverage": held, "mean_size": size}

    rows = []
    for schedule in (AS_RECORDED, *TEST_SCHEDULES):
        pooled = {"all": ([], [], []), "paper candidates": ([], [], [])}
        for foreign_set in foreign_sets:
            if schedule == AS_RECORDED:
                recordings, features = foreign_set.recordings, foreign_set.features
            else:
                recordings, features = at_schedule(foreign_set.recordings, schedule), None
            named_by = everything.parts(recordings)
            every_rule = everything.probabilities(recordings, features, named_by)
            truth = foreign_set.labels.loc[every_rule.index, "rule"]
            # Each network's threshold by its model and the checkpoints it was recorded at, as lrid identify
            # chooses it.
            points = points_per_run(recordings).reindex(every_rule.index)
            parts = named_by.reindex(every_rule.index)
            thresholds = pd.Series(np.nan, index=every_rule.index)
            for part, calibration in calibrations.items():
                thresholds[parts == part] = thresholds_for(calibration, points[parts == part].to_numpy())
            paper = truth.isin(PAPER_RULES)
            among = _among_paper_rules(every_rule[paper])
            for naming, probabilities, true_rules in (("all", every_rule, truth), ("paper candidates", among, truth[paper])):
                if probabilities.empty:
                    continue
                chosen = thresholds.loc[probabilities.index].to_numpy()
                sets = prediction_sets(probabilities, chosen)
                pooled[naming][0].extend(sets)
                pooled[naming][1].extend(true_rules)
                pooled[naming][2].extend(chosen)
                if schedule == AS_RECORDED:
                    rows.append(row(foreign_set.name, naming, sets, true_rules, chosen))
        for naming, (sets, true_rules, chosen) in pooled.items():
            if sets:
                rows.append(row("pooled", naming, sets, true_rules, chosen, schedule))
        if schedule == AS_RECORDED:
            sets, true_rules, chosen = pooled["all"]
            for rule in sorted(set(true_rules)):
                of_rule = [index for index, true_rule in enumerate(true_rules) if true_rule == rule]
                rows.append(row("pooled", "all", [sets[index] for index in of_rule], [rule] * len(of_rule),
                                [chosen[index] for index in of_rule], rule=rule))
    return rows


FOREIGN_MEASURES = ("accuracy_all", "accuracy_paper_rules", "accuracy_paper_candidates", "accuracy_paper_identifier")


def foreign_accuracies(predictions: pd.DataFrame, labels: pd.DataFrame) -> dict:
    """Accuracy over every foreign network and over those of the paper's four rules, for each way of naming."""
    truth = labels.loc[predictions.index, "rule"]
    paper = truth.isin(PAPER_RULES)
    named_right = predictions[["all", "paper candidates", "paper identifier"]].eq(truth, axis=0)
    return {"accuracy_all": float(named_right["all"].mean()),
            "accuracy_paper_rules": float(named_right.loc[paper, "all"].mean()) if paper.any() else None,
            "accuracy_paper_candidates": float(named_right.loc[paper, "paper candidates"].mean()) if paper.any() else None,
            "accuracy_paper_identifier": float(named_right.loc[paper, "paper identifier"].mean()) if paper.any() else None}


def mean_over_sets(rows: list[dict]) -> dict:
    """Each foreign measure averaged over the sets' rows (a set without the paper's rules is left out of theirs)."""
    means = {}
    for measure in FOREIGN_MEASURES:
        values = [row[measure] for row in rows if row.get(measure) is not None]
        means[measure] = float(np.mean(values)) if values else None
    return means


def foreign(observables, config: FeatureConfig, classifier: str, foreign_sets: list[ForeignSet],
            n_jobs: int, schedules=(), everything=None) -> tuple[list[dict], list[dict], list[dict]]:
    """The zoo-trained identifier on each set of foreign recordings: accuracy per rule, overall per set, and
    by the probability of its answers (:func:`confidence_bands`); ``everything`` as :func:`foreign_predictions`."""
    rows, summaries = [], []
    named = foreign_predictions(observables, config, classifier, foreign_sets, n_jobs, schedules, everything)
    for foreign_set in foreign_sets:
        predictions = named[foreign_set.name]
        truth = foreign_set.labels.loc[predictions.index, "rule"]
        for rule in sorted(set(truth)):
            of_rule = predictions[truth == rule]
            row = {"set": foreign_set.name, "rule": rule, "classifier": classifier, "networks": len(of_rule),
                   "accuracy": float((of_rule["all"] == rule).mean()),
                   "read_as": _read_as(of_rule["all"])}
            if rule in PAPER_RULES:
                row["paper_identifier_accuracy"] = float((of_rule["paper identifier"] == rule).mean())
                row["paper_identifier_read_as"] = _read_as(of_rule["paper identifier"])
            rows.append(row)
        summaries.append({"set": foreign_set.name, "classifier": classifier,
                          **foreign_accuracies(predictions, foreign_set.labels), "networks": len(truth),
                          "read_seconds": foreign_set.read_seconds})
    return rows, summaries, confidence_bands(named, foreign_sets, classifier)


# The checkpoint schedules the foreign recordings are re-recorded at, besides as recorded: those the default
# identifier trains on, and sparser ones (three points; four, denser early) that it never sees.
TEST_SCHEDULES = ("even11", "even6", "even4", "even3", "log11", "log6", "log4")


def by_schedule(observables, config: FeatureConfig, classifier: str, foreign_sets: list[ForeignSet], n_jobs: int,
                schedules, trained=None) -> list[dict]:
    """The all-rule identifier on the foreign recordings as recorded and re-recorded at each of
    :data:`TEST_SCHEDULES`, trained on the zoo as recorded and also on ``schedules``: accuracy over every
    rule and among the paper's four (``--rules``), meaned over the sets (each set's beside it). ``trained``,
    the identifier trained on ``schedules`` (:func:`_fit_all`) if the caller has it already, is not refitted."""
    from lrid.identify.schedules import AS_RECORDED, at_schedule, recorded_points, training_label

    if trained is None:
        trained = _fit_all(observables, config, classifier, n_jobs, schedules)
    identifiers = {training_label(()): _fit_all(observables, config, classifier, n_jobs) if schedules else trained}
    if schedules:
        identifiers[training_label(schedules)] = trained
    rows = []
    for schedule in (AS_RECORDED, *TEST_SCHEDULES):
        recordings = {foreign_set.name: foreign_set.recordings if schedule == AS_RECORDED
                      else at_schedule(foreign_set.recordings, schedule) for foreign_set in foreign_sets}
        points = recorded_points(pd.concat(recordings.values()))
        for trained_on, identifier in identifiers.items():
            right, right_among_paper = {}, {}
            for foreign_set in foreign_sets:
                every_rule = identifier.probabilities(recordings[foreign_set.name],
                                                      foreign_set.features if schedule == AS_RECORDED else None)
                truth = foreign_set.labels.loc[every_rule.index, "rule"]
                paper = truth.isin(PAPER_RULES)
                right[foreign_set.name] = float((every_rule.idxmax(axis=1) == truth).mean())
                right_among_paper[foreign_set.name] = float(
                    (every_rule.loc[paper, list(PAPER_RULES)].idxmax(axis=1) == truth[paper]).mean())
            rows.append({"classifier": classifier, "schedule": schedule, "points": points, "trained_on": trained_on,
                         "accuracy_all": float(np.mean(list(right.values()))),
                         "accuracy_paper_candidates": float(np.nanmean(list(right_among_paper.values()))),
                         "by_set": {name: round(value, 3) for name, value in right.items()}})
    return rows


def _at_layers(recordings: pd.DataFrame, layers: str) -> pd.DataFrame:
    """Foreign recordings as a lab that recorded some of the layers would give them, each layer placed in its
    network: ``whole``, ``hidden`` (the readout left out) or ``single:k`` (hidden layer k alone, of the networks
    that have it)."""
    from lrid.identify.partial_layers import at_partial

    if layers == "whole":
        return recordings
    if layers == "hidden":
        return at_partial(recordings, "hidden")
    hidden = at_partial(recordings, "hidden")
    return hidden[hidden["layer_index"] == int(layers.split(":")[1])]


# How the foreign recordings are cut into recordings of some layers: whole, without the readout, and each of
# the (up to three) hidden layers of the foreign networks alone.
TEST_LAYERS = ("whole", "hidden", "single:0", "single:1", "single:2")


def by_layers(observables, config: FeatureConfig, classifier: str, foreign_sets: list[ForeignSet], n_jobs: int,
              schedules) -> list[dict]:
    """The foreign recordings at some of their layers (:data:`TEST_LAYERS`), named by identifiers of the
    default identifier's partial measures (weights and activations; activations alone) trained as its whole
    variants are (the zoo and ``schedules``) and as its partial ones are (also every run at its hidden layers
    and at one hidden layer, :mod:`lrid.identify.partial_layers`): accuracy over every rule and among the
    paper's four, meaned over the sets (each set's beside it)."""
    from dataclasses import replace

    from lrid.identify.default_identifier import PARTIAL_VARIANTS, PARTIALLY_TRAINED, measures_of
    from lrid.identify.features import build_features
    from lrid.identify.partial_layers import PARTIAL_LAYERS, with_copies

    whole = with_copies(observables, schedules)
    partial = with_copies(observables, schedules, PARTIAL_LAYERS)
    rows = []
    for measures in map(measures_of, PARTIAL_VARIANTS):
        measured = replace(config, subset=measures)
        for trained_on, training in (("whole networks", whole), (PARTIALLY_TRAINED, partial)):
            train = build_features(training, **measured.options())
            classes = sorted(set(train.y))
            fitted = _fit(classifier, train, np.ones(len(train.y), bool), classes, n_jobs), classes
            for layers in TEST_LAYERS:
                right, right_among_paper, networks = {}, {}, 0
                for foreign_set in foreign_sets:
                    recordings = _at_layers(foreign_set.recordings, layers)
                    if recordings.empty:
                        continue
                    every_rule = _run_probabilities(fitted, build_features(recordings, **measured.options()))
                    truth = foreign_set.labels.loc[every_rule.index, "rule"]
                    paper = truth.isin(PAPER_RULES)
                    right[foreign_set.name] = float((every_rule.idxmax(axis=1) == truth).mean())
                    among = _among_paper_rules(every_rule)[paper]
                    right_among_paper[foreign_set.name] = float((among.idxmax(axis=1) == truth[paper]).mean())
                    networks += len(truth)
                if right:
                    rows.append({"classifier": classifier, "measures": measures, "layers": layers,
                                 "trained_on": trained_on, "networks": networks,
                                 "accuracy_all": float(np.mean(list(right.values()))),
                                 "accuracy_paper_candidates": float(np.nanmean(list(right_among_paper.values()))),
                                 "by_set": {name: round(value, 3) for name, value in right.items()}})
    return rows


def zoo_draws(observables, metadata: pd.DataFrame, config: FeatureConfig, classifier: str, foreign_sets: list[ForeignSet],
              draws: int, fraction: float, n_jobs: int, schedules=()) -> dict:
    """Foreign accuracy of identifiers trained on ``draws`` random zoos: ``fraction`` of each rule's runs.

    One zoo is one draw of its sampled configurations; how much foreign accuracy moves from draw to draw
    says how far one zoo's score can be trusted, and lets zoo designs be compared beyond that noise (at
    equal size: ``--zoo-draw-runs``). Each draw's identifiers name every foreign set.
    """
    rng = np.random.default_rng(0)
    results = []
    for draw in range(draws):
        kept = [run for _, runs in metadata.groupby("rule").groups.items()
                for run in rng.choice(np.array(sorted(runs)), size=int(round(len(runs) * fraction)), replace=False)]
        named = foreign_predictions(observables[observables["run_id"].isin(kept)], config, classifier, foreign_sets, n_jobs,
                                    schedules)
        per_set = [{"draw": draw, "set": foreign_set.name, "runs": len(kept),
                    **foreign_accuracies(named[foreign_set.name], foreign_set.labels)} for foreign_set in foreign_sets]
        results += per_set
        print(f"zoo draw {draw + 1} of {draws} ({len(kept)} runs): foreign accuracy "
              + ", ".join(f"{row['set']} {row['accuracy_all']:.3f}" for row in per_set), flush=True)

    # A draw's score is its mean over the sets, so the spread is the draws' and not the sets' differences.
    draw_means = [{"draw": draw, **mean_over_sets([row for row in results if row["draw"] == draw])} for draw in range(draws)]
    return {"classifier": classifier, "draws": draws, "fraction": fraction, "runs": results[0]["runs"] if results else 0,
            "sets": [foreign_set.name for foreign_set in foreign_sets], "results": results,
            "spread": _spread(draw_means),
            "spread_by_set": {foreign_set.name: _spread([row for row in results if row["set"] == foreign_set.name])
                              for foreign_set in foreign_sets}}


def _spread(rows: list[dict]) -> dict:
    """Each foreign measure's mean, s.d., min and max over ``rows``."""
    summary = {}
    for measure in FOREIGN_MEASURES:
        values = [row[measure] for row in rows if row[measure] is not None]
        if values:
            summary[measure] = {"mean": float(np.mean(values)),
                                "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                                "min": float(np.min(values)), "max": float(np.max(values))}
    return summary


def fit_seeds(observables, config: FeatureConfig, classifier: str, foreign_sets: list[ForeignSet], seeds: list[int],
              n_jobs: int, schedules=()) -> dict:
    """Foreign accuracy of the whole-zoo identifiers fitted with each classifier seed of ``seeds``, as the foreign
    table's are with seed 0: how much of one fit's score is that fit's luck. Each seed's score is its mean over
    the sets; ``spread`` is over the seeds."""
    results = []
    for seed in seeds:
        named = foreign_predictions(observables, config, classifier, foreign_sets, n_jobs, schedules, seed=seed)
        results += [{"seed": seed, "set": foreign_set.name, **foreign_accuracies(named[foreign_set.name], foreign_set.labels)}
                    for foreign_set in foreign_sets]
        print(f"fit seed {seed}: foreign accuracy " + ", ".join(f"{row['set']} {row['accuracy_all']:.3f}"
                                                                for row in results if row["seed"] == seed), flush=True)
    seed_means = [{"seed": seed, **mean_over_sets([row for row in results if row["seed"] == seed])} for seed in seeds]
    return {"classifier": classifier, "seeds": list(seeds), "results": results, "seed_means": seed_means,
            "spread": _spread(seed_means)}


def main() -> None:
    """Run the three measurements and write ``benchmarks/results/transfer.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(REPO / "OUT" / "zoo" / "store"), help="the zoo store")
    parser.add_argument("--generate", action="store_true", help="generate --sweep (default: the zoo's sweeps) into "
                        "--store first")
    parser.add_argument("--foreign", help="directories of foreign recordings with labels.csv, comma-separated (default: "
                        "generate --foreign-networks for each of --foreign-seeds into temporary directories)")
    parser.add_argument("--foreign-networks", type=int, default=112)
    parser.add_argument("--foreign-seeds", default="1,2,3", help="the seeds of the generated foreign sets (the defaults "
                        "write the sets the README's numbers were measured on)")
    parser.add_argument("--classifiers", default="linear,rf,xgb")
    parser.add_argument("--compare-with", default="linear", help="the classifier that compares feature configurations")
    parser.add_argument("--features", default="auto", help="the configuration measured in full: an index into CONFIGS, or "
                        "auto: the compared one with the best mean held-out-level accuracy over the rule sets")
    parser.add_argument("--configs", default=None, help="comma-separated indices of the configurations to compare (default: all)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sweep", help="measure only the runs of the store that this sweep YAML (or these, "
                        "comma-separated) expands to: a store holding a larger zoo can then be measured as the smaller one")
    parser.add_argument("--zoo-draws", type=int, default=5, help="identifiers trained on random zoos (--zoo-fraction of "
                        "each rule's runs), scored on the foreign recordings: the spread of foreign accuracy (0: none)")
    parser.add_argument("--zoo-fraction", type=float, default=2 / 3)
    parser.add_argument("--zoo-draw-runs", type=int, default=None, help="draw zoos of about this many runs instead of a "
                        "fraction, to compare zoo designs at equal size")
    parser.add_argument("--schedules", default=",".join(DEFAULT_SCHEDULES), help="checkpoint schedules every zoo run is "
                        "also trained on (lrid.identify.schedules; default: the default identifier's; '' for none)")
    parser.add_argument("--fit-seeds", default="", help="classifier seeds (comma-separated) whose whole-zoo identifiers "
                        "also name the foreign sets, for the spread of one fit's foreign accuracy (seed 0 is the foreign "
                        "table's; default: none)")
    parser.add_argument("--reach", action="store_true", help="name runs as the default identifier built with --reach "
                        "does: a run with an update reach under its readout by a second identifier that also reads it "
                        "(the store must have recorded it; the zoo's own runs all have it)")
    parser.add_argument("--quick", action="store_true", help="smoke run: three factors, one classifier, two configurations, "
                        "no zoo draws; meets no target")
    args = parser.parse_args()
    load_before = load_average()
    schedules = [name for name in args.schedules.split(",") if name]
    try:
        for name in schedules:
            parse_schedule(name)  # a typo stops the benchmark before it has spent anything
    except LridError as error:
        raise SystemExit(f"transfer: {error}") from None

    if args.generate:
        from lrid.config import load_sweep
        from lrid.generate import generate
        from lrid.generate.executors import make_executor

        for path in (args.sweep or ZOO_SWEEPS).split(","):
            generate(load_sweep(path), args.store, executor=make_executor("process"))
    try:
        observables, metadata = load_zoo(args.store, sweep=args.sweep)
    except LridError as error:
        raise SystemExit(f"transfer: {error}") from None
    classifiers = args.classifiers.split(",")[:1] if args.quick else args.classifiers.split(",")
    factors = ["width", "activation", "batch_size"] if args.quick else list(FACTORS)
    configs = [CONFIGS[int(i)] for i in args.configs.split(",")] if args.configs else CONFIGS
    if args.quick:
        configs = configs[:2]
    rule_sets = {"paper 4": PAPER_RULES, "all": None}
    print(f"zoo: {metadata.shape[0]} complete runs, rules {', '.join(sorted(metadata['rule'].unique()))}")

    # One configuration has nothing to be compared with: the full measurement below covers it.
    comparison = (compare_features(observables, metadata, configs, args.compare_with, rule_sets, factors, args.jobs)
                  if len(configs) > 1 else [])
    if args.features == "auto" and len(configs) == 1:
        chosen = configs[0]
    elif args.features == "auto":
        means = {config.name: np.mean([row["mean"] for row in comparison if row["features"] == config.name]) for config in configs}
        chosen = max(configs, key=lambda config: means[config.name])
    else:
        chosen = CONFIGS[int(args.features)]
    if args.reach:
        if observables["reach"].isna().all():
            raise SystemExit(f"transfer: {args.store} recorded no update reach; regenerate its runs with this lrid, "
                             "or measure without --reach")
        chosen = chosen.with_reach()
    print(f"features measured in full: {chosen.name}")

    from lrid.identify.features import build_features

    matrix = []
    for rule_set, rules in rule_sets.items():
        features = build_features(_restrict(observables, rules), **chosen.zoo_features().options())
        for classifier in classifiers:
            for factor in factors:
                matrix += [{"rules": rule_set, **row} for row in leave_one_level_out(features, metadata, factor, classifier, args.jobs)]
    print_table(matrix, ["rules", "factor", "level", "classifier", "n_test_runs", "run_accuracy", "sample_accuracy"],
                f"Leave one level out ({chosen.name}): accuracy per run and per sample")
    print_table(worst_level_readings(matrix), ["rules", "classifier", "level", "rule", "read_as"],
                "Worst held-out level: what its runs were read as")
    activations = []
    act_config = FeatureConfig(chosen.name.rsplit(",", 1)[0] + ", act", chosen.unit, chosen.time, chosen.baseline, "act",
                               chosen.depth_contrasts)
    features = build_features(_restrict(observables, PAPER_RULES), **act_config.options())
    for factor in factors:
        activations += leave_one_level_out(features, metadata, factor, classifiers[0], args.jobs)
    print_table(activations, ["factor", "level", "classifier", "n_test_runs", "run_accuracy"],
                f"Activations only, paper's 4 rules ({act_config.name})")
    within = [in_distribution(observables, chosen.zoo_features(), classifier, 10, args.jobs, rules, rule_set)
              for rule_set, rules in rule_sets.items() for classifier in classifiers]
    print_table(within, ["rules", "classifier", "features", "splits", "mean", "sem"], "In distribution (10 balanced splits)")
    print_table([{"rules": row["rules"], "classifier": row["classifier"], "rule": rule, "recall": recall,
                  "most_mistaken_for": row["most_mistaken_for"].get(rule, "")}
                 for row in within for rule, recall in row["recall"].items()],
                ["rules", "classifier", "rule", "recall", "most_mistaken_for"], "In distribution, per rule")

    if args.foreign:
        directories = [Path(directory) for directory in args.foreign.split(",")]
    else:
        import tempfile

        from benchmarks.foreign import generate_networks

        # A set is named by its directory: seed1, seed2, ... as the README's sets are.
        parent = Path(tempfile.mkdtemp(prefix="lrid-foreign-"))
        directories = [parent / f"seed{seed}" for seed in args.foreign_seeds.split(",")]
        for directory in directories:
            generate_networks(directory, args.foreign_networks, int(directory.name[4:]), "sgdm,adam,fa,ia,ss,np,np_wn")
    if len({directory.name for directory in directories}) < len(directories):
        raise SystemExit("transfer: foreign sets are named by their directories; give directories with distinct names")
    foreign_sets = [read_foreign(directory) for directory in directories]
    foreign_rows, foreign_summary, confidence = [], [], []
    identifiers = {}  # each classifier's all-rule identifier, fitted once for the foreign and schedule tables
    for classifier in classifiers:
        identifiers[classifier] = _fit_all(observables, chosen, classifier, args.jobs, schedules)
        rows, summaries, bands = foreign(observables, chosen, classifier, foreign_sets, args.jobs, schedules,
                                         identifiers[classifier])
        foreign_rows += rows
        foreign_summary += summaries
        confidence += bands
    print_table(foreign_rows, ["set", "rule", "classifier", "networks", "accuracy", "read_as", "paper_identifier_accuracy",
                               "paper_identifier_read_as"], "Foreign recordings")
    print_table(foreign_summary, ["set", "classifier", "networks", "accuracy_all", "accuracy_paper_rules",
                                  "accuracy_paper_candidates", "accuracy_paper_identifier", "read_seconds"],
                "Foreign, overall (paper rules: by the all-rule identifier, by it among the paper's 4, by a paper's-4 identifier)")
    print_table(confidence, ["naming", "classifier", "at_least", "networks", "coverage", "accuracy"],
                "Foreign networks by the probability of their answer (pooled over the sets)")
    set_rows = prediction_set_coverage(observables, chosen, classifiers[0], foreign_sets, args.jobs, schedules,
                                       identifiers[classifiers[0]])
    print_table(set_rows, ["set", "naming", "schedule", "rule", "classifier", "threshold", "networks", "coverage",
                           "mean_size"],
                f"Foreign networks' prediction sets at {DEFAULT_COVERAGE:.0%}, calibrated on the zoo "
                f"({CALIBRATION_FOLDS} folds): share holding the true rule, and rules per set")
    foreign_mean = mean_over_sets([row for row in foreign_summary if row["classifier"] == classifiers[0]])
    schedule_rows = by_schedule(observables, chosen, classifiers[0], foreign_sets, args.jobs, schedules,
                                identifiers[classifiers[0]])
    print_table(schedule_rows, ["schedule", "points", "trained_on", "accuracy_all", "accuracy_paper_candidates", "by_set"],
                f"Foreign networks re-recorded at fewer checkpoints ({classifiers[0]}, all-rule identifier; mean of the sets)")
    layer_rows = by_layers(observables, chosen, classifiers[0], foreign_sets, args.jobs, schedules)
    print_table(layer_rows, ["measures", "layers", "trained_on", "networks", "accuracy_all", "accuracy_paper_candidates",
                             "by_set"],
                f"Foreign networks recorded at some of their layers ({classifiers[0]}, all-rule identifiers; mean of the sets)")
    draws = None
    if args.zoo_draws and not args.quick:
        fraction = min(1.0, args.zoo_draw_runs / len(metadata)) if args.zoo_draw_runs else args.zoo_fraction
        draws = zoo_draws(observables, metadata, chosen, classifiers[0], foreign_sets, args.zoo_draws, fraction, args.jobs,
                          schedules)
        print_table(draws["results"], list(draws["results"][0]), f"Foreign accuracy of each zoo draw ({classifiers[0]})")
        print_table([{"measure": measure, **values} for measure, values in draws["spread"].items()],
                    ["measure", "mean", "sd", "min", "max"],
                    f"Foreign accuracy over {args.zoo_draws} zoo draws of {draws['runs']} runs ({classifiers[0]}, "
                    f"each draw's mean over {len(foreign_sets)} foreign set(s))")

    seeded = None
    if args.fit_seeds and not args.quick:
        seeded = fit_seeds(observables, chosen, classifiers[0], foreign_sets, [int(seed) for seed in args.fit_seeds.split(",")],
                           args.jobs, schedules)
        print_table([{"measure": measure, **values} for measure, values in seeded["spread"].items()],
                    ["measure", "mean", "sd", "min", "max"],
                    f"Foreign accuracy over classifier seeds {args.fit_seeds} ({classifiers[0]}, whole zoo, each seed's mean "
                    f"over {len(foreign_sets)} foreign set(s))")

    paper_levels = [row["run_accuracy"] for row in matrix if row["rules"] == "paper 4" and row["classifier"] == classifiers[0]]
    over_sets = f", mean of {len(foreign_sets)} sets" if len(foreign_sets) > 1 else ""
    targets = [
        {"target": "every held-out level, paper's 4 rules, per run >= 0.95", "measured": min(paper_levels, default=None),
         "goal": 0.95},
        {"target": "activations only, held-out levels >= 0.85", "measured": min((r["run_accuracy"] for r in activations), default=None),
         "goal": 0.85},
        {"target": "all rules in distribution >= 0.90",
         "measured": next(row["mean"] for row in within if row["rules"] == "all"), "goal": 0.90},
        {"target": f"foreign sgdm/adam/fa/ia >= 0.95 (paper's-4 identifier){over_sets}",
         "measured": foreign_mean["accuracy_paper_identifier"], "goal": 0.95},
        {"target": f"foreign sgdm/adam/fa/ia >= 0.95 (all-rule identifier){over_sets}",
         "measured": foreign_mean["accuracy_paper_rules"], "goal": 0.95},
        {"target": f"foreign, all its rules >= 0.85{over_sets}", "measured": foreign_mean["accuracy_all"], "goal": 0.85},
    ]
    for target in targets:
        # A store without the factors' levels (or a quick run) measures no target: not judged, rather than missed.
        unmeasured = args.quick or target["measured"] is None
        target["met"] = None if unmeasured else bool(target["measured"] >= target["goal"])
    print_table(targets, ["target", "measured", "goal", "met"],
                f"Targets ({classifiers[0]}, {chosen.name})" + (" -- quick run: not judged" if args.quick else ""))
    write_result("transfer", {
        "store": args.store, "sweep": args.sweep, "runs": int(metadata.shape[0]), "chosen_features": chosen.name,
        # As the default identifier's card names its features, so that the card quotes only this design.
        "chosen_options": {**{key: value for key, value in chosen.options().items() if key != "subset"},
                           **({"reach": True} if chosen.reach else {})},
        "targets_classifier": classifiers[0], "feature_comparison": comparison, "schedules": schedules,
        "leave_one_level_out": matrix, "activations_only": activations, "in_distribution": within,
        "foreign": {"directories": [str(directory) for directory in directories], "per_rule": foreign_rows,
                    "summary": foreign_summary, "mean_over_sets": foreign_mean, "confidence": confidence, "by_schedule": schedule_rows,
                    "by_layers": layer_rows, "prediction_sets": set_rows,
                    "zoo_draws": draws, "fit_seeds": seeded}, "targets": targets,
    }, load_before, quick=args.quick)


if __name__ == "__main__":
    main()
