"""CIFAR-10 and ImageNet loaders, on tiny fixtures written here in the official file formats.

No download is possible in tests, so each fixture is built from its format's definition: CIFAR-10 batches
are pickled dicts with bytes keys holding uint8 rows of 1024 red, 1024 green and 1024 blue values; ImageNet
is TFRecord shards of tf.train.Example protos with JPEG bytes, or class folders of JPEG files. Expected
values come from those definitions (and from the documented normalisation constants), not from the loaders.
"""

import os
import pickle
import shutil
import struct
import tarfile

import numpy as np
import pytest

import lrid.tasks
from lrid.config import TaskSpec
from lrid.errors import LridError
from lrid.tasks import cifar10, get_task

# ---------------------------------------------------------------------------------------------------------
# CIFAR-10

CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465])  # documented CIFAR-10 training-set statistics
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616])
TRAIN_SIZES = (3, 2, 3, 2, 2)  # images in data_batch_1..5
TRAIN_LABELS = np.arange(sum(TRAIN_SIZES)) % 10
TEST_LABELS = np.array([3, 1, 4, 1, 5, 9])
KNOWN = {"row": 5, "col": 7, "rgb": (11, 22, 33)}  # the only non-zero pixel of the first training image
LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def flat_index(channel, row, col):
    """Where a pixel value sits in an official data row: channel planes of 32x32, each row-major."""
    return channel * 1024 + row * 32 + col


