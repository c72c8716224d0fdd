"""Raw recordings from any framework: per-layer weight and activation arrays at a sequence of steps.

lrid computes the observables of a recording itself, with the same statistics as a generated run
(:mod:`lrid.observables.statistics`), so a network trained anywhere (PyTorch, JAX, a brain-inspired
simulator) can be identified by a classifier trained on an lrid store. One recording is one network.

NPZ format (``numpy.savez``; read with ``allow_pickle=False``, so plain arrays only)::

    steps               int [T]                  the training steps recorded, increasing, T >= 2
    weight/<layer>      float [T, ..., units]    the layer's forward kernel at each step (units last)
    act/<layer>         float [T, batch, ...]    the layer's output on a fixed probe batch at each step
    actchange/<layer>   float [T, batch]         optional: per example, the layer's input-output Jacobian
                                                 summed over all entries divided by its output units
    layers              str [L]                  optional: the layers in depth order (default: key order)
    epoch               float [T]                optional: the epoch of each step
    run                 str []                   optional: the network's name (default: the file's stem)
    network_layers      int []                   optional: the whole network's number of layers, readout
                                                 included, when the recording holds only some of them
    layer_positions     int [L]                  with network_layers: where each recorded layer sits in the
                                                 network, 0 its first layer, network_layers - 1 its readout
    flatten             str []                   optional: how a dense layer after a conv layer flattened
                                                 its map, channels_last (NHWC, TensorFlow's) or
                                                 channels_first (NCHW, PyTorch's); without it, such a
                                                 layer's update reach is unknown (NaN) over several positions

Parquet format: a long table, one row per (run, step, layer, kind)::

    run      string      optional: the network's name, so one file can hold several (default: file stem)
    step     int         the training step
    layer    string      the layer; depth order is the order of first appearance
    kind     string      weight, act or actchange (shapes as in the NPZ, without the leading T)
    shape    list<int>   the array's shape at this step
    values   list<float> the array's values, flattened in C order
    epoch    float       optional
    network_layers  int  optional, one value per run: as in the NPZ
    layer_position  int  with network_layers, one value per layer: as the NPZ's layer_positions
    flatten  string      optional, one value per run: as in the NPZ

Every layer must carry the same kinds, every array the same steps, and every value must be finite. Either
``weight`` or ``act`` (or both) may be missing altogether: their observables are then NaN, and a
classifier that needs them refuses the recording. The activity change needs the layer's Jacobian, which
raw arrays do not carry; record it as ``actchange/<layer>`` or its observables are NaN.

A recording of some of a network's layers (a lab's few areas) says so with ``network_layers`` and the
layers' positions: each layer is then read in the depth group it has in the whole network (early, middle
and deep thirds, :func:`lrid.schema.depth_groups`), where without them the recorded layers would be taken
for the whole network, the deepest for its readout. The observables then carry a ``network_layers``
column, by which :func:`partial_layer_counts` finds such recordings.

:func:`write_recording` (from :mod:`lrid.observables.raw`, which holds :class:`Recording`) writes either
format; :func:`lrid.generate.export.export_recording` writes it from an lrid run, re-trained bit-identically
from its spec, so ``lrid export-recording STORE RUN_ID OUT.npz`` shows the format on a real example.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrid.errors import LridError
from lrid.observables.host_statistics import layer_statistics
from lrid.observables.raw import KINDS, Recording, write_recording  # noqa: F401 - part of this module's API
from lrid.observables.update_reach import FLATTEN_ORDERS, checkpoint_reach
from lrid.schema import ID_COLUMNS, OBSERVABLES, STORED_OBSERVABLES, depth_groups

_MIN_NDIM = {"weight": 2, "act": 3, "actchange": 2}  # with the leading step axis
_SHAPE_HINT = {"weight": "[T, ..., units]", "act": "[T, batch, ...units]", "actchange": "[T, batch]"}
_NPZ_METADATA = ("steps", "layers", "epoch", "run", "network_layers", "layer_positions", "flatten")
# The ``arch`` of a recording with a convolutional layer (:func:`recording_arch`); others are ``dense``.
CONV_RECORDING = "conv"


def read_recording(path: str | Path) -> pd.DataFrame:
    """The observables of a raw recording (``.npz`` or ``.parquet``), in the store's long format.

    Columns: :data:`lrid.schema.ID_COLUMNS`, then :data:`lrid.schema.STORED_OBSERVABLES` (NaN for kinds the
    recording lacks), then ``rule``, ``task`` and ``arch`` (unknown: None) and ``network_layers`` (the whole
    network's number of layers; ``layer_index`` is each layer's position in it). Any problem with the file
    is a :class:`LridError` naming it.
    """
    return pd.concat([recording_observables(r) for r in iter_recordings(path)], ignore_index=True)


def load_recordings(path: str | Path) -> list[Recording]:
    """Read and validate the recordings in an NPZ (one) or Parquet (one or more) file."""
    return list(iter_recordings(path))


def iter_recordings(path: str | Path) -> Iterator[Recording]:
    """:func:`load_recordings` one recording at a time, so that a file of many networks need not fit in memory."""
    path = Path(path)
    if not path.is_file():
        raise LridError(
            f"recording {path} does not exist; pass an .npz or .parquet recording (see `lrid export-recording`)"
        )
    if path.suffix == ".npz":
        return iter([_load_npz(path)])
    if path.suffix == ".parquet":
        return _load_parquet(path)
    raise LridError(f"recording {path} is neither .npz nor .parquet; save it in one of the documented formats")


def _load_npz(path: Path) -> Recording:
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except ValueError:
        # numpy's own message suggests loading with allow_pickle=True, which would run the file's code.
        raise LridError(
            f"{path} is not a plain .npz archive: it holds pickled (object) data or is not an archive at all, which "
            "lrid never loads; write it with numpy.savez, numeric and string arrays only"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise LridError(f"{path} is not a readable .npz file ({error}); write it with numpy.savez") from None
    if "steps" not in contents:
        raise LridError(f"{path}: no `steps` array; add the recorded training steps as `steps` [T]")
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for key, value in contents.items():
        if key in _NPZ_METADATA:
            continue
        kind, _, layer = key.partition("/")
        if kind not in KINDS or not layer:
            raise LridError(
                f"{path}: unknown key {key!r}; keys are steps, layers, epoch, run and "
                f"{'/<layer>, '.join(KINDS)}/<layer>"
            )
        arrays.setdefault(kind, {})[layer] = value
    layers = list(dict.fromkeys(layer for by_layer in arrays.values() for layer in by_layer))
    if "layers" in contents:
        listed = [str(name) for name in np.atleast_1d(contents["layers"])]
        unlisted = sorted(set(layers) - set(listed))
        if unlisted:
            raise LridError(
                f"{path}: arrays for layer(s) {', '.join(unlisted)} not in `layers`; add them to `layers` in depth order"
            )
        layers = listed
    run = str(contents["run"]) if "run" in contents else path.stem
    epochs = contents.get("epoch")
    positions = contents.get("layer_positions")
    network_layers = contents.get("network_layers")
    flatten = contents.get("flatten")
    recording = Recording(
        run,
        contents["steps"],
        layers,
        arrays,
        epochs,
        None if positions is None else np.atleast_1d(positions).tolist(),
        None if network_layers is None else network_layers.tolist(),
        None if flatten is None else flatten.tolist(),
    )
    return _validated(recording, str(path))


def _load_parquet(path: Path) -> Iterator[Recording]:
    """The recordings of a Parquet file in the order their runs first appear, each as soon as its rows are read.

    The small columns are read first to plan each run's arrays; the values are then read one row group at
    a time and copied into place, so memory holds about one row group and the runs not yet complete, and
    the buffers a finished run frees serve the next.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        missing = [c for c in ("step", "layer", "kind", "shape", "values") if c not in names]
        if missing:
            raise LridError(
                f"{path}: missing column(s) {', '.join(missing)}; a recording has step, layer, kind, shape, values"
            )
        wanted = ("run", "step", "layer", "kind", "shape", "epoch", "network_layers", "layer_position", "flatten")
        index = parquet.read(columns=[c for c in wanted if c in names])
    except (OSError, pa.ArrowException) as error:
        raise LridError(f"{path} is not a readable Parquet file ({type(error).__name__}); rewrite it") from None
    if index.num_rows == 0:
        raise LridError(
            f"recording {path} holds no rows; write one row per (run, step, layer, kind), as `lrid export-recording` does"
        )
    values_type = parquet.schema_arrow.field("values").type
    if not (pa.types.is_list(values_type) or pa.types.is_large_list(values_type)) or not (
        pa.types.is_floating(values_type.value_type) or pa.types.is_integer(values_type.value_type)
    ):
        raise LridError(f"{path}: `values` has type {values_type}; it must be a list of numbers per row")
    shapes = index.column("shape").to_pylist()
    rows_table = index.drop_columns(["shape"]).to_pandas()
    if "run" not in rows_table:
        rows_table["run"] = path.stem
    unknown = sorted(set(rows_table["kind"]) - set(KINDS))
    if unknown:
        raise LridError(f"{path}: unknown kind(s) {', '.join(map(str, unknown))}; kinds are {', '.join(KINDS)}")

    plans = [
        _plan_run(str(run), rows, shapes, f"{path} (run {run})") for run, rows in rows_table.groupby("run", sort=False)
    ]
    # Where each row's values go: the plan of its run, the array of its (kind, layer), the index of its step.
    destination = {
        row: (plan, key, step_index)
        for plan in plans
        for key, (rows, _) in plan.rows.items()
        for step_index, row in enumerate(rows)
    }
    pending = iter(plans)
    upcoming = next(pending, None)
    rows_read = 0
    for group in range(parquet.num_row_groups):
        try:
            chunks = parquet.read_row_group(group, columns=["values"]).column("values").chunks
        except (OSError, pa.ArrowException) as error:
            raise LridError(
                f"{path}: row group {group} is not readable ({type(error).__name__}); rewrite the file"
            ) from None
        for chunk in chunks:
            # Each row's values are a slice of the chunk's flat buffer, copied once, into place, as float32 (the
            # precision of lrid's statistics).
            flat = chunk.values.to_numpy(zero_copy_only=False)
            offsets = chunk.offsets.to_numpy()
            for row in range(len(chunk)):
                plan, key, step_index = destination[rows_read + row]
                plan.fill(key, step_index, flat[offsets[row] : offsets[row + 1]])
            rows_read += len(chunk)
        while upcoming is not None and upcoming.last_row < rows_read:
            yield upcoming.recording()
            upcoming = next(pending, None)


