"""``cnnzoo import``: a model trained anywhere becomes an ordinary run directory.

What it reads, and what that runs:

- weights (``.pt``/``.pth`` read with ``torch.load(weights_only=True)``, ``.safetensors``) for a
  cnnzoo architecture (``--model``), in cnnzoo's key layout or torchvision's
  (``engine.torchvision_keys``): no code runs;
- a TorchScript file or a ``torch.export`` ExportedProgram (``.pt2``): a graph of PyTorch
  operations, kept in the run directory; no Python from the file runs;
- weights for a class in the user's own file (``--code net.py:Net``): that file runs, here and
  whenever the run is loaded with ``--run-code``.

It records the input shape, the normalisation the user states (none unless ``--mean``/``--std``; a
cnnzoo architecture with torchvision-layout weights defaults to ImageNet's statistics and says so),
the class names and where the model came from; checks one forward pass; writes the run as training
does (``rundir``: one writer, nothing half-written, nothing replaced without ``--overwrite``); and
loads it back to check that the run gives the model's own outputs.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnzoo import rundir
from cnnzoo.engine import torchvision_keys as tv
from cnnzoo.engine.checkpoint import load_checkpoint, read_meta, save_checkpoint
from cnnzoo.engine.imported import (
    PROGRAM_FILES,
    code_model,
    imported_config,
    program_model,
    read_program,
    sha256_of,
)
from cnnzoo.engine.outputs import versions
from cnnzoo.engine.run import describe_misfit, load_run
from cnnzoo.errors import CheckpointError, ConfigError, RunDirectoryError, in_one_line
from cnnzoo.files import read_bytes
from cnnzoo.models.base import IMAGENET_MEAN, IMAGENET_STD
from cnnzoo.models.registry import create_model, get_builder

MAX_CLASSES_BYTES = 1024**2


@dataclass
class ImportSettings:
    """What ``cnnzoo import`` was asked; every field is one of its options."""

    source: Path
    out: Path
    model: str | None = None  # a registered architecture the weights are for
    code: str | None = None  # "net.py:Net": a class or function in the user's file
    code_args: list | dict | None = None
    input_size: tuple[int, ...] | None = None  # (C, H, W), or (side,) for a cnnzoo architecture
    mean: list[float] | None = None
    std: list[float] | None = None
    classes: Path | None = None  # a text file, one class name a line
    dataset: str | None = None  # a data set's name: its class names, and what eval runs on
    name: str | None = None
    overwrite: bool = False


@dataclass
class Built:
    """A model made from the source file, and what the run must record about it."""

    model: nn.Module
    name: str
    input_size: tuple[int, int, int]
    kind: str  # "weights", "torchscript", "exported" or "code"
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # the weights the run keeps
    meta: dict = field(default_factory=dict)  # checkpoint metadata that rebuilds the model
    provenance: dict = field(default_factory=dict)
    torchvision_layout: bool = False


def file_format(path: Path) -> str:
    """``exported``, ``torchscript`` or ``weights``, from what the file holds (its name can lie)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; give the weights, TorchScript or .pt2 file")
    if path.suffix.lower() == ".onnx":
        raise ConfigError(f"{path}: an ONNX graph, which `cnnzoo export` writes for other runtimes "
                          "and cnnzoo does not read back; import the run's checkpoint "
                          "(RUN/checkpoints/best.safetensors), a TorchScript or a .pt2 file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(name.endswith("/archive_format") for name in names):
            return "exported"
        if any("/code/__torch__/" in name for name in names):
            return "torchscript"
    return "weights"


def import_run(settings: ImportSettings) -> dict:
    """Import ``settings.source`` into the run directory ``settings.out``; returns the report."""
    kind = file_format(settings.source)
    if settings.code and kind != "weights":
        raise ConfigError(f"{settings.source} is a {kind} file, a whole model: import it without "
                          "--code (which is for weights of a class in your own file)")
    if kind == "weights" and not (settings.model or settings.code):
        raise ConfigError(f"{settings.source} holds weights only: say which network they belong to "
                          "with --model NAME (a cnnzoo architecture) or --code FILE.py:CLASS")
    built = (_program(settings, kind) if kind != "weights" else
             _code(settings) if settings.code else _zoo(settings))
    num_classes = check_forward(built.model, built.input_size, built.name)
    recorded = _recorded(settings)
    classes = class_names(settings, num_classes, recorded)
    mean, std, normalisation = _normalisation(settings, built, recorded)
    side = built.input_size[1]
    data_size = _data_size(settings.dataset, side)
    meta = {**built.meta, "input": {"size": side, "mean": mean, "std": std},
            "classes": classes, "dataset": settings.dataset, "data_size": data_size,
            "source": built.provenance}
    if settings.dataset is None:
        del meta["dataset"]
    if built.kind != "weights":
        meta.update(model=built.name, input_size=list(built.input_size), num_classes=num_classes)
    config = {"model": built.name, "dataset": settings.dataset, "imported": built.provenance,
              "input_size": list(built.input_size), "num_classes": num_classes,
              "normalisation": normalisation, "versions": versions()}
    _write(settings, built, meta, config)
    return {"run": str(settings.out), "model": built.name, "format": built.kind,
            "input_size": list(built.input_size), "classes": len(classes),
            "normalisation": normalisation, "parameters": sum(p.numel() for p in
                                                               built.model.parameters()),
            "source": built.provenance}


def _provenance(settings: ImportSettings, kind: str) -> dict:
    return {"file": str(settings.source.resolve()), "format": kind,
            "sha256": sha256_of(settings.source)}


def _weights(settings: ImportSettings) -> tuple[dict[str, torch.Tensor], list[str]]:
    state = load_checkpoint(settings.source).model_state
    if not state:
        raise CheckpointError(f"{settings.source}: holds no tensors")
    return tv.strip_wrappers(state)


def _zoo(settings: ImportSettings) -> Built:
    """A cnnzoo architecture with weights in its own key layout or torchvision's."""
    name = settings.model
    get_builder(name)  # an unknown name: one line with the close ones
    found, stripped = _weights(settings)
    layouts = {"cnnzoo": found}
    if tv.family(name):
        layouts["torchvision"] = tv.from_torchvision(name, found)
    tried = {}
    for layout, state in layouts.items():
        kwargs = _zoo_kwargs(name, state, settings.input_size)
        with torch.device("meta"):
            expected = create_model(name, **kwargs).state_dict()
        tried[layout] = (describe_misfit({k: tuple(v.shape) for k, v in expected.items()},
                                         {k: tuple(v.shape) for k, v in state.items()}),
                         kwargs, state)
    layout = min(tried, key=lambda key: (bool(tried[key][0]), tried[key][0].count(",")))
    misfit, kwargs, state = tried[layout]
    if misfit:
        note = tv.ARCHITECTURE_NOTES.get(name.split("_")[0], "")
        closest = f"{layout} key layout, the closer of {len(layouts)}" if len(layouts) > 1 \
            else "cnnzoo's key layout"
        raise CheckpointError(f"{settings.source}: its weights do not fit cnnzoo's {name} in "
                              f"{closest} ({misfit})"
                              + (f"; {note}" if note else ""))
    model = create_model(name, **kwargs)
    model.load_state_dict(state)
    provenance = {**_provenance(settings, "weights"), "layout": layout,
                  "wrapper_prefixes_removed": stripped}
    return Built(model.eval(), name, model.cfg.input_size, "weights", model.state_dict(),
                 {"model": name, "model_kwargs": kwargs}, provenance, layout == "torchvision")


def _zoo_kwargs(name: str, state: dict[str, torch.Tensor], input_size: tuple | None) -> dict:
    """The builder arguments the weights imply: input channels from the first convolution, classes
    from the last linear layer; the side from ``--input-size`` or the architecture's own."""
    with torch.device("meta"):
        reference = create_model(name).state_dict()
    weights = [k for k, v in reference.items() if k.endswith("weight") and not k.startswith("aux")]
    first = next((k for k in weights if reference[k].dim() == 4), None)
    last = next((k for k in reversed(weights) if reference[k].dim() == 2), None)
    kwargs = {}
    if first in state and state[first].dim() == 4:
        kwargs["in_channels"] = state[first].shape[1]
    if last in state and state[last].dim() == 2:
        kwargs["num_classes"] = state[last].shape[0]
    if input_size:
        kwargs["input_size"] = input_size[-1]
        if len(input_size) == 3 and input_size[0] != kwargs.get("in_channels", input_size[0]):
            raise ConfigError(f"--input-size {','.join(map(str, input_size))}: the weights' first "
                              f"convolution takes {kwargs['in_channels']} channels")
    return kwargs


def _code(settings: ImportSettings) -> Built:
    """Weights for the user's own class: their file runs (the option says so)."""
    path_text, _, attribute = settings.code.rpartition(":")
    if not path_text or not attribute:
        raise ConfigError(f"--code {settings.code}: give FILE.py:NAME, e.g. net.py:Net")
    shape = _required_shape(settings, "--code")
    code = Path(path_text)
    model = code_model(code, attribute, settings.code_args)
    state, stripped = _weights(settings)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    misfit = describe_misfit(expected, {k: tuple(v.shape) for k, v in state.items()})
    if misfit:
        raise CheckpointError(f"{settings.source}: its weights do not fit {settings.code} "
                              f"({misfit})")
    model.load_state_dict(state)
    name = settings.name or attribute
    model.cfg = imported_config(name, shape, 0)
    provenance = {**_provenance(settings, "code"), "code": str(code.resolve()),
                  "attribute": attribute, "arguments": settings.code_args,
                  "code_sha256": sha256_of(code), "wrapper_prefixes_removed": stripped}
    imported = {"format": "code", "code": str(code.resolve()), "attribute": attribute,
                "arguments": settings.code_args, "sha256": sha256_of(code)}
    return Built(model.eval(), name, shape, "code", model.state_dict(), {"imported": imported},
                 provenance)


def _program(settings: ImportSettings, kind: str) -> Built:
    """A TorchScript file or an ExportedProgram: the input shape is the exported one where known."""
    _, exported_shape = read_program(settings.source, kind)
    shape = (tuple(exported_shape[1:]) if exported_shape and None not in exported_shape[1:]
             else None)
    if settings.input_size is not None and shape is not None:
        if tuple(settings.input_size) != shape:
            raise ConfigError(f"--input-size {','.join(map(str, settings.input_size))}: "
                              f"{settings.source} was exported for {'×'.join(map(str, shape))}")
    shape = shape or _required_shape(settings, f"a {kind} file")
    name = settings.name or settings.source.stem.split(".")[0]
    model = program_model(settings.source, kind, imported_config(name, shape, 0))
    return Built(model.eval(), name, shape, kind, {}, {"imported": {"format": kind}},
                 _provenance(settings, kind))


def _required_shape(settings: ImportSettings, what: str) -> tuple[int, int, int]:
    shape = settings.input_size
    if shape is None or len(shape) != 3:
        raise ConfigError(f"{what} does not say what input it takes: pass --input-size C,H,W (e.g. "
                          "1,28,28), the shape it was trained on")
    if shape[1] != shape[2]:
        raise ConfigError(f"--input-size {','.join(map(str, shape))}: cnnzoo's views take square "
                          "images; give a square input")
    return tuple(shape)


def check_forward(model: nn.Module, shape: tuple[int, int, int], name: str) -> int:
    """One forward pass of a zero image of ``shape``: the number of classes it scores."""
    x = torch.zeros(1, *shape)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as error:  # noqa: BLE001  (a foreign model: its failure is one line)
        raise ConfigError(f"{name}: a forward pass of a {'×'.join(map(str, x.shape))} input failed "
                          f"({in_one_line(error)}); pass the --input-size C,H,W it was "
                          "trained on") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or len(out) != 1:
        got = ("×".join(map(str, out.shape)) if isinstance(out, torch.Tensor)
               else type(out).__name__)
        raise ConfigError(f"{name}: a {'×'.join(map(str, x.shape))} input gives {got}, not the "
                          "1×classes scores of a classifier; import a model that returns logits")
    return out.shape[1]


def class_names(settings: ImportSettings, count: int, recorded: dict) -> list[str]:
    """From ``--classes`` (one a line), else the data set's, else those a cnnzoo checkpoint
    ``recorded`` (``_recorded``), else ``0 … count−1``."""
    if settings.classes is not None:
        text = read_bytes(settings.classes, MAX_CLASSES_BYTES, "class names file")
        names = [line.strip() for line in text.decode("utf-8", "replace").splitlines()
                 if line.strip()]
        origin = f"--classes {settings.classes}"
    elif settings.dataset is not None:
        from cnnzoo.data.sources import get_source

        names = list(get_source(settings.dataset).classes)
        if not names:
            raise ConfigError(f"--dataset {settings.dataset} keeps its class names with its files; "
                              "give them with --classes FILE (one a line)")
        origin = f"--dataset {settings.dataset}"
    elif isinstance(recorded.get("classes"), list):
        names, origin = [str(name) for name in recorded["classes"]], "the checkpoint"
    else:
        return [str(i) for i in range(count)]
    if len(names) != count:
        raise ConfigError(f"{origin} names {len(names)} classes, but the model scores {count}")
    return names


def _normalisation(settings: ImportSettings, built: Built, recorded: dict
                   ) -> tuple[list, list, str]:
    """Mean, std and how they were chosen: what the user states, else what a cnnzoo checkpoint
    ``recorded``, else none (x/255), except ImageNet's statistics for torchvision-layout weights,
    as torchvision's own weights expect."""
    channels = built.input_size[0]
    if settings.mean is not None or settings.std is not None:
        mean, std = settings.mean or [0.0] * channels, settings.std or [1.0] * channels
        for option, values in (("--mean", mean), ("--std", std)):
            if len(values) != channels:
                raise ConfigError(f"{option} gives {len(values)} values; the model takes "
                                  f"{channels} channels: give one per channel")
        return list(mean), list(std), "stated (--mean/--std)"
    trained = recorded.get("input") or {}
    mean, std = trained.get("mean"), trained.get("std")
    if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == channels:
        return ([float(v) for v in mean], [float(v) for v in std],
                "the checkpoint's own, as cnnzoo trained it (--mean/--std to change)")
    if built.torchvision_layout and channels == 3:
        return (list(IMAGENET_MEAN), list(IMAGENET_STD),
                "ImageNet statistics (torchvision-layout weights; --mean/--std to change)")
    return [0.0] * channels, [1.0] * channels, "none: pixels scaled to [0, 1] (--mean/--std to add)"


def _recorded(settings: ImportSettings) -> dict:
    """What a cnnzoo checkpoint recorded of its training (its input, its classes); {} for any
    other file."""
    return read_meta(settings.source) if settings.source.suffix == ".safetensors" else {}


def _data_size(dataset: str | None, side: int) -> int:
    """The side the data set's images are kept at: its own where smaller (resized per batch)."""
    if dataset is None:
        return side
    from cnnzoo.data.sources import get_source

    return min(side, get_source(dataset).image_shape[-1])


def _write(settings: ImportSettings, built: Built, meta: dict, config: dict) -> None:
    """The run directory, written as training writes one, then loaded back and checked."""
    out = settings.out
    with rundir.writer_lock(out):
        replacing = rundir.holds_run(out)
        if replacing and not settings.overwrite:
            raise RunDirectoryError(f"{out} already holds a run; pass --overwrite to replace it, "
                                    "or choose another --out")
        provisional = rundir.Provisional(out, replacing=replacing)
        try:
            rundir.make_run_dir(out)
            if built.kind in PROGRAM_FILES:
                rundir.write_bytes(out / PROGRAM_FILES[built.kind], settings.source.read_bytes())
            rundir.write_text(out / rundir.CONFIG, json.dumps(config, indent=2))
            with rundir.writing(out / rundir.BEST):
                save_checkpoint(out / rundir.BEST, model_state=built.state, meta=meta)
            _check_reloaded(out, built)
            provisional.keep()
        except BaseException:
            provisional.undo()
            raise


def _check_reloaded(out: Path, built: Built) -> None:
    """The run, loaded as every command will load it, must give the imported model's outputs."""
    x = torch.randn(2, *built.input_size, generator=torch.Generator().manual_seed(0))
    run = load_run(out, run_code=True)
    with torch.no_grad():
        gap = (run.model(x) - built.model(x)).abs().max().item()
    if not gap <= 1e-5:
        raise CheckpointError(f"{out}: the written run gives outputs {gap:.2e} away from the "
                              "imported model's; this is a bug in cnnzoo import")
