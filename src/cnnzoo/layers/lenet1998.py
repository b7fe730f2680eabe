"""The pieces of LeNet-5 as LeCun, Bottou, Bengio & Haffner published it in 1998
("Gradient-based learning applied to document recognition", Proc. IEEE 86(11)).

- ``ScaledTanh``: the squashing function f(a) = A·tanh(S·a) with A = 1.7159, S = 2/3 (Appendix A),
  chosen so that f(±1) = ±1 and the gain is near 1 around the operating point.
- ``Subsampling2d``: S2/S4. Each unit adds its 2×2 inputs, multiplies the sum by one trainable
  coefficient per map and adds one trainable bias per map; the paper then applies its sigmoidal
  (squashing) function.
- ``PartialConv2d``: C3, a 5×5 convolution in which each output map sees only the input maps its row
  of the connection table names (Table I). The paper gives two reasons: fewer connections, and
  broken symmetry so that different maps are forced to extract different features.
- ``EuclideanRBF``: the output layer. Unit i computes y_i = Σ_j (x_j − w_ij)², a penalty: the
  smaller, the likelier class i. The w_i are fixed ±1 images of the characters drawn on a 7×12 grid.
- ``map_loss``: the paper's maximum a posteriori criterion (eq. 9).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Table I of the paper: which S2 maps (rows 0-5) each C3 map (0-15) takes as input.
C3_CONNECTION_TABLE: tuple[tuple[int, ...], ...] = (
    # six maps see three contiguous S2 maps
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    # six see four contiguous maps
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    # three see four non-contiguous maps
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    # and the last sees all six
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """f(a) = A·tanh(S·a), LeCun's squashing function (A = 1.7159, S = 2/3)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2 / 3) -> None:
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


class Subsampling2d(nn.Module):
    """Trainable subsampling: (sum of each 2×2 window) × coefficient + bias, one coefficient and
    bias per map."""

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size  # non-overlapping windows
        self.coefficient = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        # The sum of 4 inputs of unit variance has variance 4; a coefficient of 1/4 keeps the scale.
        nn.init.uniform_(self.coefficient, 0.5 / kernel_size**2, 1.5 / kernel_size**2)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window_sum = F.avg_pool2d(x, self.kernel_size) * self.kernel_size**2
        return window_sum * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def count_macs(self, output: torch.Tensor) -> int:
        # Each output unit adds its k×k inputs: the paper counts these as its connections.
        return output[0].numel() * self.kernel_size**2


