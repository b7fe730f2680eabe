"""A run loaded back: ``load_run(path)`` rebuilds the model a run directory (or checkpoint file)
holds, with what it takes as input; ``open_run(source)`` also accepts a registered model name (fresh
weights, for the views).

predict, eval, show, scoremap, export and the explorer all start from a ``Run``. A checkpoint's
metadata is checked before anything is built: the model is first built on the meta device (no
memory) and compared with the file's weights, so what is then allocated is what the file holds.
Anything that does not fit is a ``CheckpointError`` naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)

from cnnzoo import rundir
from cnnzoo.engine.checkpoint import CheckpointError, load_checkpoint
from cnnzoo.engine.config import TEST_VIEWS, variant_name
from cnnzoo.engine.imported import load_imported
from cnnzoo.engine.inputs import InputSpec
from cnnzoo.engine.runtime import resolve_device
from cnnzoo.errors import CnnzooError, suggest
from cnnzoo.models.base import ModelConfig
from cnnzoo.models.registry import create_model, get_builder, list_models

# What a checkpoint's metadata may ask for; checked before anything is built or allocated.
MAX_SIDE = 4096  # image side (input.size, data_size): one 4096×4096 RGB image is 200 MB of floats
MAX_PARAMETERS = 500_000_000  # the largest model in the zoo, VGG-19, has 144 M
MAX_PARTS = 5_000  # modules, parameters and buffers: the deepest, DenseNet-201, has 2,024


@dataclass
class Run:
    """A model and what it takes: ``run_dir`` is None for a fresh model (its weights are random)."""

    model: nn.Module
    name: str  # the registered model name (an imported model's own name)
    classes: list[str]
    input: InputSpec  # side, normalisation and crop padding of the model's input
    data_size: int  # side of the training images before padding (what padding starts from)
    dataset: str | None = None
    run_dir: Path | None = None
    checkpoint: Path | None = None
    config: dict = field(default_factory=dict)  # the run's config.json ({} where there is none)
    # what training recorded of this checkpoint: its epoch, its test top-1 (None for an epoch not
    # evaluated) and the precision it was evaluated in ({} for weights cnnzoo did not train)
    recorded: dict = field(default_factory=dict)
    # False where the weights record no class names: ``classes`` then only numbers the outputs
    classes_named: bool = True

    @property
    def variant(self) -> str:
        """The model's name, with a run's builder arguments: ``mlp variant (hidden=[16,8])``."""
        return variant_name(self.name, self.config.get("model_kwargs"))

    @property
    def label(self) -> str:
        """How figures name the model: ``lenet5 (trained on fashion-mnist)`` or ``lenet5 (random
        weights)``; a run of a variant with its builder arguments, as its own curves name it."""
        if self.checkpoint is None:
            return f"{self.name} (random weights)"
        return f"{self.variant} (trained on {self.dataset})" if self.dataset else \
            f"{self.variant} (trained weights)"

    @property
    def test_views(self) -> str:
        """The test-time views the run scored itself with (its config.json's), else ``center``."""
        views = self.config.get("test_views")
        return views if views in TEST_VIEWS else "center"

    def default_out(self) -> Path:
        """``RUN/show`` for a run; ``show-NAME`` in the working directory for a bare model."""
        return self.run_dir / rundir.SHOW if self.run_dir else Path(f"show-{self.name}")


def open_run(source: str | Path, *, device: str = "cpu", run_code: bool = False) -> Run:
    """A run directory or checkpoint file (weights loaded) or a registered model name (fresh
    weights)."""
    if Path(source).exists():
        return load_run(Path(source), device=device, run_code=run_code)
    get_builder(str(source))  # an unknown name: UnknownModelError with close names
    torch.manual_seed(0)
    model = create_model(str(source)).eval()
    cfg = model.cfg
    spec = InputSpec(size=cfg.input_size[1], mean=list(cfg.mean), std=list(cfg.std))
    return Run(model, str(source), [str(i) for i in range(cfg.num_classes)], spec,
               cfg.input_size[1], classes_named=False)


def load_run(source: Path, *, model_name: str | None = None, device: str = "cpu",
             run_code: bool = False) -> Run:
    """Rebuild the model saved in ``source`` (a run directory, or a checkpoint file) and load its
    weights.

    cnnzoo checkpoints say which model they hold; a plain state dict (``.pt``) needs ``model_name``.
    A run of ``cnnzoo import --code`` runs the user's file only with ``run_code``.
    """
    path = rundir.checkpoint_of(source)
    checkpoint = load_checkpoint(path)
    meta = checkpoint.meta
    _check_finite(path, checkpoint.model_state)
    if "imported" in meta:  # a model cnnzoo did not build (engine/imported.py)
        model, cfg = load_imported(path, meta, checkpoint.model_state, run_code=run_code)
    else:
        model, cfg = _zoo_model(path, meta, model_name, checkpoint.model_state)
    spec = _input_spec(path, meta.get("input"), cfg)
    classes = _classes(path, meta.get("classes"), cfg)
    data_size = _whole(path, "data_size", meta.get("data_size", spec.size), 1, MAX_SIDE)
    dataset = meta.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise _damaged(path, f"'dataset' is {_shown(dataset)}, not a data set's name")
    model = model.to(resolve_device(device)).eval()
    run_dir = _run_dir_of(path)
    has_config = run_dir is not None and (run_dir / rundir.CONFIG).is_file()
    config = rundir.read_json(run_dir / rundir.CONFIG, "run's settings") if has_config else {}
    return Run(model, cfg.name, classes, spec, data_size, dataset, run_dir, path, config,
               _recorded(path, meta), classes_named=meta.get("classes") is not None)


def _recorded(path: Path, meta: dict) -> dict:
    """The epoch a checkpoint of a cnnzoo run was saved after, its test top-1 then (None if that
    epoch was not evaluated) and the precision it trained and was evaluated in; {} for weights
    that do not record them."""
    epoch, top1 = meta.get("epoch"), meta.get("test_top1")
    if epoch is None:
        return {}
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise _damaged(path, f"'epoch' is {_shown(epoch)}, not an epoch number")
    if top1 is not None and (isinstance(top1, bool) or not isinstance(top1, (int, float))
                             or not 0 <= top1 <= 1):
        raise _damaged(path, f"'test_top1' is {_shown(top1)}, not an accuracy")
    tuning = meta.get("tuning")
    precision = tuning.get("precision") if isinstance(tuning, dict) else None
    return {"epoch": epoch, "test_top1": top1,
            "precision": precision if isinstance(precision, str) else "fp32"}


def _zoo_model(path: Path, meta: dict, model_name: str | None,
               state: dict[str, torch.Tensor]) -> tuple[nn.Module, ModelConfig]:
    """The registered model a checkpoint names (or ``model_name``), checked, built and loaded."""
    name = _model_name(path, meta, model_name)
    kwargs = meta.get("model_kwargs", {})
    if not isinstance(kwargs, dict):
        raise _damaged(path, f"'model_kwargs' is {_shown(kwargs)}, not an object of builder "
                             "arguments")
    cfg = _check_model(path, name, kwargs, state)
    model = create_model(name, **kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit {name} ({first})") from None
    return model, cfg


def _check_finite(path: Path, state: dict[str, torch.Tensor]) -> None:
    """A checkpoint whose weights or buffers hold NaN or inf is refused: every answer it gave would
    be one."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: its tensor {name} holds NaN or infinite values (the "
                                  "run diverged before this checkpoint was saved); use another "
                                  "checkpoint of the run, or train again with a lower --lr or "
                                  "with --grad-clip")


def _run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (RUN/checkpoints/X.safetensors), or None for a
    loose file."""
    folder = checkpoint.parent.parent
    return (
        folder
        if checkpoint.parent.name == rundir.CHECKPOINTS and rundir.holds_run(folder)
        else None
    )


def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}; the checkpoint's metadata is damaged or was not "
                           "written by cnnzoo: use another checkpoint of the run, or train again")


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _model_name(path: Path, meta: dict, model_name: str | None) -> str:
    if "model" not in meta:
        if model_name is None:
            raise CheckpointError(f"{path} holds bare weights and does not say which model they "
                                  "belong to; pass --model NAME")
        return model_name
    name = meta["model"]
    if not isinstance(name, str):
        raise _damaged(path, f"'model' is {_shown(name)}, not a model name")
    if name not in list_models():
        close = suggest(name, list_models()) if len(name) < 100 else ""
        raise CheckpointError(f"{path}: holds a model named {_shown(name)}, which this version of "
                              f"cnnzoo does not have.{close} `cnnzoo list` shows the models it has")
    return name


