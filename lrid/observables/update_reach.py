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
caller says the map was flattened channels-last: which of its inputs belong to which channel depends on
that order (TensorFlow's NHWC or PyTorch's NCHW), which a recording does not say. Over one position (a map
pooled or strided down to 1x1) the order does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrid.errors import LridError

# Below this ceiling (c / PR(M)) the layer above reads nearly every direction alike, and (rho - 1) divided
# by (ceiling - 1) would blow measurement noise up into a number.
MIN_CEILING = 1.5


def read_gram(kernel_above: np.ndarray, units: int, channels_last: bool = False) -> np.ndarray | None:
    """The [units, units] Gram of what ``kernel_above`` reads from a layer of ``units`` outputs, or None.

    ``kernel_above`` is in TensorFlow's layouts: dense ``[inputs, outputs]``, conv ``[kh, kw, inputs,
    outputs]``, its inputs the layer's units; a conv kernel's taps are summed over. A dense kernel reading a
    map of several positions flattened into ``positions * units`` inputs is summed over the positions if
    ``channels_last`` says the map was flattened with the channel varying fastest (NHWC), and gives None
    otherwise (see the module notes).
    """
    conv, dense = kernel_above.ndim == 4 and kernel_above.shape[2] == units, kernel_above.ndim == 2
    if conv or (dense and kernel_above.shape[0] % units == 0):
        if dense and kernel_above.shape[0] != units and not channels_last:
            return None
        # Taps of a conv kernel, positions of a flattened map (channel fastest), or one block for a dense kernel.
        blocks = kernel_above.reshape(-1, units, kernel_above.shape[-1])
        return np.einsum("pco,pdo->cd", blocks, blocks)
    raise LridError(
        f"a kernel of shape {kernel_above.shape} cannot read a layer of {units} output units; give the kernels in "
        "depth order, dense as [inputs, outputs] and conv as [height, width, inputs, outputs]"
    )


def update_reach(kernels: Sequence[np.ndarray], channels_last: bool = False) -> np.ndarray:
    """Each layer's update reach between consecutive checkpoints: [n_layers - 1, n_checkpoints - 1].

    ``kernels`` are a network's forward kernels in depth order, each [T, *shape] at the same T checkpoints,
    dense as ``[inputs, outputs]`` and conv as ``[kh, kw, inputs, outputs]``. Row l is layer l's reach through layer l + 1, its entry t the update
    from checkpoint t to t + 1 read by layer l + 1's kernel at checkpoint t. The top layer has no row. NaN
    where the layer did not change, the layer above reads too evenly to tell (:data:`MIN_CEILING`), or
    it reads a map flattened over several positions in an order ``channels_last`` does not vouch for
    (:func:`read_gram`).
    """
    if len(kernels) < 2:
        raise LridError("update reach needs the kernels of at least two consecutive layers")
    steps = {len(k) for k in kernels}
    if len(steps) != 1 or steps.pop() < 2:
        raise LridError("update reach needs every kernel at the same two or more checkpoints")
    reach = np.full((len(kernels) - 1, len(kernels[0]) - 1), np.nan)
    for layer, (kernel, above) in enumerate(zip(kernels[:-1], kernels[1:])):
        kernel, above = np.asarray(kernel, np.float64), np.asarray(above, np.float64)
        units = kernel.shape[-1]
        updates = np.diff(kernel, axis=0).reshape(len(kernel) - 1, -1, units)
        for step, update in enumerate(updates):
            gram = read_gram(above[step], units, channels_last)
            if gram is None:
                break
            read_total, update_total = np.trace(gram), np.sum(update**2)
            if read_total <= 0 or update_total <= 0:
                continue
            ceiling = units * np.sum(gram * gram) / read_total**2
            if ceiling < MIN_CEILING:
                continue
            rho = np.einsum("ic,cd,id->", update, gram, update) / (update_total * read_total / units)
            reach[layer, step] = (rho - 1) / (ceiling - 1)
    return reach