class _RunPlan:
    """One run of a Parquet recording: which rows fill which step of which (kind, layer) array."""

    def __init__(self, run: str, steps: np.ndarray, layers: list[str], epochs: np.ndarray | None, where: str) -> None:
        self.run, self.steps, self.layers, self.epochs, self.where = run, steps, layers, epochs, where
        self.positions: list[int] | None = None
        self.network_layers: int | None = None
        self.flatten: str | None = None
        self.rows: dict[tuple[str, str], tuple[list[int], tuple[int, ...]]] = {}
        self.arrays: dict[tuple[str, str], np.ndarray] = {}
        self.last_row = -1

    def fill(self, key: tuple[str, str], step_index: int, values: np.ndarray) -> None:
        """Copy one row's values into step ``step_index`` of the (kind, layer) array ``key``."""
        shape = self.rows[key][1]
        if values.size != int(np.prod(shape)):
            raise LridError(
                f"{self.where}: {key[0]}/{key[1]}: a row of {values.size} values has shape {list(shape)}; "
                "each row's values must fill its shape, the same at every step"
            )
        if key not in self.arrays:
            self.arrays[key] = np.empty((len(self.steps), *shape), np.float32)
        self.arrays[key][step_index] = values.reshape(shape)

    def recording(self) -> Recording:
        """The validated recording, once every row has been filled in."""
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for (kind, layer), array in self.arrays.items():
            arrays.setdefault(kind, {})[layer] = array
        self.arrays = {}  # the recording's consumer alone holds them now, and frees them when done
        recording = Recording(
            self.run, self.steps, self.layers, arrays, self.epochs, self.positions, self.network_layers, self.flatten
        )
        return _validated(recording, self.where)


