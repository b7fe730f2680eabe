"""Loaded models, kept in a least-recently-used cache of bounded size and reloaded when their
checkpoint changes (a run still training writes a better ``best`` checkpoint now and then).

A cache entry holds what the page asks for again and again about one run: the model (as a
``cnnzoo.engine.run.Run``), its per-layer summary and, once asked for, its nearest-neighbour index
(``index.NeighbourIndex``, built in the background; cancelled when the entry is replaced or
evicted). Data sets (for test images and neighbours) are cached apart,
at most ``DATASETS`` of them, shared by the runs trained on the same one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.errors import CheckpointError, ConfigError
from cnnzoo.serve import runs

DATASETS = 2  # data sets kept in memory (Fashion-MNIST: 55 MB)


@dataclass
class Entry:
    subject: object  # cnnzoo.engine.run.Run
    stamp: tuple
    data_dir: str | None
    # held for any use of the model: hooks are set on the shared modules, so two forward passes at
    # once would capture each other's outputs; requests for one run take turns, other runs go on in
    # parallel
    lock: threading.RLock = field(default_factory=threading.RLock)
    card: dict | None = None  # the model's description and per-layer summary, made on first use
    index: object = None  # index.NeighbourIndex, started on the first search
    # (gate verdicts' stamp, the bf16/int8 model or None, the answer's fields): serve --precision
    variant: tuple | None = None


def _checkpoint(root: Path, name: str) -> Path:
    for relative in runs.CHECKPOINTS:
        path = runs.run_file(root, name, relative)
        if path is not None:
            return path
    raise CheckpointError(f"{name}: no checkpoint yet (checkpoints/best.safetensors or "
                          "last.safetensors); a run being trained writes its first one when its "
                          "first epoch ends")


def _stamp(path: Path) -> tuple:
    stat = path.stat()
    return (str(path), stat.st_size, stat.st_mtime_ns)


def _drop(entry: Entry | None) -> None:
    """An entry leaving the cache: its index build, if any, stops at its next batch."""
    if entry is not None and entry.index is not None:
        entry.index.cancel()


class ModelCache:
    """Run name → ``Entry``, at most ``capacity`` of them; the least recently used goes first."""

    def __init__(self, root: Path, capacity: int, data_dir: str | None = None, *,
                 run_code: bool = False) -> None:
        self.root, self.capacity, self.data_dir = root, capacity, data_dir
        self.run_code = run_code  # runs imported with --code load (their file runs) only with it
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()  # loads are serialised: two requests for one run load it once
        self._datasets: OrderedDict[tuple, object] = OrderedDict()
        self._data_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> Entry:
        """The entry of run ``name``: ``RunNotFound`` for an unknown run, ``CheckpointError`` for a
        damaged one."""
        from cnnzoo.engine.run import open_run

        path = _checkpoint(self.root, name)
        stamp = _stamp(path)
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.stamp != stamp:
                # safetensors: no code runs; metadata checked before anything is built (a run
                # imported with --code runs its file only with run_code, else a ConfigError)
                subject = open_run(path, run_code=self.run_code)
                data_dir = self.data_dir or runs.data_dir(self.root, name)
                _drop(entry)
                entry = Entry(subject, stamp, data_dir)
                self._entries[name] = entry
            self._entries.move_to_end(name)
            while len(self._entries) > self.capacity:
                _drop(self._entries.popitem(last=False)[1])
            return entry

    def peek(self, name: str) -> Entry | None:
        """The entry of run ``name`` if it is loaded, without loading anything."""
        with self._lock:
            return self._entries.get(name)

    def index_for(self, entry: Entry):
        """``entry``'s nearest-neighbour index, its background build started on the first call."""
        from cnnzoo.serve.index import NeighbourIndex

        with self._lock:  # two first searches at once start one build
            if entry.index is None or entry.index.state in ("failed", "cancelled"):
                entry.index = NeighbourIndex(entry.subject, lambda: self.data_for(entry)).start()
            return entry.index

    def data_for(self, entry: Entry):
        """The data set ``entry``'s run was trained on (``DatasetSplits``, in memory), loaded once
        and shared."""
        from cnnzoo.visualize.source import load_data

        subject = entry.subject
        if subject.dataset is None:
            raise ConfigError(f"{subject.name} was imported without a data set, so there are no "
                              "test images to pick or training images to search; import it "
                              "with --dataset NAME for them")
        key = (subject.dataset, entry.data_dir, subject.model.cfg.input_size[0], subject.data_size)
        with self._data_lock:
            if key not in self._datasets:
                # a request never reaches out
                data = load_data(subject, entry.data_dir, download=False)
                if not hasattr(data.train, "images"):
                    raise ConfigError(f"{subject.dataset} is streamed from disk, so the explorer "
                                      "cannot pick test images or search training images; give a "
                                      "smaller data set")
                self._datasets[key] = data
            self._datasets.move_to_end(key)
            while len(self._datasets) > DATASETS:
                self._datasets.popitem(last=False)
            return self._datasets[key]