class _TooManyParts(Exception):
    pass


@contextmanager
def _at_most_parts(limit: int) -> Iterator[None]:
    """Stop (``_TooManyParts``) a model construction that registers more than ``limit`` modules,
    parameters and buffers together: counted as they are made, since a builder may make all its
    layers before it nests them."""
    count = 0

    def count_part(*args) -> None:
        nonlocal count
        count += 1
        if count > limit:
            raise _TooManyParts

    handles = [register(count_part) for register in (register_module_module_registration_hook,
                                                     register_module_parameter_registration_hook,
                                                     register_module_buffer_registration_hook)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_model(
    path: Path, name: str, kwargs: dict, state: dict[str, torch.Tensor]
) -> ModelConfig:
    """Build ``name`` with ``kwargs`` on the meta device and check it against the weights in the
    file: its size, then every tensor's name and shape. Returns its configuration."""
    builder = get_builder(name)
    try:
        # a long list in the options (an MLP's hidden sizes) means as many layers, slow to make even
        # on meta
        with _at_most_parts(MAX_PARTS), torch.device("meta"):
            model = builder(**kwargs)
    except _TooManyParts:
        raise CheckpointError(
            f"{path}: its model_kwargs describe {name} with more than {MAX_PARTS:,} modules, "
            "parameters and buffers (DenseNet-201 has 2,024); the file is damaged"
        ) from None
    except (
        CnnzooError,
        TypeError,
        ValueError,
        ArithmeticError,
        LookupError,
        RuntimeError,
    ) as error:
        detail = (str(error).splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{path}: its model_kwargs do not build {name} ({type(error).__name__}: {detail}); the "
            "file is damaged or was written by another version of cnnzoo"
        ) from None
    parameters = sum(p.numel() for p in model.parameters())
    if parameters > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: its metadata describes {name} with {parameters:,} "
                              f"parameters, more than the {MAX_PARAMETERS:,} cnnzoo loads; the "
                              "file is damaged")
    misfit = describe_misfit({k: tuple(v.shape) for k, v in model.state_dict().items()},
                     {k: tuple(v.shape) for k, v in state.items()})
    if misfit:
        raise CheckpointError(
            f"{path}: its weights do not fit {name} as its metadata describes it ({misfit}); for "
            "bare weights, pass the --model they were trained as"
        )
    return model.cfg


