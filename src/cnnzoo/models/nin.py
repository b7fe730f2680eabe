"""Network in Network: Lin, Chen & Yan (2013), "Network In Network".

Each "mlpconv" block is a k×k convolution followed by two 1×1 convolutions (the paper's cascaded
cross-channel parametric pooling, "cccp"), all with ReLU: a small MLP slid over the image. The last
block has one map per class and global average pooling turns each map into that class's score, so
there is no fully connected layer at all.

Deviations:
- The paper does not tabulate its ImageNet network; ``nin`` follows the configuration of Dive into
  Deep Learning (Zhang et al.): 96@11×11/4, 256@5×5, 384@3×3, then num_classes@3×3, 3×3/2 max-pools
  between blocks and dropout 0.5 before the last block. The authors' released ImageNet model has a
  1024-wide fourth block whose last 1×1 conv gives the 1000 maps; here all three convs of that block
  are num_classes wide.
- One dropout layer, before the last block (as d2l has it); the paper puts dropout after every
  mlpconv block but the last.
- Global average pooling is adaptive (any map size), where the released models used a fixed-size
  average pool equal to the map at the design input. The max-pools round down (as in d2l), so at 224
  px the class maps are 5×5 where the released Caffe model's ceil-mode pools gave 6×6.
- Initialisation: Xavier-uniform weights and zero biases, as Dive into Deep Learning trains it.
- ``batch_norm=True`` (not in the paper, which predates BatchNorm; off by default) normalises every
  convolution's output before its ReLU, the class maps included; CPU recipes use it to converge in
  minutes.
- ``nin_small`` (not in the paper): 96-192-192 mlpconv blocks of 5×5, 5×5, 3×3 with two 3×3/2 pools,
  for 28–32 px images (28 -> 13 -> 6); its last block, the class maps, is 3×3.
- ``head="fc"`` (the paper's own comparison, section 4.6) replaces the global average pool by one
  fully connected layer from the flattened class maps to the classes; the default ``"gap"`` is NiN.
- ``widths`` (not in the paper) replaces the channel counts of the mlpconv blocks before the class
  maps, for CPU budgets; ``input_size`` sets the side a network declares as its default (the head is
  a global pool).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnzoo.errors import ConfigError
from cnnzoo.layers.initialisation import on_meta
from cnnzoo.models.base import ModelConfig, ZooModel, check_min_side
from cnnzoo.models.registry import register_model

PAPER = 'Lin, Chen & Yan, 2013, "Network In Network"'

# A layout is the feature extractor as data: (out channels, kernel, stride, padding) for an mlpconv
# block, where None means num_classes; "M" a 3×3/2 max-pool; "D" dropout 0.5. Shapes at the default
# input.
NIN_LAYOUT = (
    (96, 11, 4, 0),  # (N, 96, 54, 54)
    "M",  # (N, 96, 26, 26)
    (256, 5, 1, 2),  # (N, 256, 26, 26)
    "M",  # (N, 256, 12, 12)
    (384, 3, 1, 1),  # (N, 384, 12, 12)
    "M",  # (N, 384, 5, 5)
    "D",  # (N, 384, 5, 5)
    (None, 3, 1, 1),  # (N, num_classes, 5, 5)
)
NIN_SMALL_LAYOUT = (
    (96, 5, 1, 2),  # (N, 96, 28, 28)
    "M",  # (N, 96, 13, 13)
    (192, 5, 1, 2),  # (N, 192, 13, 13)
    "M",  # (N, 192, 6, 6)
    (192, 3, 1, 1),  # (N, 192, 6, 6)
    "D",  # (N, 192, 6, 6)
    (None, 3, 1, 1),  # (N, num_classes, 6, 6)
)
# Each variant: its layout, its smallest side and the variant to suggest for small images. The
# smallest sides come from the 3×3/2 pools backwards (each needs ≥ 3 in; one needing ≥ 3 out needs ≥
# 7 in): nin: pool3 in ≥ 3, pool2 in ≥ 7, pool1 in ≥ 15, so conv1 11×11/4 needs (15 - 1)·4 + 11 =
# 67; nin_small: pool2 in ≥ 3, pool1 in ≥ 7, and its convs keep the size: 7.
VARIANTS: dict[str, tuple[tuple, int, str | None]] = {
    "nin": (NIN_LAYOUT, 67, "nin_small"),
    "nin_small": (NIN_SMALL_LAYOUT, 7, None),
}


class MLPConv(nn.Sequential):
    """k×k conv, then two 1×1 convs; every conv has a ReLU (the last one too: the paper's class maps
    are rectified before the average pool), and with ``batch_norm`` a BatchNorm before each ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, batch_norm: bool = False) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, name in enumerate(("", "1", "2")):
            conv_name = "conv" if i == 0 else f"cccp{i}"
            layers[conv_name] = (nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                           padding=padding)
                                 if i == 0 else nn.Conv2d(out_channels, out_channels, 1))
            if batch_norm:
                layers[f"bn{name}"] = nn.BatchNorm2d(out_channels)
            layers[f"relu{name}"] = nn.ReLU(inplace=True)
        super().__init__(layers)


