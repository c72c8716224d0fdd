"""Conv runs as a recording that does not say how its readout flattened the last map sees them.

lrid's conv nets flatten their last map channels-last, so the layer under the readout has an update reach
(:mod:`lrid.observables.update_reach`) in every run lrid trains. A recording from elsewhere whose readout
reads a map over several positions has one only if it says the flatten order (``flatten``,
:mod:`lrid.identify.recording`). An identifier that never met that missing value sends it down arbitrary
branches (README, "Update reach"); trained on every conv run once more without it, it has met it, and reads
the rest of the run as usual. :func:`unflattened_copies` makes those copies; a copy's run id is
``{run_id}@unflattened``, the separator of the other copies (:mod:`lrid.identify.schedules`), so that splits
and calibration folds keep a run and its copy on one side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lrid.identify.schedules import COPY_SEPARATOR

UNFLATTENED = "unflattened"
# The architecture whose readout reads a vector, never a map: its runs need no copy.
DENSE_ARCHS = ("mlp",)


def unflattened_copies(observables: pd.DataFrame) -> pd.DataFrame:
    """A copy of every run of ``observables`` (the store's long format) whose architecture is not an MLP, with
    no update reach at the layer under its readout, each copy's ``run_id`` being ``{run_id}@unflattened``."""
    copies = observables[~observables["arch"].isin(DENSE_ARCHS)].copy()
    under_readout = copies.groupby("run_id", sort=False)["layer_index"].transform("max") - 1
    copies.loc[copies["layer_index"].to_numpy() == under_readout.to_numpy(), "reach"] = np.nan
    return copies.assign(run_id=copies["run_id"].astype(str) + f"{COPY_SEPARATOR}{UNFLATTENED}")
