"""The shipped default identifier on foreign networks, read exactly as ``lrid identify`` reads a recording.

``benchmarks/transfer.py`` trains identifiers as the default one is trained and scores them; this scores the
identifier lrid ships (or ``$LRID_DEFAULT_IDENTIFIER``), on the networks of ``benchmarks/foreign`` that learned,
recorded whole and cut as a lab would record them: at the hidden layers (no readout) and at each hidden layer
alone, placed in their networks (``network_layers``, ``layer_positions``), with every measure a cut can carry.
Each cut goes through :func:`lrid.identify.recording.recording_observables` and
:func:`lrid.identify.default_identifier.identify_default`, so it meets the model ``lrid identify`` would pick.

    python benchmarks/shipped_identifier.py --foreign DIR1,DIR2     # sets written by benchmarks.foreign.generate
    python benchmarks/shipped_identifier.py --arch conv --seeds 1,2  # generate conv sets first, then score them

Per cut: networks, share named right over all their rules, the paper's four named among those four
(``--rules sgdm,adam,fa,ia``), how often the prediction set held the true rule and its mean size; per rule for
whole networks, with what each rule is most often mistaken for. Prints the tables and writes
``benchmarks/results/shipped_identifier.json``; ``scripts/build_default_identifier.py --foreign-conv`` quotes a
conv run of it on the model card, which ``lrid identify`` then quotes for recordings with conv layers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness import load_average, print_table, write_result  # noqa: E402
from benchmarks.transfer import learned_networks  # noqa: E402
from lrid.observables.update_reach import FLATTEN_ORDERS  # noqa: E402

RULES = "sgdm,adam,fa,ia,ss,np,np_wn"
WHOLE_MEASURES = ("weight,act,actchange", "weight,act", "act")
PARTIAL_MEASURES = ("weight,act", "act")


def cuts(layers: list[str]) -> dict[str, list[int]]:
    """The layers each cut keeps, by name: ``whole``, ``hidden`` (all but the readout), ``hidden K alone``."""
    hidden = list(range(len(layers) - 1))
    chosen = {"whole": list(range(len(layers))), "hidden": hidden}
    chosen.update({f"hidden {k + 1} alone": [k] for k in hidden})
    return chosen


def cut_observables(directories: list[Path], flatten: str | None = None
                    ) -> tuple[dict[tuple[str, str], pd.DataFrame], pd.Series, Counter]:
    """Every learned network's observables per (cut, measures), each network's true rule, and how many networks
    are of each architecture a recording shows (``conv`` or ``dense``). ``flatten``: the order every recording
    is read as saying its readout flattened a conv map in (``benchmarks/foreign`` flattens channels-last but
    does not say so), so that such a readout has an update reach."""
    from lrid.identify.recording import Recording, load_recordings, recording_arch, recording_observables

    frames: dict[tuple[str, str], list[pd.DataFrame]] = {}
    truth = {}
    architectures: Counter = Counter()
    for directory in directories:
        labels = learned_networks(pd.read_csv(directory / "labels.csv").set_index("run"), directory.name)
        for run, rule in labels["rule"].items():
            (recording,) = load_recordings(directory / f"{run}.npz")
            if flatten is not None:
                recording.flatten = flatten
            truth[recording.run] = rule
            architectures[recording_arch(recording)] += 1
            for cut, kept in cuts(list(recording.layers)).items():
                names = [recording.layers[k] for k in kept]
                placed = len(kept) < len(recording.layers)
                for measures in WHOLE_MEASURES if cut == "whole" else PARTIAL_MEASURES:
                    arrays = {kind: {layer: recording.arrays[kind][layer] for layer in names} for kind in measures.split(",")}
                    part = Recording(recording.run, recording.steps, names, arrays, recording.epochs,
                                     kept if placed else None, len(recording.layers) if placed else None,
                                     recording.flatten)
                    frames.setdefault((cut, measures), []).append(recording_observables(part))
    return {key: pd.concat(parts, ignore_index=True) for key, parts in frames.items()}, pd.Series(truth), architectures


def score(observables: pd.DataFrame, truth: pd.Series) -> dict:
    """The default identifier's answers for ``observables`` against ``truth``: the row of one cut."""
    from lrid.identify.default_identifier import PAPER_RULES, identify_default
    from lrid.identify.inference import among_candidates
    from lrid.identify.prediction_sets import SET_COLUMNS

    predictions, variant = identify_default(observables)
    true_rules = truth.loc[predictions["run_id"]].to_numpy()
    predicted = predictions["predicted"].to_numpy()
    classes = [c for c in predictions.columns if c not in ("run_id", "predicted", "n_samples", "rule", *SET_COLUMNS)]
    paper = np.isin(true_rules, PAPER_RULES)
    among = among_candidates(predictions.set_index("run_id")[classes], PAPER_RULES).idxmax(axis=1).to_numpy()
    sets = predictions["prediction_set"].str.split(",")
    return {
        "variant": variant,
        "networks": len(true_rules),
        "named_right": float(np.mean(predicted == true_rules)),
        "paper_networks": int(paper.sum()),
        "paper_among_four": float(np.mean(among[paper] == true_rules[paper])) if paper.any() else None,
        "sets_held": float(np.mean([rule in members for rule, members in zip(true_rules, sets)])),
        "mean_set_size": float(sets.str.len().mean()),
        "recall": {rule: float(np.mean(predicted[true_rules == rule] == rule)) for rule in sorted(set(true_rules))},
        "read_as": {rule: dict(Counter(predicted[(true_rules == rule) & (predicted != rule)]).most_common(2))
                    for rule in sorted(set(true_rules))},
    }


