"""Finding, downloading and checking data sets; in-memory tensors and batches; image folders; the
``ImageDataset`` contract both kinds of data set meet, and the import graph of ``cnnzoo.data``.

Nothing here touches the network: downloads go through ``file://`` URLs or a fake ``fetch``, the
system locations and the cache are redirected into tmp_path.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import io
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnzoo.data
from cnnzoo.data import cifar, sources
from cnnzoo.data.dataset import MAX_PAD, ImageDataset, pad_images
from cnnzoo.data.folder import StreamingImageFolder
from cnnzoo.data.idx import write_idx
from cnnzoo.data.loading import load_dataset
from cnnzoo.data.tensors import ImageTensors, convert_channels
from cnnzoo.errors import ChecksumMismatch, ConfigError, DataFilesMissing, DataFormatError

IDX_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(autouse=True)
def isolated_locations(tmp_path, monkeypatch):
    """No real system folder, environment variable or user cache leaks into these tests."""
    monkeypatch.delenv("CNNZOO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    debian = tmp_path / "debian" / "fashion-mnist"
    spec = dataclasses.replace(sources.DATASETS["fashion-mnist"], system_dirs=(debian,))
    monkeypatch.setitem(sources.DATASETS, "fashion-mnist", spec)
    return debian


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_idx_set(
    folder: Path, train: int = 30, test: int = 10, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        IDX_NAMES[0]: rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        IDX_NAMES[1]: (np.arange(train) % 10).astype(np.uint8),
        IDX_NAMES[2]: rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        IDX_NAMES[3]: (np.arange(test) % 10).astype(np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array)
    return arrays


def _use_local_mirror(monkeypatch, name: str, mirror: Path) -> None:
    """Point data set ``name`` at a file:// mirror whose files' MD5s are the published ones."""
    spec = sources.DATASETS[name]
    files = tuple(
        dataclasses.replace(f, md5=_md5(mirror / f.name), content_sha256=None) for f in spec.files
    )
    monkeypatch.setitem(sources.DATASETS, name, dataclasses.replace(spec, files=files,
                                                                    urls=(mirror.as_uri() + "/",)))


# ------------------------------------------------------------------------------------------ finding


def test_search_order(tmp_path, monkeypatch, isolated_locations):
    argument, env, cache = (
        tmp_path / "arg",
        tmp_path / "env",
        tmp_path / "cache" / "cnnzoo" / "fashion-mnist",
    )
    for folder in (argument, env / "fashion-mnist", isolated_locations, cache):
        _write_idx_set(folder)
    monkeypatch.setenv("CNNZOO_DATA", str(env))

    assert sources.find_dataset_files("fashion-mnist", argument) == argument
    (tmp_path / "empty").mkdir()  # a --data-dir without the files: the other places are searched
    assert sources.find_dataset_files("fashion-mnist", tmp_path / "empty") == env / "fashion-mnist"
    # a mistyped one is an error
    with pytest.raises(DataFilesMissing, match="nowhere is not a folder"):
        sources.find_dataset_files("fashion-mnist", tmp_path / "nowhere")
    monkeypatch.delenv("CNNZOO_DATA")
    assert sources.find_dataset_files("fashion-mnist") == isolated_locations
    (isolated_locations / IDX_NAMES[0]).unlink()  # an incomplete folder is passed over
    assert sources.find_dataset_files("fashion-mnist") == cache

    order = [loc.folder for loc in sources.search_locations("fashion-mnist", argument)]
    assert order == [argument, argument / "fashion-mnist", isolated_locations, cache]


def test_gunzipped_files_are_found(tmp_path):
    folder = tmp_path / "raw"
    arrays = _write_idx_set(folder)
    for name, array in arrays.items():
        (folder / name).unlink()
        write_idx(folder / name.removesuffix(".gz"), array)
    data = sources.load_arrays("fashion-mnist", folder)
    np.testing.assert_array_equal(data.train_images[:, 0], arrays[IDX_NAMES[0]])


def test_missing_files_message(tmp_path, isolated_locations):
    partial = tmp_path / "partial"
    _write_idx_set(partial)
    (partial / IDX_NAMES[2]).unlink()
    (partial / IDX_NAMES[3]).unlink()
    with pytest.raises(DataFilesMissing) as err:
        sources.find_dataset_files("fashion-mnist", partial)
    message = str(err.value)
    assert f"Missing: {IDX_NAMES[2]}, {IDX_NAMES[3]}." in message
    assert err.value.missing == IDX_NAMES[2:]
    for expected in (str(partial), str(isolated_locations), "--data-dir", "CNNZOO_DATA",
                     "apt-get install dataset-fashion-mnist", "fashion-mnist.s3-website",
                     "download=True"):
        assert expected in message, expected


