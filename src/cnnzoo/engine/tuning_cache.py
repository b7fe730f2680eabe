"""Where the autotuner keeps what it measured: one small JSON file per machine, model, input and batch.

A measurement holds only for the machine and software it was taken on, so the key is made of everything that
changes the answer: the processor (CPU model and instruction-set flags, or the GPU's name), the threads used,
the model with its builder arguments, the input side, the batch size and the torch version. Any part changing
gives another key, so a stale measurement is never read; each file also stores its key's parts, and a file whose
parts differ from the ones asked for is treated as missing.

The directory is ``$CNNZOO_TUNING_CACHE`` when set (tests point it at a temporary directory), else
``tuning/`` in the user cache (``$XDG_CACHE_HOME/cnnzoo`` or ``~/.cache/cnnzoo``). Files are written to a
temporary name and renamed, so a reader sees a whole file or none; a damaged or unreadable file is ignored and
rewritten, never an error: the cache only saves time. This module imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cnnzoo.data.dataset_files import user_cache_dir
from cnnzoo.files import atomic_write_text

CACHE_ENV = "CNNZOO_TUNING_CACHE"
KEY_PARTS = ("machine", "threads", "model", "model_kwargs", "input_side", "batch_size", "torch")


def tuning_cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV, "")
    return Path(override) if override else user_cache_dir() / "tuning"


def cache_key(parts: dict) -> str:
    """A file name for the measurement keyed by ``parts`` (every name of ``KEY_PARTS``, JSON values)."""
    missing = sorted(set(KEY_PARTS) - set(parts))
    if missing:
        raise ValueError(f"a tuning cache key needs {missing}")
    text = json.dumps({name: parts[name] for name in KEY_PARTS}, sort_keys=True, separators=(",", ":"))
    return f"{parts['model']}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def _path(parts: dict) -> Path:
    return tuning_cache_dir() / f"{cache_key(parts)}.json"


def read_entry(parts: dict) -> dict:
    """What was measured under ``parts``: ``{"steps": {candidate: seconds}, "compile": {...}}``; empty when
    nothing was, or the file is damaged or belongs to other parts."""
    try:
        stored = json.loads(_path(parts).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict) or stored.get("parts") != {name: parts[name] for name in KEY_PARTS}:
        return {}
    entry = {name: stored.get(name) for name in ("steps", "compile")}
    return {name: value for name, value in entry.items() if isinstance(value, dict)}


def write_entry(parts: dict, entry: dict) -> Path | None:
    """Store ``entry`` under ``parts`` atomically; returns the file, or None where it cannot be written (a
    read-only home: the run goes on, it only measures again next time)."""
    path = _path(parts)
    text = json.dumps({"parts": {name: parts[name] for name in KEY_PARTS}, **entry}, indent=1, sort_keys=True)
    try:
        atomic_write_text(path, text)
    except OSError:
        return None
    return path
