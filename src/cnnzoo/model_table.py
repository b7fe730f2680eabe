"""``cnnzoo list``'s and ``cnnzoo recipes``' figures: every registered model and every recipe's
network, with its parameters, input and paper, counted on the real built module
(``models.base.parameter_count``).

Counting means constructing every model (on the meta device: no weights, but ~9,000 modules in
all), which takes seconds; the table only changes when the model code or a recipe does. So it is
cached in the user cache directory under a key made of the cnnzoo and torch versions and a hash of
the sources of ``models/``, ``layers/``, the recipes and the input-side decision: a warm ``cnnzoo
list`` reads one small JSON file and does not even import torch (which is also why this module
lives outside ``cnnzoo.models``: importing that package registers, and so builds, every family).

A recipe trains its model as its data and settings make it (Fashion-MNIST's one channel,
``alexnet-small``'s narrower widths), so its network can differ from the model's default: the
recipe's row is its own count, and ``cnnzoo list`` shows it as a variant under the model.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from importlib import metadata
from pathlib import Path

from cnnzoo.files import atomic_write_text
from cnnzoo.version import __version__

_HERE = Path(__file__).parent
_SOURCES = [_HERE / "models", _HERE / "layers", _HERE / "recipes", _HERE / "engine" / "inputs.py"]


def _cache_file() -> Path:
    from cnnzoo.data.dataset_files import user_cache_dir

    digest = hashlib.sha256(__version__.encode())
    try:
        digest.update(metadata.version("torch").encode())
    except metadata.PackageNotFoundError:
        pass
    for source in _SOURCES:
        paths = [source]
        if source.is_dir():
            paths = sorted(source.glob("*.py")) + sorted(source.glob("*.json"))
        for path in paths:
            digest.update(path.name.encode() + path.read_bytes())
    return user_cache_dir() / f"models-{digest.hexdigest()[:16]}.json"


def _model_rows() -> list[dict]:
    import torch

    from cnnzoo.models.base import parameter_count
    from cnnzoo.models.registry import create_model, list_models

    rows = []
    for name in list_models():
        with torch.device("meta"):  # shapes and counts only: no memory, no initialisation
            model = create_model(name)
        rows.append({"name": name, "params": parameter_count(model),
                     "input_size": list(model.cfg.input_size),
                     "num_classes": model.cfg.num_classes, "paper": model.cfg.paper})
    return rows


def _recipe_rows() -> list[dict]:
    """Each recipe's network as ``cnnzoo train --recipe`` builds it: its data's channels and
    classes, the side ``choose_input_side`` picks for that data, the recipe's builder arguments."""
    import torch

    from cnnzoo.data.catalogue import DATASETS
    from cnnzoo.engine.build import build_model, limits_for
    from cnnzoo.engine.inputs import choose_input_side
    from cnnzoo.models.base import parameter_count
    from cnnzoo.recipes import list_recipes, model_settings

    rows = []
    for recipe in list_recipes():
        config = recipe.train_config()
        source = DATASETS[config.dataset]  # every recipe names a catalogued dataset
        channels, side = source.image_shape[0], source.image_shape[1]
        num_classes = len(source.classes) or (100 if config.dataset == "cifar100" else 10)
        side = choose_input_side(limits_for(config, channels), side, config.input_size)
        with torch.device("meta"):
            model = build_model(config, num_classes, channels, side)
        rows.append({"recipe": recipe.name, "model": config.model,
                     "variant": model_settings(recipe.config),
                     "dataset": config.dataset, "params": parameter_count(model),
                     "input_size": list(model.cfg.input_size), "num_classes": num_classes})
    return rows


def _build_table() -> dict[str, list[dict]]:
    return {"models": _model_rows(), "recipes": _recipe_rows()}


def _table() -> dict[str, list[dict]]:
    path = _cache_file()
    try:
        table = json.loads(path.read_text())
        if not isinstance(table, dict) or not {"models", "recipes"} <= set(table):
            raise ValueError("a table from before recipes were counted, or damaged")
    except (OSError, ValueError):
        table = _build_table()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a temporary file of its own: two `cnnzoo list` started at once never share one
            atomic_write_text(path, json.dumps(table))
        except OSError:  # a read-only home: list without caching
            pass
    return table


def model_table(pattern: str = "*") -> list[dict]:
    """One row per registered model matching ``pattern``, in natural order (from the cache when
    it is current)."""
    return [row for row in _table()["models"] if fnmatch.fnmatchcase(row["name"], pattern)]


def recipe_table() -> dict[str, dict]:
    """Each recipe's network (``params``, ``input_size``, ``variant``…) by recipe name."""
    return {row["recipe"]: row for row in _table()["recipes"]}


def recipe_variants(models: list[dict]) -> dict[str, list[dict]]:
    """By model name, the recipes whose network is not the model's default (other widths, or the
    data's channels and side): ``cnnzoo list`` shows them under the model, with their own count."""
    defaults = {row["name"]: row for row in models}
    variants: dict[str, list[dict]] = {}
    for row in recipe_table().values():
        default = defaults.get(row["model"])
        differs = default and (row["params"], row["input_size"]) != (default["params"],
                                                                     default["input_size"])
        if differs:
            variants.setdefault(row["model"], []).append(row)
    return variants
