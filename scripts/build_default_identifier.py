"""Build lrid's default identifier (lrid/identify/default_model/) from a zoo store: `make default-identifier`.

    python scripts/build_default_identifier.py --store OUT/zoo/store [--sweep A.yaml,B.yaml] [--generate]
        [--transfer benchmarks/results/transfer.json] [--classifier xgb] [--schedules even11,even6,...]
        [--variants partial:weight,act partial:act] [--reach]

The identifier is trained on the store's runs of --sweep (the zoo; default pipelines/zoo.yaml and zoo_activations.yaml), which
--generate generates into the store first (resumable). The model card records the transfer benchmark's
targets when its results file exists (run benchmarks/transfer.py on the same store and sweeps first), if
it measured the same features and checkpoint schedules.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZOO_SWEEPS = ("zoo.yaml", "zoo_activations.yaml")  # the zoo, as benchmarks/transfer.py measures it


def main() -> None:
    """Generate the zoo if asked, fit every variant of the default identifier, and print its card."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(REPO / "OUT" / "zoo" / "store"))
    parser.add_argument("--sweep", default=",".join(str(REPO / "pipelines" / name) for name in ZOO_SWEEPS),
                        help="the zoo: only the store's runs that this sweep (or these, comma-separated) expands to "
                        "are trained on")
    parser.add_argument("--generate", action="store_true", help="generate --sweep into --store first")
    parser.add_argument("--transfer", default=str(REPO / "benchmarks" / "results" / "transfer.json"))
    parser.add_argument("--classifier", default="xgb")
    parser.add_argument("--schedules", default=None, help="checkpoint schedules every run is also trained on, "
                        "comma-separated ('' for none; default: those --transfer measured, else the default identifier's)")
    parser.add_argument("--out", default=None, help="where to write the identifier (default: the one lrid ships)")
    parser.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                        help="refit only these variants (e.g. partial:act), keeping the others of the identifier at "
                        "--out, which must have been built from the same zoo")
    parser.add_argument("--reach", action="store_true", help="also fit the variants with update reach, for runs with a "
                        "reach under their readouts (the zoo must have recorded it; on by itself when --transfer "
                        "measured them: benchmarks/transfer.py --reach)")
    parser.add_argument("--card-only", action="store_true", help="refit nothing: quote --transfer on the card of "
                        "the identifier at --out (after a benchmark rerun of the same identifier)")
    parser.add_argument("--foreign-conv", default=None, metavar="RESULTS", help="refit nothing: quote RESULTS (the JSON "
                        "of `benchmarks/shipped_identifier.py --arch conv` run on the identifier at --out) on its card")
    args = parser.parse_args()

    from lrid.config import load_sweep
    from lrid.identify.default_identifier import (
        DEFAULT_DIRECTORY,
        DEFAULT_SCHEDULES,
        describe_card,
        quote_foreign_conv,
        refresh_transfer,
        train_default,
    )

    if args.foreign_conv:
        print("\n".join(describe_card(quote_foreign_conv(Path(args.out) if args.out else DEFAULT_DIRECTORY,
                                                          Path(args.foreign_conv)))))
        return
    if args.card_only:
        print("\n".join(describe_card(refresh_transfer(Path(args.out) if args.out else DEFAULT_DIRECTORY,
                                                        Path(args.transfer)))))
        return

    paths = args.sweep.split(",")
    sweeps = [load_sweep(path) for path in paths]
    if args.generate:
        from lrid.generate import generate
        from lrid.generate.executors import make_executor

        for sweep in sweeps:
            generate(sweep, args.store, executor=make_executor("process"))
    transfer = Path(args.transfer)
    # The features the transfer benchmark chose, and the checkpoint schedules it trained on (both measured),
    # unless it has not run.
    measured = json.loads(transfer.read_text()) if transfer.is_file() else {}
    options = measured.get("chosen_options")
    # A benchmark run with --reach measured the identifier with the reach variants: build that one.
    reach = args.reach or bool(options and options.pop("reach", False))
    schedules = measured.get("schedules", list(DEFAULT_SCHEDULES))
    if args.schedules is not None:
        schedules = [name for name in args.schedules.split(",") if name]
    card = train_default(args.store, Path(args.out) if args.out else DEFAULT_DIRECTORY, classifier=args.classifier,
                         feature_options=options, transfer_results=transfer,
                         sweep=",".join(os.path.relpath(Path(path).resolve(), REPO) for path in paths),
                         runs={spec.run_id for sweep in sweeps for spec in sweep.expand()}, schedules=schedules,
                         only=args.variants, reach=reach)
    print("\n".join(describe_card(card)))


if __name__ == "__main__":
    from lrid.errors import LridError

    try:
        main()
    except LridError as error:  # a bad option or an empty store: one line, as lrid's commands say it
        raise SystemExit(f"build_default_identifier: {error}") from None
