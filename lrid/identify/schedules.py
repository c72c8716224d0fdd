"""Checkpoint schedules: the points at which a network's training was recorded, and re-recording at others.

A lab records its networks at checkpoints of its own choosing: a handful, evenly spaced, or denser early
in training. lrid's features resample every trajectory onto fractions of training
(:mod:`lrid.identify.features`), so any schedule gives the same columns; but a trajectory drawn through 4
checkpoints is not the one 21 would have shown, and an identifier that only ever saw 21-point runs reads
it worse. :func:`rerecorded` makes a store's runs look as if recorded at other schedules, by keeping the
recorded points nearest to each schedule's, so that one identifier learns every schedule at once (the
default identifier's card lists the ones it was trained on).

A schedule is named by its kind and its number of points ``k`` (at least 2):

* ``even{k}``: ``k`` of the recorded points, evenly spaced, the first and the last included;
* ``log{k}``: the first recorded point, then ``k - 1`` points spaced geometrically in training steps from
  the second recorded point to the last (denser early on, as many labs checkpoint).

A run recorded at fewer points than a schedule asks for keeps all of them; points that two targets share
are kept once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lrid.errors import LridError

_NAME = re.compile(r"^(even|log)(\d+)$")
# Appended to a run's id for each re-recorded copy: the copies are other samples of the same run.
COPY_SEPARATOR = "@"
# What benchmarks and model cards call runs at the points they were recorded at, re-recorded at none.
AS_RECORDED = "as recorded"


def training_label(schedules: Sequence[str]) -> str:
    """How benchmarks and model cards name what an identifier was trained on: :data:`AS_RECORDED`, or
    ``+ even6,log6`` for runs also re-recorded at those schedules."""
    return "+ " + ",".join(schedules) if schedules else AS_RECORDED


def points_per_run(observables: pd.DataFrame) -> pd.Series:
    """How many points each run of ``observables`` (the store's long format) was recorded at, by run id."""
    return observables.groupby("run_id")["step"].nunique()


def recorded_points(observables: pd.DataFrame) -> float:
    """The median number of recorded points per run of ``observables`` (the store's long format)."""
    return float(points_per_run(observables).median())


def parse_schedule(name: str) -> tuple[str, int]:
    """``(kind, k)`` of a schedule name; a name that is not ``even{k}`` or ``log{k}`` with ``k >= 2`` is an error."""
    match = _NAME.match(name)
    if match is None or int(match.group(2)) < 2:
        raise LridError(
            f"unknown checkpoint schedule {name!r}; use even<k> (k evenly spaced points) or log<k> "
            "(geometrically spaced), with k >= 2, e.g. even6,log6"
        )
    return match.group(1), int(match.group(2))


def schedule_points(steps: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    """The indices (ascending) of the recorded ``steps`` (ascending) that the schedule ``name`` keeps."""
    kind, k = parse_schedule(name)
    recorded = np.asarray(steps, dtype=np.float64)
    n = len(recorded)
    if n <= k:
        return np.arange(n)
    if kind == "even":
        return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))
    start = recorded[0]
    targets = start + np.geomspace(recorded[1] - start, recorded[-1] - start, k - 1)
    nearest = np.abs(recorded[None, :] - targets[:, None]).argmin(axis=1)
    return np.unique(np.concatenate([[0], nearest]))


def at_schedule(observables: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of ``observables`` (the store's long format) at the points the schedule ``name`` keeps of
    each run's recorded steps, in their order."""
    parse_schedule(name)
    kept = []
    for run_id, steps in observables.groupby("run_id", sort=False)["step"].unique().items():
        ordered = np.sort(steps)
        kept.append(pd.DataFrame({"run_id": run_id, "step": ordered[schedule_points(ordered, name)]}))
    if not kept:
        return observables
    return observables.merge(pd.concat(kept), on=["run_id", "step"], how="inner", sort=False)[observables.columns]


def rerecorded(observables: pd.DataFrame, schedules: Sequence[str]) -> pd.DataFrame:
    """``observables`` followed by one copy of every run per schedule (:func:`at_schedule`), each copy's
    ``run_id`` being ``{run_id}@{schedule}``."""
    copies = [observables]
    for name in schedules:
        copy = at_schedule(observables, name)
        copies.append(copy.assign(run_id=copy["run_id"].astype(str) + f"{COPY_SEPARATOR}{name}"))
    return pd.concat(copies, ignore_index=True)


def copy_origins(run_ids: Sequence[str] | np.ndarray, schedules: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For run ids of :func:`rerecorded` rows: each one's original run id, and the schedule it was
    re-recorded at (:data:`AS_RECORDED` for the original), as two object arrays.

    Only the suffixes of ``schedules`` are read as copies, so a run id that itself contains the separator
    stays whole.
    """
    if not schedules:  # nothing was re-recorded: every id is its own run
        ids = np.asarray(list(map(str, run_ids)), dtype=object)
        return ids, np.full(len(ids), AS_RECORDED, dtype=object)
    suffixes = {f"{COPY_SEPARATOR}{name}": name for name in schedules}
    origins, labels = [], []
    for run_id in map(str, run_ids):
        head, separator, tail = run_id.rpartition(COPY_SEPARATOR)
        name = suffixes.get(separator + tail) if separator else None
        origins.append(head if name else run_id)
        labels.append(name or AS_RECORDED)
    return np.asarray(origins, dtype=object), np.asarray(labels, dtype=object)