def describe_misfit(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """What differs between the tensor shapes a model expects and those a file holds ('' when
    nothing)."""

    def some(names: list[str]) -> str:
        return ", ".join(map(_shown, names[:3])) + (
            f" and {len(names) - 3} more" if len(names) > 3 else ""
        )

    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    problems = ([f"missing {some(missing)}"] if missing else []) + (
        [f"unexpected {some(unexpected)}"] if unexpected else []
    )
    if reshaped:
        key = reshaped[0]
        problems.append(f"{_shown(key)} is {_shape(found[key])} in the file but "
                        f"{_shape(expected[key])} in the model"
                        + (f" ({len(reshaped) - 1} more differ)" if len(reshaped) > 1 else ""))
    return "; ".join(problems)


def _shape(shape: tuple) -> str:
    return "×".join(map(str, shape)) or "a scalar"


def _whole(path: Path, key: str, value: object, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _damaged(path, f"{key} is {_shown(value)}, not a whole number from {low} to {high:,}")
    return value


def _numbers(
    path: Path, key: str, value: object, count: int, *, positive: bool = False
) -> list[float]:
    if not (
        isinstance(value, list)
        and len(value) == count
        and all(
            type(v) in (int, float) and math.isfinite(v) and (v > 0 or not positive) for v in value
        )
    ):
        kind = ("positive" if positive else "finite") + (" number" if count == 1 else " numbers")
        raise _damaged(path, f"{key} is {_shown(value)}, not a list of {count} {kind} (one per "
                             "input channel)")
    return [float(v) for v in value]


def _input_spec(path: Path, saved: object, cfg: ModelConfig) -> InputSpec:
    """The input the checkpoint records (side, normalisation, crop padding), checked against its
    model."""
    if saved is None:  # bare weights: the model's own defaults
        return InputSpec(size=cfg.input_size[1], mean=list(cfg.mean), std=list(cfg.std))
    keys = {"size", "mean", "std", "crop_padding"}
    if not isinstance(saved, dict) or not {"size", "mean", "std"} <= set(saved) <= keys:
        raise _damaged(path, f"'input' is {_shown(saved)}, not an object of "
                             f"{', '.join(sorted(keys))}")
    channels, side = cfg.input_size[0], cfg.input_size[1]
    size = _whole(path, "input.size", saved["size"], 1, MAX_SIDE)
    if size != side:
        raise _damaged(path, f"input.size is {size}, but its model_kwargs build {cfg.name} for "
                             f"{side}×{side} images")
    return InputSpec(size=size, mean=_numbers(path, "input.mean", saved["mean"], channels),
                     std=_numbers(path, "input.std", saved["std"], channels, positive=True),
                     crop_padding=_whole(path, "input.crop_padding", saved.get("crop_padding", 0),
                                         0, MAX_SIDE))


def _classes(path: Path, saved: object, cfg: ModelConfig) -> list[str]:
    if saved is None:
        return [str(i) for i in range(cfg.num_classes)]
    if not isinstance(saved, list) or not all(isinstance(name, str) for name in saved):
        raise _damaged(path, f"'classes' is {_shown(saved)}, not a list of class names")
    if len(saved) != cfg.num_classes:
        raise _damaged(path, f"'classes' names {len(saved)} classes, but its {cfg.name} has "
                             f"{cfg.num_classes} outputs")
    return saved