def _plan_run(run: str, rows: pd.DataFrame, shapes: list, where: str) -> _RunPlan:
    """Check that every (kind, layer) of a run has one row per step, of one shape, and say where each row goes."""
    steps = np.sort(rows["step"].unique())
    epochs = None
    if "epoch" in rows:
        epochs = rows.drop_duplicates("step").set_index("step").loc[steps, "epoch"].to_numpy(np.float64)
    plan = _RunPlan(run, steps, list(dict.fromkeys(rows["layer"])), epochs, where)
    if "network_layers" in rows or "layer_position" in rows:
        plan.network_layers, plan.positions = _parquet_placement(rows, plan.layers, where)
    if "flatten" in rows:
        orders = rows["flatten"].dropna().unique()
        if len(orders) > 1:
            raise LridError(f"{where}: `flatten` holds {sorted(map(str, orders))}; give the run one value")
        plan.flatten = orders[0] if len(orders) else None
    for (kind, layer), series in rows.groupby(["kind", "layer"], sort=False):
        if sorted(series["step"]) != steps.tolist():
            raise LridError(
                f"{where}: {kind}/{layer} is recorded at steps {sorted(series['step'].tolist())} but the run at "
                f"{steps.tolist()}; record every array at the same steps, once each"
            )
        ordered = series.sort_values("step").index.tolist()
        row_shapes = {tuple(int(n) for n in shapes[row]) for row in ordered}
        if len(row_shapes) > 1:
            raise LridError(
                f"{where}: {kind}/{layer} has shapes {sorted(map(list, row_shapes))} across steps; "
                "each row's values must fill its shape, the same at every step"
            )
        plan.rows[(kind, layer)] = (ordered, row_shapes.pop())
    plan.last_row = int(rows.index.max())
    return plan


