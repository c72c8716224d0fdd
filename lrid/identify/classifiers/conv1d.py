"""``conv1d``: Nayebi et al.'s one-layer temporal convolution + linear softmax readout
(:class:`lrid.identify.conv1d.Conv1DClassifier`), 20 filters of width 6, average pooling. Search:
kernel_size in {1, 6} (a fraction of the trajectory: pointwise, or ~quarter of 21 points) x pooling in
{avg, flatten}, 4 configurations. It has no importance of its own, reads only trajectory features (not
the control's curve features), and trains on TensorFlow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lrid.errors import LridError
from lrid.identify.classifiers import ClassifierEntry, register_classifier

if TYPE_CHECKING:
    from lrid.identify.conv1d import Conv1DClassifier


def make(n_jobs: int = 1, random_state: int = 0, *, n_points: int | None = None, n_static: int = 3) -> Conv1DClassifier:
    """A fresh network estimator for features of ``n_points`` recorded points and ``n_static`` static columns."""
    from lrid.identify.conv1d import Conv1DClassifier

    if not n_points:
        raise LridError("the conv1d classifier needs the trajectory length (n_points) of the features")
    return Conv1DClassifier(n_points=n_points, n_static=n_static, random_state=random_state)


def grid() -> dict[str, list]:
    """kernel_size x pooling."""
    return {"kernel_size": [1, 6], "pooling": ["avg", "flatten"]}


register_classifier(
    ClassifierEntry(
        "conv1d",
        make,
        grid,
        requires=("tensorflow",),
        needs_tensorflow=True,
        any_features=False,
        order=3,
    )
)
