"""Trajectories to feature matrices: one sample per measured layer of one run (Nayebi et al.'s unit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lrid.errors import LridError
from lrid.models import DEPTH_GROUPS
from lrid.observables import OBSERVABLES


@dataclass
class FeatureSet:
    """Samples ready for scikit-learn.

    Attributes:
        X: [n_samples, n_observables * n_points + 3]: each observable's trajectory, then the depth one-hot.
        y: the rule that trained each sample's network.
        groups: each sample's run id; splits never put one run on both sides.
        feature_names: ``{observable}@t{k}`` for trajectory point k, then ``depth_{group}``.
        samples: per-sample metadata (run_id, layer, layer_index, depth_group, rule, task, arch).
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    feature_names: list[str]
    samples: pd.DataFrame


def build_features(observables: pd.DataFrame, observable_columns: list[str] | None = None) -> FeatureSet:
    """Pivot long observable rows into one feature row per (run, layer).

    Every run must have been recorded at the same number of points; runs that stopped early (diverged)
    should be filtered out before, since a shorter trajectory is not comparable point by point.
    """
    columns = list(observable_columns or OBSERVABLES)
    if observables.empty:
        raise LridError("the store holds no complete runs; run `lrid generate SPEC --store DIR` first")
    ordered = observables.sort_values(["run_id", "layer_index", "step"], kind="stable")
    points_per_sample = ordered.groupby(["run_id", "layer_index"], sort=False).size()
    if points_per_sample.nunique() != 1:
        counts = sorted(points_per_sample.unique().tolist())
        raise LridError(
            f"runs were recorded at different numbers of points ({counts}); classify runs from one "
            "observation schedule at a time (filter the store, or re-generate with the same `observe.points`)"
        )
    n_points = int(points_per_sample.iloc[0])
    n_samples = len(points_per_sample)
    values = ordered[columns].to_numpy(dtype=np.float64).reshape(n_samples, n_points, len(columns))
    trajectories = values.transpose(0, 2, 1).reshape(n_samples, len(columns) * n_points)

    samples = ordered.iloc[::n_points][["run_id", "layer", "layer_index", "depth_group", "rule", "task", "arch"]]
    samples = samples.reset_index(drop=True)
    depth_one_hot = np.stack([(samples["depth_group"] == g).to_numpy(float) for g in DEPTH_GROUPS], axis=1)
    names = [f"{column}@t{point}" for column in columns for point in range(n_points)]
    return FeatureSet(
        X=np.concatenate([trajectories, depth_one_hot], axis=1),
        y=samples["rule"].to_numpy(dtype=object),
        groups=samples["run_id"].to_numpy(dtype=object),
        feature_names=names + [f"depth_{g}" for g in DEPTH_GROUPS],
        samples=samples,
    )
