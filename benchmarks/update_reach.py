"""Update reach as evidence of the rule: does it add to lrid's features, in the zoo and on foreign networks?

:mod:`lrid.observables.update_reach` measures whether a layer's weight updates point where the layer above
reads, which backprop's errors do and feedback alignment's and node perturbation's do not. No statistic of
one layer can show it: it needs two layers' kernels at consecutive checkpoints.

The zoo's learned runs (``--per-rule`` of each rule, stratified; 0 for all) give their reach either as the
store recorded it (``--recorded``: a zoo generated since lrid records the reach) or re-trained,
deterministically (:func:`lrid.generate.export.export_recording`), their kernels kept in ``--cache``
(resumable: a killed run picks up where it stopped). Each run's reach is summarised as lrid's features
summarise it (``--observables reach --unit run``): its mean over each quarter of training, for the layer below
the top and for the layers below that (8 features). XGBoost identifiers on lrid's default features
(``benchmarks/transfer.py``'s chosen configuration) are trained on the same runs with and without them
(:data:`ARMS`): in the zoo over 10 stratified 75/25 splits of runs (mean and spread), and on every sampled
run to name the foreign networks of ``--foreign`` (one classifier seed per ``--seeds``), per set and per
rule. A foreign conv net whose readout reads its last map over several positions has no top reach unless
the map is read channels-last (its recording does not say so); one arm does so (the foreign nets flatten
channels-last), one trains on each zoo conv net also without its top reach, so that a missing one is a
value it has seen, one names such a network with the identifier trained without the reach, and one reads
the reach of networks without conv layers only (in training and naming).

    python benchmarks/update_reach.py --store ZOO/store --foreign DIR1,DIR2 [--recorded] [--per-rule 70] [--cache DIR]

Re-training takes a few seconds a run, in ``--workers`` processes, and is paid once per cache. ``--quick``
(5 per rule, 2 splits, one seed) checks the plumbing and judges nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness import load_average, print_table, write_result  # noqa: E402
from benchmarks.transfer import CONFIGS, ZOO_SWEEPS, learned_networks, load_zoo  # noqa: E402
from lrid.identify.features import reach_names  # noqa: E402

# The configuration the default identifier uses (run unit, progress clock, relative, depth contrasts).
CONFIG = CONFIGS[8]


def _reach_rows(reach: np.ndarray, steps: np.ndarray | None = None) -> pd.DataFrame:
    """One network's rows as the store keeps its reach, from :func:`update_reach`'s [layers - 1, intervals]: a
    point's value is the update since the point before it, and the readout has none. ``steps``: the recorded
    steps (default: evenly spaced)."""
    n_layers, n_points = len(reach) + 1, reach.shape[1] + 1
    by_point = np.full((n_points, n_layers), np.nan)
    by_point[1:, :-1] = reach.T
    steps = np.arange(n_points) if steps is None else np.asarray(steps)
    return pd.DataFrame({"run_id": "network", "step": np.repeat(steps, n_layers),
                         "layer_index": np.tile(np.arange(n_layers), n_points), "reach": by_point.ravel()})


REACH_FEATURES = reach_names("run")  # lrid's run-unit reach summary: the layer under the top, then those below
QUARTERS = len(REACH_FEATURES) // 2


@dataclass(frozen=True)
class Arm:
    """One identifier design: lrid's features alone or with the reach, how foreign maps are read, how it trains."""

    name: str
    reach: bool = False
    # Read the foreign networks' flattened conv maps channels-last (benchmarks/foreign flattens them so; the
    # zoo's conv nets end at one position, where the order does not matter).
    channels_last: bool = False
    # Train on every conv run twice, the second time without its top layer's reach, as a recording whose
    # flatten order is unknown gives it: trees never trained on a missing value send it down arbitrary branches.
    blank_conv_copies: bool = False
    # Name a network whose top reach is missing with the identifier trained without the reach (two models, as
    # the default identifier has one per set of measures a recording carries): no model meets a missing value.
    fall_back: bool = False
    # Conv nets without any reach, in training (the zoo's conv runs, in and out of its splits) and when named
    # (the foreign conv sets): one identifier, which reads the reach of networks without conv layers only.
    dense_only: bool = False


