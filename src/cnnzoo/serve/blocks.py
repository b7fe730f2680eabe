"""A block stage at one clicked position, in words and real numbers: an Inception module's
concatenation, a residual block's addition, a dense block's concatenation, or (any other block) what
went in and came out.

Each function gets the block and a ``values(module)`` lookup (the module's output at the clicked
position, captured by ``position``'s hooks) and returns a small dict the page prints.
"""

from __future__ import annotations

from torch import nn

from cnnzoo.layers.dense import DenseBlock
from cnnzoo.layers.inception import Inception
from cnnzoo.layers.residual import BasicBlock, Bottleneck

INCEPTION_BRANCHES = ("branch1x1", "branch3x3", "branch5x5", "branch_pool")
BLOCKS = (Inception, BasicBlock, Bottleneck, DenseBlock)


def _channels(output) -> int:
    return int(output.shape[1])


def inception(block: Inception, captured: dict, path: str, channel: int, y: int, x: int) -> dict:
    """Which branch made channel ``channel`` of the concatenation, and its value there."""
    start, rows, found = 0, [], None
    for name in INCEPTION_BRANCHES:
        output = captured[f"{path}.{name}"][1]
        count = _channels(output)
        rows.append({"branch": name, "channels": [start, start + count - 1]})
        if found is None and channel < start + count:
            found = {
                "branch": name,
                "channel": channel - start,
                "value": round(float(output[0, channel - start, y, x]), 6),
            }
        start += count
    return {
        "op": "inception",
        "branches": rows,
        "from": found,
        "value": found and found["value"],
        "words": "the four branches see the same input and their maps are stacked: "
        + " + ".join(str(r["channels"][1] - r["channels"][0] + 1) for r in rows)
        + f" = {start} channels",
    }


def residual(block: nn.Module, captured: dict, path: str, channel: int, y: int, x: int) -> dict:
    """The residual addition at one position: main branch + shortcut, then the block's last ReLU."""
    last_conv = "conv3" if isinstance(block, Bottleneck) else "conv2"
    main = float(captured[f"{path}.{last_conv}"][1][0, channel, y, x])
    if block.shortcut is not None:
        shortcut, how = float(captured[f"{path}.shortcut"][1][0, channel, y, x]), "projected"
    else:
        shortcut, how = float(captured[path][0][0, channel, y, x]), "identity"
    out = float(captured[path][1][0, channel, y, x])
    return {
        "op": "residual",
        "main": round(main, 6),
        "shortcut": round(shortcut, 6),
        "shortcut_kind": how,
        "sum": round(main + shortcut, 6),
        "value": round(out, 6),
        "words": f"the main branch ({last_conv} after BatchNorm) plus the {how} shortcut, then "
                 "ReLU: max(0, main + shortcut)",
    }


def dense(block: DenseBlock, captured: dict, path: str, channel: int, y: int, x: int) -> dict:
    """A dense block's output channel: copied from its input, or made by one of its layers."""
    x_in, out = captured[path]
    before = _channels(x_in)
    value = round(float(out[0, channel, y, x]), 6)
    if channel < before:
        return {
            "op": "dense",
            "from": "input",
            "channel": channel,
            "value": value,
            "words": f"channels 0–{before - 1} are the block's input, passed on unchanged",
        }
    layers = [name for name, _ in block.named_children()]
    growth = (_channels(out) - before) // max(len(layers), 1)
    layer = layers[(channel - before) // growth]
    return {
        "op": "dense",
        "from": layer,
        "channel": (channel - before) % growth,
        "value": value,
        "words": f"the block's input ({before} channels) and each layer's {growth} new maps are "
                 f"concatenated; this channel is new map {(channel - before) % growth} of {layer}",
    }


def generic(block: nn.Module, captured: dict, path: str, channel: int, y: int, x: int) -> dict:
    x_in, out = captured[path]
    return {
        "op": "block",
        "type": type(block).__name__,
        "in_shape": list(x_in.shape[1:]),
        "out_shape": list(out.shape[1:]),
        "value": round(float(out[0, channel, y, x]), 6),
        "words": f"a {type(block).__name__} block: {'×'.join(map(str, x_in.shape[1:]))} in, "
                 f"{'×'.join(map(str, out.shape[1:]))} out",
    }


def explain_block(
    block: nn.Module, captured: dict, path: str, channel: int, y: int, x: int
) -> dict:
    if isinstance(block, Inception):
        return inception(block, captured, path, channel, y, x)
    if isinstance(block, (BasicBlock, Bottleneck)):
        return residual(block, captured, path, channel, y, x)
    if isinstance(block, DenseBlock):
        return dense(block, captured, path, channel, y, x)
    return generic(block, captured, path, channel, y, x)


def watched(block: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs ``explain_block`` reads: the block and its direct children."""
    return [(path, block), *((f"{path}.{name}", child) for name, child in block.named_children())]
