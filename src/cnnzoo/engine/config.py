"""The settings of a training run, in one dataclass; ``config.json`` in each run directory is this,
serialised.

Each field carries its own help text and allowed values (``option(...)``), so ``cnnzoo train
--help``, the validation and the Python API all read the same declaration. A ``TrainConfig`` is
validated once, when it is built (``__post_init__``; ``dataclasses.replace`` builds a new one and so
validates again): code that holds one can trust it. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.data.names import absolute
from cnnzoo.errors import CheckpointError, ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "muon")
SCHEDULES = ("constant", "step", "plateau", "cosine", "onecycle")
TEST_VIEWS = ("center", "flip", "flip-shift", "ten-crop")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# what predict, eval, export and the explorer answer in: fp32, or a reduced precision the accuracy
# gate (engine/precision_gate.py) checked against it
ANSWER_PRECISIONS = ("fp32", "bf16", "int8")
COMPILE = ("auto", "on", "off")
SNAPSHOTS = ("auto", "all", "off")  # or the epochs themselves: "0,1,2,5,10"
MAX_SIDE = 4096  # pixels: a side beyond it would need terabytes per batch


def answer_precision(precision: str) -> str:
    """``precision`` when it is one of ``ANSWER_PRECISIONS``, else a ``ConfigError`` naming them."""
    if precision not in ANSWER_PRECISIONS:
        raise ConfigError(f"precision must be {', '.join(ANSWER_PRECISIONS[:-1])} or "
                          f"{ANSWER_PRECISIONS[-1]}; got {precision!r}")
    return precision


# The groups of `cnnzoo train --help`, in order.
WHAT, HOW_LONG, OPTIMISATION, DATA, RUNTIME = ("what to train", "how long", "optimisation",
                                               "data and augmentation", "runtime")


def option(group: str, default, help: str, *, minimum: float | None = None,
           above: float | None = None,
           below: float | None = None, maximum: float | None = None,
           choices: tuple[str, ...] | None = None):
    """A dataclass field: its ``group`` in ``cnnzoo train --help``, default, help text and allowed
    values (``minimum`` ≤ v, ``above`` < v, v < ``below``, v ≤ ``maximum``, or one of ``choices``).
    Every number has an upper end: a value past it is a typo (``--epochs 10000000``), not a plan,
    and would fail much later."""
    meta = {"help": help, "group": group, "minimum": minimum, "above": above, "below": below,
            "maximum": maximum, "choices": choices}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    model: str = option(WHAT, "lenet5", "registered model name (see `cnnzoo list`); needed unless "
                                        "--recipe or --resume says what to train")
    dataset: str = option(WHAT, "fashion-mnist", "fashion-mnist, mnist, cifar10, cifar100 or "
                                                 "folder:PATH (one sub-folder per class)")
    data_dir: str | None = option(WHAT, None, "where the dataset files are (default: "
                                              "$CNNZOO_DATA, Debian's packages, ~/.cache/cnnzoo)")
    model_kwargs: dict = option(WHAT, {}, "extra builder arguments, e.g. {\"dropout\": 0.3}")
    train_subset: int | None = option(WHAT, None, "train on a seeded random N of the training "
                                                  "images", minimum=1,
                                      maximum=10**8)
    test_subset: int | None = option(WHAT, None, "evaluate on a seeded random N of the test "
                                                 "images", minimum=1,
                                     maximum=10**8)
    memory_budget: float | None = option(WHAT, None, "MiB of decoded images an image folder may "
                                                     "take in memory; bigger folders are streamed "
                                                     "(0: always; default 2048)",
                                         minimum=0, maximum=2**24)

    epochs: int = option(HOW_LONG, 10, "passes over the training set (with --time-budget, the "
                                       "most that run)",
                         minimum=1, maximum=10**5)
    time_budget: float | None = option(HOW_LONG, None, "stop after this many seconds of training "
                                                       "(the schedule "
                                                       "is stretched to fit it)", above=0,
                                       maximum=10**7)

    batch_size: int = option(OPTIMISATION, 256, "images per optimiser step", minimum=1,
                             maximum=2**20)
    optimizer: str = option(OPTIMISATION, "sgd", "sgd, adam, adamw or muon (Muon for "
                                                  "convolution filters, Nesterov SGD for the "
                                                  "rest; see --muon-lr)", choices=OPTIMIZERS)
    lr: float = option(OPTIMISATION, 0.05, "peak learning rate", above=0, maximum=100)
    momentum: float = option(OPTIMISATION, 0.9, "momentum of SGD and Muon", minimum=0, below=1)
    nesterov: bool = option(OPTIMISATION, True, "Nesterov momentum for SGD and Muon")
    weight_decay: float = option(OPTIMISATION, 5e-4, "L2 penalty on weights (not on biases or "
                                                     "BatchNorm scales)",
                                 minimum=0, maximum=1)
    schedule: str = option(OPTIMISATION, "onecycle", "learning-rate schedule: constant, step, "
                                                     "plateau (AlexNet's "
                                                     "÷10), cosine, onecycle", choices=SCHEDULES)
    warmup_epochs: float = option(OPTIMISATION, 0.0, "linear warm-up length, in epochs (cosine, "
                                                     "step, constant)",
                                  minimum=0, maximum=10**5)
    step_epochs: int = option(OPTIMISATION, 30, "step schedule: divide the rate by 10 every N "
                                                "epochs", minimum=1,
                              maximum=10**5)
    plateau_patience: int = option(OPTIMISATION, 2, "plateau schedule: epochs without progress "
                                                    "before dividing "
                                                    "by 10", minimum=1, maximum=10**5)
    label_smoothing: float = option(OPTIMISATION, 0.0, "label smoothing of the cross-entropy "
                                                       "(e.g. 0.1)", minimum=0,
                                    below=1)
    grad_clip: float | None = option(OPTIMISATION, None, "clip the global gradient norm to this "
                                                         "value", above=0,
                                     maximum=10**6)
    ema_decay: float | None = option(OPTIMISATION, None, "evaluate an exponential moving average "
                                                         "of the weights "
                                                         "(e.g. 0.999)", above=0, below=1)
    muon_lr: float = option(OPTIMISATION, 0.2, "learning rate of the convolution filters under "
                                               "--optimizer muon (the other parameters take "
                                               "--lr); follows the schedule as --lr does",
                            above=0, maximum=10)
    muon_fixed_norm: bool = option(
        OPTIMISATION, False, "under --optimizer muon: hold each convolution filter bank at norm "
        "√(output channels) before every step (airbench's Muon), so that the schedule alone sets "
        "how far a step turns it; for filters followed by a normalisation layer, which undoes the "
        "scale. It wants a far smaller --muon-lr (0.02–0.05 on budgetnet)")
    bn_bias_lr: float = option(OPTIMISATION, 1.0, "multiply the learning rate of the biases of "
                                                  "normalisation layers (BatchNorm, GroupNorm, "
                                                  "LayerNorm) by this (airbench: 64); they are "
                                                  "never weight-decayed", above=0, maximum=1000)
    dirac_init: bool = option(OPTIMISATION, False, "start each trainable stride-1 convolution with "
                                                   "an odd square kernel and at least as many "
                                                   "outputs as inputs as the identity: its first "
                                                   "filters pass their input channel through")
    skip_nonfinite: int = option(OPTIMISATION, 0, "skip up to N steps whose loss is NaN or "
                                                  "infinite (counted in "
                                                  "metrics.csv) instead of stopping at the first; "
                                                  "each loss is then "
                                                  "checked before its update, one host sync a "
                                                  "step", minimum=0,
                                 maximum=10**6)

    input_size: int | None = option(DATA, None, "image side fed to the model (default: the "
                                                "data's, for an image folder its images' most "
                                                "common shorter side, at most 224; or the model's "
                                                "if it needs its own)",
                                    minimum=1, maximum=MAX_SIDE)
    crop_padding: int = option(DATA, 0, "random crops after zero-padding each side by N pixels "
                                        "(0: off)", minimum=0,
                               maximum=MAX_SIDE)
    flip: bool = option(DATA, False, "random horizontal flips (off by default: wrong for digits)")
    alternate_flips: bool = option(DATA, False, "with --flip: mirror each training image every "
                                                "other epoch (a fixed seeded coin per image "
                                                "picks which epochs) rather than by a fresh coin "
                                                "each epoch")
    cutout: int = option(DATA, 0, "zero a random N×N square of each training image, after "
                                  "normalising (DeVries & Taylor 2017; 0: off)", minimum=0,
                         maximum=MAX_SIDE)
    pca_noise: float = option(DATA, 0.0, "AlexNet's PCA colour noise, std of α (the paper: 0.1); "
                                         "RGB data only",
                              minimum=0, maximum=10)
    test_views: str = option(DATA, "center", "center, flip (average with the mirror image; for "
                                             "runs with --flip), flip-shift (those two and each "
                                             "moved one pixel diagonally both ways: 6 views) or "
                                             "ten-crop (for runs with --crop-padding)",
                             choices=TEST_VIEWS)
    progressive_resize: int | None = option(DATA, None, "train at this image side first, growing "
                                                        "it with the run's progress to the full "
                                                        "side three quarters into the run (at most "
                                                        "8 sides, multiples of 4; each may "
                                                        "recompile under --compile); evaluation "
                                                        "uses the full side",
                                            minimum=8, maximum=MAX_SIDE)

    device: str = option(RUNTIME, "auto", "auto, cpu, cuda or mps", choices=DEVICES)
    precision: str = option(RUNTIME, "auto", "auto (the fastest measured for this model on this "
                                             "machine; the measurement is cached), fp32, bf16 or "
                                             "fp16",
                            choices=PRECISIONS)
    channels_last: bool | None = option(RUNTIME, None, "NHWC memory layout; --no-channels-last: "
                                                       "NCHW (default: whichever trains faster "
                                                       "here, measured and cached)")
    compile: str = option(RUNTIME, "auto", "torch.compile the training step: on, off, or auto "
                                           "(where a measured trial shows it pays over the run, "
                                           "compile time included)",
                          choices=COMPILE)
    threads: int | None = option(RUNTIME, None, "CPU threads (default: one per core)", minimum=1,
                                 maximum=4096)
    seed: int = option(RUNTIME, 0, "random seed for initialisation, data order and augmentation",
                       minimum=0,
                       maximum=2**32 - 1)  # NumPy's seeds end there
    deterministic: bool = option(RUNTIME, False, "use deterministic algorithms only (slower on "
                                                 "GPU)")
    out: str | None = option(RUNTIME, None, "run directory (default "
                                            "runs/<model>-<dataset>-<timestamp>)")
    snapshots: str = option(RUNTIME, "auto",
                            "keep the first layer's kernels and a probe batch's feature maps "
                            "after each epoch, for `cnnzoo show timeline`: auto (every epoch "
                            "while one costs under 2 percent of an epoch, measured), all, off, or "
                            "the epochs, e.g. 0,1,2,5,10 (0: as initialised)")
    checkpoint_every: int = option(RUNTIME, 1, "write the `last` checkpoint every N epochs",
                                   minimum=1, maximum=10**5)
    eval_every: int = option(RUNTIME, 1, "evaluate on the test set every N epochs and after the "
                                         "last, also when the time budget ends the run (the "
                                         "epochs between leave their test columns in metrics.csv "
                                         "empty; `best` is chosen among the evaluated ones): less "
                                         "wall time where evaluation is slow, e.g. with several "
                                         "--test-views; not with --schedule plateau",
                             minimum=1, maximum=10**5)
    dist_timeout: float = option(RUNTIME, 300.0, "under torchrun: seconds a process waits for the "
                                                 "others before the job stops, naming the ranks "
                                                 "that did not answer", above=0,
                                  maximum=10**6)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_value(f, getattr(self, f.name))
        self.dataset = absolute(self.dataset)  # a run's folder, found from anywhere later
        snapshot_epochs(self.snapshots)  # refuses what is neither a choice nor a list of epochs
        if self.alternate_flips and not self.flip:
            raise ConfigError("--alternate-flips decides in which epochs each image is mirrored, "
                              "but --flip is off, so none is; add --flip or drop --alternate-flips")
        if self.muon_fixed_norm and self.optimizer != "muon":
            raise ConfigError(f"--muon-fixed-norm holds the norm of the filters Muon steps, but "
                              f"--optimizer is {self.optimizer}; add --optimizer muon or drop "
                              "--muon-fixed-norm")
        if self.schedule == "plateau" and self.eval_every > 1:
            raise ConfigError(f"--schedule plateau watches the test error after every epoch, but "
                              f"--eval-every {self.eval_every} skips the epochs between "
                              "evaluations; drop --eval-every or pick another --schedule")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; valid ones: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: Path) -> TrainConfig:
        """The configuration saved in a run directory's ``config.json``."""
        from cnnzoo.rundir import read_json

        if not Path(path).exists():
            raise CheckpointError(f"{path}: no such file; is {Path(path).parent} a cnnzoo run "
                                  "directory?")
        data = read_json(Path(path), "run configuration")
        data.pop("versions", None)
        if isinstance(data.get("compile"), bool):  # written before --compile took auto|on|off
            data["compile"] = "on" if data["compile"] else "off"
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise CheckpointError(f"{path}: {error}") from None


