"""Fuzzing the file readers: damaged IDX files, CIFAR pickles, checkpoints, run settings
(config.json) and images (grey, RGB and 16-bit PNG, JPEG, CMYK JPEG, animated GIF) raise only
cnnzoo's errors.

In the spirit of safetensors' own fuzzing: valid files are written in the real formats (IDX by
``write_idx``, raw and gzipped; CIFAR batches and meta files as Python 3 pickles at protocols 2 and
5 and as Python 2's cPickle wrote the official ones; checkpoints by ``save_last`` and
``save_checkpoint``; plain state dicts by ``torch.save``), then damaged: cut at every length (files
up to 1 KB; beyond, every length in the first and last 512 bytes and 1,024 between), bits flipped,
bytes overwritten, inserted, deleted and repeated, header fields set to edge values (IDX magic,
dimensions and sizes, inside an intact gzip stream too; pickle byte counts, memo indices and the
names a pickle asks for; the checkpoint header's entries and tensors), and the checkpoint's metadata
JSON changed value by value. Each damaged file goes to every reader of its format: ``read_idx``,
``read_idx_images``/``labels`` and ``idx_dims``; ``read_cifar_batch`` or ``read_cifar_meta``;
``load_run`` (which calls ``load_checkpoint``) and ``restore_last``; ``load_checkpoint`` and
``load_run`` for ``.pt`` files. Only ``CnnzooError`` subclasses may come out, each one line naming
the file.

Two JSON readers more: the autotuner's cache files (as ``write_entry`` writes them) through
``tuning_cache.load_entry``, whose warning for a damaged file must name it in one line and whose
answer must hold only timings the autotuner can use; and every shipped recipe through
``recipes.read_recipe``, then what ``--recipe`` and ``cnnzoo recipes`` make of it.

Memory is bounded with ``resource.setrlimit(RLIMIT_AS)``: each format runs in a worker process whose
address space may grow only ``MEMORY_HEADROOM_MIB`` past what it had after start-up, so an
allocation the file does not justify fails there (a ``MemoryError`` or PyTorch's allocation error is
an escape, not an answer); the worker also reports its peak resident memory (``ru_maxrss``). A crash
(a signal) fails the test and keeps the input.

``CNNZOO_FUZZ_CASES`` sets the number of random mutations, shared out over the formats (default
3,000, about 20 s in all; ``make fuzz`` runs 100,000), ``CNNZOO_FUZZ_SEED`` their seed; the cuts
come on top.
"""
from __future__ import annotations

