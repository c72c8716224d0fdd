"""Partial layers: a network seen at some of its layers, as a lab that records a few areas sees it.

A recording may hold some of a network's layers only, each placed at its position in the network
(:mod:`lrid.identify.recording`). Its features then lack the depth groups it did not record (NaN), and an
identifier that only ever saw whole networks reads what is left far less reliably (README, "Recorded at
some layers"). :func:`partial_copies` makes a copy of each of a store's runs per choice of layers; trained
on the runs and their copies, one identifier learns whole networks and partial ones at once:

* ``hidden``: every layer but the readout (the network's deepest layer), as a lab records a network's
  areas and not its output;
* ``single``: one hidden layer alone, drawn for each run from its id (the same draw in every process).

Every layer keeps the depth group it has in the whole network. A copy's run id is ``{run_id}@{name}``, the
separator of the checkpoint schedules' copies (:mod:`lrid.identify.schedules`), so that splits keep a run
and its copies on one side.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import pandas as pd

from lrid.errors import LridError
from lrid.identify.schedules import COPY_SEPARATOR, rerecorded

PARTIAL_LAYERS = ("hidden", "single")
# What each choice keeps, in words, for model cards.
DESCRIPTIONS = {"hidden": "at its hidden layers (no readout)", "single": "at one hidden layer alone"}


def check_partial(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` once each, in order; a name not in :data:`PARTIAL_LAYERS` is an error."""
    unknown = [name for name in names if name not in PARTIAL_LAYERS]
    if unknown:
        raise LridError(
            f"unknown partial layers {unknown[0]!r}; use {' or '.join(PARTIAL_LAYERS)} (comma-separated for both)"
        )
    return tuple(dict.fromkeys(names))


def nearest_partial(recorded_layers: int) -> str:
    """The choice of :data:`PARTIAL_LAYERS` a recording of ``recorded_layers`` of its network's layers is most
    like: ``single`` for one layer, ``hidden`` for more."""
    return "single" if recorded_layers <= 1 else "hidden"


def at_partial(observables: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of ``observables`` (the store's long format) that the partial layers ``name`` keep of each
    run; runs without a hidden layer keep none."""
    check_partial([name])
    deepest = observables.groupby("run_id", sort=False)["layer_index"].transform("max")
    hidden = observables[observables["layer_index"] < deepest]
    if name == "hidden":
        return hidden
    positions = hidden.groupby("run_id", sort=False)["layer_index"].unique()
    # crc32, not hash(): Python salts string hashes per process, and a copy must be the same in every one.
    chosen = {run: sorted(kept)[zlib.crc32(str(run).encode()) % len(kept)] for run, kept in positions.items()}
    return hidden[hidden["layer_index"].to_numpy() == hidden["run_id"].map(chosen).to_numpy()]


def with_copies(observables: pd.DataFrame, schedules: Sequence[str], names: Sequence[str] = ()) -> pd.DataFrame:
    """``observables`` with the copies an identifier also trains on: every run re-recorded at each checkpoint
    schedule (:func:`lrid.identify.schedules.rerecorded`), then every run as recorded at each of ``names``
    (:func:`partial_copies`). A copy is one run at one schedule or one choice of layers, never both."""
    whole = rerecorded(observables, schedules) if schedules else observables
    return pd.concat([whole, partial_copies(observables, names)], ignore_index=True) if names else whole


def partial_copies(observables: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """A copy of every run of ``observables`` per name of ``names`` (:func:`at_partial`), each copy's
    ``run_id`` being ``{run_id}@{name}``."""
    copies = [observables.iloc[:0]]
    for name in check_partial(names):
        copy = at_partial(observables, name)
        copies.append(copy.assign(run_id=copy["run_id"].astype(str) + f"{COPY_SEPARATOR}{name}"))
    return pd.concat(copies, ignore_index=True)