def _parquet_placement(rows: pd.DataFrame, layers: list[str], where: str) -> tuple[int | None, list[int] | None]:
    """A Parquet run's ``network_layers`` (one value) and each layer's ``layer_position`` (one value per layer)."""
    network_layers, positions = None, None
    if "network_layers" in rows:
        values = rows["network_layers"].dropna().unique()
        if len(values) != 1:
            raise LridError(
                f"{where}: `network_layers` holds {sorted(values.tolist())}; give the run one value, the whole "
                "network's number of layers"
            )
        network_layers = _whole(values[0])
    if "layer_position" in rows:
        by_layer = rows.groupby("layer", sort=False)["layer_position"].unique()
        uneven = [layer for layer in layers if len(by_layer[layer]) != 1]
        if uneven:
            raise LridError(f"{where}: layer {uneven[0]} has several `layer_position` values; give each layer one")
        positions = [_whole(by_layer[layer][0]) for layer in layers]
    return network_layers, positions


def _whole(value: Any) -> Any:
    """A whole number as an int: a column with a missing value holds its integers as floats."""
    return int(value) if isinstance(value, float | np.floating) and float(value).is_integer() else value


def _validated_placement(recording: Recording, where: str) -> None:
    """Check ``network_layers`` and ``positions`` against the recorded layers (one-line errors naming the fix)."""
    n_recorded = len(recording.layers)
    if recording.positions is None and recording.network_layers is None:
        return
    if recording.network_layers is None:
        raise LridError(
            f"{where}: `layer_positions` without `network_layers`; add the whole network's number of layers, "
            "its readout included"
        )
    network_layers = recording.network_layers
    if not isinstance(network_layers, (int, np.integer)) or isinstance(network_layers, bool) or network_layers < 1:
        raise LridError(f"{where}: `network_layers` is {network_layers!r}; it must be a positive integer")
    if recording.positions is None:
        if network_layers != n_recorded:
            raise LridError(
                f"{where}: {n_recorded} of the network's {network_layers} layers are recorded; say which with "
                "`layer_positions` (0 the first layer, the readout last)"
            )
        return
    positions = np.asarray(recording.positions)
    if (
        positions.shape != (n_recorded,)
        or not np.issubdtype(positions.dtype, np.integer)
        or np.any(np.diff(positions) <= 0)
        or positions[0] < 0
        or positions[-1] >= network_layers
    ):
        raise LridError(
            f"{where}: `layer_positions` is {positions.tolist()}; give each of the {n_recorded} recorded layers its "
            f"position in the network, increasing, from 0 (its first layer) to {network_layers - 1} (its readout)"
        )
    recording.positions = positions.astype(int).tolist()
    recording.network_layers = int(network_layers)