def variant_name(model: str, model_kwargs: dict | None) -> str:
    """``model`` named with the builder arguments it is built with, as the variant it is:
    ``vgg16_bn_small variant (width=0.25)``; the bare name when there are none (or what a
    config.json holds in their place is not an object of them)."""
    if not isinstance(model_kwargs, dict):
        return model
    options = ", ".join(f"{key}={json.dumps(value, separators=(',', ':'))}"
                        for key, value in model_kwargs.items())
    return f"{model} variant ({options})" if options else model


def snapshot_epochs(text: str) -> tuple[int, ...] | None:
    """The epochs ``--snapshots`` names (``"0,1,5"``), or None for auto, all and off; anything else
    is a ``ConfigError``."""
    if text in SNAPSHOTS:
        return None
    try:
        epochs = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        epochs = ()
    if not epochs or not 0 <= epochs[0] <= epochs[-1] <= 10**5:
        raise ConfigError(f"--snapshots must be {', '.join(SNAPSHOTS)} or epochs from 0 to 100,000 "
                          f"separated by commas (e.g. 0,1,2,5,10); got {text!r}")
    return epochs


def flag(name: str) -> str:
    """The command-line spelling of a setting: ``batch_size`` → ``--batch-size``."""
    return "--" + name.replace("_", "-")


