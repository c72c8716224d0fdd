"""Update reach: whether a layer's weight updates point where the layer above reads.

Backprop hands a hidden layer its error through the forward weights of the layer above,
``delta_l = (W_{l+1} delta_{l+1}) * f'(z_l)``, so the output side of the layer's update ``x^T delta_l``
leans towards the directions W_{l+1} reads strongly. Feedback alignment hands it the error through a fixed
random B, node perturbation through isotropic noise: their updates point where the layer above happens to
read no more than a random direction would, until the forward weights come to align with the feedback.
Sign symmetry and information alignment lie between. No statistic of one layer can see this; it needs a
layer's update and the kernel above it, which every recording of weights at two or more checkpoints holds.

For a layer with c output units (channels), an update D between two checkpoints (its kernel's change,
as rows of c) and M, the c x c Gram of what the layer above reads from those units (its kernel's
input-side Gram, summed over a conv kernel's taps),

    rho = tr(D M D^T) / (|D|^2 tr(M) / c)

is 1 for a random update direction. An update whose output-side Gram is M itself, backprop's with
isotropic errors, reaches ``c / PR(M)``, PR(M) = tr(M)^2 / tr(M^2) being M's participation ratio (the
number of directions the layer above reads). The update reach is ``(rho - 1) / (c / PR(M) - 1)``: about 0
for updates blind to the layer above, and 1 for backprop's with isotropic errors (a trained network's
errors are not, and the activation's slope reshapes them, so its backprop measures less). Scaled so, a
10-class readout above a 200-unit layer and a conv layer above 16 channels read on one scale, which rho
itself does not (see benchmarks/update_reach.py and the README). Where the layer above
reads almost every direction alike (``c / PR(M) < MIN_CEILING``) there is nothing to tell apart, and
the reach is NaN, as it is for a layer that did not change.

A dense layer that reads a conv layer's map flattened over several positions gets no reach unless the
caller says in which order the map was flattened (``flatten``, one of :data:`FLATTEN_ORDERS`): which of its
inputs belong to which channel depends on it, TensorFlow's NHWC (``channels_last``, the channel varying
fastest) or PyTorch's NCHW (``channels_first``, the position varying fastest). Over one position (a map
pooled or strided down to 1x1) the order does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrid.errors import LridError

# Below this ceiling (c / PR(M)) the layer above reads nearly every direction alike, and (rho - 1) divided
# by (ceiling - 1) would blow measurement noise up into a number.
MIN_CEILING = 1.5
#: How a conv map may have been flattened into a dense layer's inputs: channel fastest (TensorFlow's NHWC
#: maps) or position fastest (PyTorch's NCHW maps).
FLATTEN_ORDERS = ("channels_last", "channels_first")


def check_flatten(flatten: str | None) -> None:
    """A one-line error unless ``flatten`` is one of :data:`FLATTEN_ORDERS` or None (unsaid)."""
    if flatten is not None and flatten not in FLATTEN_ORDERS:
        raise LridError(f"unknown flatten order {flatten!r}; choose {' or '.join(FLATTEN_ORDERS)}, or leave it unsaid")


def _check_reads(shape: tuple[int, ...], units: int) -> bool:
    """Whether a kernel of ``shape`` is a conv kernel reading a layer of ``units`` outputs (False: a dense one);
    a one-line error if it cannot read them."""
    conv, dense = len(shape) == 4 and shape[2] == units, len(shape) == 2
    if not (conv or (dense and shape[0] % units == 0)):
        raise LridError(
            f"a kernel of shape {tuple(shape)} cannot read a layer of {units} output units; give the kernels "
            "in depth order, dense as [inputs, outputs] and conv as [height, width, inputs, outputs]"
        )
    return conv


def read_gram(kernel_above: np.ndarray, units: int, flatten: str | None = None) -> np.ndarray | None:
    """The [units, units] Gram of what ``kernel_above`` reads from a layer of ``units`` outputs, or None.

    ``kernel_above`` is in TensorFlow's layouts: dense ``[inputs, outputs]``, conv ``[kh, kw, inputs,
    outputs]``, its inputs the layer's units; a conv kernel's taps are summed over. A dense kernel reading a
    map of several positions flattened into ``positions * units`` inputs is summed over the positions in the
    order ``flatten`` names (:data:`FLATTEN_ORDERS`), and gives None when it names none (see the module notes).
    """
    check_flatten(flatten)
    conv = _check_reads(kernel_above.shape, units)
    outputs = kernel_above.shape[-1]
    if conv or kernel_above.shape[0] == units or flatten == "channels_last":
        # Taps of a conv kernel, positions of a map flattened channel fastest, or a dense kernel's one block.
        blocks = kernel_above.reshape(-1, units, outputs)
    elif flatten == "channels_first":
        blocks = kernel_above.reshape(units, -1, outputs).transpose(1, 0, 2)
    else:
        return None
    side_by_side = blocks.transpose(1, 0, 2).reshape(units, -1)
    return side_by_side @ side_by_side.T  # a matrix product, which BLAS runs, where einsum would loop


def _working_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 for kernels of float32 or narrower, as networks keep them, float64 for float64 ones: a reader of
    4096 units costs seconds a checkpoint in float64, and the reach needs no more than float32's precision."""
    return np.result_type(*(np.asarray(array).dtype for array in arrays), np.float32)