import gzip
import itertools
import json
import os
import pickle
import pickletools
import random
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CASES = int(os.environ.get("CNNZOO_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("CNNZOO_FUZZ_SEED", "0"))
# checkpoint inputs cost ten times more
SHARE = {"idx": 0.4, "cifar": 0.4, "checkpoint": 0.15, "pt": 0.05,
         "json": 0.3, "image": 0.3, "tuning": 1.0, "recipe": 1.0}
MEMORY_HEADROOM_MIB = 512
SHORT_FILE = 1024  # files up to this size are cut at every length
EDGE_VALUES = (0, 1, 2, 3, 127, 128, 255, 256, 3072, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1,
               2**32, 2**63 - 1, 2**63, 2**64 - 1, 10**9)


# ----------------------------------------------------------------------------------- byte mutations


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random damage to ``data``: (what was done, the result)."""
    out, kind = bytearray(data), rng.choice(["flip", "overwrite", "insert", "delete", "truncate",
                                             "repeat"])
    at = rng.randrange(len(out) + 1)
    if kind == "flip" and out:
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == "overwrite" and out:
        at = min(at, len(out) - 1)
        value = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        out[at:at + rng.randint(1, 8)] = bytes([value]) * len(out[at:at + 8])
    elif kind == "insert":
        out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "delete":
        del out[at:at + rng.randint(1, 16)]
    elif kind == "repeat":
        start = rng.randrange(len(out) + 1)
        out[at:at] = out[start:start + rng.randint(1, 64)]
    else:
        del out[at:]
    return f"{kind} at {at}", bytes(out)


def cuts(data: bytes) -> list[tuple[str, bytes]]:
    """``data`` cut at every length (a short file), or at every length in its first and last 512
    bytes and at 1,024 lengths spread over it."""
    lengths = (
        range(len(data))
        if len(data) <= SHORT_FILE
        else sorted(
            set(range(512))
            | set(range(len(data) - 512, len(data)))
            | {len(data) * i // 1024 for i in range(1024)}
        )
    )
    return [(f"cut to {n}", data[:n]) for n in lengths]


def overwrite_field(data: bytes, offset: int, width: int, rng: random.Random, *,
                    byteorder: str) -> bytes:
    value = rng.choice(EDGE_VALUES + (rng.randrange(256**width),)) % 256**width
    return data[:offset] + value.to_bytes(width, byteorder) + data[offset + width:]


# ---------------------------------------------------------------------------------------------- IDX


def idx_seeds(work: Path) -> list[dict]:
    from cnnzoo.data.idx import write_idx

    rng, seeds = np.random.default_rng(0), []
    for name, array in (("images", rng.integers(0, 256, (3, 5, 5), dtype=np.uint8)),
                        ("images", rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)),
                        ("labels", rng.integers(0, 10, 20, dtype=np.uint8))):
        for compress in (False, True):
            write_idx(work / "seed", array, compress=compress)
            data = (work / "seed").read_bytes()
            # the gzip header's time: reproducible inputs
            data = data[:4] + bytes(4) + data[8:] if compress else data
            seeds.append({"kind": name, "bytes": data, "gzip": compress,
                          "raw": gzip.decompress(data) if compress else None})
    return seeds


def idx_mutation(seed: dict, rng: random.Random) -> tuple[str, bytes]:
    """Damage to the bytes on disk or, for a gzipped seed, to the IDX bytes inside an intact gzip
    stream."""
    inner = seed["gzip"] and rng.random() < 0.5
    data = seed["raw"] if inner else seed["bytes"]
    # a header field: magic, type, ndim or a size
    if rng.random() < 0.4 and (inner or not seed["gzip"]):
        what, offset = rng.choice([("magic", 0), ("type", 2), ("ndim", 3), ("size 0", 4),
                                   ("size 1", 8), ("size 2", 12)])
        width = 4 if what.startswith("size") or what == "magic" else 1
        what, data = f"{what} overwritten", overwrite_field(data, offset, width, rng,
                                                            byteorder="big")
    else:
        what, data = mutate_bytes(data, rng)
    return (f"inside gzip: {what}", gzip.compress(data, mtime=0)) if inner else (what, data)


def idx_readers(seed: dict) -> list:
    from cnnzoo.data import idx

    typed = idx.read_idx_images if seed["kind"] == "images" else idx.read_idx_labels
    return [idx.read_idx, typed, lambda path: idx.read_idx(path, limit=1), idx.idx_dims]


# -------------------------------------------------------------------------------------------- CIFAR


def python2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the official files hold it: Python 2's cPickle, protocol 2, byte-string keys and
    data, the array rebuilt by numpy.core.multiarray._reconstruct and its state set by BUILD; memo
    entries in order."""
    out, memo = [], iter(range(256))

    def emit(*pieces: bytes, memoize: bool = False) -> None:
        out.extend(pieces)
        if memoize:
            out.append(b"q" + bytes([next(memo)]))

    def text(value: bytes) -> None:
        emit(b"U" + bytes([len(value)]) + value, memoize=True)

    data = np.ascontiguousarray(images, dtype=np.uint8).tobytes()
    emit(b"\x80\x02}", memoize=True)
    emit(b"(")
    text(b"data")
    emit(b"cnumpy.core.multiarray\n_reconstruct\n", memoize=True)
    emit(b"cnumpy\nndarray\n", memoize=True)
    emit(b"K\x00\x85")
    text(b"b")
    emit(b"\x87R", memoize=True)
    emit(b"(K\x01K" + bytes([len(images)]) + b"M\x00\x0c\x86cnumpy\ndtype\n", memoize=True)
    text(b"u1")
    emit(b"K\x00K\x01\x87R", memoize=True)
    emit(b"(K\x03")
    text(b"|")
    emit(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89",
         b"T" + struct.pack("<i", len(data)) + data, memoize=True)
    emit(b"tb")
    text(b"labels")
    emit(b"]", memoize=True)
    emit(b"(" + b"".join(b"K" + bytes([v]) for v in labels) + b"e")
    text(b"batch_label")
    text(b"training batch 1 of 5")
    emit(b"u.")
    return b"".join(out)


def cifar_seeds(work: Path) -> list[dict]:
    from cnnzoo.data import cifar

    images, labels, seeds = np.random.default_rng(1).integers(0, 256, (2, 3, 32, 32),
                                                              dtype=np.uint8), [3, 9], []
    for protocol in (2, 5):
        cifar.write_cifar_batch(work / "seed", images, labels, protocol=protocol,
                                filenames=[b"a.png", b"b.png"])
        seeds.append({"kind": "batch", "bytes": (work / "seed").read_bytes()})
    seeds.append({"kind": "batch", "bytes": python2_batch(images, labels)})
    names = [name.encode() for name in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                        "frog", "horse", "ship", "truck")]
    for protocol in (2, 5):
        seeds.append({"kind": "meta", "bytes": pickle.dumps({b"label_names": names,
                                                             b"num_vis": 3072}, protocol)})
    for seed in seeds:  # where the byte counts and memo indices are, for overwriting them
        seed["fields"] = [
            (pos + 1, {-2: 1, -3: 4, -4: 4, -5: 8}.get(op.arg.n, op.arg.n))
            for op, _, pos in pickletools.genops(seed["bytes"])
            if op.arg is not None
            and (op.arg.n < -1 or op.name in ("BINPUT", "LONG_BINPUT", "FRAME"))
        ]
    return seeds


# Names a damaged or hostile pickle may ask for instead of the real ones (same length where
# possible).
SWAPS = [(b"dtype", b"loads"), (b"u1", b"O8"), (b"u1", b"V9"), (b"u1", b"i8"), (b"u1", b"U1"),
         (b"latin1", b"utf_16"),
         (b"latin1", b"zlib\x00\x00"), (b"_reconstruct", b"_frombuffer\x00"),
         (b"ndarray", b"ndindex"),
         (b"numpy", b"posix"), (b"numpy\ndtype", b"os\nsystem\x00\x00\x00"), (b"|", b"<"),
         (b"|", b"x")]


def cifar_mutation(seed: dict, rng: random.Random) -> tuple[str, bytes]:
    data, choice = seed["bytes"], rng.random()
    if choice < 0.3:  # a byte count, memo index or frame length set to an edge value
        offset, width = rng.choice(seed["fields"])
        return f"field at {offset} overwritten", overwrite_field(data, offset, width, rng,
                                                                 byteorder="little")
    swaps = [swap for swap in SWAPS if swap[0] in data]
    if choice < 0.4 and swaps:
        old, new = rng.choice(swaps)
        return f"{old!r} became {new!r}", data.replace(old, new, 1)
    return mutate_bytes(data, rng)


def cifar_readers(seed: dict) -> list:
    from cnnzoo.data import cifar

    if seed["kind"] == "batch":
        return [lambda path: cifar.read_cifar_batch(path, "labels", 10)]
    return [lambda path: cifar.read_cifar_meta(path, "label_names")]


# -------------------------------------------------------------------------------------- checkpoints


def _tiny_trainable(name: str, kwargs: dict):
    import torch

    from cnnzoo.engine.state import Trainable
    from cnnzoo.models.registry import create_model

    model = create_model(name, **kwargs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(
        torch.zeros(2, kwargs["in_channels"], kwargs["input_size"], kwargs["input_size"])
    ).sum().backward()
    optimizer.step()  # so that the optimiser has momentum tensors to save
    return Trainable(model, optimizer, torch.amp.GradScaler("cpu", enabled=False), None,
                     torch.Generator())


def checkpoint_seeds(work: Path) -> list[dict]:
    """A ``last`` (weights, optimiser, random states) and a ``best`` of a tiny MLP, a ``best`` of a
    tiny ConvNet."""
    import torch

    from cnnzoo.engine.checkpoint import save_checkpoint
    from cnnzoo.engine.state import RunState, save_last

    torch.manual_seed(0)  # reproducible weights and random states: reproducible inputs
    seeds = []
    for name, kwargs, last in (("mlp", {"hidden": [4]}, True), ("mlp", {"hidden": [4]}, False),
                               ("convnet", {"widths": [2, 3]}, False)):
        kwargs = {"num_classes": 3, "in_channels": 1, "input_size": 6, **kwargs}
        trainable = _tiny_trainable(name, kwargs)
        meta = {"model": name, "model_kwargs": kwargs, "classes": ["ant", "bee", "cat"],
                "dataset": "mnist",
                "input": {"size": 6, "mean": [0.5], "std": [0.25], "crop_padding": 1},
                "data_size": 6,
                "epoch": 1, "test_top1": 0.5, "run_state": vars(RunState(epoch=1, step=3))}
        if last:
            save_last(work / "seed", trainable, meta)
        else:
            save_checkpoint(work / "seed", model_state=trainable.model.state_dict(), meta=meta)
        seeds.append({"kind": name, "bytes": (work / "seed").read_bytes(), "meta": meta,
                      "kwargs": kwargs, "trainable": _tiny_trainable(name, kwargs)})
    return seeds


META_VALUES = (0, -1, 1, 3, 6, 4097, 10**6, 10**30, 1.5, float("nan"), float("inf"), "", "x" * 300,
               "mlp", "vgg19",
               "lenet5", None, True, [], {}, [0.5] * 3, [1] * 20000, [10**6, 10**6],
               {"hidden": [4]}, ["a"] * 3)


def mutate_meta(meta: object, rng: random.Random) -> tuple[str, object]:
    """``meta`` with one value somewhere inside replaced, removed or added (a deep copy; the path is
    reported)."""
    if rng.random() < 0.03:
        return "meta replaced", rng.choice(META_VALUES)
    meta = json.loads(json.dumps(meta))
    parent, key, path, node = None, None, "meta", meta
    while isinstance(node, (dict, list)) and node and (parent is None or rng.random() < 0.6):
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        parent, node, path = node, node[key], f"{path}.{key}"
    action = rng.choice(["replace", "replace", "delete", "add"])
    if action == "delete":
        del parent[key]
    elif action == "add" and isinstance(node, dict):
        node[rng.choice(["dropuot", "size", "extra", "hidden", "widths", "model"])] = rng.choice(
            META_VALUES
        )
    else:
        parent[key] = rng.choice(META_VALUES)
    return f"{action} {path}", meta


def checkpoint_mutation(seed: dict, rng: random.Random) -> tuple[str, bytes]:
    import torch
    from safetensors.torch import load, save

    from cnnzoo.engine.checkpoint import FORMAT

    choice = rng.random()
    if choice < 0.3:
        return mutate_bytes(seed["bytes"], rng)
    tensors = load(seed["bytes"])
    if choice < 0.4:  # the header's own fields and the weights themselves
        header = {"format": FORMAT, "meta": json.dumps(seed["meta"])}
        what = rng.choice(["no format", "other format", "no meta", "meta not JSON", "tensor gone",
                           "tensor reshaped", "tensor retyped", "tensor added"])
        names = sorted(tensors)
        victim = rng.choice(names)
        if what == "no format":
            del header["format"]
        elif what == "other format":
            header["format"] = "cnnzoo-checkpoint-0"
        elif what == "no meta":
            del header["meta"]
        elif what == "meta not JSON":
            header["meta"] = mutate_bytes(header["meta"].encode(), rng)[1].decode("latin1")
        elif what == "tensor gone":
            del tensors[victim]
        elif what == "tensor reshaped":
            tensors[victim] = tensors[victim].reshape(-1)[: max(tensors[victim].numel() - 1,
                                                                0)].clone()
        elif what == "tensor retyped":
            tensors[victim] = tensors[victim].to(rng.choice([torch.float16, torch.int64,
                                                             torch.bool]))
        else:
            tensors["model.extra"] = tensors[victim].clone()
        return f"{what} ({victim})", save(tensors, metadata=header)
    what, meta = mutate_meta(seed["meta"], rng)
    return what, save(tensors, metadata={"format": FORMAT, "meta": json.dumps(meta)})


def pt_seeds(work: Path) -> list[dict]:
    """Plain PyTorch state dicts (``torch.save``), bare and nested under "state_dict", of a tiny
    MLP."""
    import torch

    torch.manual_seed(0)
    state = _tiny_trainable("mlp", {"num_classes": 3, "in_channels": 1, "input_size": 6,
                                    "hidden": [4]}).model
    seeds = []
    for saved in (state.state_dict(), {"state_dict": state.state_dict(), "epoch": 3}):
        torch.save(saved, work / "seed.pt")
        seeds.append({"kind": "pt", "bytes": (work / "seed.pt").read_bytes()})
    return seeds


def pt_readers(seed: dict) -> list:
    from cnnzoo.engine.checkpoint import load_checkpoint
    from cnnzoo.engine.run import load_run

    # mlp's defaults do not fit
    return [load_checkpoint, lambda path: load_run(path, model_name="mlp")]


def checkpoint_readers(seed: dict) -> list:
    from cnnzoo.engine.run import load_run
    from cnnzoo.engine.state import restore_last

    return [load_run, lambda path: restore_last(path, seed["trainable"])]


def json_seeds(work: Path) -> list[dict]:
    """A run's config.json as training writes it (with its versions), for two runs."""
    from cnnzoo.engine.config import TrainConfig

    settings = [TrainConfig(model="lenet5", dataset="mnist").to_dict(),
                TrainConfig(model="mlp", dataset="fashion-mnist", model_kwargs={"hidden": [16]},
                            epochs=3, time_budget=60.0, out="runs/x").to_dict()]
    return [{"kind": "json", "value": {**value, "versions": {"cnnzoo": "0", "torch": "2"}},
             "bytes": json.dumps({**value, "versions": {"cnnzoo": "0", "torch": "2"}},
                                 indent=2).encode()}
            for value in settings]


def json_mutation(seed: dict, rng: random.Random) -> tuple[str, bytes]:
    if rng.random() < 0.5:
        return mutate_bytes(seed["bytes"], rng)
    what, value = mutate_meta(seed["value"], rng)
    return what, json.dumps(value).encode()


def json_readers(seed: dict) -> list:
    from cnnzoo import rundir
    from cnnzoo.engine.config import TrainConfig

    return [TrainConfig.from_json, lambda path: rundir.read_json(path, "run's settings")]


def image_seeds(work: Path) -> list[dict]:
    """Images as users have them: grey and RGB PNGs, a 16-bit PNG, a JPEG, a CMYK JPEG and an
    animated GIF."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    pictures = [
        ("PNG", Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8))),
        ("PNG", Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))),
        ("PNG", Image.fromarray(rng.integers(0, 65535, (20, 20), dtype=np.uint16))),
        ("JPEG", Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))),
        (
            "JPEG",
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).convert("CMYK"),
        ),
    ]
    seeds = []
    for fmt, picture in pictures:
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt)
        seeds.append({"kind": "image", "bytes": buffer.getvalue()})
    frames = [
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).convert("P")
        for _ in range(3)
    ]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50,
                   loop=0)
    return [*seeds, {"kind": "image", "bytes": buffer.getvalue()}]


def image_readers(seed: dict) -> list:
    from cnnzoo.data.folder import load_image, open_image

    return [lambda path: load_image(path, channels=1, size=28), lambda path: open_image(path, 3)]


# ------------------------------------------------------------------------ tuning cache, recipes

TUNING_PARTS = {"machine": "AMD EPYC [avx, avx2, fma]", "threads": 2, "model": "lenet5_bn",
                "model_kwargs": {"width": 0.5}, "input_side": 28, "batch_size": 256,
                "torch": "2.13.0+cpu"}


def tuning_seeds(work: Path) -> list[dict]:
    """Cache files as the autotuner writes them: step times (and the load), and with a trial."""
    from cnnzoo.engine import tuning_cache

    steps = {"fp32/nchw": 0.0301, "fp32/channels-last": 0.041, "bf16/nchw": 0.012,
             "bf16/channels-last": 0.0205}
    trial = {"eager_ms": 12.0, "compiled_ms": 9.5, "compile_s": 41.25}
    seeds = []
    for entry in ({"steps": steps, "load": 0.4}, {"steps": steps, "compile": {"bf16/nchw": trial}}):
        data = tuning_cache.write_entry(TUNING_PARTS, entry).read_bytes()
        seeds.append({"kind": "tuning", "bytes": data, "value": json.loads(data)})
    return seeds


def tuning_readers(seed: dict) -> list:
    """The cache as the autotuner reads it. A damaged file is no error there but a warning: raised
    here, so that the campaign checks it as it checks errors (one line naming the file)."""
    from cnnzoo.engine import tuning_cache
    from cnnzoo.errors import DataFormatError

    def read(path: Path) -> None:
        entry, warning = tuning_cache.load_entry(TUNING_PARTS)
        trials = entry.get("compile", {}).values()
        times = [*entry.get("steps", {}).values(), *(t for trial in trials for t in trial.values())]
        assert set(entry) <= {"steps", "compile"} and (warning is None or entry == {}), entry
        assert all(set(trial) == {"eager_ms", "compiled_ms", "compile_s"}
                   and trial["compiled_ms"] > 0 for trial in trials), entry  # read, divided by
        assert all(type(t) is float and 0 <= t < float("inf") for t in times), entry
        assert all(s > 0 for s in entry.get("steps", {}).values()), entry
        if warning is not None:
            raise DataFormatError(warning)

    return [read]


def recipe_seeds(work: Path) -> list[dict]:
    """Every recipe cnnzoo ships, as it lies beside ``cnnzoo.recipes``."""
    import cnnzoo.recipes

    files = sorted(Path(cnnzoo.recipes.__file__).parent.glob("*.json"))
    return [{"kind": "recipe", "bytes": p.read_bytes(), "value": json.loads(p.read_bytes())}
            for p in files]


def recipe_readers(seed: dict) -> list:
    from cnnzoo.recipes import model_settings, read_recipe

    def read(path: Path) -> None:
        recipe = read_recipe(path)
        recipe.train_config()  # what `cnnzoo train --recipe` runs
        # what `cnnzoo recipes` prints of it
        assert f"{model_settings(recipe.config)} {recipe.budget_seconds:>6.0f}s"
        assert f"{recipe.target_top1:>7.0%}"

    return [read]


def input_path(fmt: str, work: Path) -> Path:
    """Where ``fmt``'s inputs are written (every message must name it): for the tuning cache, the
    file ``TUNING_PARTS`` name in the folder ``$CNNZOO_TUNING_CACHE`` names (set here, a worker)."""
    if fmt == "tuning":
        from cnnzoo.engine import tuning_cache

        os.environ[tuning_cache.CACHE_ENV] = str(work)
        return work / f"{tuning_cache.cache_key(TUNING_PARTS)}.json"
    return work / f"fuzz-{fmt}-input{ {'pt': '.pt', 'recipe': '.json'}.get(fmt, '') }"


# ------------------------------------------------------------------------------------------- worker

FORMATS = {
    "json": (json_seeds, json_mutation, json_readers),
    "image": (image_seeds, lambda seed, rng: mutate_bytes(seed["bytes"], rng), image_readers),
    "idx": (idx_seeds, idx_mutation, idx_readers),
    "cifar": (cifar_seeds, cifar_mutation, cifar_readers),
    "checkpoint": (checkpoint_seeds, checkpoint_mutation, checkpoint_readers),
    "pt": (pt_seeds, lambda seed, rng: mutate_bytes(seed["bytes"], rng), pt_readers),
    "tuning": (tuning_seeds, json_mutation, tuning_readers),
    "recipe": (recipe_seeds, json_mutation, recipe_readers),
}


def _address_space() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def campaign(fmt: str, cases: int, seed: int, work: Path) -> dict:
    """Every cut of every seed, then ``cases`` random mutations, through every reader of ``fmt``."""
    from cnnzoo.errors import CnnzooError

    make_seeds, mutate, readers = FORMATS[fmt]
    path = input_path(fmt, work)
    seeds, rng = make_seeds(work), random.Random(seed)
    # the seeds are valid (the first reader accepts each), and the readers warm up
    for item in seeds:
        path.write_bytes(item["bytes"])
        first, *others = readers(item)
        first(path)
        for read in others:  # restore_last refuses a best checkpoint
            try:
                read(path)
            except CnnzooError:
                pass
    limit = _address_space() + MEMORY_HEADROOM_MIB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cut_count = sum(len(cuts(item["bytes"])) for item in seeds)
    inputs = itertools.chain(
        ((item, what, data) for item in seeds for what, data in cuts(item["bytes"])),
        ((item, *mutate(item, rng)) for item in (rng.choice(seeds) for _ in range(cases))),
    )
    report = {"format": fmt, "inputs": cut_count + cases, "cuts": cut_count, "mutations": cases,
              "outcomes": {}, "escaped": [], "badly_worded": [], "slowest_seconds": 0.0}
    start, handle = time.perf_counter(), os.open(path, os.O_RDWR)
    for number, (item, what, data) in enumerate(inputs):
        # rewriting in place: opening with O_TRUNC costs milliseconds on some disks
        os.pwrite(handle, data, 0)
        os.ftruncate(handle, len(data))
        for read in readers(item):
            began = time.perf_counter()
            try:
                read(path)
                outcome = "read"
            except CnnzooError as error:
                outcome = type(error).__name__
                if str(path) not in str(error) or len(str(error).splitlines()) != 1:
                    report["badly_worded"].append(f"{what}: {error}"[:400])
            except Exception as error:  # noqa: BLE001 - what the fuzzer looks for
                outcome = f"ESCAPED {type(error).__name__}"
                if len(report["escaped"]) < 20:
                    kept = work / f"escaped-{number}"
                    kept.write_bytes(data)
                    report["escaped"].append(
                        f"{what} ({kept}): {type(error).__name__}: {error}"[:400]
                    )
            report["slowest_seconds"] = max(report["slowest_seconds"], time.perf_counter() - began)
            report["outcomes"][outcome] = report["outcomes"].get(outcome, 0) + 1
    os.close(handle)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["rss_growth_mib"] = round(report["peak_rss_mib"] - rss_before / 1024, 1)
    report["address_space_limit_mib"] = round(limit / 2**20)
    return report


def run_worker(fmt: str, cases: int, work: Path) -> dict:
    """``campaign`` in a fresh process (the address-space limit stays there; a crash cannot take
    pytest down)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, __file__, fmt, str(cases), str(SEED), str(work)],
                            capture_output=True, text=True, env=env, timeout=120 + cases * 0.05)
    if result.returncode != 0:
        kept = max(work.iterdir(), key=lambda path: path.stat().st_mtime, default=work)
        pytest.fail(f"the {fmt} worker failed with status {result.returncode} (the input it was "
                    f"reading: {kept}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_damaged_files_raise_only_cnnzoo_errors_naming_the_file(fmt, tmp_path):
    report = run_worker(fmt, max(1, round(CASES * SHARE[fmt])), tmp_path)
    print(
        f"\n{fmt}: {report['inputs']:,} inputs ({report['cuts']:,} cuts, {report['mutations']:,} "
        f"mutations) in {report['seconds']} s, slowest {report['slowest_seconds']:.3f} s; peak RSS "
        f"{report['peak_rss_mib']} MiB (+{report['rss_growth_mib']} while fuzzing, address space "
        f"capped at {report['address_space_limit_mib']} MiB); "
        f"{json.dumps(report['outcomes'], sort_keys=True)}"
    )
    assert report["escaped"] == []
    assert report["badly_worded"] == []
    assert (
        report["outcomes"].get(
            "CheckpointError" if fmt in ("checkpoint", "pt") else "DataFormatError", 0
        )
        > 0
    )


def test_the_python2_batch_reads_as_the_official_files_do(tmp_path):
    from cnnzoo.data import cifar

    images = np.random.default_rng(2).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    (tmp_path / "data_batch_1").write_bytes(python2_batch(images, [0, 4, 9]))
    parsed, labels = cifar.read_cifar_batch(tmp_path / "data_batch_1", "labels", 10)
    np.testing.assert_array_equal(parsed, images)
    assert labels.tolist() == [0, 4, 9]


if __name__ == "__main__":  # the worker: python tests/test_fuzz.py FORMAT CASES SEED WORK_DIR
    print(json.dumps(campaign(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))))