ARMS = (
    Arm("lrid features"),
    Arm("lrid features + reach", reach=True),
    Arm("lrid features + reach, maps channels-last", reach=True, channels_last=True),
    Arm("lrid features + reach, conv runs also without top reach", reach=True, blank_conv_copies=True),
    Arm("lrid features + reach, lrid features where the top reach is missing", reach=True, fall_back=True),
    Arm("lrid features + reach of networks without conv layers", reach=True, dense_only=True),
)


def reach_features(kernels: list[np.ndarray], flatten: str | None = None, steps: np.ndarray | None = None) -> list[float]:
    """A network's update reach as lrid's features summarise it (``--observables reach --unit run``,
    :data:`REACH_FEATURES`): its mean over each quarter of training for the layer below the top, then for the
    layers below that (NaN for one hidden layer). ``flatten``: see
    :func:`lrid.observables.update_reach.update_reach`; ``steps``: the checkpoints' (default: evenly spaced)."""
    from lrid.identify.features import build_features
    from lrid.observables.update_reach import update_reach

    rows = _reach_rows(update_reach(kernels, flatten), steps)
    return build_features(rows, subset="reach", unit="run").X[0].tolist()


def sample_runs(metadata: pd.DataFrame, per_rule: int, seed: int = 0) -> list[str]:
    """Up to ``per_rule`` learned runs of each rule of the zoo, drawn with ``seed`` (all of them for 0)."""
    from lrid.generate.trainer import COLLAPSE_GAP_FRACTION

    learned = metadata[metadata["final_test_accuracy"] >= 0.1 + COLLAPSE_GAP_FRACTION * 0.9].sort_index()
    if per_rule <= 0:
        return sorted(learned.index)
    drawn = [group.sample(min(len(group), per_rule), random_state=seed) for _, group in learned.groupby("rule")]
    return sorted(pd.concat(drawn).index)


def _cache_kernels(job: tuple[str, str, str]) -> str:
    """Re-train one zoo run and keep its kernels in the cache (a worker's task)."""
    store_location, run_id, cache = job
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lrid.generate.export import export_recording
    from lrid.identify.recording import load_recordings

    target = Path(cache) / f"{run_id}.npz"
    with tempfile.TemporaryDirectory() as scratch:
        (recording,) = load_recordings(export_recording(store_location, Path(scratch) / "run.npz", run_id))
        partial = target.with_suffix(".partial.npz")
        np.savez(partial, layers=np.array(recording.layers), steps=recording.steps,
                 **{f"weight/{layer}": recording.arrays["weight"][layer] for layer in recording.layers})
        partial.replace(target)  # only whole files count as cached
    return run_id


def zoo_reach(store_location: str, run_ids: list[str], cache: Path, workers: int) -> pd.DataFrame:
    """:func:`reach_features` of each run, re-training those not yet in ``cache``."""
    from tqdm import tqdm

    cache.mkdir(parents=True, exist_ok=True)
    missing = [run_id for run_id in run_ids if not (cache / f"{run_id}.npz").is_file()]
    if missing:
        jobs = [(store_location, run_id, str(cache)) for run_id in missing]
        # Spawned, not forked: a fork of a process that has loaded TensorFlow can hang.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in tqdm(pool.map(_cache_kernels, jobs), total=len(jobs), desc="re-training zoo runs", unit="run"):
                pass
    rows = {}
    for run_id in run_ids:
        with np.load(cache / f"{run_id}.npz") as arrays:
            kernels = [arrays[f"weight/{layer}"] for layer in arrays["layers"]]
            # Caches written before they kept the steps read the checkpoints as evenly spaced.
            rows[run_id] = reach_features(kernels, steps=arrays["steps"] if "steps" in arrays else None)
    return pd.DataFrame.from_dict(rows, orient="index", columns=REACH_FEATURES)


def _summarised(observables: pd.DataFrame) -> pd.DataFrame:
    """Each run's reach column as lrid's features summarise it (:data:`REACH_FEATURES`), by run id."""
    from lrid.identify.features import build_features

    features = build_features(observables, subset="reach", unit="run", time="fraction")
    return pd.DataFrame(features.X, index=features.groups, columns=REACH_FEATURES)


def recorded_reach(observables: pd.DataFrame, run_ids: list[str]) -> pd.DataFrame:
    """The runs' reach as the store recorded it (a zoo generated since lrid records it), as :data:`REACH_FEATURES`."""
    kept = observables[observables["run_id"].isin(run_ids)]
    if kept["reach"].isna().all():
        raise SystemExit("update_reach: the store's runs recorded no update reach; regenerate the zoo with this lrid, "
                         "or leave out --recorded to re-train the runs")
    return _summarised(kept)


