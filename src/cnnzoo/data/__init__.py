"""The data layer: finding, checking and parsing data sets, holding them as tensors, augmenting batches.

Importing ``cnnzoo.data`` is light (no torch, no NumPy): the NumPy-only ``cnnzoo.scratch`` imports
``cnnzoo.data.idx`` and ``cnnzoo.data.sources`` and must not pull torch in. The torch-based names below
are loaded on first use:

* ``cnnzoo.data.idx``, ``cnnzoo.data.cifar``: the file formats, NumPy only;
* ``cnnzoo.data.sources``: where each data set is, its checksums, ``find_dataset_files``,
  ``describe_sources``, ``verify_dataset``, ``load_arrays`` (NumPy only);
* ``cnnzoo.data.tensors``: ``ImageTensors``, ``DatasetSplits``, ``load_dataset``, ``iterate_batches``;
* ``cnnzoo.data.folder``: ``folder:PATH`` image folders, in memory or streamed;
* ``cnnzoo.data.augment``: batch-wise augmentation, ``TrainAugment`` and ``EvalViews``.
"""

from __future__ import annotations

import importlib

from cnnzoo.errors import ChecksumMismatch, DataFilesMissing, DataFormatError

_LAZY = {
    "ImageTensors": "cnnzoo.data.tensors",
    "DatasetSplits": "cnnzoo.data.tensors",
    "load_dataset": "cnnzoo.data.tensors",
    "iterate_batches": "cnnzoo.data.tensors",
    "convert_channels": "cnnzoo.data.tensors",
    "StreamingImageFolder": "cnnzoo.data.folder",
    "load_image": "cnnzoo.data.folder",
    "TrainAugment": "cnnzoo.data.augment",
    "EvalViews": "cnnzoo.data.augment",
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
