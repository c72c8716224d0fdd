"""Observables: aggregate statistics of a layer's weights, activations and activity changes.

Column names are ``{measure}_{function}_{statistic}``; :data:`OBSERVABLES` lists all 45 in a fixed order.
The names are defined in :mod:`lrid.schema` (the store's layout) and importable from here; this module is
TensorFlow-free, so the classify and report stages can use them without importing it.
"""

from __future__ import annotations

from lrid.schema import (  # noqa: F401 - the names are part of the store's layout, kept importable here
    ACTCHANGE_STATISTICS,
    FUNCTIONS,
    MEASURES,
    OBSERVABLES,
    STATISTICS,
    observable_names,
)