def test_unknown_dataset_suggests_names():
    with pytest.raises(sources.UnknownDatasetError, match="Did you mean cifar10"):
        sources.find_dataset_files("cifar-10")


# -------------------------------------------------------------------------------------- downloading


def test_download_from_file_url_into_cache(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    arrays = _write_idx_set(mirror)
    _use_local_mirror(monkeypatch, "mnist", mirror)
    with pytest.raises(DataFilesMissing):
        sources.find_dataset_files("mnist")  # not without permission
    folder = sources.find_dataset_files("mnist", download=True)
    assert folder == tmp_path / "cache" / "cnnzoo" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(IDX_NAMES)  # no temporary files left
    data = load_dataset("mnist", download=False)
    assert data.classes == [str(d) for d in range(10)]
    np.testing.assert_array_equal(data.test.images[:, 0].numpy(), arrays[IDX_NAMES[2]])


def test_checksum_mismatch_is_refused_and_leaves_no_file(tmp_path, monkeypatch):
    calls = []

    def wrong_bytes(url: str, destination: Path) -> None:
        calls.append(url)
        destination.write_bytes(b"<html>not the file</html>")

    with pytest.raises(ChecksumMismatch, match="MD5") as err:
        sources.find_dataset_files("mnist", download=True, fetch=wrong_bytes)
    assert "expected f68b3c2dcbeaaa9fbdd348bbdeb94873" in str(err.value)
    assert len(calls) == 2  # every mirror tried before giving up
    cache = tmp_path / "cache" / "cnnzoo" / "mnist"
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_download_reports_missing_files(tmp_path):
    def offline(url: str, destination: Path) -> None:
        raise urllib.error.URLError("network is unreachable")

    with pytest.raises(DataFilesMissing) as err:
        sources.find_dataset_files("mnist", download=True, fetch=offline)
    message = str(err.value)
    assert "network is unreachable" in message and "train-images-idx3-ubyte.gz" in message
    assert "yann.lecun.com" in message


def _cifar10_tarball(tmp_path: Path, evil_member: bool = False) -> Path:
    folder = tmp_path / "build" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index, name in enumerate(cifar.CIFAR10.train_files + cifar.CIFAR10.test_files):
        cifar.write_cifar_batch(folder / name,
                                rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8),
                                [index, 1, 2, 3])
    with open(folder / "batches.meta", "wb") as stream:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, stream, protocol=2)
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        if evil_member:
            info = tarfile.TarInfo("../escaped")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return archive


def test_cifar_archive_download_and_extraction(tmp_path, monkeypatch):
    archive = _cifar10_tarball(tmp_path, evil_member=True)
    spec = sources.DATASETS["cifar10"]
    built = tmp_path / "build" / "cifar-10-batches-py"
    files = tuple(dataclasses.replace(f, md5=_md5(built / f.name)) for f in spec.files)
    monkeypatch.setitem(
        sources.DATASETS,
        "cifar10",
        dataclasses.replace(
            spec,
            files=files,
            urls=(archive.as_uri(),),
            archive=dataclasses.replace(spec.archive, md5=_md5(archive)),
        ),
    )

    data = load_dataset("cifar10")
    cache = tmp_path / "cache" / "cnnzoo" / "cifar10"
    assert data.train.images.shape == (20, 3, 32, 32) and data.test.images.shape == (4, 3, 32, 32)
    assert data.classes[3] == "c3" and data.test.labels.tolist() == [5, 1, 2, 3]
    assert not (cache / "cifar-10-python.tar.gz").exists()  # unpacked, then removed
    assert not (cache.parent / "escaped").exists() and not (tmp_path / "cache" / "escaped").exists()
    assert sources.verify_dataset("cifar10")["ok"]


# ------------------------------------------------------------------------------------------ reports


