"""Models that are not cnnzoo architectures, as ``cnnzoo import`` records them and ``load_run``
rebuilds them.

Three kinds, by what loading one runs:

- ``torchscript`` and ``exported`` (a ``torch.export`` ExportedProgram, ``.pt2``): the file is
  kept in the run directory and loaded with ``torch.jit.load`` / ``torch.export.load``, which
  rebuild a graph of PyTorch operations and run no Python from the file. ``ProgramModel`` wraps
  it with the ``cfg`` every view reads. Its layers are one compiled program, so hooks cannot see
  them (``hooks_unavailable`` says why, and the views that need hooks say so in one line).
- ``code``: a class (or function) in the user's own Python file, with its weights in the run's
  checkpoint. Loading it runs that file, so it happens only when the caller passes ``run_code``
  (``--run-code``), and only if the file is still the one that was imported (its SHA-256 is
  recorded).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from cnnzoo.errors import CheckpointError, ConfigError
from cnnzoo.models.base import ModelConfig, check_input

PROGRAM_FILES = {"torchscript": "model.torchscript.pt", "exported": "model.pt2"}


def imported_config(name: str, input_size: tuple[int, int, int], num_classes: int) -> ModelConfig:
    """What the views need to know of a model cnnzoo did not build: it takes exactly the input it
    was imported at (its head may be sized for it), and cannot be rebuilt for another."""
    return ModelConfig(name, tuple(input_size), num_classes, min_size=input_size[1],
                       fixed_size=True, resizable=False, mean=(0.0,) * input_size[0],
                       std=(1.0,) * input_size[0])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ProgramModel(nn.Module):
    """A TorchScript module or an ExportedProgram's module, with the ``cfg`` of its recorded input.

    An ExportedProgram traced at a fixed batch size (``batch``) guards it: batches are run in chunks
    of that size, the last one padded, so evaluation and the views can send any number of images.
    """

    def __init__(self, program: nn.Module, cfg: ModelConfig, kind: str, batch: int | None) -> None:
        super().__init__()
        self.program, self.cfg, self.kind, self.batch = program, cfg, kind, batch
        what = "a TorchScript file" if kind == "torchscript" else "an ExportedProgram (.pt2)"
        self.hooks_unavailable = (f"{cfg.name} is {what}, whose layers run as one compiled program "
                                  "that hooks cannot see into")

    def train(self, mode: bool = True) -> ProgramModel:
        # an exported graph keeps the mode it was traced in and refuses train()/eval()
        self.training = mode
        if self.kind == "torchscript":
            self.program.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self.cfg, x)
        if self.batch is None or len(x) == self.batch:
            return self.program(x)
        outputs = []
        for chunk in x.split(self.batch):
            count = len(chunk)
            if count < self.batch:
                chunk = torch.cat([chunk, chunk.new_zeros(self.batch - count, *chunk.shape[1:])])
            outputs.append(self.program(chunk)[:count])
        return torch.cat(outputs)


def read_program(path: Path, kind: str) -> tuple[nn.Module, tuple[int, ...] | None]:
    """The module in a TorchScript or ``.pt2`` file and, for ``.pt2``, the input shape it was
    exported at, a dynamic dimension as None."""
    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu").eval(), None
        program = torch.export.load(str(path))
        return program.module(), _exported_shape(program)
    except Exception as error:  # noqa: BLE001  (any failure of a foreign file is the file's)
        detail = (str(error).splitlines() or [""])[0][:200]
        what = "TorchScript" if kind == "torchscript" else "torch.export (.pt2)"
        raise CheckpointError(f"{path}: not a readable {what} file ({type(error).__name__}: "
                              f"{detail})") from None


def _exported_shape(program) -> tuple[int | None, ...] | None:
    """The first user input's shape in an ExportedProgram, a dynamic dimension as None."""
    names = list(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and names and node.name == names[0]:
            value = node.meta.get("val")
            if value is None:
                return None
            return tuple(d if isinstance(d, int) else None for d in value.shape)
    return None


def program_model(path: Path, kind: str, cfg: ModelConfig) -> ProgramModel:
    module, shape = read_program(path, kind)
    return ProgramModel(module, cfg, kind, shape[0] if shape else None)


def code_model(code: Path, attribute: str, arguments: dict | list | None) -> nn.Module:
    """Run the user's ``code`` file and call its ``attribute`` (a class or a function) with
    ``arguments`` (a JSON list or object): the model, not yet with its weights."""
    if not code.is_file():
        raise ConfigError(f"--code {code}:{attribute}: no such file")
    folder = str(code.resolve().parent)
    sys.path.insert(0, folder)  # so that the file can import its neighbours, as in its own notebook
    try:
        spec = importlib.util.spec_from_file_location(f"cnnzoo_user_{code.stem}", code)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        make = getattr(module, attribute, None)
        if make is None:
            raise ConfigError(f"--code {code}:{attribute}: the file defines no {attribute!r}")
        args, kwargs = (arguments, {}) if isinstance(arguments, list) else ([], arguments or {})
        model = make(*args, **kwargs)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001  (the user's code: its error is theirs to fix)
        detail = (str(error).splitlines() or [""])[0][:200]
        raise ConfigError(f"--code {code}:{attribute}: running it failed ({type(error).__name__}: "
                          f"{detail}); fix the file or the --code-args") from None
    finally:
        sys.path.remove(folder)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--code {code}:{attribute} returned a {type(model).__name__}, not an "
                          "nn.Module")
    return model


def load_imported(path: Path, meta: dict, state: dict[str, torch.Tensor], *, run_code: bool
                  ) -> tuple[nn.Module, ModelConfig]:
    """The model of an imported run's checkpoint ``path`` (its ``meta['imported']`` says how)."""
    info, run_dir = meta["imported"], path.parent.parent
    damaged = CheckpointError(f"{path}: the record of its import is damaged; import the model "
                              "again with `cnnzoo import`")
    try:
        shape = tuple(int(v) for v in meta["input_size"])
        cfg = imported_config(str(meta["model"]), shape, int(meta["num_classes"]))
        kind = str(info["format"])
        if kind == "code" and not (all(isinstance(info.get(k), str) for k in
                                       ("code", "attribute", "sha256"))
                                   and isinstance(info.get("arguments"), (list, dict, type(None)))):
            raise ValueError
    except (KeyError, TypeError, ValueError, AttributeError):
        raise damaged from None
    if len(shape) != 3 or not all(0 < side <= 4096 for side in shape):
        raise damaged
    if kind in PROGRAM_FILES:
        return program_model(run_dir / PROGRAM_FILES[kind], kind, cfg), cfg
    if kind != "code":
        raise CheckpointError(f"{path}: imported as {kind!r}, a format this cnnzoo does not know")
    code = Path(info["code"])
    where = f"the {info['attribute']!r} of {code} (imported with --code)"
    if not run_code:
        raise ConfigError(f"{run_dir}: its model is {where}, and loading it runs that file's "
                          "Python; pass --run-code (in Python: run_code=True) if you trust it")
    if not code.is_file() or sha256_of(code) != info["sha256"]:
        raise ConfigError(f"{run_dir}: its model is {where}, which has changed or gone since the "
                          "import; import it again with `cnnzoo import --code`")
    model = code_model(code, info["attribute"], info.get("arguments"))
    model.load_state_dict(state)
    model.cfg = cfg
    return model, cfg