def _validated(recording: Recording, where: str) -> Recording:
    """Check steps, shapes, kinds per layer and finiteness; one-line errors naming the array."""
    steps = np.asarray(recording.steps)
    if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
        raise LridError(
            f"{where}: `steps` must be a 1-D integer array of training steps, not {steps.dtype} {steps.shape}"
        )
    if len(steps) < 2:
        raise LridError(f"{where}: {len(steps)} recorded step(s); a trajectory needs at least 2")
    if np.any(np.diff(steps) <= 0) or steps[0] < 0:
        raise LridError(f"{where}: `steps` must be non-negative and increasing, got {steps.tolist()}")
    if not recording.arrays.get("weight") and not recording.arrays.get("act"):
        raise LridError(f"{where}: no weight/<layer> or act/<layer> arrays; record at least one of them per layer")
    for kind, by_layer in recording.arrays.items():
        lacking = [layer for layer in recording.layers if layer not in by_layer]
        if lacking:
            raise LridError(
                f"{where}: layer(s) {', '.join(lacking)} have no {kind} array while other layers do; "
                f"record {kind} for every layer or for none"
            )
        for layer, values in by_layer.items():
            name = f"{kind}/{layer}"
            if not np.issubdtype(values.dtype, np.number):
                raise LridError(f"{where}: {name} has dtype {values.dtype}; it must be numeric")
            if values.ndim < _MIN_NDIM[kind] or (kind == "actchange" and values.ndim != 2):
                raise LridError(f"{where}: {name} has shape {values.shape}; expected {_SHAPE_HINT[kind]}")
            if values.shape[0] != len(steps):
                raise LridError(
                    f"{where}: {name} has {values.shape[0]} steps but `steps` has {len(steps)}; "
                    "record every array at every step"
                )
            finite = np.isfinite(values).reshape(len(steps), -1).all(axis=1)
            if not finite.all():
                raise LridError(
                    f"{where}: {name} has NaN or infinite values at step {steps[~finite][0]}; "
                    "cut the recording before the network diverged"
                )
    for kind in ("act", "actchange"):
        # Per-example statistics average over the probe batch: every layer must see the same probe.
        batches = {layer: values.shape[1] for layer, values in recording.arrays.get(kind, {}).items()}
        if len(set(batches.values())) > 1:
            sizes = ", ".join(f"{layer} {size}" for layer, size in batches.items())
            raise LridError(
                f"{where}: {kind} arrays have different probe batch sizes across layers ({sizes}); "
                "record every layer on the same probe batch"
            )
    if recording.arrays.get("act") and recording.arrays.get("actchange"):
        for layer in recording.layers:
            batch, change_batch = recording.arrays["act"][layer].shape[1], recording.arrays["actchange"][layer].shape[1]
            if batch != change_batch:
                raise LridError(
                    f"{where}: act/{layer} has {batch} probe examples but actchange/{layer} has {change_batch}"
                )
    if recording.epochs is not None and np.shape(recording.epochs) != steps.shape:
        raise LridError(f"{where}: `epoch` has shape {np.shape(recording.epochs)}; it needs one value per step")
    _validated_placement(recording, where)
    if recording.flatten is not None and recording.flatten not in FLATTEN_ORDERS:
        raise LridError(
            f"{where}: `flatten` is {recording.flatten!r}; say channels_last (NHWC) or channels_first (NCHW), or "
            "leave it out"
        )
    recording.steps = steps.astype(np.int64)
    return recording


