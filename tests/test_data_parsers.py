"""The file parsers: IDX (MNIST family), CIFAR pickle batches, image files, and the real
Fashion-MNIST.

Test files are written in the real formats (gzip or raw IDX, CIFAR dicts pickled with bytes keys) so
what passes here is what reads the published files.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnzoo.data import cifar
from cnnzoo.data.idx import (
    idx_dims,
    read_idx,
    read_idx_images,
    read_idx_labels,
    read_idx_pair,
    write_idx,
)
from cnnzoo.errors import DataFormatError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _images(count: int = 100, side: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, side, side), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("name", ["images-idx3-ubyte.gz", "images-idx3-ubyte"])
def test_idx_round_trip_gzipped_and_raw(tmp_path, name):
    images = _images()
    write_idx(tmp_path / name, images)
    assert (tmp_path / name).read_bytes()[:2] == (
        b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00"
    )
    parsed = read_idx_images(tmp_path / name)
    assert parsed.dtype == np.uint8 and parsed.shape == (100, 28, 28)
    np.testing.assert_array_equal(parsed, images)
    assert parsed.flags.writeable  # torch.from_numpy needs a writable array


def test_gzip_is_detected_by_content_not_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "labels.raw", labels, compress=True)  # gzipped, misleading name
    write_idx(tmp_path / "labels.gz", labels, compress=False)  # raw, misleading name
    np.testing.assert_array_equal(read_idx_labels(tmp_path / "labels.raw"), labels)
    np.testing.assert_array_equal(read_idx_labels(tmp_path / "labels.gz"), labels)


def test_idx_pair_gives_int64_labels(tmp_path):
    write_idx(tmp_path / "i.gz", _images(5))
    write_idx(tmp_path / "l.gz", np.array([0, 1, 2, 3, 9], dtype=np.uint8))
    images, labels = read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz")
    assert (
        images.shape == (5, 28, 28)
        and labels.dtype == np.int64
        and labels.tolist() == [0, 1, 2, 3, 9]
    )


def test_idx_limit_reads_a_prefix(tmp_path):
    images = _images(50)
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l.gz", np.arange(50, dtype=np.uint8))
    head_images, head_labels = read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz", limit=7)
    np.testing.assert_array_equal(head_images, images[:7])
    assert head_labels.tolist() == list(range(7))
    assert read_idx(tmp_path / "l.gz", limit=500).shape == (50,)
    write_idx(tmp_path / "l.gz", np.arange(49, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="50 images but .* 49 labels"):
        # counts compared from the headers
        read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz", limit=7)


def test_idx_truncated_data_is_reported_with_counts(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as stream:  # a complete gzip stream whose IDX data stops early
        stream.write(struct.pack(">HBB3I", 0, 8, 3, 100, 28, 28) + _images(1, 32).tobytes()[:1000])
    with pytest.raises(DataFormatError) as err:
        read_idx(path)
    message = str(err.value)
    assert str(path) in message
    assert "expected 78,400 pixel bytes for 100×28×28, found 1,000" in message
    assert "truncated" in message and "download" in message


def test_idx_cut_gzip_stream_is_reported(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx(path, _images())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated|cut short") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_idx_raw_truncated_file(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.arange(50, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataFormatError, match=r"expected 50 label bytes for 50, found 40"):
        read_idx(path)


def test_idx_extra_bytes_are_refused(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.arange(50, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(DataFormatError, match="bytes after"):
        read_idx(path)


def test_idx_wrong_magic(tmp_path):
    labels_path = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(labels_path, np.arange(10, dtype=np.uint8))
    with pytest.raises(DataFormatError,
                       match="magic number is 0x00000801, expected 0x00000803") as err:
        read_idx_images(labels_path)  # a label file where images are expected
    assert str(labels_path) in str(err.value)

    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"PK\x03\x04 this is a zip, not IDX")
    with pytest.raises(DataFormatError, match="not an IDX file") as err:
        read_idx(junk)
    assert str(junk) in str(err.value)


def test_idx_header_claiming_more_than_the_file_can_hold(tmp_path):
    path = tmp_path / "huge.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(struct.pack(">HBB3I", 0, 8, 3, 4_000_000_000, 28, 28))
    with pytest.raises(DataFormatError, match="cannot hold"):
        read_idx(path)


def test_idx_images_and_labels_count_mismatch(tmp_path):
    write_idx(tmp_path / "images.gz", _images(100))
    write_idx(tmp_path / "labels.gz", np.zeros(99, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="100 images but .* 99 labels") as err:
        read_idx_pair(tmp_path / "images.gz", tmp_path / "labels.gz")
    assert "images.gz" in str(err.value) and "labels.gz" in str(err.value)


def test_idx_module_does_not_import_torch():
    code = ("import sys, cnnzoo.data, cnnzoo.data.idx, cnnzoo.data.sources, cnnzoo.data.cifar; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------
# CIFAR


def _cifar_images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_batch_round_trip(tmp_path, protocol):
    images, labels = _cifar_images(20), np.arange(20) % 10
    path = tmp_path / "data_batch_1"
    cifar.write_cifar_batch(path, images, labels, protocol=protocol,
                            batch_label=b"training batch 1 of 5",
                            filenames=[f"img_{i}.png".encode() for i in range(20)])
    parsed_images, parsed_labels = cifar.read_cifar_batch(path, "labels", 10)
    np.testing.assert_array_equal(parsed_images, images)
    assert parsed_labels.dtype == np.int64 and parsed_labels.tolist() == labels.tolist()


def test_cifar_row_layout_is_red_then_green_then_blue_planes(tmp_path):
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    with open(tmp_path / "b", "wb") as stream:
        pickle.dump({b"data": row[None], b"labels": [3]}, stream, protocol=2)
    images, _ = cifar.read_cifar_batch(tmp_path / "b", "labels", 10)
    assert images.shape == (1, 3, 32, 32)
    assert images[0, :, 5, 7].tolist() == [10, 20, 30]


def _write_cifar10_folder(folder: Path, per_batch: int = 6) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    all_images, all_labels = [], []
    for index, name in enumerate(cifar.CIFAR10.train_files + cifar.CIFAR10.test_files):
        images, labels = _cifar_images(per_batch, seed=index), (np.arange(per_batch) + index) % 10
        cifar.write_cifar_batch(folder / name, images, labels)
        all_images.append(images)
        all_labels.append(labels)
    names = [n.encode() for n in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                  "horse", "ship", "truck"]]
    with open(folder / "batches.meta", "wb") as stream:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072},
                    stream, protocol=2)
    return np.concatenate(all_images), np.concatenate(all_labels)


def test_cifar10_folder(tmp_path):
    images, labels = _write_cifar10_folder(tmp_path)
    train_images, train_labels, test_images, test_labels, classes = cifar.read_cifar(
        tmp_path, cifar.CIFAR10
    )
    assert train_images.shape == (30, 3, 32, 32) and test_images.shape == (6, 3, 32, 32)
    np.testing.assert_array_equal(np.concatenate([train_images, test_images]), images)
    assert np.concatenate([train_labels, test_labels]).tolist() == labels.tolist()
    assert classes[0] == "airplane" and len(classes) == 10


def test_cifar100_fine_labels(tmp_path):
    images = _cifar_images(8)
    fine, coarse = [0, 5, 17, 99, 42, 3, 3, 64], [0, 1, 2, 19, 5, 3, 3, 7]
    for name in ("train", "test"):
        cifar.write_cifar_batch(tmp_path / name, images, fine, label_key="fine_labels",
                                coarse_labels=coarse)
    with open(tmp_path / "meta", "wb") as stream:
        pickle.dump({b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                     b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}, stream,
                    protocol=2)
    train_images, train_labels, _, test_labels, classes = cifar.read_cifar(tmp_path, cifar.CIFAR100)
    assert train_labels.tolist() == fine and test_labels.tolist() == fine
    assert len(classes) == 100 and classes[99] == "class99"
    np.testing.assert_array_equal(train_images, images)


def test_cifar_wrong_shape_and_label_range(tmp_path):
    with open(tmp_path / "bad_shape", "wb") as stream:
        pickle.dump({b"data": np.zeros((4, 1000), np.uint8), b"labels": [0, 1, 2, 3]}, stream,
                    protocol=2)
    with pytest.raises(DataFormatError, match="N×3072 uint8") as err:
        cifar.read_cifar_batch(tmp_path / "bad_shape", "labels", 10)
    assert "bad_shape" in str(err.value)

    cifar.write_cifar_batch(tmp_path / "bad_labels", _cifar_images(2), [3, 57])
    with pytest.raises(DataFormatError, match=r"0\.\.9"):
        cifar.read_cifar_batch(tmp_path / "bad_labels", "labels", 10)

    with open(tmp_path / "bad_count", "wb") as stream:
        pickle.dump({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1]}, stream, protocol=2)
    with pytest.raises(DataFormatError, match="4 images but 2"):
        cifar.read_cifar_batch(tmp_path / "bad_count", "labels", 10)


def test_cifar_truncated_pickle(tmp_path):
    path = tmp_path / "data_batch_1"
    cifar.write_cifar_batch(path, _cifar_images(4), [0, 1, 2, 3])
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataFormatError, match="damaged or truncated") as err:
        cifar.read_cifar_batch(path, "labels", 10)
    assert str(path) in str(err.value)


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _OpensFile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


class _Evals:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w')",)


@pytest.mark.parametrize("payload", [_RunsShell, _OpensFile, _Evals])
def test_crafted_pickle_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "marker"
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as stream:
        pickle.dump({b"data": payload(marker), b"labels": [0]}, stream, protocol=2)
    with pytest.raises(DataFormatError, match="refusing") as err:
        cifar.read_cifar_batch(path, "labels", 10)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_safe_unpickler_refuses_other_numpy_functions(tmp_path):
    path = tmp_path / "meta"
    with open(path, "wb") as stream:
        # a global outside the allow-list
        pickle.dump({b"label_names": np.load}, stream, protocol=2)
    with pytest.raises(DataFormatError, match="refusing to load numpy.*load"):
        cifar.read_cifar_meta(path, "label_names")


# ------------------------------------------------------------------------------------------- images


def test_load_image_resizes_shorter_side_and_centre_crops(tmp_path):
    from PIL import Image

    from cnnzoo.data.folder import load_image

    # 80 wide, 40 high: left quarter red, right quarter blue
    array = np.zeros((40, 80, 3), dtype=np.uint8)
    array[:, :20, 0] = 255
    array[:, 60:, 2] = 255
    array[:, 20:60, 1] = 255
    Image.fromarray(array).save(tmp_path / "wide.png")
    rgb = load_image(tmp_path / "wide.png", channels=3, size=20)
    assert rgb.shape == (3, 20, 20) and rgb.dtype.is_floating_point is False
    # only the green centre is kept
    assert rgb[1].float().mean() > 250 and rgb[0].float().mean() < 5
    grey = load_image(tmp_path / "wide.png", channels=1, size=20)
    assert grey.shape == (1, 20, 20)
    assert abs(int(grey[0, 10, 10]) - round(0.587 * 255)) <= 1


def test_bad_image_files_are_named(tmp_path, monkeypatch):
    from PIL import Image

    from cnnzoo.data import folder

    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataFormatError) as err:
        folder.load_image(tmp_path / "text.png")
    assert str(tmp_path / "text.png") in str(err.value)

    Image.fromarray(_images(1, 64)[0]).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated|cannot decode") as err:
        folder.load_image(tmp_path / "cut.png", channels=1, size=8)
    assert "cut.png" in str(err.value)

    monkeypatch.setattr(folder, "MAX_IMAGE_PIXELS", 100)
    Image.fromarray(_images(1, 16)[0]).save(tmp_path / "big.png")
    with pytest.raises(DataFormatError, match="more than the 100") as err:
        folder.load_image(tmp_path / "big.png")
    assert "big.png" in str(err.value)


# ---------------------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian():
    from cnnzoo.data.loading import load_dataset

    data = load_dataset("fashion-mnist", data_dir=DEBIAN_FASHION_MNIST, download=False)
    assert data.train.images.shape == (60000, 1, 28, 28) and data.test.images.shape == (
        10000,
        1,
        28,
        28,
    )
    assert data.num_classes == 10 and data.classes[9] == "Ankle boot"
    assert data.train.labels.bincount().tolist() == [6000] * 10  # Fashion-MNIST is balanced
    assert data.test.labels.bincount().tolist() == [1000] * 10
    mean = data.train.images.float().mean().item() / 255
    assert abs(mean - 0.2860) < 0.001  # the statistic the models normalise with


# ------------------------------------------------------------------------------------------------
# damaged files Each of these raised something other than DataFormatError before the hardening
# (named in the comment).


@pytest.mark.parametrize("reader", [read_idx, read_idx_images, read_idx_labels, idx_dims])
@pytest.mark.parametrize("damage", ["cut to 2 bytes", "cut to 12 bytes", "deflate data broken",
                                    "bad method"])
def test_damaged_gzip_is_a_data_format_error_naming_the_file(tmp_path, reader, damage):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, _images(4))
    data = path.read_bytes()
    deflate = data.index(b"\x00", 10) + 1  # after the 10-byte header and the file name
    # EOFError from read_idx_images, idx_dims
    data = {"cut to 2 bytes": data[:2], "cut to 12 bytes": data[:12],
            # zlib.error: block type 3
            "deflate data broken": data[:deflate] + b"\x07" + data[deflate + 1:],
            "bad method": data[:2] + b"\x07" + data[3:]}[damage]  # gzip.BadGzipFile
    path.write_bytes(data)
    with pytest.raises(DataFormatError) as err:
        reader(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_cut_gzip_file_is_one_line_from_the_command_line(tiny_mnist_dir, tmp_path, capsys):
    import shutil

    from cnnzoo.cli import main

    shutil.copytree(tiny_mnist_dir, tmp_path / "mnist")
    images = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:2])  # was: EOFError traceback
    assert main(["train", "--model", "lenet5", "--dataset", "mnist", "--data-dir",
                 str(tmp_path / "mnist"),
                 "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(images) in error and "damaged or cut short" in error


# NumPy has at most 32 (64) dimensions: ValueError
@pytest.mark.parametrize("ndim, sizes", [(40, [1] * 40),
                                         # an "empty" array too big to exist
                                         (3, [0, 2**32 - 1, 2**32 - 1])])
def test_idx_headers_no_array_can_have(tmp_path, ndim, sizes):
    path = tmp_path / "images"
    path.write_bytes(struct.pack(">HBB", 0, 8, ndim) + struct.pack(f">{ndim}I", *sizes) + b"\x00")
    with pytest.raises(DataFormatError, match="dimensions|larger than any array") as err:
        read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("compress", [False, True])
def test_an_idx_header_claiming_a_billion_images_is_refused_before_allocating(tmp_path, compress):
    import tracemalloc

    path = tmp_path / "images"
    header = struct.pack(">HBB3I", 0, 8, 3, 10**9, 28, 28)
    path.write_bytes(gzip.compress(header + bytes(1000)) if compress else header + bytes(1000))
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match="truncated|cannot hold"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # NumPy reports its arrays to tracemalloc; 784 GB would show


def _pickle_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, allocated", [
    # OverflowError: a byte count beyond sys.maxsize
    ("overlong count", b"\x80\x04\x8e" + struct.pack("<Q", 2**63 + 5) + b".", "-"),
    # OverflowError: a frame longer than sys.maxsize
    ("overlong frame", b"\x80\x04\x95" + struct.pack("<Q", 2**63 + 5) + b"}.", "-"),
    # LookupError: _codecs.encode asked for an encoding that does not exist
    ("unknown codec", b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00latxn1\x86R.",
     "-"),
    # 256 MB: the C unpickler sized its memo for index 2**24 (a 9-byte file)
    ("memo index", b"\x80\x02}r" + struct.pack("<I", 2**24) + b".", "256 MB"),
    # 2 GB: numpy.ndarray((2**28,)) called directly
    ("ndarray call", b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x10\x85R.", "2 GB"),
    # 1 TB: a byte count larger than the file (MemoryError, reported as damaged)
    ("count beyond the file", b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"xx.", "-"),
])
def test_crafted_pickles_are_damaged_files_read_in_little_memory(tmp_path, name, data, allocated):
    import tracemalloc

    path = _pickle_bytes(tmp_path / "data_batch_1", data)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as err:
            cifar.read_cifar_batch(path, "labels", 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert peak < 1_000_000, f"{name}: {peak:,} bytes traced (was {allocated})"


def test_a_forged_object_dtype_is_refused_without_reaching_numpy(tmp_path):
    # An object array whose dtype state claims every flag: NumPy's __setstate__ crashed the process
    # (SIGSEGV), so the load runs in a child process.
    path = _pickle_bytes(tmp_path / "data_batch_1", (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R(K\x01J\x80\xc3\xc9"
        b"\x01\x85cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb\x89]tb."))
    code = ("import sys; from cnnzoo.data import safe_pickle\ntry:\n    "
            "safe_pickle.safe_load_pickle(sys.argv[1])\nexcept safe_pickle.DataFormatError as "
            "error:\n    print(error)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(path) in result.stdout and "not a plain number type" in result.stdout


def test_damaged_names_and_keys_in_cifar_files(tmp_path):
    path = tmp_path / "batches.meta"
    with open(path, "wb") as stream:  # UnicodeDecodeError
        pickle.dump({b"label_names": [b"cat", b"\xff\xfe"]}, stream, protocol=2)
    with pytest.raises(DataFormatError, match="not UTF-8"):
        cifar.read_cifar_meta(path, "label_names")
    with open(path, "wb") as stream:  # ValueError: str() of an integer of 5,000 digits
        pickle.dump({10**5000: 1, b"data": np.zeros((1, 3072), np.uint8)}, stream, protocol=2)
    with pytest.raises(DataFormatError, match="no 'label_names' entry"):
        cifar.read_cifar_meta(path, "label_names")
