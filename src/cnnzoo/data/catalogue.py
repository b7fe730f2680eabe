"""The data sets we know: each one's files, where they are published, and their checksums. Standard
library only.

Checksums. The MD5s are those the data sets publish for their files (the Fashion-MNIST README, the
CIFAR page) and that torchvision's dataset classes check, for MNIST the same. Fashion-MNIST also
carries the SHA-256 of each *decompressed* IDX file: Debian's package re-gzips the upstream files
(its .gz lack the stored file name, so their MD5 differs from the published one) while the content
is the upstream content; those SHA-256s were computed from the package ``dataset-fashion-mnist
0.0~git20200523.55506a9-1``, and let ``verify_dataset`` accept a re-compressed or gunzipped copy.

Look data sets up by name with ``sources.get_source``, not in ``DATASETS`` directly: tests swap the
table that ``cnnzoo.data.sources`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEBIAN_DATASETS = Path("/usr/share/datasets")


@dataclass(frozen=True)
class SourceFile:
    """One published file: its name and checksums (``None`` when none is published)."""

    name: str
    md5: str | None
    content_sha256: str | None = None  # of the decompressed content, for .gz files


@dataclass(frozen=True)
class DatasetSource:
    """Everything needed to find, fetch and check one data set's files."""

    name: str
    title: str
    kind: str  # "idx" (MNIST family: four IDX files) or "cifar10" / "cifar100" (pickle batches)
    files: tuple[SourceFile, ...]  # the files the loader reads, all in one folder
    # idx: base URLs, a file name is appended; cifar: the archive's URLs; in order
    urls: tuple[str, ...]
    classes: tuple[str, ...] = ()  # idx only: CIFAR's names are in its meta file
    archive: SourceFile | None = None  # cifar: the .tar.gz the files come in
    archive_folder: str | None = None  # cifar: the folder the archive unpacks to
    system_dirs: tuple[Path, ...] = ()
    apt_package: str | None = None
    homepage: str = ""
    image_shape: tuple[int, int, int] = (1, 28, 28)

    @property
    def file_names(self) -> list[str]:
        return [f.name for f in self.files]


def _idx_files(
    md5s: dict[str, str], content_sha256: dict[str, str] | None = None
) -> tuple[SourceFile, ...]:
    content_sha256 = content_sha256 or {}
    return tuple(SourceFile(name, md5, content_sha256.get(name)) for name, md5 in md5s.items())


# Order matters: train images, train labels, test images, test labels.
_FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_FASHION_MNIST_CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz":
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz":
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz":
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

DATASETS: dict[str, DatasetSource] = {
    "fashion-mnist": DatasetSource(
        name="fashion-mnist",
        title="Fashion-MNIST (Zalando, 2017): 28×28 grey clothing images, 10 classes",
        kind="idx",
        files=_idx_files(_FASHION_MNIST_MD5, _FASHION_MNIST_CONTENT_SHA256),
        urls=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        system_dirs=(DEBIAN_DATASETS / "fashion-mnist",),
        apt_package="dataset-fashion-mnist",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "mnist": DatasetSource(
        name="mnist",
        title="MNIST (LeCun, Cortes & Burges, 1998): 28×28 grey handwritten digits, 10 classes",
        kind="idx",
        files=_idx_files(_MNIST_MD5),
        urls=("http://yann.lecun.com/exdb/mnist/",
              "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        classes=tuple(str(digit) for digit in range(10)),
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "cifar10": DatasetSource(
        name="cifar10",
        title="CIFAR-10 (Krizhevsky, 2009): 32×32 colour images, 10 classes",
        kind="cifar10",
        files=(
            SourceFile("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            SourceFile("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            SourceFile("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            SourceFile("data_batch_4", "634d18415352ddfa80567beed471001a"),
            SourceFile("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            SourceFile("test_batch", "40351d587109b95175f43aff81a1287e"),
            SourceFile("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        ),
        urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        archive=SourceFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        archive_folder="cifar-10-batches-py",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        image_shape=(3, 32, 32),
    ),
    "cifar100": DatasetSource(
        name="cifar100",
        title="CIFAR-100 (Krizhevsky, 2009): 32×32 colour images, 100 fine classes",
        kind="cifar100",
        files=(
            SourceFile("train", "16019d7e3df5f24257cddd939b257f8d"),
            SourceFile("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),
            SourceFile("meta", "7973b15100ade9c7d40fb424638fde48"),
        ),
        urls=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        archive=SourceFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
        archive_folder="cifar-100-python",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        image_shape=(3, 32, 32),
    ),
}


__all__ = ["DATASETS", "DEBIAN_DATASETS", "DatasetSource", "SourceFile"]