def cifar_rows(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def as_nhwc(rows):
    """Expected images, pixel by pixel from the row layout (deliberately not with reshape/transpose)."""
    images = np.zeros((len(rows), 32, 32, 3), dtype=np.uint8)
    for channel in range(3):
        for row in range(32):
            images[:, row, :, channel] = rows[:, flat_index(channel, row, 0) : flat_index(channel, row, 0) + 32]
    return images


def py2_pickle(content):
    """What Python 2's cPickle.dump(content, file, 2) wrote for the official files: every str a BINSTRING
    (so Python 3 must read them with encoding='bytes'), arrays rebuilt by numpy.core.multiarray._reconstruct."""
    out = bytearray(b"\x80\x02")

    def string(value):
        out.extend(b"U" + bytes([len(value)]) if len(value) < 256 else b"T" + struct.pack("<i", len(value)))
        out.extend(value)

    def integer(value):
        out.extend(b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value))

    def dump(value):
        if isinstance(value, bytes):
            string(value)
        elif isinstance(value, (int, np.integer)):
            integer(int(value))
        elif isinstance(value, list):
            out.extend(b"](")
            for item in value:
                dump(item)
            out.extend(b"e")
        elif isinstance(value, dict):
            out.extend(b"}(")
            for key, item in value.items():
                dump(key)
                dump(item)
            out.extend(b"u")
        else:  # a uint8 array: _reconstruct(ndarray, (0,), 'b') then __setstate__(1, shape, dtype, False, data)
            assert value.dtype == np.uint8
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R(K\x01(")
            for dim in value.shape:
                integer(dim)
            out.extend(b"tcnumpy\ndtype\nU\x02u1K\x00K\x01\x87R")  # dtype('u1', 0, 1) and its state:
            out.extend(b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89")
            string(value.tobytes())
            out.extend(b"tb")

    dump(content)
    return bytes(out + b".")


def write_pickle(path, content, protocol):
    """``protocol`` "py2" writes like Python 2 did; a number is a protocol of this Python's pickle."""
    path.write_bytes(py2_pickle(content) if protocol == "py2" else pickle.dumps(content, protocol=protocol))


def write_batch(path, rows, labels, protocol="py2", overrides=None):
    content = {
        b"batch_label": path.name.encode(),
        b"labels": [int(label) for label in labels],
        b"data": rows,
        b"filenames": [b"image_%d.png" % i for i in range(len(labels))],
    }
    content.update(overrides or {})
    write_pickle(path, content, protocol)


def write_cifar(folder, rng):
    """The official directory layout, written like the official Python 2 pickles and with protocols 0..5."""
    folder.mkdir(parents=True)
    train_rows = cifar_rows(rng, len(TRAIN_LABELS))
    train_rows[0] = 0
    for channel, value in enumerate(KNOWN["rgb"]):
        train_rows[0, flat_index(channel, KNOWN["row"], KNOWN["col"])] = value
    test_rows = cifar_rows(rng, len(TEST_LABELS))
    test_rows[:, flat_index(0, 0, 0)] = 20 * TEST_LABELS + 7  # the label, readable from the red of pixel (0, 0)
    bounds = np.cumsum((0, *TRAIN_SIZES))
    for index, protocol in enumerate(("py2", 0, 2, 4, 5)):
        part = slice(bounds[index], bounds[index + 1])
        write_batch(folder / f"data_batch_{index + 1}", train_rows[part], TRAIN_LABELS[part], protocol)
    write_batch(folder / "test_batch", test_rows, TEST_LABELS)
    meta = {b"num_cases_per_batch": 10000, b"label_names": LABEL_NAMES, b"num_vis": 3072}
    write_pickle(folder / "batches.meta", meta, "py2")
    return train_rows, test_rows


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """The extracted folder (inside its parent) and the archive, with the rows they were written from."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "parent" / "cifar-10-batches-py"
    train_rows, test_rows = write_cifar(folder, np.random.default_rng(0))
    archive = root / "download" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return {"folder": folder, "archive": archive, "train_rows": train_rows, "test_rows": test_rows}


def cifar_preprocess(images):
    return (images / 255.0 - CIFAR_MEAN) / CIFAR_STD


def candidates(image, pad_value):
    """All 9 x 9 crops of ``image`` padded by 4, unflipped [0] and flipped [1]: shape [2, 9, 9, 32, 32, 3]."""
    padded = np.empty((40, 40, 3))
    padded[...] = pad_value
    padded[4:36, 4:36] = image
    windows = np.lib.stride_tricks.sliding_window_view(padded, (32, 32), axis=(0, 1)).transpose(0, 1, 3, 4, 2)
    return np.stack([windows, windows[:, :, :, ::-1]])


def matching_transforms(output, image, pad_value):
    """(flip, top, left) of every crop/flip of ``image`` that equals ``output``."""
    distance = np.abs(candidates(image, pad_value) - output).max(axis=(-3, -2, -1))
    return [tuple(int(v) for v in where) for where in zip(*np.nonzero(distance < 1e-2))]


def test_cifar10_loads_the_extracted_folder_in_nhwc(cifar):
    task = get_task("cifar10", data_dir=str(cifar["folder"]))
    assert (task.name, task.n_classes, task.input_shape) == ("cifar10", 10, (32, 32, 3))
    assert task.x_train.dtype == np.uint8 and task.x_train.shape == (12, 32, 32, 3)
    assert task.x_test.dtype == np.uint8 and task.x_test.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(task.y_train, TRAIN_LABELS)  # batches 1..5 in order
    np.testing.assert_array_equal(task.y_test, TEST_LABELS)
    first = task.x_train[0]
    np.testing.assert_array_equal(first[KNOWN["row"], KNOWN["col"]], KNOWN["rgb"])
    np.testing.assert_array_equal(first[KNOWN["col"], KNOWN["row"]], [0, 0, 0])  # not transposed
    assert int(first.sum()) == sum(KNOWN["rgb"])
    np.testing.assert_array_equal(task.x_train, as_nhwc(cifar["train_rows"]))
    np.testing.assert_array_equal(task.x_test, as_nhwc(cifar["test_rows"]))
    assert task.steps_per_epoch(4) == 3 and task.steps_per_epoch(5) == 2


@pytest.mark.parametrize("where", ["parent", "archive"])
def test_cifar10_loads_from_the_parent_folder_and_the_archive(cifar, where):
    path = cifar["folder"].parent if where == "parent" else cifar["archive"]
    task = cifar10.load(data_dir=str(path))
    np.testing.assert_array_equal(task.x_train, as_nhwc(cifar["train_rows"]))
    np.testing.assert_array_equal(task.y_train, TRAIN_LABELS)
    np.testing.assert_array_equal(task.x_test, as_nhwc(cifar["test_rows"]))


def test_cifar10_folder_holding_only_the_archive_is_found(cifar):
    task = cifar10.load(data_dir=str(cifar["archive"].parent))
    np.testing.assert_array_equal(task.y_test, TEST_LABELS)


def test_cifar10_environment_variable_is_honoured(cifar, monkeypatch):
    monkeypatch.setenv("LRID_CIFAR10_DIR", str(cifar["folder"]))
    monkeypatch.setattr(lrid.tasks, "_LOADED", {})
    task = get_task("cifar10")
    np.testing.assert_array_equal(task.y_train, TRAIN_LABELS)


def test_cifar10_preprocessing_uses_the_documented_statistics(cifar):
    task = cifar10.load(data_dir=str(cifar["folder"]))
    probe = task.probe_batch(100, seed=0)  # capped at the 6 test images, all taken in order
    assert probe.dtype == np.float32 and probe.shape == (6, 32, 32, 3)
    np.testing.assert_allclose(probe, cifar_preprocess(as_nhwc(cifar["test_rows"])), atol=2e-3)
    pixel = np.array([[[[0, 255, 128]]]], dtype=np.uint8)
    np.testing.assert_allclose(cifar10.preprocess(pixel)[0, 0, 0], cifar_preprocess(pixel)[0, 0, 0], atol=2e-3)


def test_cifar10_probe_batch_is_fixed_by_its_seed_and_not_augmented(cifar):
    task = cifar10.load(data_dir=str(cifar["folder"]))
    probe = task.probe_batch(4, seed=3)
    np.testing.assert_array_equal(probe, task.probe_batch(4, seed=3))
    expected = cifar_preprocess(as_nhwc(cifar["test_rows"]))
    chosen = [int(np.argmin(np.abs(expected - image).max(axis=(1, 2, 3)))) for image in probe]
    np.testing.assert_allclose(probe, expected[chosen], atol=2e-3)  # unaugmented test images
    assert chosen == sorted(set(chosen))
    selections = {tuple(np.round(task.probe_batch(4, seed=seed)[:, 0, 0, 0], 3)) for seed in range(6)}
    assert len(selections) > 1


def test_cifar10_augmentation_crops_padded_images_and_flips_them():
    images = np.random.default_rng(1).integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    batch = cifar10.preprocess(images)
    original = batch.copy()
    augmented = cifar10.augment(batch, np.random.default_rng(7))
    np.testing.assert_array_equal(batch, original)  # not modified in place
    assert augmented.shape == batch.shape and augmented.dtype == np.float32
    np.testing.assert_array_equal(augmented, cifar10.augment(batch, np.random.default_rng(7)))
    assert not np.array_equal(augmented, cifar10.augment(batch, np.random.default_rng(8)))

    black = cifar_preprocess(np.zeros(3))  # padding is black: a zero pixel after preprocessing
    found = []
    for output, image in zip(augmented, batch):
        matches = matching_transforms(output, image, black)
        assert len(matches) == 1, "each output must be exactly one crop (and maybe mirror) of its image"
        found.append(matches[0])
    flips = {flip for flip, _, _ in found}
    offsets = {(top, left) for _, top, left in found}
    assert flips == {0, 1}
    assert len(offsets) > 10 and any(top in (0, 8) or left in (0, 8) for top, left in offsets)
    flip, top, left = next(match for match in found if match[0] == 1)
    index = found.index((flip, top, left))
    shifted = np.full((40, 40, 3), black)
    shifted[4:36, 4:36] = batch[index]
    np.testing.assert_allclose(augmented[index], shifted[top : top + 32, left : left + 32][:, ::-1], atol=1e-2)


def test_cifar10_epoch_batches_are_augmented_shuffled_and_seeded(cifar):
    task = cifar10.load(data_dir=str(cifar["folder"]))
    images = cifar_preprocess(task.x_train)
    black = cifar_preprocess(np.zeros(3))
    epoch = list(task.epoch_batches(0, 4, data_seed=0))
    assert len(epoch) == 3
    sources = []
    for inputs, labels in epoch:
        assert inputs.shape == (4, 32, 32, 3) and inputs.dtype == np.float32 and labels.shape == (4,)
        for output, label in zip(inputs, labels):
            source = [i for i, image in enumerate(images) if matching_transforms(output, image, black)]
            assert len(source) == 1
            assert TRAIN_LABELS[source[0]] == label
            sources.append(source[0])
    assert sorted(sources) == list(range(12))  # every training image once per epoch
    again = list(task.epoch_batches(0, 4, data_seed=0))
    for (x, y), (x2, y2) in zip(epoch, again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    next_epoch = list(task.epoch_batches(1, 4, data_seed=0))
    assert not all(np.array_equal(x, x2) for (x, _), (x2, _) in zip(epoch, next_epoch))


def test_cifar10_evaluate_scores_a_perfect_predictor_one(cifar):
    task = get_task("cifar10", data_dir=str(cifar["folder"]))

    def perfect(inputs):
        red = np.round((inputs[:, 0, 0, 0] * CIFAR_STD[0] + CIFAR_MEAN[0]) * 255).astype(int)
        return np.eye(10)[(red - 7) // 20]

    assert task.evaluate(perfect, batch_size=4) == 1.0
    assert task.evaluate(lambda inputs: np.eye(10)[np.ones(len(inputs), int)]) == pytest.approx(2 / 6)


class Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_cifar10_refuses_a_malicious_pickle(cifar, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(cifar["folder"], folder)
    marker = tmp_path / "exploited"
    write_pickle(folder / "data_batch_3", {b"data": Exploit(f"touch {marker}"), b"labels": [0]}, 2)
    with pytest.raises(LridError, match=r"data_batch_3.*refused to load the global (posix|os|nt)\.system"):
        cifar10.load(data_dir=str(folder))
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(Exploit("true")),
        b"cbuiltins\neval\n(S'1+1'\ntR.",  # protocol 0, calling eval
        b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R.",  # a non-latin-1 codec
    ],
    ids=["os.system", "builtins.eval", "_codecs.encode-zlib"],
)
def test_restricted_unpickler_admits_no_other_globals(payload):
    with pytest.raises(pickle.UnpicklingError):
        cifar10.restricted_loads(payload)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({b"data": np.zeros((3, 3071), np.uint8)}, r"data must be a uint8 array of shape \[N, 3072\]"),
        ({b"data": np.zeros((3, 3072), np.int64)}, r"data must be a uint8 array of shape \[N, 3072\]"),
        ({b"labels": [0, 1, 10]}, r"labels must lie in 0\.\.9"),
        ({b"labels": [0, 1]}, r"3 images but 2 labels"),
        ({b"labels": ["a", "b", "c"]}, r"labels must be a list of integers"),
    ],
)
def test_cifar10_malformed_batches_are_reported(cifar, tmp_path, overrides, message):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(cifar["folder"], folder)
    write_batch(folder / "data_batch_1", np.zeros((3, 3072), np.uint8), [0, 1, 2], 4, overrides)
    with pytest.raises(LridError, match=r"data_batch_1 .* is malformed: " + message) as error:
        cifar10.load(data_dir=str(folder))
    assert "\n" not in str(error.value)


def test_cifar10_files_that_are_not_batches_are_reported(cifar, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(cifar["folder"], folder)
    (folder / "test_batch").write_bytes(b"<html>not found</html>")
    with pytest.raises(LridError, match=r"test_batch .* not a valid CIFAR-10 pickle"):
        cifar10.load(data_dir=str(folder))
    write_pickle(folder / "test_batch", [1, 2, 3], 4)
    with pytest.raises(LridError, match=r"test_batch .* holds a list, not a dict"):
        cifar10.load(data_dir=str(folder))
    write_pickle(folder / "batches.meta", {b"fine_label_names": [b"apple"] * 100}, 4)
    with pytest.raises(LridError, match=r"batches.meta .* label_names"):
        cifar10.load(data_dir=str(folder))


def test_cifar10_missing_or_broken_data_name_what_was_expected(cifar, tmp_path, monkeypatch):
    with pytest.raises(LridError, match=rf"{tmp_path / 'nowhere'} does not exist.*cifar-10-python\.tar\.gz"):
        get_task("cifar10", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(LridError, match=r"CIFAR-10 not found in .*data_batch_1.*https://www\.cs\.toronto\.edu"):
        cifar10.load(data_dir=str(tmp_path))
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(cifar["folder"], folder)
    (folder / "data_batch_4").unlink()
    with pytest.raises(LridError, match=r"incomplete: missing data_batch_4"):
        cifar10.load(data_dir=str(tmp_path))
    truncated = tmp_path / "cifar-10-python.tar.gz"
    truncated.write_bytes(cifar["archive"].read_bytes()[:2000])
    with pytest.raises(LridError, match=r"archive .* cannot be read|archive .* lacks"):
        cifar10.load(data_dir=str(truncated))
    monkeypatch.delenv("LRID_CIFAR10_DIR", raising=False)
    with pytest.raises(LridError, match=r"set the task's data_dir or LRID_CIFAR10_DIR") as error:
        cifar10.load()
    assert "\n" not in str(error.value)


def test_cifar10_rejects_resizing(cifar):
    assert cifar10.load(data_dir=str(cifar["folder"]), image_size=32).input_shape == (32, 32, 3)
    with pytest.raises(LridError, match="cannot resize"):
        get_task("cifar10", data_dir=str(cifar["folder"]), image_size=64)


def test_task_specs_name_the_image_tasks(cifar):
    spec = TaskSpec(name="cifar10", data_dir=str(cifar["folder"]))
    assert (spec.name, spec.data_dir) == ("cifar10", str(cifar["folder"]))
    assert TaskSpec(name="imagenet", image_size=64).image_size == 64


# ---------------------------------------------------------------------------------------------------------
# ImageNet

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])  # the standard ImageNet statistics
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
SIZE = 32
WNIDS = ["n02085620", "n01440764", "n01530575"]  # written unsorted; class index = sorted position


def ramp_image(dominant, height, width):
    """Channel ``dominant`` rises from 110 on the left to 250 on the right; the others are a flat 30."""
    image = np.full((height, width, 3), 30, dtype=np.uint8)
    image[:, :, dominant] = np.linspace(110, 250, width).round().astype(np.uint8)
    return image


def solid_image(dominant, shade):
    image = np.full((40, 48, 3), 40 + 10 * shade, dtype=np.uint8)
    image[:, :, dominant] = 200
    return image


def encode(image, fmt="jpeg"):
    import tensorflow as tf

    encoder = tf.io.encode_png if fmt == "png" else lambda x: tf.io.encode_jpeg(x, quality=95)
    return encoder(tf.constant(image)).numpy()


def example(image, label):
    import tensorflow as tf

    def feature(value):
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    features = {  # the features build_imagenet_data.py writes, the two read here among them
        "image/encoded": feature(encode(image)),
        "image/class/label": feature(int(label)),
        "image/format": feature(b"JPEG"),
        "image/height": feature(image.shape[0]),
        "image/width": feature(image.shape[1]),
        "image/class/synset": feature(b"n00000000"),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_shards(root, split, records_per_shard):
    """``split``-XXXXX-of-NNNNN files, one per list of serialised records."""
    import tensorflow as tf

    total = len(records_per_shard)
    for index, records in enumerate(records_per_shard):
        with tf.io.TFRecordWriter(str(root / f"{split}-{index:05d}-of-{total:05d}")) as writer:
            for record in records:
                writer.write(record)


def ramp_records(classes, per_class, label_base):
    """Records cycling through the classes, alternately landscape and portrait; labels from label_base."""
    records = []
    for i in range(classes * per_class):
        shape = (40, 48) if i % 2 == 0 else (48, 40)
        records.append(example(ramp_image(i % classes, *shape), i % classes + label_base))
    return records


def chunks(records, size):
    return [records[i : i + size] for i in range(0, len(records), size)]


@pytest.fixture(scope="module")
def imagenet_records(tmp_path_factory):
    """Standard TFRecords: 3 classes numbered 1..3 (Inception style), 12 training and 6 validation images."""
    root = tmp_path_factory.mktemp("imagenet_tfrecords")
    write_shards(root, "train", chunks(ramp_records(3, 4, label_base=1), 4))
    write_shards(root, "validation", chunks(ramp_records(3, 2, label_base=1), 3))
    return root


@pytest.fixture(scope="module")
def imagenet_folders(tmp_path_factory):
    """Class folders train/<wnid>/ (3 JPEGs each, and a PNG named .JPEG as in ImageNet) and val/<wnid>/ (2 each)."""
    root = tmp_path_factory.mktemp("imagenet_folders")
    for wnid in WNIDS:
        dominant = sorted(WNIDS).index(wnid)
        for split, count in (("train", 3), ("val", 2)):
            (root / split / wnid).mkdir(parents=True)
            for shade in range(count):
                path = root / split / wnid / f"{wnid}_{split}_{shade}.JPEG"
                path.write_bytes(encode(solid_image(dominant, shade)))
    png = ramp_image(sorted(WNIDS).index(WNIDS[0]), 40, 48)
    (root / "train" / WNIDS[0] / f"{WNIDS[0]}_png.JPEG").write_bytes(encode(png, "png"))
    (root / "train" / WNIDS[0] / "README.txt").write_text("not an image")
    return root


def pixels(inputs):
    """Normalised inputs back to [0, 1] pixels with the standard ImageNet statistics."""
    return inputs * IMAGENET_STD + IMAGENET_MEAN


def dominant_channel(inputs):
    return pixels(inputs).mean(axis=(1, 2)).argmax(axis=-1)


def left_to_right(inputs, channels):
    """How much the given channel rises from the left to the right edge of each image."""
    profile = pixels(inputs)[np.arange(len(inputs)), :, :, channels].mean(axis=1)
    return profile[:, -1] - profile[:, 0]


def collect(batches):
    xs, ys = zip(*batches)
    return np.concatenate(xs), np.concatenate(ys)


def test_imagenet_tfrecords_stream_labelled_batches(imagenet_records):
    task = get_task("imagenet", data_dir=str(imagenet_records), image_size=SIZE)
    assert (task.name, task.n_classes, task.input_shape) == ("imagenet", 1000, (SIZE, SIZE, 3))
    assert task.steps_per_epoch(4) == 3 and task.steps_per_epoch(5) == 2
    batches = list(task.epoch_batches(0, 4, data_seed=0))
    assert len(batches) == 3
    for inputs, labels in batches:
        assert inputs.shape == (4, SIZE, SIZE, 3) and inputs.dtype == np.float32
        assert labels.shape == (4,) and np.issubdtype(labels.dtype, np.integer)
    inputs, labels = collect(batches)
    np.testing.assert_array_equal(labels, dominant_channel(inputs))  # labels 1..3 became 0..2
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4  # every record once
    assert len(list(task.epoch_batches(0, 5, data_seed=0))) == 2  # the remainder is dropped


def test_imagenet_epochs_are_fixed_by_data_seed_and_epoch(imagenet_records):
    task = get_task("imagenet", data_dir=str(imagenet_records), image_size=SIZE)
    first = collect(task.epoch_batches(0, 4, data_seed=0))
    again = collect(task.epoch_batches(0, 4, data_seed=0))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], collect(task.epoch_batches(1, 4, data_seed=0))[0])
    assert not np.array_equal(first[0], collect(task.epoch_batches(0, 4, data_seed=1))[0])


def test_imagenet_epochs_do_not_depend_on_tensorflows_global_seed(imagenet_records):
    """The trainer seeds TensorFlow with the model seed; the data order must depend on data_seed alone."""
    import tensorflow as tf

    task = get_task("imagenet", data_dir=str(imagenet_records), image_size=SIZE)
    try:
        tf.random.set_seed(1)
        first = collect(task.epoch_batches(0, 4, data_seed=0))
        tf.random.set_seed(2)
        second = collect(task.epoch_batches(0, 4, data_seed=0))
    finally:
        tf.random.set_seed(None)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_imagenet_training_images_are_cropped_and_flipped_but_probe_images_are_not(imagenet_records):
    task = get_task("imagenet", data_dir=str(imagenet_records), image_size=SIZE)
    train = collect([*task.epoch_batches(0, 4, data_seed=0), *task.epoch_batches(1, 4, data_seed=0)])
    probe = task.probe_batch(6, seed=0)
    train_rise = left_to_right(train[0], train[1])
    probe_rise = left_to_right(probe, dominant_channel(probe))
    assert (probe_rise > 0).all()  # the ramps rise to the right: never mirrored
    assert (train_rise > 0).any() and (train_rise < 0).any()  # mirrored about half the time
    # Centre crops keep most of each ramp; random crops of 8%..100% of the area often keep less.
    assert np.abs(train_rise).min() < 0.8 * probe_rise.min()


def test_imagenet_probe_batch_is_fixed_by_its_seed(imagenet_records):
    task = get_task("imagenet", data_dir=str(imagenet_records), image_size=SIZE)
    probe = task.probe_batch(4, seed=0)
    assert probe.shape == (4, SIZE, SIZE, 3) and probe.dtype == np.float32
    np.testing.assert_array_equal(probe, task.probe_batch(4, seed=0))
    assert task.probe_batch(100, seed=0).shape == (6, SIZE, SIZE, 3)  # capped at the validation set
    seen = []
    task.evaluate(lambda inputs: seen.append(inputs) or np.zeros((len(inputs), 1000)), batch_size=4)
    validation = np.concatenate(seen)
    assert len(validation) == 6
    for image in probe:  # probe images are validation images, preprocessed as for evaluation
        assert np.abs(validation - image).max(axis=(1, 2, 3)).min() < 1e-5


def test_imagenet_evaluate_streams_the_validation_set(imagenet_records):
    task = get_task("imagenet", data_dir=str(imagenet_records), image_size=SIZE)
    assert task.evaluate(lambda inputs: np.eye(1000)[dominant_channel(inputs)], batch_size=4) == 1.0
    assert task.evaluate(lambda inputs: np.eye(1000)[np.zeros(len(inputs), int)]) == pytest.approx(2 / 6)


def test_imagenet_zero_based_tfrecord_labels_are_kept(tmp_path):
    write_shards(tmp_path, "train", [ramp_records(3, 2, label_base=0)])
    write_shards(tmp_path, "validation", [ramp_records(3, 1, label_base=0)])
    task = get_task("imagenet", data_dir=str(tmp_path), image_size=SIZE)
    inputs, labels = collect(task.epoch_batches(0, 3, data_seed=0))
    np.testing.assert_array_equal(labels, dominant_channel(inputs))
    assert task.evaluate(lambda inputs: np.eye(1000)[dominant_channel(inputs)]) == 1.0


def test_imagenet_standard_shard_set_uses_the_standard_count(tmp_path):
    record = ramp_records(1, 1, label_base=1)
    write_shards(tmp_path, "train", [record] + [[]] * 1023)
    write_shards(tmp_path, "validation", [record] + [[]] * 127)
    task = get_task("imagenet", data_dir=str(tmp_path), image_size=SIZE)
    assert task.steps_per_epoch(256) == 1_281_167 // 256


def test_imagenet_labels_contradicting_the_detected_numbering_stop_the_epoch(tmp_path):
    # In a standard shard set only the first shards are sampled: label 1 there means 1-based numbering,
    # so a label 0 later on cannot be mapped, and must stop training rather than become class -1.
    first_shards = [ramp_records(1, 1, label_base=1), ramp_records(1, 1, label_base=0)]
    write_shards(tmp_path, "train", first_shards + [[]] * 1022)
    write_shards(tmp_path, "validation", [ramp_records(1, 1, label_base=1)] + [[]] * 127)
    task = get_task("imagenet", data_dir=str(tmp_path), image_size=SIZE)
    with pytest.raises(LridError, match=r"label \(image/class/label\) lies outside 0\.\.999 .*offset 1.*got -1"):
        next(task.epoch_batches(0, 2, data_seed=0))


def test_imagenet_class_folders(imagenet_folders):
    task = get_task("imagenet", data_dir=str(imagenet_folders), image_size=SIZE)
    assert (task.n_classes, task.input_shape) == (3, (SIZE, SIZE, 3))
    assert task.steps_per_epoch(3) == 3  # 10 training images (the PNG included), remainder dropped
    batches = list(task.epoch_batches(0, 2, data_seed=0))
    assert len(batches) == 5 and all(x.shape == (2, SIZE, SIZE, 3) and x.dtype == np.float32 for x, _ in batches)
    inputs, labels = collect(batches)
    np.testing.assert_array_equal(labels, dominant_channel(inputs))  # class = sorted wnid position
    assert sorted(labels.tolist()) == [0] * 3 + [1] * 3 + [2] * 4  # the PNG is in WNIDS[0], class 2
    again = collect(task.epoch_batches(0, 2, data_seed=0))
    np.testing.assert_array_equal(inputs, again[0])
    assert not np.array_equal(inputs, collect(task.epoch_batches(1, 2, data_seed=0))[0])
    assert task.evaluate(lambda inputs: np.eye(3)[dominant_channel(inputs)], batch_size=4) == 1.0
    # Solid validation images come out as their colour, standardised with the ImageNet statistics.
    probe = task.probe_batch(6, seed=0)
    for image in probe:
        dominant = int(dominant_channel(image[None])[0])
        shade = round((float(pixels(image)[..., (dominant + 1) % 3].mean()) * 255 - 40) / 10)
        expected = (solid_image(dominant, shade)[0, 0] / 255 - IMAGENET_MEAN) / IMAGENET_STD
        np.testing.assert_allclose(image, np.broadcast_to(expected, image.shape), atol=0.06)


def test_imagenet_validation_folder_may_be_named_validation(imagenet_folders, tmp_path):
    shutil.copytree(imagenet_folders / "train", tmp_path / "train")
    shutil.copytree(imagenet_folders / "val", tmp_path / "validation")
    task = get_task("imagenet", data_dir=str(tmp_path), image_size=SIZE)
    assert task.evaluate(lambda inputs: np.eye(3)[dominant_channel(inputs)]) == 1.0


def test_imagenet_environment_variable_is_honoured(imagenet_records, monkeypatch):
    monkeypatch.setenv("LRID_IMAGENET_DIR", str(imagenet_records))
    monkeypatch.setattr(lrid.tasks, "_LOADED", {})
    task = get_task("imagenet", image_size=SIZE)
    assert task.steps_per_epoch(4) == 3


def test_imagenet_missing_or_malformed_data_name_what_was_expected(imagenet_records, imagenet_folders, tmp_path,
                                                                   monkeypatch):
    with pytest.raises(LridError, match=r"nowhere is not a directory; expected .*train-XXXXX-of-NNNNN"):
        get_task("imagenet", data_dir=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LridError, match=r"ImageNet not found in .*empty: expected .*train/<wnid>/\*\.JPEG"):
        get_task("imagenet", data_dir=str(tmp_path / "empty"))
    monkeypatch.delenv("LRID_IMAGENET_DIR", raising=False)
    with pytest.raises(LridError, match=r"set the task's data_dir or LRID_IMAGENET_DIR") as error:
        get_task("imagenet")
    assert "\n" not in str(error.value)

    shards = tmp_path / "shards"
    shutil.copytree(imagenet_records, shards)
    (shards / "train-00001-of-00003").unlink()
    with pytest.raises(LridError, match=r"incomplete: 1 of 3 train shards .*train-00001-of-00003"):
        get_task("imagenet", data_dir=str(shards))
    for name in os.listdir(shards):
        (shards / name).unlink()
    import tensorflow as tf

    without_image = tf.train.Example(features=tf.train.Features(feature={
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))
    })).SerializeToString()
    write_shards(shards, "train", [[without_image]])
    write_shards(shards, "validation", [[without_image]])
    with pytest.raises(LridError, match=r"shard .*train-00000-of-00001 is not readable .*image/encoded"):
        get_task("imagenet", data_dir=str(shards))

    flat = tmp_path / "flat"
    shutil.copytree(imagenet_folders / "train", flat / "train")
    (flat / "val").mkdir()
    (flat / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(encode(solid_image(0, 0)))
    with pytest.raises(LridError, match=r"holds images directly.*valprep"):
        get_task("imagenet", data_dir=str(flat))


def test_imagenet_labels_outside_both_numberings_are_reported(tmp_path):
    write_shards(tmp_path, "train", [[example(ramp_image(0, 40, 48), 1), example(ramp_image(0, 40, 48), 1001)]])
    write_shards(tmp_path, "validation", [ramp_records(1, 1, label_base=1)])
    task = get_task("imagenet", data_dir=str(tmp_path), image_size=SIZE)
    with pytest.raises(LridError, match=r"values 1\.\.1001, but they must lie in 1\.\.1000"):
        task.steps_per_epoch(1)