def test_describe_and_verify(tmp_path, monkeypatch, isolated_locations):
    _write_idx_set(isolated_locations)
    _use_local_mirror(monkeypatch, "fashion-mnist", isolated_locations)
    listing = {entry["name"]: entry for entry in sources.describe_sources()}
    assert set(listing) == {"fashion-mnist", "mnist", "cifar10", "cifar100"}
    assert listing["fashion-mnist"]["found"] == str(isolated_locations)
    assert listing["fashion-mnist"]["files_missing"] == []
    assert listing["mnist"]["found"] is None and len(listing["mnist"]["files_missing"]) == 4

    report = sources.verify_dataset("fashion-mnist")
    assert report["ok"] and [f["status"] for f in report["files"]] == ["ok"] * 4
    assert report["parse"]["train"] == 30 and report["parse"]["image_shape"] == [1, 28, 28]

    write_idx(isolated_locations / IDX_NAMES[3], np.full(10, 3, dtype=np.uint8))  # altered content
    report = sources.verify_dataset("fashion-mnist")
    assert not report["ok"] and report["files"][3]["status"] == "mismatch"

    missing = sources.verify_dataset("mnist")
    assert not missing["ok"] and {f["status"] for f in missing["files"]} == {"missing"}


def test_label_out_of_range_is_a_format_error(tmp_path):
    folder = tmp_path / "data"
    _write_idx_set(folder)
    write_idx(folder / IDX_NAMES[3], np.full(10, 12, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="0..9"):
        sources.load_arrays("fashion-mnist", folder)


# ------------------------------------------------------------------------------------------ tensors


def test_image_tensors_checks_and_helpers():
    data = ImageTensors(torch.zeros(6, 1, 4, 4, dtype=torch.uint8), torch.arange(6))
    assert len(data) == 6 and data.subset([5, 0]).labels.tolist() == [5, 0]
    assert data.to("cpu") is data
    with pytest.raises(ValueError, match="uint8"):
        ImageTensors(torch.zeros(2, 1, 4, 4), torch.arange(2))
    with pytest.raises(ValueError, match="pair up"):
        ImageTensors(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.arange(3))


def test_batches_order_and_reproducibility():
    data = ImageTensors(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10))
    plain = list(data.batches(4, shuffle=False))
    assert [b[1].tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert plain[0][0].data_ptr() == data.images.data_ptr()  # slices, not copies
    assert len(list(data.batches(4, shuffle=False, drop_last=True))) == 2

    def epoch(seed):
        return torch.cat([labels for _, labels in data.batches(
            3, shuffle=True, generator=torch.Generator().manual_seed(seed))]).tolist()

    assert epoch(1) == epoch(1) and epoch(1) != epoch(2)
    assert sorted(epoch(1)) == list(range(10))
    for images, labels in data.batches(3, shuffle=True, generator=torch.Generator().manual_seed(0)):
        # images stay paired with their labels
        assert images.view(-1).long().tolist() == labels.tolist()


def test_channel_conversion():
    grey = torch.randint(0, 256, (3, 1, 5, 5), dtype=torch.uint8)
    rgb = convert_channels(grey, 3)
    assert rgb.shape == (3, 3, 5, 5) and torch.equal(rgb[:, 2], grey[:, 0])
    colour = torch.tensor([255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 100, 100], dtype=torch.uint8).view(
        4, 3, 1, 1
    )
    # 0.299, 0.587, 0.114 of 255
    assert convert_channels(colour, 1).view(-1).tolist() == [76, 150, 29, 100]
    assert convert_channels(grey, None) is grey
    with pytest.raises(ValueError, match="grey"):
        convert_channels(grey, 4)


def test_load_dataset_in_channels(tmp_path):
    _write_idx_set(tmp_path / "d")
    data = load_dataset("fashion-mnist", tmp_path / "d", download=False, in_channels=3)
    assert (
        data.train.images.shape == (30, 3, 28, 28)
        and data.in_channels == 3
        and data.num_classes == 10
    )


# ------------------------------------------------------------------------------------------ folders


def _write_png(path: Path, value: int, size: tuple[int, int] = (12, 10)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path)


def _class_folder(root: Path, counts: dict[str, int]) -> None:
    for label, (name, count) in enumerate(counts.items()):
        for index in range(count):
            _write_png(root / name / f"{index:03d}.png", (label * 40 + index) % 256)


def test_folder_with_train_and_val(tmp_path):
    _class_folder(tmp_path / "train", {"dog": 3, "cat": 2})
    _class_folder(tmp_path / "val", {"dog": 1, "cat": 1})
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image, ignored")
    data = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert data.classes == ["cat", "dog"]  # sorted, whatever the creation order
    assert data.train.images.shape == (5, 3, 8, 8) and data.test.images.shape == (2, 3, 8, 8)
    assert data.train.labels.tolist() == [0, 0, 1, 1, 1]
    grey = load_dataset(f"folder:{tmp_path}", image_size=8, in_channels=1)
    assert grey.train.images.shape == (5, 1, 8, 8)


def test_folder_split_is_seeded_and_stratified(tmp_path):
    from cnnzoo.data.folder_layout import scan_image_folder

    _class_folder(tmp_path, {"a": 10, "b": 5, "c": 1})
    layout = scan_image_folder(tmp_path, holdout_fraction=0.2, seed=0)
    assert layout.held_out_from is None
    # 20 % of 10, of 5 (rounded), none of a single image
    assert sorted(layout.test.labels) == [0, 0, 1]
    assert len(layout.train) + len(layout.test) == 16
    assert not set(layout.train.files) & set(layout.test.files)
    assert scan_image_folder(tmp_path, 0.2, seed=0) == layout
    other_seeds = {scan_image_folder(tmp_path, 0.2, seed=s).test.files for s in range(1, 6)}
    assert any(files != layout.test.files for files in other_seeds)


def test_folder_bad_image_is_named(tmp_path):
    _class_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataFormatError) as err:
        load_dataset(f"folder:{tmp_path}", image_size=8, holdout_fraction=0)
    assert str(tmp_path / "b" / "broken.jpg") in str(err.value)


