"""The data layer: finding, checking and parsing data sets, holding them as tensors, augmenting
batches.

Importing ``cnnzoo.data`` is light (no torch, no NumPy): the NumPy-only ``cnnzoo.scratch`` imports
``cnnzoo.data.idx`` and ``cnnzoo.data.sources`` and must not pull torch in. The torch-based names
below are loaded on first use:

* ``cnnzoo.data.idx``, ``cnnzoo.data.cifar``: the file formats, NumPy only;
* ``cnnzoo.data.sources``: ``find_dataset_files``, ``describe_sources``, ``verify_dataset``,
  ``load_arrays`` (NumPy only), over ``catalogue`` (each data set's files, URLs and checksums) and
  ``dataset_files`` (finding, fetching and checking those files);
* ``cnnzoo.data.dataset``: the contract every data set meets, ``ImageDataset`` (``batches``,
  ``subset``, ``to``, ``pad_to``…), ``DatasetSplits``, ``pad_images``; imports nothing else from
  ``cnnzoo.data``;
* ``cnnzoo.data.tensors``: ``ImageTensors``, a data set held in memory as one uint8 tensor;
* ``cnnzoo.data.folder``: ``folder:PATH`` image folders, decoded into memory or streamed
  (``StreamingImageFolder``);
* ``cnnzoo.data.loading``: ``load_dataset``, the name of a data set to its ``DatasetSplits``;
* ``cnnzoo.data.augment``: batch-wise augmentation and ``TrainAugment``; ``cnnzoo.data.views``:
  test-time views and ``EvalViews``.
"""

from __future__ import annotations

import importlib

from cnnzoo.errors import ChecksumMismatch, DataFilesMissing, DataFormatError

_LAZY = {
    "ImageDataset": "cnnzoo.data.dataset",
    "DatasetSplits": "cnnzoo.data.dataset",
    "MAX_PAD": "cnnzoo.data.dataset",
    "pad_images": "cnnzoo.data.dataset",
    "ImageTensors": "cnnzoo.data.tensors",
    "convert_channels": "cnnzoo.data.tensors",
    "load_dataset": "cnnzoo.data.loading",
    "splits_from_arrays": "cnnzoo.data.loading",
    "StreamingImageFolder": "cnnzoo.data.folder",
    "load_image": "cnnzoo.data.folder",
    "TrainAugment": "cnnzoo.data.augment",
    "EvalViews": "cnnzoo.data.views",
    "find_dataset_files": "cnnzoo.data.sources",
    "describe_sources": "cnnzoo.data.sources",
    "verify_dataset": "cnnzoo.data.sources",
    "load_arrays": "cnnzoo.data.sources",
    "read_idx": "cnnzoo.data.idx",
}

__all__ = ["ChecksumMismatch", "DataFilesMissing", "DataFormatError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnzoo.data' has no attribute {name!r}")