def _unit_scaled(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` as ``dtype``, divided by their largest magnitude (unchanged if all zero)."""
    values = np.asarray(values, dtype)
    largest = np.max(np.abs(values)) if values.size else 0
    return values / largest if largest > 0 else values


def layer_reach(update: np.ndarray, kernel_above: np.ndarray, flatten: str | None = None) -> float:
    """The reach of one layer's update (its kernel's change, any layout with the output units last) read by
    ``kernel_above``: NaN where it is undefined (see :func:`update_reach`)."""
    units = update.shape[-1]
    dtype = _working_dtype(update, kernel_above)
    # The reach is scale-free in both: rescaled to entries of at most 1, a grown kernel's squares and fourth
    # powers stay finite in float32.
    gram = read_gram(_unit_scaled(kernel_above, dtype), units, flatten)
    if gram is None:
        return np.nan
    update = _unit_scaled(update, dtype).reshape(-1, units)
    read_total, update_total = np.trace(gram), np.sum(update**2)
    if read_total <= 0 or update_total <= 0:
        return np.nan
    ceiling = units * np.sum(gram * gram) / read_total**2
    if ceiling < MIN_CEILING:
        return np.nan
    rho = np.sum((update @ gram) * update) / (update_total * read_total / units)
    return float((rho - 1) / (ceiling - 1))


def checkpoint_reach(
    before: Sequence[np.ndarray],
    after: Sequence[np.ndarray],
    readers: Sequence[int | None] | None = None,
    flatten: str | None = None,
) -> np.ndarray:
    """Every layer's reach over one interval, [n_layers]: layer l's update from ``before[l]`` to ``after[l]``
    read by its reader's kernel at ``before``.

    ``readers[l]`` is the index of the layer that reads layer l's output (None: none reads it alone, as the
    readout's output or a residual branch summed with a shortcut); by default the next layer, as in a chain.
    A layer without a reader, or whose reader's kernel does not read its units, is NaN.
    """
    if len(before) != len(after):
        raise LridError("checkpoint reach needs the same layers' kernels at both checkpoints")
    check_flatten(flatten)  # before the loop, which reads a kernel that does not chain as NaN
    if readers is None:
        readers = [*range(1, len(before)), None]
    reach = np.full(len(before), np.nan)
    for layer, reader in enumerate(readers):
        if reader is None:
            continue
        dtype = _working_dtype(after[layer], before[layer])
        update = np.asarray(after[layer], dtype) - np.asarray(before[layer], dtype)
        try:
            reach[layer] = layer_reach(update, before[reader], flatten)
        except LridError:
            continue  # the reader's kernel does not take this layer's units as its inputs
    return reach


def update_reach(kernels: Sequence[np.ndarray], flatten: str | None = None) -> np.ndarray:
    """Each layer's update reach between consecutive checkpoints: [n_layers - 1, n_checkpoints - 1].

    ``kernels`` are a network's forward kernels in depth order, each [T, *shape] at the same T checkpoints,
    dense as ``[inputs, outputs]`` and conv as ``[kh, kw, inputs, outputs]``. Row l is layer l's reach through
    layer l + 1, its entry t the update from checkpoint t to t + 1 read by layer l + 1's kernel at checkpoint
    t. The top layer has no row. NaN where the layer did not change, the layer above reads too evenly to tell
    (:data:`MIN_CEILING`), or it reads a map flattened over several positions in an order ``flatten`` does not
    name (:func:`read_gram`). Kernels that do not chain (a layer above that does not read the
    layer's units) are refused with a one-line error.
    """
    if len(kernels) < 2:
        raise LridError("update reach needs the kernels of at least two consecutive layers")
    steps = {len(k) for k in kernels}
    if len(steps) != 1 or steps.pop() < 2:
        raise LridError("update reach needs every kernel at the same two or more checkpoints")
    check_flatten(flatten)
    for kernel, above in zip(kernels[:-1], kernels[1:]):
        _check_reads(np.shape(above)[1:], np.shape(kernel)[-1])  # a one-line error unless they chain
    intervals = [
        checkpoint_reach([k[step] for k in kernels], [k[step + 1] for k in kernels], flatten=flatten)[:-1]
        for step in range(len(kernels[0]) - 1)
    ]
    return np.stack(intervals, axis=1)


class ReachRecorder:
    """Each layer's reach since the previous recording, for a network recorded checkpoint by checkpoint.

    It keeps the kernels of the last checkpoint it saw (a copy of the network's weights on the host, the
    memory update reach costs while training). The first checkpoint has no update before it: NaN.
    ``readers`` and ``flatten`` are :func:`checkpoint_reach`'s.
    """

    def __init__(self, readers: Sequence[int | None] | None = None, flatten: str | None = None) -> None:
        self.readers = None if readers is None else list(readers)
        self.flatten = flatten
        self._previous: list[np.ndarray] | None = None

    def record(self, kernels: Sequence[np.ndarray]) -> np.ndarray:
        """[n_layers]: each layer's reach from the previous checkpoint's ``kernels`` to these."""
        kernels = [np.array(kernel, copy=True) for kernel in kernels]
        if self._previous is None:
            reach = np.full(len(kernels), np.nan)
        else:
            reach = checkpoint_reach(self._previous, kernels, self.readers, self.flatten)
        self._previous = kernels
        return reach
