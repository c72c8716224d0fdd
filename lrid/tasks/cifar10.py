"""CIFAR-10 (60,000 32x32 colour images, 10 classes) from the official "CIFAR-10 python version".

Where the data are: the spec's ``data_dir``, else the environment variable ``LRID_CIFAR10_DIR``. It may be
the extracted directory ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
``batches.meta``), the directory that contains it (or contains ``cifar-10-python.tar.gz``), or the archive
``cifar-10-python.tar.gz`` itself, whose members are read straight from the tarball.

The batches are Python pickles, and a pickle can run arbitrary code when loaded. They are therefore read
only with :class:`RestrictedUnpickler`, which admits plain containers, strings, bytes, numbers and numpy
arrays, and nothing else. Each batch is checked (uint8 data of shape [N, 3072], N labels in 0..9) and
turned from the official channel-major rows (1024 red, 1024 green, 1024 blue values, each a row-major
32x32 plane) into NHWC [N, 32, 32, 3] uint8, which is how the images stay in memory (150 MB for 50,000).
The counts are not required to be the official 50,000/10,000, but all five training batches must exist.

Inputs are scaled to float32 per batch by :func:`preprocess`: to [0, 1], then standardised per channel
with the fixed training-set statistics :data:`MEAN` and :data:`STD`. Training batches are augmented by
:func:`augment` (the standard random 32x32 crop of the image padded by 4 black pixels, and a random
horizontal flip); the probe batch and the test set are not.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lrid.errors import LridError
from lrid.tasks import register_task
from lrid.tasks.base import ArrayTask

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ENV_VAR = "LRID_CIFAR10_DIR"
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)

N_CLASSES = 10
SIDE = 32
PIXELS = SIDE * SIDE * 3
PAD = 4

# Per-channel mean and standard deviation of all pixels of the 50,000 training images, scaled to [0, 1].
# (The often-quoted std (0.2023, 0.1994, 0.2010) is the mean of per-image stds, not the data set's.)
MEAN = np.array([0.49139968, 0.48215841, 0.44653091], dtype=np.float32)
STD = np.array([0.24703223, 0.24348513, 0.26158784], dtype=np.float32)

_HOW_TO_GET = (
    f"download {URL} and point the task's data_dir (or {ENV_VAR}) at the archive, at the extracted "
    f"{FOLDER}/ directory, or at the directory containing either"
)


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The globals numpy's own pickles of arrays refer to, under numpy 1.x and 2.x module names."""
    # import_module, not `from ... import`: the same modules, typed as modules whose private members
    # (_reconstruct, _frombuffer, absent from numpy's stubs) can be looked up.
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
        numeric = importlib.import_module("numpy._core.numeric")
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module("numpy.core.multiarray")
        numeric = importlib.import_module("numpy.core.numeric")

    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` restricted to latin-1: how protocol 0-2 pickles written by Python 3 store bytes."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"the encoding {encoding!r} is not allowed in a CIFAR-10 batch")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build only plain containers, strings, bytes, numbers and numpy arrays.

    Containers, strings and numbers need no global at all; only the globals listed here (numpy's array
    and dtype reconstruction, and latin-1 string encoding) can be looked up, so a pickle that refers to
    anything else, such as ``os.system``, is refused before it can be called.
    """

    ALLOWED = {**_numpy_globals(), ("_codecs", "encode"): _latin1_encode}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load the global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id")


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; Python 2 strings become bytes, as the files need."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC images to float32, scaled to [0, 1] and standardised per channel with MEAN and STD."""
    return ((images.astype(np.float32) * np.float32(1 / 255) - MEAN) / STD).astype(np.float32, copy=False)


# The value a black pixel has after preprocessing: the padding of the random crop.
PAD_VALUE = preprocess(np.zeros((1, 1, 1, 3), dtype=np.uint8))[0, 0, 0]


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 32x32 crops of the images padded by 4 black pixels, each flipped left-right with probability 1/2.

    ``batch`` is preprocessed float32 NHWC; every offset and flip is drawn from ``rng``, so the result
    depends only on the batch and the generator's state. The batch itself is not modified.
    """
    n = len(batch)
    height, width, channels = batch.shape[1:]
    padded = np.empty((n, height + 2 * PAD, width + 2 * PAD, channels), dtype=batch.dtype)
    padded[...] = PAD_VALUE
    padded[:, PAD : PAD + height, PAD : PAD + width] = batch
    top = rng.integers(0, 2 * PAD + 1, size=n)
    left = rng.integers(0, 2 * PAD + 1, size=n)
    flip = rng.random(n) < 0.5
    rows = top[:, None] + np.arange(height)
    cols = left[:, None] + np.arange(width)
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _source(data_dir: str | None) -> tuple[str, Callable[[], dict[str, bytes]]]:
    """Where the data are (for messages) and a reader returning the raw bytes of each of FILES."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
        if data_dir is None:
            raise LridError(f"no CIFAR-10 location: set the task's data_dir or {ENV_VAR}; {_HOW_TO_GET}")
    path = Path(data_dir).expanduser()
    if path.is_file():
        return str(path), lambda: _read_archive(path)
    if path.is_dir():
        if any((path / name).is_file() for name in FILES):
            return str(path), lambda: _read_folder(path)
        if (path / FOLDER).is_dir():
            return str(path / FOLDER), lambda: _read_folder(path / FOLDER)
        if (path / ARCHIVE).is_file():
            return str(path / ARCHIVE), lambda: _read_archive(path / ARCHIVE)
        raise LridError(
            f"CIFAR-10 not found in {path}: expected {', '.join(FILES)} there, or {FOLDER}/ or {ARCHIVE} "
            f"inside it; {_HOW_TO_GET}"
        )
    raise LridError(f"CIFAR-10 location {path} does not exist; {_HOW_TO_GET}")


def _read_folder(folder: Path) -> dict[str, bytes]:
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise LridError(f"CIFAR-10 in {folder} is incomplete: missing {', '.join(missing)}; {_HOW_TO_GET}")
    return {name: (folder / name).read_bytes() for name in FILES}


def _read_archive(archive: Path) -> dict[str, bytes]:
    """Read the members named in FILES from a (compressed) tarball in one pass, without extracting to disk."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in FILES:
                    if name in found:
                        raise LridError(f"CIFAR-10 archive {archive} holds more than one {name}; {_HOW_TO_GET}")
                    contents = tar.extractfile(member)
                    assert contents is not None  # a regular file member always has contents
                    found[name] = contents.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise LridError(f"CIFAR-10 archive {archive} cannot be read ({error}); {_HOW_TO_GET}") from None
    missing = [name for name in FILES if name not in found]
    if missing:
        raise LridError(f"CIFAR-10 archive {archive} lacks {', '.join(missing)}; {_HOW_TO_GET}")
    return found


def _unpickle(where: str, name: str, data: bytes) -> dict:
    try:
        content = restricted_loads(data)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means a bad file
        raise LridError(
            f"CIFAR-10 file {name} in {where} is not a valid CIFAR-10 pickle ({error}); {_HOW_TO_GET}"
        ) from None
    if not isinstance(content, dict):
        raise LridError(f"CIFAR-10 file {name} in {where} holds a {type(content).__name__}, not a dict; {_HOW_TO_GET}")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _batch(where: str, name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One batch as NHWC uint8 images and int32 labels, after checking its layout."""
    content = _unpickle(where, name, data)

    def bad(problem: str) -> LridError:
        return LridError(f"CIFAR-10 file {name} in {where} is malformed: {problem}; {_HOW_TO_GET}")

    if "data" not in content or "labels" not in content:
        raise bad(f"expected the keys data and labels, found {sorted(map(str, content))}")
    images, labels = content["data"], content["labels"]
    is_array = isinstance(images, np.ndarray)
    if not is_array or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != PIXELS:
        shape = getattr(images, "shape", None)
        raise bad(
            f"data must be a uint8 array of shape [N, {PIXELS}], got {type(images).__name__} {shape} "
            f"{getattr(images, 'dtype', '')}".rstrip()
        )
    try:
        labels = np.asarray(labels)
    except Exception:  # noqa: BLE001 - e.g. ragged nested lists
        raise bad("labels must be a list of integers") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise bad(f"labels must be a list of integers, got {labels.dtype} of shape {labels.shape}")
    if len(labels) != len(images):
        raise bad(f"{len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise bad(f"labels must lie in 0..{N_CLASSES - 1}, found {labels.min()}..{labels.max()}")
    return np.ascontiguousarray(images.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)), labels.astype(np.int32)


def _check_meta(where: str, data: bytes) -> None:
    content = _unpickle(where, META_FILE, data)
    names = content.get("label_names")
    if not isinstance(names, list) or len(names) != N_CLASSES:
        raise LridError(
            f"CIFAR-10 file {META_FILE} in {where} is malformed: expected label_names listing {N_CLASSES} "
            f"classes (is this CIFAR-100?); {_HOW_TO_GET}"
        )


@register_task("cifar10", geometry=lambda image_size: ((SIDE, SIDE, 3), N_CLASSES, 50_000))
def load(data_dir: str | None = None, image_size: int | None = None) -> ArrayTask:
    """CIFAR-10 from ``data_dir`` (or ``LRID_CIFAR10_DIR``), with preprocessing and training augmentation."""
    if image_size not in (None, SIDE):
        raise LridError(
            f"task 'cifar10' has {SIDE}x{SIDE} images and cannot resize them; drop image_size: {image_size}"
        )
    where, read = _source(data_dir)
    raw = read()
    _check_meta(where, raw.pop(META_FILE))
    train = [_batch(where, name, raw.pop(name)) for name in TRAIN_FILES]
    x_test, y_test = _batch(where, TEST_FILE, raw.pop(TEST_FILE))
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    if len(x_train) == 0 or len(x_test) == 0:
        raise LridError(f"CIFAR-10 in {where} has {len(x_train)} training and {len(x_test)} test images; {_HOW_TO_GET}")
    return ArrayTask(
        "cifar10",
        x_train,
        y_train,
        x_test,
        y_test,
        n_classes=N_CLASSES,
        preprocess=preprocess,
        augment=augment,
    )