def check_value(f: dataclasses.Field, value) -> None:
    """Raise ``ConfigError`` naming the option unless ``value`` is allowed for the field ``f``."""
    problem = value_problem(f, value)
    if problem:
        raise ConfigError(f"{flag(f.name)} {problem}")


def value_problem(f: dataclasses.Field, value) -> str | None:
    """What is wrong with ``value`` for the field ``f`` (``must be ≥ 1; got 0``), or None when it is
    allowed. The command line reports it after the option's name, as argparse does; ``check_value``
    raises it."""
    meta = f.metadata
    if value is None and f.default is None:
        return None
    expected = {"bool": bool, "str": str, "dict": dict}.get(str(f.type).split(" ")[0])
    if expected is not None:
        if not isinstance(value, expected):
            return f"must be a {expected.__name__}; got {value!r}"
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"must be a finite number; got {value!r}"
    elif str(f.type).startswith("int") and value != int(value):
        return f"must be a whole number; got {value!r}"
    if meta.get("choices") and value not in meta["choices"]:
        return f"must be one of {', '.join(meta['choices'])}; got {value!r}"
    low, above, below, high = (meta.get(key) for key in ("minimum", "above", "below", "maximum"))
    if (low is not None and value < low) or (above is not None and value <= above) or \
            (below is not None and value >= below) or (high is not None and value > high):
        bounds = [f"≥ {low}" if low is not None else "", f"> {above}" if above is not None else "",
                  f"< {below}" if below is not None else "",
                  f"≤ {high:,}" if high is not None else ""]
        return f"must be {' and '.join(b for b in bounds if b)}; got {value!r}"
    return None