def build_features(layout: tuple, in_channels: int, num_classes: int, dropout: float,
                   batch_norm: bool = False) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, blocks, pools = in_channels, 0, 0
    for item in layout:
        if item == "M":
            pools += 1
            layers[f"pool{pools}"] = nn.MaxPool2d(3, stride=2)
        elif item == "D":
            layers["dropout"] = nn.Dropout(dropout)
        else:
            width, kernel, stride, padding = item
            width = num_classes if width is None else width
            blocks += 1
            layers[f"block{blocks}"] = MLPConv(channels, width, kernel, stride, padding, batch_norm)
            channels = width
    return nn.Sequential(layers)


class NiN(ZooModel):
    def __init__(self, *, cfg: ModelConfig, layout: tuple, dropout: float, batch_norm: bool = False,
                 head: str = "gap") -> None:
        super().__init__()
        self.cfg = cfg
        self.features = build_features(layout, cfg.input_size[0], cfg.num_classes, dropout,
                                       batch_norm)
        if head == "gap":
            # Each of the last block's maps already is a class's evidence: averaging it is the
            # whole head.
            self.classifier = nn.Sequential(OrderedDict(pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten()))
        elif head == "fc":
            # The class maps' size at the declared input sets the layer's width.
            with torch.no_grad():
                maps = self.features.eval()(torch.zeros(1, *cfg.input_size)).numel()
            self.classifier = nn.Sequential(OrderedDict(flatten=nn.Flatten(),
                                                        fc=nn.Linear(maps, cfg.num_classes)))
        else:
            raise ConfigError(f"head must be 'gap' or 'fc'; got {head!r}")
        self._init_weights()

    def _init_weights(self) -> None:
        if on_meta(self):
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (N, 3, 224, 224) -> (N, num_classes, 5, 5); small: (N, 1, 28, 28) -> 6×6
        return self.features(x)


def with_widths(layout: tuple, widths: tuple[int, ...]) -> tuple:
    """The layout with its mlpconv blocks' widths replaced in order (the class-map block keeps
    None)."""
    blocks = [item for item in layout if isinstance(item, tuple) and item[0] is not None]
    if len(widths) != len(blocks) or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise ConfigError(f"widths must be {len(blocks)} positive channel counts, one per mlpconv "
                          f"block before the class maps; got {list(widths)}")
    new_widths = iter(widths)
    return tuple(
        (next(new_widths), *item[1:]) if isinstance(item, tuple) and item[0] is not None else item
        for item in layout
    )


def _nin(name: str, num_classes: int, in_channels: int, input_size: int, dropout: float,
         widths: tuple[int, ...], batch_norm: bool, head: str = "gap") -> NiN:
    layout, min_size, small_variant = VARIANTS[name]
    layout = with_widths(layout, tuple(widths))
    check_min_side(name, input_size, min_size, small_variant)
    cfg = ModelConfig(name, (in_channels, input_size, input_size), num_classes, min_size=min_size,
                      small_variant=small_variant, paper=PAPER)
    return NiN(cfg=cfg, layout=layout, dropout=dropout, batch_norm=batch_norm, head=head)


@register_model
def nin(*, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
        dropout: float = 0.5,
        widths: tuple[int, int, int] = (96, 256, 384), batch_norm: bool = False) -> NiN:
    """ImageNet NiN (d2l's configuration): four mlpconv blocks, the last giving the class maps."""
    return _nin("nin", num_classes, in_channels, input_size, dropout, widths, batch_norm)


@register_model
def nin_small(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
              dropout: float = 0.5,
              widths: tuple[int, int, int] = (96, 192, 192), batch_norm: bool = False,
              head: str = "gap") -> NiN:
    """NiN for 28–32 px grey images: mlpconv blocks of 96, 192, 192 maps, then the class maps."""
    return _nin("nin_small", num_classes, in_channels, input_size, dropout, widths, batch_norm,
                head)
