"""Checkpoints that survive crashes and never execute code when loaded.

A cnnzoo checkpoint is one safetensors file: the model's weights and buffers (``model.*``), the
optimiser's tensors (``optimizer.*``), the random-number states (``rng.*``) and, in the file's
metadata, a JSON document with everything else (epoch, step, configuration, class names,
normalisation, the optimiser's settings). safetensors holds only raw arrays and a JSON header, so
loading one cannot run code; a single file means the weights and the state that goes with them are
replaced together or not at all.

Writes go to a temporary file in the same directory, are flushed to disk, and then renamed over the
old file, which POSIX makes atomic: a crash at any point leaves either the old checkpoint or the new
one, never half of one. Plain PyTorch state dicts (``.pt``/``.pth``) can be imported for evaluation
and prediction; they are read with ``torch.load(weights_only=True)``, which refuses any pickle that
would construct arbitrary objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes

from cnnzoo.errors import CheckpointError, in_one_line
from cnnzoo.files import atomic_write_bytes

FORMAT = "cnnzoo-checkpoint-1"
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net")


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for name, value in info["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": info["param_groups"]}


def save_checkpoint(path: Path, *, model_state: dict[str, torch.Tensor], meta: dict[str, Any],
                    optimizer_state: dict | None = None, rng: dict[str, torch.Tensor] | None = None,
                    extra_tensors: dict[str, torch.Tensor] | None = None) -> None:
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    meta = dict(meta)
    if optimizer_state is not None:
        optimizer_tensors, meta["optimizer"] = _flatten_optimizer(optimizer_state)
        tensors.update(optimizer_tensors)
    for name, value in (rng or {}).items():
        tensors[f"rng.{name}"] = value
    tensors.update(extra_tensors or {})
    # safetensors wants contiguous CPU tensors that share no memory
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    data = save_safetensors_bytes(tensors, metadata={"format": FORMAT, "meta": json.dumps(meta)})
    atomic_write_bytes(path, data)


class Checkpoint:
    """A loaded checkpoint: tensors grouped by prefix, and the JSON metadata."""

    def __init__(self, path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.path, self.tensors, self.meta = path, tensors, meta

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        start = prefix + "."
        return {k[len(start):]: v for k, v in self.tensors.items() if k.startswith(start)}

    @property
    def model_state(self) -> dict[str, torch.Tensor]:
        return self.group("model")

    def optimizer_state(self) -> dict | None:
        if "optimizer" not in self.meta:
            return None
        tensors = {k: v for k, v in self.tensors.items() if k.startswith("optimizer.")}
        return _unflatten_optimizer(tensors, self.meta["optimizer"])


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a cnnzoo checkpoint (``.safetensors``) or a plain PyTorch state dict
    (``.pt``/``.pth``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such run directory or checkpoint file; give a folder "
                              "that `cnnzoo train --out` made, or a .safetensors, .pt or .pth file")
    if path.suffix in (".pt", ".pth"):
        return _load_torch_state_dict(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint ({error}); it may be truncated or not "
            "a cnnzoo checkpoint"
        ) from None
    if header.get("format") != FORMAT:
        # a bare safetensors file of weights (e.g. exported elsewhere): accept it as a model state
        # dict
        return Checkpoint(path, {f"model.{k}": v for k, v in tensors.items()}, {})
    return Checkpoint(path, tensors, _read_meta(path, header))


def read_meta(path: Path) -> dict:
    """A cnnzoo checkpoint's metadata alone, its tensors left unread (``{}`` for bare weights)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint ({error}); it may be truncated or not "
            "a cnnzoo checkpoint"
        ) from None
    return _read_meta(path, header) if header.get("format") == FORMAT else {}


def _read_meta(path: Path, header: dict[str, str]) -> dict:
    """The JSON object a cnnzoo checkpoint keeps under ``meta`` in its header; its contents are
    checked where they are used (``engine.run.load_run``, ``restore_last``)."""

    def damaged(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: a cnnzoo checkpoint whose metadata {what}; the file is "
                               "damaged: use another checkpoint of the run, or train again")

    if "meta" not in header:
        raise damaged("is missing (no 'meta' entry in its header)")
    try:
        meta = json.loads(header["meta"])
    except (ValueError, RecursionError) as error:  # not JSON, a number too long, nesting too deep
        raise damaged(f"is not valid JSON ({type(error).__name__}: {str(error)[:120]})") from None
    if not isinstance(meta, dict):
        raise damaged(f"is not a JSON object but {json.dumps(meta)[:40]}")
    return meta


def _load_torch_state_dict(path: Path) -> Checkpoint:
    import pickle
    import struct

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused to load: the file asks to construct objects that a plain state dict "
            f"does not need ({str(error).splitlines()[0]}). Loading it could run code from the "
            "file. Re-save only the weights (torch.save(model.state_dict(), ...)) or use "
            "safetensors."
        ) from None
    # a damaged file: zip or pickle structure broken (weights_only's unpickler raises all of these
    # on bad data)
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, LookupError, AttributeError,
            OverflowError, struct.error) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch file ({in_one_line(error)})"
                              ) from None
    # a training checkpoint saved from a notebook keeps the weights under one of these keys
    for key in STATE_DICT_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict (parameter name -> tensor)")
    return Checkpoint(path, {f"model.{k}": v for k, v in state.items()}, {})
