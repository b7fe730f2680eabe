"""GoogLeNet: Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich (2014),
"Going deeper with convolutions" (the ILSVRC 2014 winner, "Inception v1").

A 7×7/2 stem, two local response normalisations and nine Inception modules (the paper's Table 1,
rows 3a–5b, kept below under the paper's column names), global average pooling, dropout 0.4 and one
FC layer. Two auxiliary classifiers on 4a and 4d add their losses, weighted 0.3, during training
only: ``forward`` returns ``GoogLeNetOutputs(logits, aux1, aux2)`` in training mode and
``training_loss`` adds the weighted terms.

Deviations:
- The paper gives no LRN constants; ``LocalResponseNorm2d`` uses AlexNet's (n=5, α=1e-4, β=0.75,
  k=2).
- The paper's last pooling is a 7×7 average pool; this is a global average pool, the same at 224 px
  and what lets other sizes through (``input_size`` sets the side the network declares as its
  default).
- Auxiliary heads: the paper's 5×5/3 average pool is followed by an adaptive average pool to 4×4, so
  the FC 1024 (sized for 128·4·4 inputs, as in the paper) takes any input size. At 224 px the 5×5/3
  pool already gives 4×4 and the extra pool is the identity. The 5×5/3 pool needs a 4a map ≥ 5, so
  with ``aux_logits=True`` the min_size is 79 (eval and training alike); ``aux_logits=False`` goes
  down to 31.
- Initialisation (the paper states none): Caffe-style "xavier" uniform weights, ±√(3 / fan-in), and
  biases 0.2 on the hidden layers, as in the BVLC replication of GoogLeNet; classifier biases 0.
- Max-pools use ceil_mode (as Caffe did) so the maps are the paper's 112/56/28/14/7.
- ``googlenet_small`` (not in the paper): the same nine modules for 28–32 px images, with a 3×3/1
  conv1 and no pool2, so 3a/3b see 14×14, 4a–4e 7×7 and 5a/5b 3×3 (4×4 at 32 px); its auxiliary
  heads are kept and adapted: a 3×3/2 average pool to 3×3 on the 7×7 maps (FC 1024 of 128·3·3
  inputs).
- ``width`` (not in the paper, default 1) multiplies every channel count — stem, Table 1, auxiliary
  heads — for CPU budgets; at 0.25 the multiply-adds fall about 16-fold.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.inception import AuxHeadSpec, ConvReLU, Inception, InceptionAux, InceptionSpec
from cnnzoo.layers.initialisation import on_meta
from cnnzoo.layers.lrn import LocalResponseNorm2d
from cnnzoo.models.base import ModelConfig, ZooModel, check_input, check_min_side
from cnnzoo.models.registry import register_model

PAPER = 'Szegedy et al., 2014, "Going deeper with convolutions"'

# The paper's Table 1, Inception rows; every number is a count of output channels.
#                      #1×1  #3×3 reduce  #3×3  #5×5 reduce  #5×5  pool proj      output
INCEPTION_TABLE: dict[str, InceptionSpec] = {
    "3a": InceptionSpec(64, 96, 128, 16, 32, 32),  # 256
    "3b": InceptionSpec(128, 128, 192, 32, 96, 64),  # 480
    "4a": InceptionSpec(192, 96, 208, 16, 48, 64),  # 512
    "4b": InceptionSpec(160, 112, 224, 24, 64, 64),  # 512
    "4c": InceptionSpec(128, 128, 256, 24, 64, 64),  # 512
    "4d": InceptionSpec(112, 144, 288, 32, 64, 64),  # 528
    "4e": InceptionSpec(256, 160, 320, 32, 128, 128),  # 832
    "5a": InceptionSpec(256, 160, 320, 32, 128, 128),  # 832
    "5b": InceptionSpec(384, 192, 384, 48, 128, 128),  # 1024
}
STEM_CHANNELS = 192  # conv2's output, the input of 3a


class GoogLeNetOutputs(NamedTuple):
    """What a training-mode forward returns when the auxiliary heads exist."""

    logits: torch.Tensor
    aux1: torch.Tensor  # from the head on 4a
    aux2: torch.Tensor  # from the head on 4d


def _max_pool() -> nn.MaxPool2d:
    # ceil_mode lets the last window overhang, as Caffe's pooling did: 112 -> 56 rather than 55.
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


def _lrn() -> LocalResponseNorm2d:
    return LocalResponseNorm2d(size=5, alpha=1e-4, beta=0.75, k=2.0)


def paper_stem(in_channels: int, width: float = 1.0) -> nn.Sequential:
    """conv1 7×7/2, pool, LRN, conv2 (1×1 reduce, 3×3), LRN, pool: 224 -> 28 (channels below at
    width 1)."""
    c1, c2 = _scaled(64, width), _scaled(STEM_CHANNELS, width)
    return nn.Sequential(OrderedDict(
        conv1=ConvReLU(in_channels, c1, 7, stride=2, padding=3),  # (N, 64, 112, 112)
        pool1=_max_pool(),  # (N, 64, 56, 56)
        norm1=_lrn(),
        conv2_reduce=ConvReLU(c1, c1, 1),  # (N, 64, 56, 56)
        conv2=ConvReLU(c1, c2, 3, padding=1),  # (N, 192, 56, 56)
        norm2=_lrn(),
        pool2=_max_pool(),  # (N, 192, 28, 28)
    ))


def small_stem(in_channels: int, width: float = 1.0) -> nn.Sequential:
    """The paper's stem for 28 px images: conv1 3×3/1 and no pool2, so one halving instead of three
    (channels below at width 1)."""
    c1, c2 = _scaled(64, width), _scaled(STEM_CHANNELS, width)
    return nn.Sequential(OrderedDict(
        conv1=ConvReLU(in_channels, c1, 3, padding=1),  # (N, 64, 28, 28)
        pool1=_max_pool(),  # (N, 64, 14, 14)
        norm1=_lrn(),
        conv2_reduce=ConvReLU(c1, c1, 1),  # (N, 64, 14, 14)
        conv2=ConvReLU(c1, c2, 3, padding=1),  # (N, 192, 14, 14)
        norm2=_lrn(),
    ))


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def scaled_table(width: float) -> dict[str, InceptionSpec]:
    """Table 1 with every channel count multiplied by ``width`` (rounded, at least 1)."""
    return {row: InceptionSpec(*(_scaled(n, width) for n in dataclasses.astuple(spec)))
            for row, spec in INCEPTION_TABLE.items()}


class GoogLeNet(ZooModel):
    """Stem, Inception 3a–3b, pool, 4a–4e, pool, 5a–5b, then global average pool, dropout and FC.

    In training mode, with auxiliary heads, ``forward`` returns ``GoogLeNetOutputs(logits, aux1,
    aux2)``; otherwise plain logits. ``training_loss`` adds ``aux_loss_weight`` times each auxiliary
    loss.
    """

    # section 5: "the losses of the auxiliary classifiers were weighted by 0.3"
    aux_loss_weight: ClassVar[float] = 0.3

    def __init__(self, *, cfg: ModelConfig, stem: nn.Sequential, aux: AuxHeadSpec | None,
                 table: dict[str, InceptionSpec] = INCEPTION_TABLE, dropout: float = 0.4) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = stem
        self.inception3a = Inception(stem.conv2.conv.out_channels, table["3a"])
        self.inception3b = Inception(self.inception3a.out_channels, table["3b"])
        self.pool3 = _max_pool()
        self.inception4a = Inception(self.inception3b.out_channels, table["4a"])
        self.inception4b = Inception(self.inception4a.out_channels, table["4b"])
        self.inception4c = Inception(self.inception4b.out_channels, table["4c"])
        self.inception4d = Inception(self.inception4c.out_channels, table["4d"])
        self.inception4e = Inception(self.inception4d.out_channels, table["4e"])
        self.pool4 = _max_pool()
        self.inception5a = Inception(self.inception4e.out_channels, table["5a"])
        self.inception5b = Inception(self.inception5a.out_channels, table["5b"])
        num_classes = cfg.num_classes
        self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes, aux) if aux else None
        self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes, aux) if aux else None
        self.classifier = nn.Sequential(OrderedDict(
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            dropout=nn.Dropout(dropout),
            fc=nn.Linear(self.inception5b.out_channels, num_classes),
        ))
        self._init_weights()

    def _init_weights(self) -> None:
        if on_meta(self):
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # Caffe's "xavier": variance 1 / fan-in
                bound = math.sqrt(3.0 / m.weight[0].numel())
                nn.init.uniform_(m.weight, -bound, bound)
                # a positive bias keeps the ReLUs of a deep plain net alive
                nn.init.constant_(m.bias, 0.2)
        for fc in (self.classifier.fc,
                   *(head.fc2 for head in (self.aux1, self.aux2) if head is not None)):
            nn.init.zeros_(fc.bias)  # no class favoured at the start

    @property
    def aux_logits(self) -> bool:
        return self.aux1 is not None

    def _trunk(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # Shapes for googlenet at 224 px; googlenet_small at 28 px has 14, 7 and 3 where these say
        # 28, 14, 7.
        aux: list[torch.Tensor] = []
        x = self.stem(x)  # (N, 192, 28, 28)
        x = self.inception3a(x)  # (N, 256, 28, 28)
        x = self.inception3b(x)  # (N, 480, 28, 28)
        x = self.pool3(x)  # (N, 480, 14, 14)
        x = self.inception4a(x)  # (N, 512, 14, 14)
        if with_aux:
            aux.append(self.aux1(x))  # (N, num_classes)
        x = self.inception4b(x)  # (N, 512, 14, 14)
        x = self.inception4c(x)  # (N, 512, 14, 14)
        x = self.inception4d(x)  # (N, 528, 14, 14)
        if with_aux:
            aux.append(self.aux2(x))  # (N, num_classes)
        x = self.inception4e(x)  # (N, 832, 14, 14)
        x = self.pool4(x)  # (N, 832, 7, 7)
        x = self.inception5a(x)  # (N, 832, 7, 7)
        x = self.inception5b(x)  # (N, 1024, 7, 7)
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x, with_aux=False)[0]  # (N, 1024, 7, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        check_input(self.cfg, x)
        # The auxiliary heads only serve training; at evaluation the paper discards them.
        features, aux = self._trunk(x, with_aux=self.training and self.aux_logits)
        logits = self.forward_head(features)  # (N, num_classes)
        return GoogLeNetOutputs(logits, *aux) if aux else logits

    def training_loss(
        self, outputs, targets: torch.Tensor, *, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        """Cross-entropy of the logits, plus ``aux_loss_weight`` times that of each auxiliary head
        when ``outputs`` is the (logits, aux1, aux2) tuple of a training-mode forward; float32 as in
        ``ZooModel``."""
        if not isinstance(outputs, tuple):
            return super().training_loss(outputs, targets, label_smoothing=label_smoothing)
        logits, *auxiliary = outputs
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
        for aux in auxiliary:
            loss = loss + self.aux_loss_weight * F.cross_entropy(aux.float(), targets,
                                                                 label_smoothing=label_smoothing)
        return loss


@dataclass(frozen=True)
class _Variant:
    stem: Callable[[int, float], nn.Sequential]
    aux: AuxHeadSpec
    min_size: int  # without auxiliary heads: the last max-pool (ceil mode) needs a 4e map ≥ 2
    min_size_aux: int  # the auxiliary heads' fixed average pool needs a 4a map ≥ its kernel
    small_variant: str | None


_VARIANTS = {
    # 31 px: conv1 -> 16, pool1 -> 8, pool2 -> 4, pool3 -> 2, pool4 -> 1; 79 px makes the 4a map 5
    # for 5×5/3.
    "googlenet": _Variant(paper_stem, AuxHeadSpec(), 31, 79, "googlenet_small"),
    # 8 px: pool1 -> 4, pool3 -> 2, pool4 -> 1; 12 px makes the 4a map 3 for the 3×3/2 pool.
    "googlenet_small": _Variant(small_stem, AuxHeadSpec(kernel=3, stride=2, pooled=3), 8, 12, None),
}


def _googlenet(name: str, num_classes: int, in_channels: int, input_size: int, aux_logits: bool,
               dropout: float, width: float) -> GoogLeNet:
    variant = _VARIANTS[name]
    if width <= 0:
        raise ConfigError("width must be a positive multiplier of the paper's channel counts; got "
                          f"{width}")
    min_size = variant.min_size_aux if aux_logits else variant.min_size
    reason = (
        f" (for its auxiliary heads' pooling; aux_logits=False allows {variant.min_size})"
        if aux_logits
        else ""
    )
    check_min_side(name, input_size, min_size, variant.small_variant, reason)
    cfg = ModelConfig(name, (in_channels, input_size, input_size), num_classes, min_size=min_size,
                      small_variant=variant.small_variant, paper=PAPER)
    aux = dataclasses.replace(variant.aux, conv_channels=_scaled(variant.aux.conv_channels, width),
                              fc_features=_scaled(variant.aux.fc_features, width))
    return GoogLeNet(cfg=cfg, stem=variant.stem(in_channels, width),
                     aux=aux if aux_logits else None, table=scaled_table(width), dropout=dropout)


@register_model
def googlenet(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
              aux_logits: bool = True, dropout: float = 0.4, width: float = 1.0) -> GoogLeNet:
    """GoogLeNet as in the paper (5×5 branches, biases, LRN, no batch norm) for 224 px images."""
    return _googlenet("googlenet", num_classes, in_channels, input_size, aux_logits, dropout, width)


@register_model
def googlenet_small(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                    aux_logits: bool = True, dropout: float = 0.4, width: float = 1.0) -> GoogLeNet:
    """The paper's nine Inception modules on a 3×3 stem with one pool fewer, for 28–32 px images."""
    return _googlenet("googlenet_small", num_classes, in_channels, input_size, aux_logits, dropout,
                      width)