def test_folder_errors(tmp_path):
    with pytest.raises(DataFilesMissing, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'absent'}")
    (tmp_path / "a").mkdir()
    with pytest.raises(DataFormatError, match="no image files"):
        load_dataset(f"folder:{tmp_path}")


def test_big_folder_streams_the_same_batches(tmp_path):
    _class_folder(tmp_path, {"a": 7, "b": 6})
    in_memory = load_dataset(f"folder:{tmp_path}", image_size=8)
    streamed = load_dataset(f"folder:{tmp_path}", image_size=8, memory_budget_bytes=0,
                            num_workers=2)
    assert isinstance(streamed.train, StreamingImageFolder) and isinstance(
        in_memory.train, ImageTensors
    )
    assert len(streamed.train) == len(in_memory.train) and streamed.in_channels == 3

    def batches(data):
        return list(data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(3)))

    for (a_images, a_labels), (b_images, b_labels) in zip(batches(in_memory.train),
                                                          batches(streamed.train), strict=True):
        assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)


# ------------------------------------------------------------------------------------- the contract


def _noise_folder(root: Path, counts: dict[str, int], side: int = 28) -> None:
    """Random RGB images, so any misplaced pixel (a wrong order, a shifted padding) shows."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
                root / name / f"{index}.png"
            )


def _both_kinds(root: Path) -> tuple[ImageTensors, StreamingImageFolder]:
    """The train part of one folder, decoded into memory and streamed (no worker processes)."""
    in_memory = load_dataset(f"folder:{root}", image_size=28, num_workers=0).train
    streamed = load_dataset(f"folder:{root}", image_size=28, memory_budget_bytes=0,
                            num_workers=0).train
    assert isinstance(in_memory, ImageTensors) and isinstance(streamed, StreamingImageFolder)
    return in_memory, streamed


def _assert_same_batches(a: ImageDataset, b: ImageDataset, batch_size: int, *, shuffle: bool,
                         seed: int = 0, drop_last: bool = False) -> None:
    def epoch(data):
        generator = torch.Generator().manual_seed(seed)
        return list(data.batches(batch_size, shuffle=shuffle, generator=generator,
                                 drop_last=drop_last))

    first, second = epoch(a), epoch(b)
    assert len(first) == len(second) > 0
    for (a_images, a_labels), (b_images, b_labels) in zip(first, second, strict=True):
        assert (
            a_images.dtype == b_images.dtype == torch.uint8
            and a_labels.dtype == b_labels.dtype == torch.int64
        )
        assert a_images.shape[1:] == (a.num_channels, *a.image_size)
        assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)


def test_in_memory_and_streamed_sets_meet_the_contract_and_agree(tmp_path):
    _noise_folder(tmp_path, {"a": 5, "b": 4, "c": 4})
    in_memory, streamed = _both_kinds(tmp_path)
    for side in (28, 32):  # as loaded, then padded as LeNet-1998 wants Fashion-MNIST
        a, b = in_memory.pad_to(side), streamed.pad_to(side)
        for data in (a, b):
            assert isinstance(data, ImageDataset)
            assert (
                data.num_channels == 3
                and data.image_size == (side, side)
                and data.device.type == "cpu"
            )
            assert data.labels.dtype == torch.int64 and len(data.labels) == len(data) == 10
            assert data.to("cpu") is data
        assert torch.equal(a.labels, b.labels)
        _assert_same_batches(a, b, 3, shuffle=True, seed=5)
        _assert_same_batches(a, b, 4, shuffle=False, drop_last=True)
        chosen = [7, 0, 3, 3, 9]
        a_part, b_part = a.subset(chosen), b.subset(chosen)
        assert len(a_part) == len(b_part) == 5 and torch.equal(a_part.labels, a.labels[chosen])
        assert torch.equal(b_part.labels, a.labels[chosen])
        _assert_same_batches(a_part, b_part, 2, shuffle=True, seed=1)
        # pad, subset commute
        _assert_same_batches(a_part, in_memory.subset(chosen).pad_to(side), 5, shuffle=False)


def test_pad_to_adds_a_centred_zero_border_of_at_most_max_pad(tmp_path):
    images = torch.randint(1, 256, (2, 3, 28, 28), dtype=torch.uint8)
    padded = pad_images(images, 32)
    assert padded.shape == (2, 3, 32, 32) and torch.equal(padded[..., 2:30, 2:30], images)
    assert padded.long().sum() == images.long().sum()  # the border is zeros
    # the odd row and column go after
    assert torch.equal(pad_images(images, 29)[..., :28, :28], images)
    assert pad_images(images, 28) is images and pad_images(images, 28 + MAX_PAD + 1) is images

    _noise_folder(tmp_path, {"a": 3, "b": 3})
    in_memory, streamed = _both_kinds(tmp_path)
    for data in (in_memory, streamed):
        # too far: the resize's job
        assert data.pad_to(28) is data and data.pad_to(28 + MAX_PAD + 1) is data
        assert data.pad_to(29).pad_to(32).image_size == (32, 32)
        with pytest.raises(ConfigError, match="batch_size"):
            data.batches(0, shuffle=False)  # at the call, not at the first batch
    _assert_same_batches(in_memory.pad_to(29).pad_to(32), streamed.pad_to(29).pad_to(32), 2,
                         shuffle=True)
    first, _ = next(in_memory.batches(10, shuffle=False))
    padded_in_memory, _ = next(in_memory.pad_to(32).batches(10, shuffle=False))
    assert torch.equal(padded_in_memory, pad_images(first, 32))
    assert torch.equal(streamed.pad_to(32).load_all().images, padded_in_memory)


# ------------------------------------------------------------------------------------------ imports

DATA_DIR = Path(cnnzoo.data.__file__).parent


def _data_imports(path: Path) -> set[str]:
    """The ``cnnzoo.data`` modules that ``path`` imports anywhere: at the top, under TYPE_CHECKING,
    in functions."""
    modules = {p.stem for p in DATA_DIR.glob("*.py")} - {"__init__"}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative to cnnzoo.data
                parent = ".".join(["cnnzoo", "data"][: 3 - node.level])
                base = f"{parent}.{base}" if base else parent
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["cnnzoo", "data"] and len(parts) > 2 and parts[2] in modules:
                found.add(parts[2])
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path (first module repeated at the end), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            if cycle := visit(imported, path + [module]):
                return cycle
        done.add(module)
        return None

    return next((cycle for module in sorted(graph) if (cycle := visit(module, []))), None)


def test_no_import_cycle_among_the_data_modules(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def late():\n    from cnnzoo.data.loading import load_dataset\n\nfrom . "
                     "import folder\n")
    # function-level and relative imports count
    assert _data_imports(probe) == {"loading", "folder"}
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]

    graph = {
        path.stem: _data_imports(path) for path in DATA_DIR.glob("*.py") if path.stem != "__init__"
    }
    assert _cycle(graph) is None
    assert graph["dataset"] == set()  # the contract is the leaf
    assert not graph["tensors"] & {"folder", "loading"} and not graph["folder"] & {"loading"}