_ENTRIES_PER_CALL = 1 << 24


class CoarseWeightsWarning(UserWarning):
    """A recording's weights hold bfloat16 values: 8 significant bits, where lrid's runs record float32's 24.

    Statistics that learning leaves unchanged (the readout kernel's mean under every rule that hands it
    cross-entropy's error, a weight-normalised layer's norms) record rounding; bfloat16's is 2^16 times
    float32's, which no identifier trained on lrid's runs has seen. ``run`` names the recording.
    """

    def __init__(self, run: str) -> None:
        super().__init__(
            f"{run}: its weights hold bfloat16 values, and lrid's identifiers learned from float32 ones; such "
            "networks are named less reliably (README, 'Raw recordings'); save weights in float32"
        )
        self.run = run


class PartialLayersWarning(UserWarning):
    """Networks recorded at some of their layers are identified by a model trained on whole networks only.

    Their features lack the depth groups they did not record, which such a model never saw without; a model
    trained with ``lrid classify --partial-layers`` has (:mod:`lrid.identify.partial_layers`). ``counts`` are
    :func:`partial_layer_counts`; ``runs`` maps each such run to how many of its network's layers it holds
    (``"2 of 4"``).
    """

    def __init__(self, counts: pd.DataFrame) -> None:
        runs = _in_words(counts).to_dict()
        first, count = next(iter(runs.items()))
        super().__init__(
            f"{len(runs)} network(s) ({first}: {count} layers) were recorded at some of their layers, and "
            "the model was trained on whole networks only, so they are named far less reliably (README, 'Recorded "
            "at some layers'); record every layer, or use a model trained with `lrid classify --partial-layers`"
        )
        self.runs = runs


def holds_bfloat16_values(arrays: list[np.ndarray]) -> bool:
    """Whether every entry of these float32 arrays has at most bfloat16's 8 significant bits (the low 16 bits
    of its float32 pattern are zero), and some entry is not zero: rounded to bfloat16 before it was saved."""
    nonzero = False
    for array in arrays:
        bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
        if (bits & 0xFFFF).any():
            return False
        nonzero = nonzero or bool(bits.any())
    return nonzero