def main(argv=None) -> None:
    """Score the shipped identifier on the given (or generated) foreign sets; print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--foreign", help="directories of foreign recordings with labels.csv, comma-separated "
                        "(default: generate --networks for each of --seeds, of --arch)")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--networks", type=int, default=112)
    parser.add_argument("--arch", default="mlp", choices=("mlp", "conv"), help="the generated sets' architecture")
    parser.add_argument("--flatten", choices=FLATTEN_ORDERS, default=None, help="read every recording as saying its "
                        "conv maps were flattened in this order, as a lab that knows its framework would record "
                        "(benchmarks/foreign flattens channels_last; default: as the recordings say, here unsaid)")
    args = parser.parse_args(argv)
    load_before = load_average()
    started = time.perf_counter()
    if args.foreign:
        directories = [Path(directory) for directory in args.foreign.split(",")]
    else:
        from benchmarks.foreign import generate_networks

        parent = Path(tempfile.mkdtemp(prefix="lrid-foreign-"))
        directories = []
        for seed in args.seeds.split(","):
            directory = parent / f"{args.arch}-seed{seed}"
            generate_networks(directory, args.networks, int(seed), RULES, progress=True, arch=args.arch)
            directories.append(directory)
    missing = [str(directory) for directory in directories if not (directory / "labels.csv").is_file()]
    if missing:
        raise SystemExit(f"shipped_identifier: no labels.csv in {', '.join(missing)}; write the sets with "
                         "`python -m benchmarks.foreign.generate`")
    observables, truth, architectures = cut_observables(directories, args.flatten)
    rows = [{"cut": cut, "measures": measures, **score(frame, truth)} for (cut, measures), frame in observables.items()]
    print_table(rows, ["cut", "measures", "variant", "networks", "named_right", "paper_among_four", "sets_held",
                       "mean_set_size"], "The shipped identifier on foreign networks (prediction sets at 90 %)")
    print_table([{"measures": row["measures"], "rule": rule, "recall": recall,
                  "read_as": ", ".join(f"{other} {count}" for other, count in row["read_as"][rule].items())}
                 for row in rows if row["cut"] == "whole" for rule, recall in row["recall"].items()],
                ["measures", "rule", "recall", "read_as"], "Whole networks, per rule (read_as: the commonest mistakes)")
    seconds = round(time.perf_counter() - started, 1)
    path = write_result("shipped_identifier", {"sets": [str(directory) for directory in directories],
                                               "networks": int(len(truth)), "architectures": dict(architectures),
                                               "flatten": args.flatten,
                                               "seconds": seconds, "rows": rows},
                        load_before)
    print(f"shipped_identifier: {len(truth)} networks in {seconds} s; results in {path}")


if __name__ == "__main__":
    main()
