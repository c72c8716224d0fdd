"""ImageNet (ILSVRC-2012, 1.28 million training images in 1,000 classes), streamed from disk with tf.data.

Where the data are: the spec's ``data_dir``, else the environment variable ``LRID_IMAGENET_DIR``. Two
standard layouts are read (TFRecords are preferred when both are there):

* TFRecord shards ``train-XXXXX-of-NNNNN`` and ``validation-XXXXX-of-NNNNN`` whose records hold the JPEG
  bytes in ``image/encoded`` and the class in ``image/class/label`` (int64), as written by TensorFlow's
  ``build_imagenet_data.py`` (Inception / TF-slim) and the TPU ``imagenet_to_gcs.py`` scripts. Those
  number the classes 1..1000 (the sorted wnids, 0 being a "background" class that never occurs); labels
  are mapped to 0..999 by subtracting an offset that is detected from the labels (see
  :func:`_label_offset`), so both layouts give every class the same index. ``n_classes`` is always 1000
  for this layout, whatever subset of classes a data set holds, so a model's head does not depend on it.
* Class folders ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` (or ``validation/<wnid>/``). The classes
  are the sorted names of the folders under ``train/`` (as torchvision's ImageFolder numbers them), and
  ``n_classes`` is their number.

Training images get the standard random-resized crop (area 8%..100% of the image, aspect ratio 3/4..4/3,
torchvision's algorithm: ten tries, else a central crop) resized to ``image_size`` (default 224; 64 or 32
for downsampled runs), and a random horizontal flip. The probe batch and the validation set are resized
so that their shorter side is ``int(image_size / 0.875)`` and centre-cropped to ``image_size``. All
resizing is bilinear with antialiasing; pixels are scaled to [0, 1] and standardised with the usual
ImageNet channel mean and std (:data:`MEAN`, :data:`STD`).

Determinism: an epoch's data depend only on (data_seed, epoch), never on TensorFlow's global seed (which
the trainer sets to the model seed). A numpy generator seeded with (data_seed, epoch) orders the files
(and, for class folders, all images), and draws the keys of the stateless random ops: records read from
interleaved shards are shuffled within consecutive windows of :data:`SHUFFLE_WINDOW` records by
``stateless_shuffle`` keyed on (key, window index), and each example's crop and flip are keyed on (key,
position in the epoch). tf.data's own ``shuffle`` is not used because its seed is combined with the global
seed. Every parallel map and interleave keeps its input order (``deterministic=True``). A window holds
records from :data:`INTERLEAVE` shards: that mixes the classes well when the shards are in random order
(``build_imagenet_data.py`` shuffles before sharding), less so for shards written in class order (the TPU
``imagenet_to_gcs.py`` meant to shuffle, but its shuffle is a no-op).

The probe batch is ``size`` validation images drawn by ``probe_seed``: from all of them for class folders,
from the first :data:`PROBE_POOL` * ``size`` records for TFRecords (so only the first shards are read).

The number of training examples is 1,281,167 when the standard 1,024 training shards are all present;
otherwise the records are counted once (in the same pass that detects the label offset) and kept in memory.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lrid.errors import LridError
from lrid.lazy_import import tf
from lrid.tasks import register_task
from lrid.tasks.base import Task

ENV_VAR = "LRID_IMAGENET_DIR"
DEFAULT_IMAGE_SIZE = 224
ILSVRC_CLASSES = 1000
STANDARD_TRAIN_SHARDS = 1024
STANDARD_TRAIN_COUNT = 1_281_167
ENCODED = "image/encoded"
LABEL = "image/class/label"

CROP_FRACTION = 0.875  # evaluation: resize the shorter side to image_size / 0.875, then centre-crop
CROP_SCALE = (0.08, 1.0)  # training: fraction of the image's area that the random crop covers
CROP_RATIO = (3 / 4, 4 / 3)  # training: aspect ratio (width / height) of the random crop
CROP_ATTEMPTS = 10
MEAN = (0.485, 0.456, 0.406)  # per-channel mean and std of ImageNet pixels scaled to [0, 1]
STD = (0.229, 0.224, 0.225)

SHUFFLE_WINDOW = 8192  # training records are shuffled within windows of this many (about 1 GB of JPEGs)
INTERLEAVE = 64  # training shards read at once, a record from each in turn
PROBE_POOL = 8  # the TFRecord probe batch is drawn from the first PROBE_POOL * size validation records
IMAGE_EXTENSIONS = {".jpeg", ".jpg", ".png"}

_SHARD = re.compile(r"^(train|validation)-(\d+)-of-(\d+)$")
_EXPECTED = (
    "expected ILSVRC-2012 either as TFRecord shards train-XXXXX-of-NNNNN and validation-XXXXX-of-NNNNN "
    f"(features {ENCODED} and {LABEL}, as written by TensorFlow's build_imagenet_data.py) or as class folders "
    "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG; the images require registration at "
    "https://image-net.org/download.php"
)


# ---------------------------------------------------------------------------------------------------------
# Image transforms (traced inside tf.data maps)


def _normalise(image):
    """float32 pixels in 0..255 to [0, 1], standardised per channel."""
    return (image / 255.0 - tf.constant(MEAN)) / tf.constant(STD)


def _crop_window(height, width, seed):
    """torchvision's RandomResizedCrop window (top, left, height, width), drawn statelessly from ``seed``."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 3)
    target_area = h * w * tf.random.stateless_uniform([CROP_ATTEMPTS], seeds[0], CROP_SCALE[0], CROP_SCALE[1])
    log_ratio = tf.random.stateless_uniform([CROP_ATTEMPTS], seeds[1], math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    ratio = tf.exp(log_ratio)
    crop_w = tf.round(tf.sqrt(target_area * ratio))
    crop_h = tf.round(tf.sqrt(target_area / ratio))
    fits = (crop_w >= 1) & (crop_h >= 1) & (crop_w <= w) & (crop_h <= h)
    found = tf.reduce_any(fits)
    first = tf.argmax(tf.cast(fits, tf.int32))  # the first attempt that fits
    # No attempt fits: a central crop of the whole image, its aspect ratio clamped to CROP_RATIO.
    aspect = w / h
    fallback_w = tf.where(aspect > CROP_RATIO[1], tf.round(h * CROP_RATIO[1]), w)
    fallback_h = tf.where(aspect < CROP_RATIO[0], tf.round(w / CROP_RATIO[0]), h)
    crop_h = tf.where(found, tf.gather(crop_h, first), fallback_h)
    crop_w = tf.where(found, tf.gather(crop_w, first), fallback_w)
    position = tf.random.stateless_uniform([2], seeds[2])
    top = tf.where(found, tf.minimum(tf.floor(position[0] * (h - crop_h + 1)), h - crop_h), tf.floor((h - crop_h) / 2))
    left = tf.where(found, tf.minimum(tf.floor(position[1] * (w - crop_w + 1)), w - crop_w), tf.floor((w - crop_w) / 2))
    return [tf.cast(value, tf.int32) for value in (top, left, crop_h, crop_w)]


def train_image(encoded: Any, seed: Any, size: int) -> Any:
    """Decode, random-resized-crop to ``size`` x ``size``, maybe flip, and normalise one training image.

    JPEGs are decoded only inside the crop window; other formats (ImageNet holds a few PNGs named .JPEG)
    are decoded whole and then cropped. ``seed`` (shape [2], int64) fixes the crop and the flip.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))

    def crop_jpeg():
        shape = tf.io.extract_jpeg_shape(encoded)
        window = _crop_window(shape[0], shape[1], crop_seed)
        return tf.io.decode_and_crop_jpeg(encoded, tf.stack(window), channels=3)

    def crop_other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        shape = tf.shape(image)
        top, left, height, width = _crop_window(shape[0], shape[1], crop_seed)
        return image[top : top + height, left : left + width]

    image = tf.cond(tf.io.is_jpeg(encoded), crop_jpeg, crop_other)
    image = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    image = tf.where(flip, tf.reverse(image, axis=[1]), image)
    return tf.ensure_shape(_normalise(image), [size, size, 3])


def eval_image(encoded: Any, size: int) -> Any:
    """Decode, resize the shorter side to ``int(size / 0.875)``, centre-crop ``size`` x ``size``, normalise."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    shape = tf.cast(tf.shape(image), tf.float32)
    h, w = shape[0], shape[1]
    short = float(int(size / CROP_FRACTION))
    new_h = tf.where(h <= w, short, tf.floor(short * h / w))
    new_w = tf.where(h <= w, tf.floor(short * w / h), short)
    image = tf.image.resize(image, tf.cast(tf.stack([new_h, new_w]), tf.int32), method="bilinear", antialias=True)
    top = tf.cast(tf.round((new_h - size) / 2), tf.int32)
    left = tf.cast(tf.round((new_w - size) / 2), tf.int32)
    image = tf.slice(image, tf.stack([top, left, 0]), [size, size, 3])
    return tf.ensure_shape(_normalise(image), [size, size, 3])


# ---------------------------------------------------------------------------------------------------------
# The two layouts: each gives (encoded image, 0-based label) datasets for training, evaluation and probing


class _TFRecords:
    """TFRecord shards ``train-*`` and ``validation-*``."""

    n_classes = ILSVRC_CLASSES

    def __init__(self, root: Path, train_files: list[str], val_files: list[str]):
        self.root = root
        self.train_files = train_files
        self.val_files = val_files
        self._stats: tuple[int, int] | None = None

    def stats(self) -> tuple[int, int]:
        """(number of training examples, label offset), computed once."""
        if self._stats is None:
            if len(self.train_files) == STANDARD_TRAIN_SHARDS:
                # Counting 1.28M records would read 140 GB: use the known count and detect the offset on
                # the first training and validation shards (the in-stream range check catches the rest).
                labels = self._labels(self.train_files[:1] + self.val_files[:1])
                count = STANDARD_TRAIN_COUNT
            else:
                labels = self._labels(self.train_files)
                count = len(labels)
            self._stats = (count, _label_offset(labels, self.root))
        return self._stats

    def _labels(self, files: list[str]) -> np.ndarray:
        spec = {LABEL: tf.io.FixedLenFeature([], tf.int64)}
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=INTERLEAVE, num_parallel_calls=tf.data.AUTOTUNE
        )
        labels = records.map(
            lambda record: tf.io.parse_single_example(record, spec)[LABEL], num_parallel_calls=tf.data.AUTOTUNE
        ).batch(65536)
        chunks = list(_numpy(labels, self.root, "reading the training labels"))
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int64)

    def _parser(self):
        """A map function from a serialised record to (JPEG bytes, 0-based int32 label), checking the label."""
        offset = self.stats()[1]
        spec = {ENCODED: tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.int64)}
        message = (
            f"a label ({LABEL}) lies outside 0..{ILSVRC_CLASSES - 1} after subtracting the offset {offset} "
            "detected from the labels (1..1000 is the Inception/TF-slim numbering, 0..999 a zero-based one)"
        )

        def parse(record):
            features = tf.io.parse_single_example(record, spec)
            label = features[LABEL] - offset
            checks = [
                tf.debugging.assert_non_negative(label, message=message),
                tf.debugging.assert_less(label, tf.constant(ILSVRC_CLASSES, tf.int64), message=message),
            ]
            with tf.control_dependencies(checks):
                return features[ENCODED], tf.cast(tf.identity(label), tf.int32)

        return parse

    def train_examples(self, rng: np.random.Generator, window_key: int):
        files = [self.train_files[i] for i in rng.permutation(len(self.train_files))]
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            lambda file: tf.data.TFRecordDataset(file, buffer_size=1 << 20),
            cycle_length=min(INTERLEAVE, len(files)),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        key = tf.constant(window_key, tf.int64)
        records = (
            records.batch(SHUFFLE_WINDOW)
            .enumerate()
            .map(lambda index, window: tf.random.experimental.stateless_shuffle(window, tf.stack([key, index])))
            .unbatch()
        )
        return records.map(self._parser(), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _val_records(self):
        return tf.data.TFRecordDataset(self.val_files, buffer_size=1 << 22)

    def val_examples(self):
        return self._val_records().map(self._parser(), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def probe_examples(self, size: int, seed: int):
        """``size`` records drawn by ``seed`` from the first PROBE_POOL * size validation records.

        The standard validation shards hold the images in a random order, so this is a random sample of
        classes; only the first few shards are read (twice: to count the pool, then to pick from it).
        """
        pool = self._val_records().take(PROBE_POOL * size)
        try:
            count = int(pool.reduce(np.int64(0), lambda count, _: count + 1))
        except tf.errors.OpError as error:
            raise LridError(
                f"ImageNet in {self.root}: failed while reading the probe batch: {_first_line(error)}; {_EXPECTED}"
            ) from None
        if count == 0:
            raise LridError(f"ImageNet in {self.root} has no validation records; {_EXPECTED}")
        chosen = tf.constant(np.random.default_rng(seed).choice(count, size=min(size, count), replace=False))
        picked = pool.enumerate().filter(lambda index, _: tf.reduce_any(tf.equal(index, chosen)))
        return picked.map(lambda _, record: record).map(self._parser())


class _Folders:
    """Class folders ``train/<class>/`` and ``val/<class>/``; the file lists are kept in memory."""

    def __init__(
        self, root: Path, classes: list[str], train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]
    ):
        self.root = root
        self.classes = classes
        self.n_classes = len(classes)
        self.train_paths, self.train_labels = train
        self.val_paths, self.val_labels = val

    def stats(self) -> tuple[int, int]:
        return len(self.train_paths), 0

    @staticmethod
    def _examples(paths: np.ndarray, labels: np.ndarray):
        return tf.data.Dataset.from_tensor_slices((paths, labels)).map(
            lambda path, label: (tf.io.read_file(path), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def train_examples(self, rng: np.random.Generator, window_key: int):
        order = rng.permutation(len(self.train_paths))
        return self._examples(self.train_paths[order], self.train_labels[order])

    def val_examples(self):
        return self._examples(self.val_paths, self.val_labels)

    def probe_examples(self, size: int, seed: int):
        """``size`` validation images drawn by ``seed`` from all of them, in listing order."""
        count = len(self.val_paths)
        index = np.sort(np.random.default_rng(seed).choice(count, size=min(size, count), replace=False))
        return self._examples(self.val_paths[index], self.val_labels[index])


def _label_offset(labels: np.ndarray, root: Path) -> int:
    """0 if the labels are 0-based (a label 0 occurs), else 1 (the Inception/TF-slim labels 1..1000)."""
    if labels.size == 0:
        return 1
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > ILSVRC_CLASSES or (low == 0 and high == ILSVRC_CLASSES):
        raise LridError(
            f"ImageNet TFRecords in {root} have {LABEL} values {low}..{high}, but they must lie in 1..1000 "
            f"(Inception/TF-slim) or 0..999; rewrite the shards with build_imagenet_data.py"
        )
    return 0 if low == 0 else 1


# ---------------------------------------------------------------------------------------------------------
# Finding the data


def _root(data_dir: str | None) -> Path:
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
        if data_dir is None:
            raise LridError(f"no ImageNet location: set the task's data_dir or {ENV_VAR}; {_EXPECTED}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise LridError(f"ImageNet location {root} is not a directory; {_EXPECTED} in it")
    return root


def _shards(root: Path, names: list[str], split: str) -> list[str]:
    """The complete, index-ordered shard list of ``split``; [] if there is none."""
    found = {}
    for name in names:
        match = _SHARD.match(name)
        if match and match.group(1) == split:
            found[name] = (int(match.group(2)), int(match.group(3)))
    if not found:
        return []
    totals = {total for _, total in found.values()}
    if len(totals) > 1:
        raise LridError(f"ImageNet in {root} mixes {split} shard sets of {sorted(totals)} shards; keep one set")
    total = totals.pop()
    missing = sorted(set(range(total)) - {index for index, _ in found.values()})
    if missing or len(found) != total:
        shown = ", ".join(f"{split}-{index:05d}-of-{total:05d}" for index in missing[:3])
        raise LridError(
            f"ImageNet in {root} is incomplete: {len(missing)} of {total} {split} shards are missing or "
            "misnumbered"
            f"{' (' + shown + (', ...' if len(missing) > 3 else '') + ')' if missing else ''}; copy them again"
        )
    return [str(root / name) for name in sorted(found, key=lambda name: found[name][0])]


def _check_first_record(file: str) -> None:
    """Parse and decode the first record of ``file``, so a wrong format fails at load, naming the file."""
    spec = {ENCODED: tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.int64)}
    try:
        for record in tf.data.TFRecordDataset(file).take(1):
            features = tf.io.parse_single_example(record, spec)
            tf.io.decode_image(features[ENCODED], channels=3, expand_animations=False)
    except tf.errors.OpError as error:
        raise LridError(
            f"ImageNet shard {file} is not readable as records with a JPEG in {ENCODED} and an int64 {LABEL} "
            f"({_first_line(error)}); {_EXPECTED}"
        ) from None


def _find_tfrecords(root: Path) -> _TFRecords | None:
    names = os.listdir(root)
    train, val = _shards(root, names, "train"), _shards(root, names, "validation")
    if not train and not val:
        return None
    if not train or not val:
        have, lack = ("train", "validation") if train else ("validation", "train")
        raise LridError(f"ImageNet in {root} has {have} shards but no {lack}-XXXXX-of-NNNNN shards; {_EXPECTED}")
    _check_first_record(train[0])
    _check_first_record(val[0])
    return _TFRecords(root, train, val)


def _images(folder: Path) -> list[bytes]:
    with os.scandir(folder) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
        )
    return [os.fsencode(folder / name) for name in names]


def _class_folders(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir())


def _listing(root: Path, folder: Path, classes: list[str], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    paths: list[bytes] = []
    labels: list[int] = []
    for name in classes:
        images = _images(folder / name)
        paths += images
        labels += [index[name]] * len(images)
    if not paths:
        raise LridError(f"ImageNet in {root}: no .JPEG images in the class folders of {folder}; {_EXPECTED}")
    return np.array(paths, dtype=bytes), np.array(labels, dtype=np.int32)


def _find_folders(root: Path) -> _Folders | None:
    train_dir = root / "train"
    if not train_dir.is_dir():
        return None
    val_dir = next((root / name for name in ("val", "validation") if (root / name).is_dir()), None)
    if val_dir is None:
        raise LridError(f"ImageNet in {root} has train/ but no val/ (or validation/) folder; {_EXPECTED}")
    classes = _class_folders(train_dir)
    if not classes:
        raise LridError(f"ImageNet folder {train_dir} holds no class folders; {_EXPECTED}")
    val_classes = _class_folders(val_dir)
    if not val_classes and _images(val_dir):
        raise LridError(
            f"ImageNet folder {val_dir} holds images directly: sort them into class folders {val_dir}/<wnid>/ "
            "(e.g. with the widely used valprep.sh) to match train/"
        )
    unknown = sorted(set(val_classes) - set(classes))
    if unknown:
        raise LridError(
            f"ImageNet folder {val_dir} has class folders not in {train_dir}: {', '.join(unknown[:3])}"
            f"{', ...' if len(unknown) > 3 else ''}; both must use the same class names"
        )
    index = {name: i for i, name in enumerate(classes)}
    train = _listing(root, train_dir, classes, index)
    return _Folders(root, classes, train, _listing(root, val_dir, val_classes, index))


def _first_line(error) -> str:
    """The gist of a TensorFlow error: an assertion's message, else the first line without tf.data's preamble."""
    text = str(getattr(error, "message", error))
    assertion = re.search(r"assertion failed: \[(.*?)\]", text, re.DOTALL)
    if assertion:
        value = re.search(r"\[x \([^)]*\) = \] \[(-?\d+)\]", text)
        return assertion.group(1).strip().rstrip(".") + (f" (got {value.group(1)})" if value else "")
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    text = re.sub(r"^Error in user-defined function passed to \S+ transformation with iterator: \S+: ", "", text)
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


def _numpy(dataset, root: Path, doing: str) -> Iterator:
    """Iterate ``dataset`` as numpy; a read or decode failure becomes a one-line LridError."""
    try:
        yield from dataset.as_numpy_iterator()
    except tf.errors.OpError as error:
        raise LridError(f"ImageNet in {root}: failed while {doing}: {_first_line(error)}; {_EXPECTED}") from None


# ---------------------------------------------------------------------------------------------------------
# The task


class ImageNetTask(Task):
    """ImageNet streamed with tf.data; see the module's docstring for the layouts, transforms and seeding."""

    name = "imagenet"

    def __init__(self, source: _TFRecords | _Folders, image_size: int) -> None:
        self.source = source
        self.image_size = image_size
        self.n_classes = source.n_classes
        self.input_shape = (image_size, image_size, 3)

    @property
    def root(self) -> Path:
        return self.source.root

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch; the remainder is dropped so every step has the same shape."""
        count = self.source.stats()[0]
        if count // batch_size == 0:
            raise LridError(
                f"batch size {batch_size} exceeds the {count} training examples of task 'imagenet' in "
                f"{self.root}; use a batch size of at most {count}"
            )
        return count // batch_size

    def epoch_batches(self, epoch: int, batch_size: int, data_seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the augmented full batches of one epoch; they depend only on (data_seed, epoch)."""
        steps = self.steps_per_epoch(batch_size)
        rng = np.random.default_rng([data_seed, epoch])
        window_key, augment_key = (int(key) for key in rng.integers(0, 2**62, size=2))
        key = tf.constant(augment_key, tf.int64)
        size = self.image_size
        examples = (
            self.source.train_examples(rng, window_key)
            .enumerate()
            .map(
                lambda index, example: (train_image(example[0], tf.stack([key, index]), size), example[1]),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        )
        batches = examples.batch(batch_size, drop_remainder=True).take(steps).prefetch(tf.data.AUTOTUNE)
        yield from _numpy(batches, self.root, f"reading training epoch {epoch}")

    def _eval_batches(self, examples, batch_size: int, doing: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        size = self.image_size
        batches = (
            examples.map(
                lambda encoded, label: (eval_image(encoded, size), label),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        return _numpy(batches, self.root, doing)

    def probe_batch(self, size: int, seed: int) -> np.ndarray:
        """A fixed batch of validation images (centre-cropped, not augmented) chosen by ``seed``."""
        batches = list(self._eval_batches(self.source.probe_examples(size, seed), size, "reading the probe batch"))
        return batches[0][0]

    def evaluate(self, predict: Callable[[np.ndarray], np.ndarray], batch_size: int = 512) -> float:
        """Accuracy of ``predict`` (inputs -> logits) over the whole validation set, streamed in batches."""
        correct = total = 0
        for inputs, labels in self._eval_batches(self.source.val_examples(), batch_size, "evaluating"):
            logits = np.asarray(predict(inputs))
            correct += int(np.sum(np.argmax(logits, axis=1) == labels))
            total += len(labels)
        if total == 0:
            raise LridError(f"ImageNet in {self.root} has no validation images to evaluate on; {_EXPECTED}")
        return correct / total


@register_task(
    "imagenet", geometry=lambda image_size: ((image_size or DEFAULT_IMAGE_SIZE,) * 2 + (3,), 1000, 1_281_167)
)
def load(data_dir: str | None = None, image_size: int | None = None) -> ImageNetTask:
    """ImageNet from ``data_dir`` (or ``LRID_IMAGENET_DIR``) at ``image_size`` (default 224) pixels square."""
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise LridError(f"task 'imagenet' needs a positive integer image_size (e.g. 224, 64 or 32), got {image_size!r}")
    root = _root(data_dir)
    source = _find_tfrecords(root) or _find_folders(root)
    if source is None:
        raise LridError(f"ImageNet not found in {root}: {_EXPECTED}")
    return ImageNetTask(source, size)