def foreign_set(directory: Path):
    """A foreign set's features (:data:`CONFIG`), its reach features in the same row order as its recordings
    give them and read channels-last (as :data:`ARMS` reads them), and its labels."""
    from lrid.identify.features import build_features
    from lrid.identify.recording import load_recordings, recording_observables, recording_reach

    labels = learned_networks(pd.read_csv(directory / "labels.csv").set_index("run"), directory.name)
    as_given, channels_last = [], []
    for run in labels.index:
        (recording,) = load_recordings(directory / f"{run}.npz")
        observed = recording_observables(recording)  # its reach as lrid reads the recording (no flatten order)
        recording.flatten = "channels_last"  # how benchmarks/foreign flattens its maps
        as_given.append(observed)
        channels_last.append(observed.assign(reach=recording_reach(recording).ravel()))
    observables = pd.concat(as_given, ignore_index=True)
    features = build_features(observables, **CONFIG.options())
    frames = {False: _summarised(observables).loc[features.groups],
              True: _summarised(pd.concat(channels_last, ignore_index=True)).loc[features.groups]}
    return features, frames, labels


def _classifier(features, seed: int):
    from lrid.identify.classifiers import make_classifier

    return make_classifier("xgb", 2, seed, n_points=features.n_points, n_static=features.n_static)


def _design(base: np.ndarray, reach: np.ndarray, with_reach: bool) -> np.ndarray:
    return np.hstack([base, reach]) if with_reach else base


def _training_rows(X: np.ndarray, labels: np.ndarray, conv_runs: np.ndarray, arm: Arm, rows: np.ndarray):
    """The design rows ``rows`` an arm trains on, and their labels: with ``blank_conv_copies``, each conv run
    among them once more without its top layer's reach."""
    if not arm.blank_conv_copies:
        return X[rows], labels[rows]
    copied = rows[conv_runs[rows]]
    copies = X[copied].copy()
    copies[:, -len(REACH_FEATURES) : -len(REACH_FEATURES) + QUARTERS] = np.nan
    return np.vstack([X[rows], copies]), np.concatenate([labels[rows], labels[copied]])


def compare(train, train_reach: np.ndarray, conv_runs: np.ndarray, foreign: dict, splits: int,
            seeds: list[int]) -> list[dict]:
    """One row per arm of :data:`ARMS`: zoo accuracy over ``splits`` (held-out runs as recorded) and each
    foreign set's accuracy and per-rule recall, averaged over classifier ``seeds``. ``conv_runs`` marks the
    training runs that are conv nets."""
    from sklearn.model_selection import StratifiedShuffleSplit

    classes = sorted(set(train.y))
    labels = np.array([classes.index(rule) for rule in train.y])
    rows = []
    trained: dict[tuple[bool, bool, bool], tuple[list[float], dict]] = {}
    for arm in ARMS:
        X = _design(train.X, np.where(conv_runs[:, None], np.nan, train_reach) if arm.dense_only else train_reach,
                    arm.reach)
        # Arms that differ only in how they read foreign maps share their classifiers.
        key = (arm.reach, arm.blank_conv_copies, arm.dense_only)
        if key not in trained:
            splitter = StratifiedShuffleSplit(splits, test_size=0.25, random_state=0)
            zoo_scores = []
            for fit, held in splitter.split(X, labels):
                model = _classifier(train, 0).fit(*_training_rows(X, labels, conv_runs, arm, fit))
                zoo_scores.append(float(np.mean(model.predict(X[held]) == labels[held])))
            everything = np.arange(len(labels))
            models = {seed: _classifier(train, seed).fit(*_training_rows(X, labels, conv_runs, arm, everything))
                      for seed in seeds}
            trained[key] = zoo_scores, models
        zoo, models = trained[key]
        row = {"arm": arm.name, "zoo_runs": len(labels), "zoo_mean": float(np.mean(zoo)),
               "zoo_std": float(np.std(zoo)), "zoo_min": float(np.min(zoo))}
        recalls: dict[str, list[float]] = {}
        for seed in seeds:
            for name, (features, reach, truth) in foreign.items():
                foreign_reach = reach[arm.channels_last].to_numpy()
                if arm.dense_only and "conv" in name:
                    foreign_reach = np.full_like(foreign_reach, np.nan)
                probabilities = pd.DataFrame(
                    models[seed].predict_proba(_design(features.X, foreign_reach, arm.reach)), columns=classes
                )
                missing = np.isnan(foreign_reach[:, :QUARTERS]).all(axis=1)
                if arm.fall_back and missing.any():
                    without = trained[(False, False, False)][1][seed]
                    probabilities.loc[missing, :] = without.predict_proba(features.X[missing])
                named = probabilities.groupby(features.groups).mean().idxmax(axis=1)
                true_rules = truth.loc[named.index, "rule"]
                row.setdefault(name, []).append(float(np.mean(named == true_rules)))
                kind = "conv" if "conv" in name else "mlp"
                for rule in sorted(set(true_rules)):
                    recalls.setdefault(f"{kind} {rule}", []).append(float(np.mean(named[true_rules == rule] == rule)))
        for name in foreign:
            row[f"{name} per seed"], row[name] = row[name], float(np.mean(row[name]))
        row["recall"] = {key: float(np.mean(values)) for key, values in sorted(recalls.items())}
        rows.append(row)
    return rows


