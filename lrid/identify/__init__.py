"""Stage 2: turn trajectories into features and score classifiers that tell the learning rule apart."""

from __future__ import annotations

from lrid.identify.evaluate import classify
from lrid.identify.inference import identify, load_fitted
from lrid.schema import ClassifySpec, Scores

__all__ = ["ClassifySpec", "Scores", "classify", "identify", "load_fitted"]