def recording_observables(recording: Recording) -> pd.DataFrame:
    """The observables of a validated recording, computed with lrid's own statistics (in numpy, on the host)."""
    n_steps, n_layers = len(recording.steps), len(recording.layers)
    positions, network_layers = recording.placement
    values = np.full((n_steps, n_layers, len(STORED_OBSERVABLES)), np.nan)
    for layer_index, layer in enumerate(recording.layers):
        arrays = {kind: np.asarray(by_layer[layer], dtype=np.float32) for kind, by_layer in recording.arrays.items()}
        per_step = max(array[0].size for array in arrays.values())
        chunk = max(1, _ENTRIES_PER_CALL // per_step)  # bounds the memory of one call on large layers
        for start in range(0, n_steps, chunk):
            part = {kind: array[start : start + chunk] for kind, array in arrays.items()}
            values[start : start + chunk, layer_index, : len(OBSERVABLES)] = layer_statistics(
                part.get("weight"), part.get("act"), part.get("actchange")
            )
    values[:, :, STORED_OBSERVABLES.index("reach")] = recording_reach(recording)
    values[~np.isfinite(values)] = np.nan
    if "weight" in recording.arrays and holds_bfloat16_values(list(recording.arrays["weight"].values())):
        warnings.warn(CoarseWeightsWarning(recording.run), stacklevel=2)
    frame = pd.DataFrame(values.reshape(n_steps * n_layers, -1), columns=list(STORED_OBSERVABLES))
    epochs = recording.epochs if recording.epochs is not None else np.full(n_steps, np.nan)
    identity = {
        "run_id": recording.run,
        "step": np.repeat(recording.steps, n_layers),
        "epoch": np.repeat(np.asarray(epochs, dtype=np.float64), n_layers),
        "layer": np.tile(recording.layers, n_steps),
        "layer_index": np.tile(np.asarray(positions, dtype=np.int32), n_steps),
        "depth_group": np.tile([depth_groups(network_layers)[p] for p in positions], n_steps),
    }
    frame = pd.concat([pd.DataFrame(identity), frame], axis=1)[ID_COLUMNS + list(STORED_OBSERVABLES)]
    return frame.assign(rule=None, task=None, arch=recording_arch(recording), network_layers=network_layers)


def recording_reach(recording: Recording) -> np.ndarray:
    """[T, L]: each layer's update reach (:mod:`lrid.observables.update_reach`) from the previous recorded step,
    read by the next recorded layer; NaN at the first step, for the readout, and where it is undefined.

    A recording of some of a network's layers, or without weights, has none: the layer above a recorded one
    may not be recorded. A layer whose next layer does not take its units as inputs (a skip, a branch) has
    none either, and a dense layer reading a conv map over several positions has one only if the recording
    says how the map was flattened (``flatten``).
    """
    reach = np.full((len(recording.steps), len(recording.layers)), np.nan)
    if "weight" not in recording.arrays or recording.partial:
        return reach
    kernels = [recording.arrays["weight"][layer] for layer in recording.layers]
    for step in range(1, len(recording.steps)):
        reach[step] = checkpoint_reach(
            [k[step - 1] for k in kernels], [k[step] for k in kernels], None, recording.flatten
        )
    return reach


def recording_arch(recording: Recording) -> str:
    """``conv`` if a layer of ``recording`` is convolutional (its kernel or its output has spatial axes), else
    ``dense``: what a recording says of its architecture, which lrid's benchmarks measured apart."""
    spatial = any(np.ndim(array) > 3 for kind in ("weight", "act") for array in recording.arrays.get(kind, {}).values())
    return CONV_RECORDING if spatial else "dense"


def partial_layer_counts(observables: pd.DataFrame) -> pd.DataFrame:
    """For each run recorded at some of its network's layers, by run id: how many layers it holds
    (``recorded``) of the network's (``of``). Runs of an lrid store and whole-network recordings are not listed.
    """
    if "network_layers" not in observables:
        return pd.DataFrame({"recorded": pd.Series(dtype=int), "of": pd.Series(dtype=int)})
    counts = observables.groupby("run_id").agg(recorded=("layer_index", "nunique"), of=("network_layers", "first"))
    return counts[counts["recorded"] < counts["of"]].astype(int)


def partial_runs(observables: pd.DataFrame) -> pd.Series:
    """For each run recorded at some of its network's layers, how many of how many: ``"2 of 4"``, by run id
    (:func:`partial_layer_counts` in words)."""
    return _in_words(partial_layer_counts(observables))


def _in_words(counts: pd.DataFrame) -> pd.Series:
    return counts["recorded"].astype(str) + " of " + counts["of"].astype(str)


def require_measures(observables: pd.DataFrame, feature_names: list[str]) -> None:
    """Refuse observables that lack a measure the features use (a recording without actchange arrays, say).

    A measure is missing for a run when every one of its observables is NaN there, which is how
    :func:`read_recording` marks kinds the recording does not carry.
    """
    reach_used = any(name.split("@")[0] == "reach" for name in feature_names)
    for kind in KINDS:
        used = sorted({name.split("@")[0] for name in feature_names if name.startswith(f"{kind}_")})
        if kind == "weight" and reach_used and not used:  # update reach is computed from the weights
            used = [name for name in STORED_OBSERVABLES if name.startswith("weight_")]
        if not used or not set(used) <= set(observables.columns):
            continue
        empty = observables[used].isna().all(axis=1).groupby(observables["run_id"]).all()
        if empty.any():
            run = empty[empty].index[0]
            raise LridError(
                f"run {run} has no {kind} observables, which the model uses; record {kind}/<layer> arrays, or use "
                f"a model trained without them (e.g. `lrid classify --observables {','.join(k for k in KINDS[:2] if k != kind)}`)"
            )
