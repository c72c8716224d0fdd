"""Stage 2: turn trajectories into features and score classifiers that tell the learning rule apart."""

from lrid.identify.evaluate import classify
from lrid.identify.inference import identify, load_fitted

__all__ = ["classify", "identify", "load_fitted"]
