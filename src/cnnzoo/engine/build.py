"""Building what a run trains: the model for the chosen image side, its optimiser and its weight
average."""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.engine.config import TrainConfig
from cnnzoo.errors import ConfigError
from cnnzoo.models.base import ModelConfig
from cnnzoo.models.registry import create_model, model_limits

# Builder arguments the data decides: the classes and channels it has, and the side
# choose_input_side picks.
FROM_THE_DATA = ("num_classes", "in_channels", "input_size")


def _check_options(config: TrainConfig) -> None:
    given = sorted(set(config.model_kwargs) & set(FROM_THE_DATA))
    if given:
        raise ConfigError(f"--model-kwargs sets {', '.join(given)}, which cnnzoo takes from the "
                          "data (its classes and channels) and --input-size; remove "
                          f"{'them' if len(given) > 1 else 'it'} from --model-kwargs")


def limits_for(config: TrainConfig, in_channels: int) -> ModelConfig:
    """The declared input limits of ``config.model`` with its options (no weights are allocated)."""
    _check_options(config)
    try:
        return model_limits(config.model, in_channels=in_channels, **config.model_kwargs)
    except TypeError as error:  # a misspelt --model-kwargs key
        raise ConfigError(f"{config.model} does not take these settings {config.model_kwargs}: "
                          f"{error}") from None


def build_model(config: TrainConfig, num_classes: int, in_channels: int, side: int) -> nn.Module:
    """``config.model`` for ``num_classes`` classes of ``in_channels``×``side``×``side`` images."""
    try:
        return create_model(config.model, num_classes=num_classes, in_channels=in_channels,
                            input_size=side, **config.model_kwargs)
    except TypeError as error:
        raise ConfigError(f"{config.model} does not take these settings {config.model_kwargs}: "
                          f"{error}") from None


def builder_kwargs(model: nn.Module, config: TrainConfig) -> dict:
    """The builder arguments that rebuild this exact model (for evaluation and prediction from a
    checkpoint)."""
    cfg = model.cfg
    return {"num_classes": cfg.num_classes, "in_channels": cfg.input_size[0],
            "input_size": cfg.input_size[1], **config.model_kwargs}


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on weights only: decaying biases and BatchNorm scales only fights the
    # normalisation.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.AdamW(groups, lr=config.lr)


def make_ema(model: nn.Module, decay: float | None) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights (and buffers), evaluated instead of the model;
    or None."""
    if not decay:
        return None
    swa = torch.optim.swa_utils
    return swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(decay), use_buffers=True)