class PartialConv2d(nn.Module):
    """A convolution whose output map o reads only the input maps ``table[o]``.

    Only the connected kernels are parameters (60 × 5 × 5 for C3), kept in one flat tensor and
    scattered into a dense, mostly-zero weight at each call so the whole layer is still one fast
    convolution.
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...],
                 kernel_size: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, len(table)
        self.kernel_size, self.stride, self.padding = kernel_size, 1, 0
        pairs = [(out, inp) for out, inputs in enumerate(table) for inp in inputs]
        self.register_buffer("connection_index", torch.tensor(pairs, dtype=torch.long),
                             persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(len(table)))
        self.reset_parameters(table)

    def reset_parameters(self, table: tuple[tuple[int, ...], ...]) -> None:
        # The paper's initialisation: uniform in ±2.4 / fan-in, fan-in counting only connected
        # inputs. shapes only (cnnzoo.models.registry.model_limits): arithmetic on meta is slow
        if self.weight.is_meta:
            return
        fan_in = (
            torch.tensor([len(inputs) for inputs in table for _ in inputs]) * self.kernel_size**2
        )
        bound = (2.4 / fan_in).view(-1, 1, 1)
        with torch.no_grad():
            self.weight.copy_((torch.rand_like(self.weight) * 2 - 1) * bound)
            self.bias.zero_()

    @property
    def n_connections(self) -> int:
        return self.connection_index.shape[0]

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        out_idx, in_idx = self.connection_index.unbind(1)
        return dense.index_put((out_idx, in_idx), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def count_macs(self, output: torch.Tensor) -> int:
        # Only connected kernels multiply: (output positions) × (connections) × k².
        positions = output.shape[-2] * output.shape[-1]
        return positions * self.n_connections * self.kernel_size**2


# The fixed output prototypes: a stylised 7-wide, 12-high bitmap per digit ('#' = +1, '.' = -1).
# The paper draws them in its Fig. 3; these are our own drawings on the same grid.
DIGIT_BITMAPS: tuple[str, ...] = (
    "..###..|.#...#.|#.....#|#.....#|#.....#|#.....#|#.....#|#.....#|#.....#|.#...#.|..###..|.......",
    "...#...|..##...|.#.#...|...#...|...#...|...#...|...#...|...#...|...#...|...#...|.#####.|.......",
    "..###..|.#...#.|#.....#|......#|.....#.|....#..|...#...|..#....|.#.....|#......|#######|.......",
    ".#####.|#.....#|......#|......#|.....#.|..###..|.....#.|......#|......#|#.....#|.#####.|.......",
    ".....#.|....##.|...#.#.|..#..#.|.#...#.|#....#.|#######|.....#.|.....#.|.....#.|.....#.|.......",
    "#######|#......|#......|#......|######.|......#|......#|......#|......#|#.....#|.#####.|.......",
    "..####.|.#.....|#......|#......|#.###..|##...#.|#.....#|#.....#|#.....#|.#...#.|..###..|.......",
    "#######|......#|.....#.|.....#.|....#..|....#..|...#...|...#...|..#....|..#....|..#....|.......",
    "..###..|.#...#.|#.....#|.#...#.|..###..|.#...#.|#.....#|#.....#|#.....#|.#...#.|..###..|.......",
    "..###..|.#...#.|#.....#|#.....#|.#...##|..###.#|......#|......#|.....#.|....#..|.###...|.......",
)


def digit_prototypes() -> torch.Tensor:
    """The 10 × 84 matrix of ±1 prototypes, one row per digit (12 rows × 7 columns, row-major)."""
    rows = [
        [1.0 if c == "#" else -1.0 for c in bitmap.replace("|", "")] for bitmap in DIGIT_BITMAPS
    ]
    return torch.tensor(rows)


class EuclideanRBF(nn.Module):
    """Output penalties y_i = Σ_j (x_j − w_ij)² against fixed prototypes w_i (not trained)."""

    def __init__(self, prototypes: torch.Tensor) -> None:
        super().__init__()
        # A parameter that never receives gradients: it is part of the model and its checkpoint, and
        # the inspector counts it as a fixed parameter, as the paper does (840 "fixed" weights).
        self.prototypes = nn.Parameter(prototypes.clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, 84) against (classes, 84) -> (N, classes); squared distances, smaller is likelier
        return (x.unsqueeze(1) - self.prototypes.unsqueeze(0)).pow(2).sum(-1)

    def count_macs(self, output: torch.Tensor) -> int:
        return self.prototypes.numel()


def map_loss(penalties: torch.Tensor, targets: torch.Tensor, j: float = 0.1) -> torch.Tensor:
    """The paper's MAP criterion (eq. 9): E = y_target + log(exp(−j) + Σ_i exp(−y_i)), averaged over
    the batch.

    The first term pulls the output towards the right prototype; the second pushes the wrong ones
    away, the exp(−j) term standing for a "rubbish" class so that penalties already large are not
    pushed further.
    """
    target_penalty = penalties.gather(1, targets.view(-1, 1)).squeeze(1)
    rubbish = torch.full_like(target_penalty, -j).unsqueeze(1)
    competition = torch.logsumexp(torch.cat([rubbish, -penalties], dim=1), dim=1)
    return (target_penalty + competition).mean()


def lecun_uniform_(module: nn.Module) -> None:
    """The paper's initialisation for ordinary conv/linear layers: U(±2.4 / fan-in), biases zero."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        fan_in = module.weight[0].numel()
        nn.init.uniform_(module.weight, -2.4 / fan_in, 2.4 / fan_in)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


__all__ = [
    "C3_CONNECTION_TABLE", "ScaledTanh", "Subsampling2d", "PartialConv2d", "EuclideanRBF",
           "digit_prototypes",
    "map_loss", "lecun_uniform_",
]
