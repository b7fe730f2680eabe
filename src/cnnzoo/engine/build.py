"""Building what a run trains: the model for the chosen image side, its optimiser and its weight
average."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.muon import Muon
from cnnzoo.errors import ConfigError
from cnnzoo.models.base import ModelConfig
from cnnzoo.models.registry import create_model, get_builder, model_limits

# Builder arguments the data decides: the classes and channels it has, and the side
# choose_input_side picks.
FROM_THE_DATA = ("num_classes", "in_channels", "input_size")


def _check_options(config: TrainConfig) -> None:
    given = sorted(set(config.model_kwargs) & set(FROM_THE_DATA))
    if given:
        raise ConfigError(f"--model-kwargs sets {', '.join(given)}, which cnnzoo takes from the "
                          "data (its classes and channels) and --input-size; remove "
                          f"{'them' if len(given) > 1 else 'it'} from --model-kwargs")


def _with_user_kwargs(build: Callable, name: str, model_kwargs: dict, **shape):
    """``build(name, ...)`` (``create_model`` or ``model_limits``) with the user's ``model_kwargs``
    and ``shape`` (classes, channels, side): a builder argument the model does not take (a misspelt
    --model-kwargs key) is the user's error, not a bug."""
    try:
        return build(name, **shape, **model_kwargs)
    except TypeError as error:
        settings = {key: parameter.default for key, parameter
                    in inspect.signature(get_builder(name)).parameters.items()
                    if key not in FROM_THE_DATA and parameter.kind == parameter.KEYWORD_ONLY}
        unknown = sorted(set(model_kwargs) - set(settings))
        if "pretrained" in unknown:
            create_model(name, pretrained=True)  # the registry says why there are none, at once
        takes = ("; its settings (with their defaults) are "
                 + ", ".join(f"{key} ({value!r})" for key, value in settings.items())
                 if settings else "; it has none beyond the data's classes, channels and side")
        if not unknown:  # a known setting given a value of the wrong kind
            raise ConfigError(f"--model-kwargs: {name} cannot be built with {model_kwargs} "
                              f"({error}){takes}") from None
        raise ConfigError(f"--model-kwargs: {name} has no setting {', '.join(unknown)}{takes}") \
            from None


def limits_for(config: TrainConfig, in_channels: int) -> ModelConfig:
    """The declared input limits of ``config.model`` with its options (no weights are allocated)."""
    _check_options(config)
    return _with_user_kwargs(model_limits, config.model, config.model_kwargs,
                             in_channels=in_channels)


def create_variant(name: str, model_kwargs: dict, **shape) -> nn.Module:
    """The registered model ``name`` built with the user's ``model_kwargs`` (and ``shape``)."""
    return _with_user_kwargs(create_model, name, model_kwargs, **shape)


def build_model(config: TrainConfig, num_classes: int, in_channels: int, side: int) -> nn.Module:
    """``config.model`` for ``num_classes`` classes of ``in_channels``×``side``×``side`` images."""
    model = create_variant(config.model, config.model_kwargs, num_classes=num_classes,
                           in_channels=in_channels, input_size=side)
    if config.dirac_init:
        identity_initialise(model)
    return model


@torch.no_grad()
def identity_initialise(model: nn.Module) -> None:
    """``--dirac-init``: each trainable convolution that can pass its input through unchanged (one
    group, stride 1, an odd square kernel, no fewer outputs than inputs) gets identity filters for
    its first ``in_channels`` outputs; its other filters, its bias and frozen convolutions keep
    their initialisation."""
    for module in model.modules():
        if not isinstance(module, nn.Conv2d) or not module.weight.requires_grad:
            continue
        height, width = module.kernel_size
        if (module.groups == 1 and module.stride == (1, 1) and height == width and height % 2
                and module.in_channels <= module.out_channels and not module.weight.is_meta):
            nn.init.dirac_(module.weight[:module.in_channels])


def builder_kwargs(model: nn.Module, config: TrainConfig) -> dict:
    """The builder arguments that rebuild this exact model (for evaluation and prediction from a
    checkpoint)."""
    cfg = model.cfg
    return {"num_classes": cfg.num_classes, "in_channels": cfg.input_size[0],
            "input_size": cfg.input_size[1], **config.model_kwargs}


# the normalisation layers whose biases --bn-bias-lr speeds up
NORMALISATIONS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm,
                  nn.LayerNorm)


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The optimiser's parameter groups, each with its ``base_lr`` (the rate the schedule scales).

    Weight decay goes on weights only: decaying biases and BatchNorm scales only fights the
    normalisation. The first group is always the weights at ``--lr`` (what metrics.csv reports);
    normalisation biases get their own group when ``--bn-bias-lr`` is not 1, and under ``--optimizer
    muon`` the convolution filters (4-D) another, orthogonalised at ``--muon-lr`` (and held at a
    fixed norm with ``--muon-fixed-norm``). Default settings
    give the two groups runs have always had, so their checkpoints still load.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    norm_biases: list[torch.Tensor] = []
    if config.bn_bias_lr != 1.0:
        norm_biases = [m.bias for m in model.modules() if isinstance(m, NORMALISATIONS)
                       and isinstance(m.bias, nn.Parameter) and m.bias.requires_grad]
    filters = [p for p in trainable if p.dim() == 4] if config.optimizer == "muon" else []
    special = {id(p) for p in norm_biases + filters}
    rest = [p for p in trainable if id(p) not in special]
    groups = [{"params": [p for p in rest if p.dim() > 1], "weight_decay": config.weight_decay,
               "base_lr": config.lr},
              {"params": [p for p in rest if p.dim() <= 1], "weight_decay": 0.0,
               "base_lr": config.lr}]
    if norm_biases:
        groups.append({"params": norm_biases, "weight_decay": 0.0,
                       "base_lr": config.lr * config.bn_bias_lr})
    if filters:
        groups.append({"params": filters, "weight_decay": 0.0, "base_lr": config.muon_lr,
                       "orthogonalise": True, "fixed_norm": config.muon_fixed_norm})
    return [{**group, "lr": group["base_lr"]} for group in groups]


def make_optimizer(model: nn.Module, config: TrainConfig,
                   precision: str = "fp32") -> torch.optim.Optimizer:
    """The optimiser ``config`` names; ``precision`` is the one the model trains in (Muon then
    orthogonalises in bf16 too)."""
    groups = parameter_groups(model, config)
    nesterov = config.nesterov and config.momentum > 0
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=nesterov)
    if config.optimizer == "muon":
        return Muon(groups, lr=config.lr, momentum=config.momentum, nesterov=nesterov,
                    matmul_dtype=torch.bfloat16 if precision == "bf16" else torch.float32)
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
