"""The settings of a training run, in one dataclass; ``config.json`` in each run directory is this, serialised."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from cnnzoo.errors import ConfigError


@dataclass
class TrainConfig:
    # what to train
    model: str = "lenet5"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None  # default: $CNNZOO_DATA, Debian's dataset packages, ~/.cache/cnnzoo
    model_kwargs: dict = field(default_factory=dict)  # extra builder arguments, e.g. {"dropout": 0.3}
    train_subset: int | None = None  # use only the first N training images (quick runs, tests)
    test_subset: int | None = None

    # how long
    epochs: int = 10
    time_budget: float | None = None  # seconds of training; stops the run (and shapes the schedule) when set

    # optimisation
    batch_size: int = 256
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05  # peak learning rate
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # constant | step | plateau | cosine | onecycle
    warmup_epochs: float = 0.0  # linear warm-up before cosine/step/constant (one-cycle has its own)
    step_epochs: int = 30  # step: divide by 10 every step_epochs
    plateau_patience: int = 2  # plateau (AlexNet's rule): divide by 10 after this many epochs without progress
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max global gradient norm
    ema_decay: float | None = None  # keep an exponential moving average of the weights and evaluate it

    # data and augmentation
    input_size: int | None = None  # image side fed to the model (default: the model's if it needs it)
    crop_padding: int = 0  # random crops of the padded image (0 = off)
    flip: bool = False  # random horizontal flips (wrong for digits; right for clothes and objects)
    pca_noise: float = 0.0  # AlexNet's PCA colour noise, std of α (the paper: 0.1); RGB data only
    test_views: str = "center"  # center | flip | ten-crop

    # runtime
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    channels_last: bool = True
    compile: bool = False
    threads: int | None = None  # CPU threads (default: torch's choice, one per core)
    seed: int = 0
    deterministic: bool = False
    out: str | None = None  # run directory (default runs/<model>-<dataset>-<timestamp>)
    checkpoint_every: int = 1  # epochs between `last` checkpoints

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
        data = json.loads(Path(path).read_text())
        data.pop("versions", None)
        return cls.from_dict(data)

    def validate(self) -> None:
        choices = {"optimizer": ("sgd", "adam", "adamw"),
                   "schedule": ("constant", "step", "plateau", "cosine", "onecycle"),
                   "test_views": ("center", "flip", "ten-crop"), "device": ("auto", "cpu", "cuda", "mps"),
                   "precision": ("auto", "fp32", "bf16", "fp16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be ≥ 1 (with a time budget it is the most that will run); got {self.epochs}")
        if self.batch_size < 1 or self.lr <= 0 or self.checkpoint_every < 1:
            raise ConfigError(f"batch_size, lr and checkpoint_every must be positive; got {self.batch_size}, {self.lr} "
                             f"and {self.checkpoint_every}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ConfigError(f"time_budget must be a positive number of seconds; got {self.time_budget}")
