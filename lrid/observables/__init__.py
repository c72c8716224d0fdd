"""Observables: aggregate statistics of a layer's weights, activations and activity changes.

Column names are ``{measure}_{function}_{statistic}``; :data:`OBSERVABLES` lists all 45 in a fixed order.
This module is TensorFlow-free, so the classify and report stages can use the names without importing it.
"""

MEASURES = ("weight", "act", "actchange")
FUNCTIONS = ("raw", "abs", "sq")
STATISTICS = ("norm", "mean", "median", "q3", "var", "skew", "kurtosis")
# A layer's activity change is one number per example, so its only statistic is the probe-batch mean.
ACTCHANGE_STATISTICS = ("mean",)


def observable_names() -> list[str]:
    """All observable column names, in storage order."""
    names = []
    for measure in MEASURES:
        statistics = ACTCHANGE_STATISTICS if measure == "actchange" else STATISTICS
        names += [f"{measure}_{function}_{statistic}" for function in FUNCTIONS for statistic in statistics]
    return names


OBSERVABLES = tuple(observable_names())
