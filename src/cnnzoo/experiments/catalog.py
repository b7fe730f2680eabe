"""The experiments by name, with what each checks, and ``run_experiment`` to run one.

This module imports neither torch nor the experiments themselves, so that ``cnnzoo experiment
--help`` and ``cnnzoo --help`` stay instant; an experiment's module is imported when it runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from cnnzoo.errors import ConfigError, UnknownNameError
from cnnzoo.experiments.base import ExperimentSettings, Log, default_run_dir, log_to_stderr


@dataclass(frozen=True)
class Experiment:
    name: str
    checks: str  # one line for --help
    # cnnzoo.experiments.<module> has run(settings) (or run(name, settings) when by_name)
    module: str
    by_name: bool = False


EXPERIMENTS = {e.name: e for e in (
    Experiment("relu-vs-tanh", "AlexNet §3.1: a 4-layer CNN reaches 25% training error ~6× faster "
                               "with ReLU than with tanh", "relu_vs_tanh"),
    Experiment("dropout", "AlexNet §4.2: dropout in the FC layers shrinks the train-test gap",
               "dropout"),
    Experiment("lrn", "AlexNet §3.3: local response normalisation improves test accuracy",
               "ablations", by_name=True),
    Experiment("overlapping-pool", "AlexNet §3.4: 3×3/2 pooling beats 2×2/2", "ablations",
               by_name=True),
    Experiment("batchnorm", "Ioffe & Szegedy: BatchNorm trains faster (lenet5_bn vs lenet5, same "
                            "budget)",
               "ablations", by_name=True),
    Experiment("depth", "ResNet §4.2: plain-56 trains worse than plain-20 (degradation); "
                        "ResNet-56 does not",
               "depth"),
    Experiment("params", "ResNet bottleneck 69,632 vs 1,179,648 weights; GoogLeNet's 1×1 "
                         "reductions (no training)", "params"),
    Experiment("gap-vs-fc", "NiN §4.6: global average pooling overfits less than a fully "
                            "connected head",
               "gap_vs_fc"),
    Experiment("aux-classifiers", "GoogLeNet §5: auxiliary classifiers (loss weight 0.3) improve "
                                  "the final accuracy", "aux_classifiers"),
    Experiment("small-kernels", "VGG §2.3: two 3×3 convolutions beat one 5×5 of the same "
                                "receptive field",
               "small_kernels"),
    Experiment("batchnorm-lr", "Ioffe & Szegedy: with BatchNorm a much higher learning rate still "
                               "trains; without, it fails", "batchnorm_lr"),
    Experiment("dense-vs-res", "DenseNet: DenseNet-BC is as accurate as a larger ResNet (accuracy "
                               "per parameter)", "dense_vs_res"),
    Experiment("augmentation", "AlexNet §4.1: random crops and flips reduce overfitting",
    "augmentation"),
)}


class UnknownExperimentError(UnknownNameError):
    """An experiment name that is not in EXPERIMENTS."""


def run_experiment(name: str, *, quick: bool = False, out: str | Path | None = None,
                   seeds: int | None = None, data_dir: str | None = None, log: Log = log_to_stderr,
                   budget: float | None = None) -> dict:
    """Run experiment ``name`` (see EXPERIMENTS) and return its result dict (see
    ``cnnzoo.experiments.base``)."""
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(f"unknown experiment {name!r}; choose one of "
                                     f"{', '.join(EXPERIMENTS)}")
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be at least 1; got {seeds}")
    if budget is not None and not budget > 0:
        raise ConfigError(f"--budget must be a positive number of minutes; got {budget}")
    experiment = EXPERIMENTS[name]
    settings = ExperimentSettings(run_dir=Path(out) if out else default_run_dir(name), quick=quick,
                                  seeds=seeds, data_dir=data_dir, log=log, budget=budget)
    module = importlib.import_module(f"cnnzoo.experiments.{experiment.module}")
    return module.run(name, settings) if experiment.by_name else module.run(settings)
