"""``cnnzoo list``'s table: every registered model with its parameters, default input and paper.

Counting parameters means constructing every model (on the meta device: no weights, but ~9,000 modules for the
43 models), which takes seconds; the table only changes when the model code does. So it is cached in the user
cache directory under a key made of the cnnzoo and torch versions and a hash of the sources of ``models/`` and
``layers/``: a warm ``cnnzoo list`` reads one small JSON file and does not even import torch (which is also why this module lives
outside ``cnnzoo.models``: importing that package registers, and so builds, every family).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from importlib import metadata
from pathlib import Path

from cnnzoo.version import __version__

_SOURCES = [Path(__file__).parent / "models", Path(__file__).parent / "layers"]


def _cache_file() -> Path:
    from cnnzoo.data.dataset_files import user_cache_dir

    digest = hashlib.sha256(__version__.encode())
    try:
        digest.update(metadata.version("torch").encode())
    except metadata.PackageNotFoundError:
        pass
    for folder in _SOURCES:
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return user_cache_dir() / f"models-{digest.hexdigest()[:16]}.json"


def _build_table() -> list[dict]:
    import torch

    from cnnzoo.models.registry import create_model, list_models

    rows = []
    for name in list_models():
        with torch.device("meta"):  # shapes and counts only: no memory, no initialisation
            model = create_model(name)
        rows.append({"name": name, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                     "input_size": list(model.cfg.input_size), "num_classes": model.cfg.num_classes,
                     "paper": model.cfg.paper})
    return rows


def model_table(pattern: str = "*") -> list[dict]:
    """One row per registered model matching ``pattern``, in natural order (from the cache when it is current)."""
    path = _cache_file()
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        rows = _build_table()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(rows))
            tmp.replace(path)
        except OSError:  # a read-only home: list without caching
            pass
    return [row for row in rows if fnmatch.fnmatchcase(row["name"], pattern)]  # built in list_models' order