def main(argv=None) -> None:
    """Measure what update reach adds to the identifier; print the tables and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(REPO / "OUT" / "zoo" / "store"), help="the zoo store")
    parser.add_argument("--sweep", default=ZOO_SWEEPS, help="the sweeps whose runs count as the zoo")
    parser.add_argument("--foreign", required=True, help="directories of foreign recordings with labels.csv, "
                        "comma-separated (written by `python -m benchmarks.foreign.generate`); a set whose "
                        "path holds 'conv' counts as conv nets in the per-rule table")
    parser.add_argument("--per-rule", type=int, default=70, help="zoo runs per rule (0: every learned run)")
    parser.add_argument("--recorded", action="store_true", help="read the zoo's reach from the store, which recorded "
                        "it, instead of re-training the runs")
    parser.add_argument("--cache", default=str(REPO / "OUT" / "update_reach_kernels"),
                        help="where re-trained runs' kernels are kept between invocations")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--seeds", default="0,1,2", help="classifier seeds for the foreign sets")
    parser.add_argument("--quick", action="store_true", help="5 runs per rule, 2 splits, one seed: plumbing only")
    args = parser.parse_args(argv)
    load_before = load_average()
    started = time.perf_counter()
    per_rule, splits, seeds = (5, 2, [0]) if args.quick else (args.per_rule, args.splits,
                                                              [int(s) for s in args.seeds.split(",")])
    directories = [Path(directory) for directory in args.foreign.split(",")]
    missing = [str(directory) for directory in directories if not (directory / "labels.csv").is_file()]
    if missing:
        raise SystemExit(f"update_reach: no labels.csv in {', '.join(missing)}; write the sets with "
                         "`python -m benchmarks.foreign.generate`")
    from lrid.identify.features import build_features

    observables, metadata = load_zoo(args.store, sweep=args.sweep)
    run_ids = sample_runs(metadata, per_rule)
    if args.recorded:
        reach = recorded_reach(observables, run_ids)
    else:
        reach = zoo_reach(args.store, run_ids, Path(args.cache), args.workers)
    train = build_features(observables[observables["run_id"].isin(run_ids)], **CONFIG.options())
    # Named with their parent folder, which tells conv sets apart ("foreign_conv/seed1").
    foreign = {f"{directory.parent.name}/{directory.name}": foreign_set(directory) for directory in directories}
    conv_runs = (metadata.loc[train.groups, "arch"] != "mlp").to_numpy()
    rows = compare(train, reach.loc[train.groups].to_numpy(), conv_runs, foreign, splits, seeds)
    print_table(rows, ["arm", "zoo_runs", "zoo_mean", "zoo_std", "zoo_min", *foreign],
                f"Named right per run: the zoo over {splits} splits, foreign sets averaged over {len(seeds)} "
                "classifier seeds")
    print_table([{"rule": key, **{row["arm"]: row["recall"][key] for row in rows}} for key in rows[0]["recall"]],
                ["rule", *(row["arm"] for row in rows)], "Foreign recall per rule")
    seconds = round(time.perf_counter() - started, 1)
    path = write_result("update_reach", {"store": args.store, "sets": [str(d) for d in directories],
                                         "recorded": args.recorded, "per_rule": per_rule, "splits": splits, "seeds": seeds,
                                         "seconds": seconds, "rows": rows}, load_before, quick=args.quick)
    print(f"update_reach: {len(run_ids)} zoo runs in {seconds} s; results in {path}")


if __name__ == "__main__":
    main()
