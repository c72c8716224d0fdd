"""Stage 2: turn trajectories into features and score classifiers that tell the learning rule apart."""

from lrid.identify.evaluate import classify

__all__ = ["classify"]
