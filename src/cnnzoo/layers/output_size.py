"""The output-size formula of convolution and pooling, and its inverse.

For an input of width W, kernel K, padding P, stride S and dilation D, a convolution or pooling
window produces ``floor((W + 2P - D·(K - 1) - 1) / S) + 1`` outputs; with D = 1 this is the familiar
``floor((W - K + 2P) / S) + 1``. An input is too small when this is below 1.

This is the one home of the formula in the torch models: the builders size their heads with it and
the inspector reports with it. It imports nothing but ``math``, so it stays cheap to import. (The
NumPy-only ``cnnzoo.scratch`` keeps its own copy on purpose: it depends on nothing else in the
package.)
"""

from __future__ import annotations

import math


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False
) -> int:
    """Output width of a convolution or pooling window over ``size`` inputs (may be ≤ 0: too small).

    >>> conv_output_size(227, kernel=11, stride=4)   # AlexNet conv1
    55
    >>> conv_output_size(28, kernel=5, padding=2)     # a 'same' 5×5 convolution
    28
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    rounding = math.ceil if ceil_mode else math.floor
    out = rounding(span / stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # as in PyTorch: the last window must start inside the input or its left padding
    return out


def conv_input_size_needed(
    out_size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Smallest input width for which a layer gives at least ``out_size`` outputs (the formula
    inverted)."""
    return max(1, (out_size - 1) * stride + dilation * (kernel - 1) + 1 - 2 * padding)
