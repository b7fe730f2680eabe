"""The settings of a training run, in one dataclass; ``config.json`` in each run directory is this, serialised.

Each field carries its own help text and allowed values (``option(...)``), so ``cnnzoo train --help``, the
validation and the Python API all read the same declaration. A ``TrainConfig`` is validated once, when it is
built (``__post_init__``; ``dataclasses.replace`` builds a new one and so validates again): code that holds one
can trust it. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.errors import CheckpointError, ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "plateau", "cosine", "onecycle")
TEST_VIEWS = ("center", "flip", "ten-crop")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def option(default, help: str, *, minimum: float | None = None, above: float | None = None,
           below: float | None = None, choices: tuple[str, ...] | None = None, cli: bool = True):
    """A dataclass field with its help text and allowed range (``minimum`` ≤ v, ``above`` < v, v < ``below``)."""
    meta = {"help": help, "minimum": minimum, "above": above, "below": below, "choices": choices, "cli": cli}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # what to train
    model: str = option("lenet5", "registered model name (see `cnnzoo list`)")
    dataset: str = option("fashion-mnist", "fashion-mnist, mnist, cifar10, cifar100 or folder:PATH "
                                           "(one sub-folder per class)")
    data_dir: str | None = option(None, "where the dataset files are (default: $CNNZOO_DATA, Debian's "
                                        "packages, ~/.cache/cnnzoo)")
    model_kwargs: dict = option({}, "extra builder arguments, e.g. {\"dropout\": 0.3}", cli=False)
    train_subset: int | None = option(None, "train on a seeded random N of the training images", minimum=1)
    test_subset: int | None = option(None, "evaluate on a seeded random N of the test images", minimum=1)
    memory_budget: float | None = option(None, "MiB of decoded images an image folder may take in memory; "
                                               "bigger folders are streamed (0: always stream; default 2048)",
                                         minimum=0)

    # how long
    epochs: int = option(10, "number of passes over the training set (with --time-budget, the most that run)",
                         minimum=1)
    time_budget: float | None = option(None, "stop after this many seconds of training (the schedule is "
                                             "stretched to fit it)", above=0)

    # optimisation
    batch_size: int = option(256, "images per optimiser step", minimum=1)
    optimizer: str = option("sgd", "sgd, adam or adamw", choices=OPTIMIZERS)
    lr: float = option(0.05, "peak learning rate", above=0)
    momentum: float = option(0.9, "SGD momentum", minimum=0, below=1)
    nesterov: bool = option(True, "Nesterov momentum for SGD")
    weight_decay: float = option(5e-4, "L2 penalty on weights (not on biases or BatchNorm scales)", minimum=0)
    schedule: str = option("onecycle", "learning-rate schedule: constant, step, plateau (AlexNet's ÷10), "
                                       "cosine, onecycle", choices=SCHEDULES)
    warmup_epochs: float = option(0.0, "linear warm-up length, in epochs (cosine, step, constant)", minimum=0)
    step_epochs: int = option(30, "step schedule: divide the rate by 10 every N epochs", minimum=1)
    plateau_patience: int = option(2, "plateau schedule: epochs without progress before dividing by 10",
                                   minimum=1)
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy (e.g. 0.1)", minimum=0, below=1)
    grad_clip: float | None = option(None, "clip the global gradient norm to this value", above=0)
    ema_decay: float | None = option(None, "evaluate an exponential moving average of the weights (e.g. 0.999)",
                                     above=0, below=1)

    # data and augmentation
    input_size: int | None = option(None, "image side fed to the model (default: the data's, or the model's "
                                          "if it needs its own)", minimum=1)
    crop_padding: int = option(0, "random crops after zero-padding each side by N pixels (0: off)", minimum=0)
    flip: bool = option(False, "random horizontal flips (off by default: wrong for digits)")
    pca_noise: float = option(0.0, "AlexNet's PCA colour noise, std of α (the paper: 0.1); RGB data only",
                              minimum=0)
    test_views: str = option("center", "center, flip (average with the mirror image; for runs with --flip) or "
                                       "ten-crop (for runs with --crop-padding)", choices=TEST_VIEWS)

    # runtime
    device: str = option("auto", "auto, cpu, cuda or mps", choices=DEVICES)
    precision: str = option("auto", "auto (fastest the hardware supports well), fp32, bf16 or fp16",
                            choices=PRECISIONS)
    channels_last: bool = option(True, "NHWC memory layout (faster convolutions on CPU and GPU)")
    compile: bool = option(False, "compile the model with torch.compile")
    threads: int | None = option(None, "CPU threads (default: one per core)", minimum=1)
    seed: int = option(0, "random seed for initialisation, data order and augmentation", minimum=0)
    deterministic: bool = option(False, "use deterministic algorithms only (slower on GPU)")
    out: str | None = option(None, "run directory (default runs/<model>-<dataset>-<timestamp>)")
    checkpoint_every: int = option(1, "write the `last` checkpoint every N epochs", minimum=1)
    dist_timeout: float = option(300.0, "under torchrun: seconds a process waits for the others in a collective "
                                        "before the job stops, naming the ranks that did not answer", above=0)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_value(f, getattr(self, f.name))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; valid ones: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: Path) -> "TrainConfig":
        """The configuration saved in a run directory's ``config.json``."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file; is {Path(path).parent} a cnnzoo run directory?") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{path}: not a readable run configuration ({error})") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: not a run configuration (a JSON object was expected)")
        data.pop("versions", None)
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise CheckpointError(f"{path}: {error}") from None


def flag(name: str) -> str:
    """The command-line spelling of a setting: ``batch_size`` → ``--batch-size``."""
    return "--" + name.replace("_", "-")


def check_value(f: dataclasses.Field, value) -> None:
    """Raise ``ConfigError`` naming the option unless ``value`` is allowed for the field ``f``."""
    meta = f.metadata
    if value is None and f.default is None:
        return
    expected = {"bool": bool, "str": str, "dict": dict}.get(str(f.type).split(" ")[0])
    if expected is not None:
        if not isinstance(value, expected):
            raise ConfigError(f"{flag(f.name)} must be a {expected.__name__}; got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{flag(f.name)} must be a finite number; got {value!r}")
    elif str(f.type).startswith("int") and value != int(value):
        raise ConfigError(f"{flag(f.name)} must be a whole number; got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{flag(f.name)} must be one of {', '.join(meta['choices'])}; got {value!r}")
    low, above, below = meta.get("minimum"), meta.get("above"), meta.get("below")
    if (low is not None and value < low) or (above is not None and value <= above) or \
            (below is not None and value >= below):
        bounds = [f"≥ {low}" if low is not None else "", f"> {above}" if above is not None else "",
                  f"< {below}" if below is not None else ""]
        raise ConfigError(f"{flag(f.name)} must be {' and '.join(b for b in bounds if b)}; got {value!r}")
