"""Parameter arithmetic of 1×1 convolutions, computed from the real modules (no training).

- He, Zhang, Ren & Sun (2016), section 4.1 and Fig. 5: the bottleneck block — 1×1 to 64 maps, 3×3 on
  64 maps, 1×1 back to 256 — keeps the expensive 3×3 convolution narrow. On a 256-map input its
  three convolutions have 256·64 + 9·64·64 + 64·256 = 69,632 weights, where two 3×3 convolutions at
  256 maps would have 2·9·256·256 = 1,179,648: 16.94 times as many. (The paper's own comparison is
  with the 64-map basic block, 73,728 weights, whose cost the bottleneck matches while working on
  four times as many maps.)
- Szegedy et al. (2015), section 4: "1×1 convolutions are used to compute reductions before the
  expensive 3×3 and 5×5 convolutions". Inception 3a's 5×5 branch on its 28×28×192 input: 16-map 1×1
  reduction then 5×5 to 32 maps, against the same 5×5 convolution straight on the 192 maps (and
  likewise its 3×3 branch, reduced to 96).

Weights count the convolution kernels only (BatchNorm scales and biases are listed separately as
"all parameters"); multiply-adds come from ``cnnzoo.inspect.summary`` (one per kernel weight per
output position).
"""

from __future__ import annotations

import time

from cnnzoo.experiments.base import ExperimentSettings, Outcome, finish
from cnnzoo.experiments.verdict import exact as exact_count
from cnnzoo.figures import new_figure, plain_numbers

NAME = "params"
PAPER = ("He, Zhang, Ren & Sun, 2016 (ResNet), section 4.1 and Fig. 5; Szegedy et al., 2015 "
         "(GoogLeNet), section 4 and Table 1")
CLAIM = ("1×1 convolutions make wide layers cheap: ResNet's bottleneck block on 256 maps has "
         "69,632 weights against 1,179,648 for two 3×3 convolutions at 256 maps (16.94× fewer), "
         "and GoogLeNet's 1×1 reductions cut the weights and multiply-adds of inception 3a's 5×5 "
         "branch several-fold.")
BOTTLENECK_WEIGHTS = 256 * 64 + 9 * 64 * 64 + 64 * 256  # 69,632
TWO_3X3_WEIGHTS = 2 * 9 * 256 * 256  # 1,179,648
RESNET_SIDE = 56  # conv2_x of the ImageNet ResNets, where the 256-map bottlenecks sit
INCEPTION_INPUT = (192, 28, 28)  # inception 3a's input


def conv_weights(module) -> int:
    from torch import nn

    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def measure(name: str, design: str, module, input_size: tuple[int, int, int]) -> dict:
    from cnnzoo.inspect.summary import summary

    info = summary(module, input_size)
    return {"design": name, "layers": design, "input": "×".join(map(str, input_size)),
            "conv_weights": conv_weights(module), "all_parameters": info.total_params,
            "multiply_adds": info.total_macs}


def run(settings: ExperimentSettings) -> dict:
    from cnnzoo.layers.inception import ConvReLU, Inception, InceptionSpec
    from cnnzoo.layers.residual import BasicBlock, Bottleneck

    started = time.perf_counter()
    settings.log(f"[{NAME}] counting weights and multiply-adds of real modules")
    resnet_input = (256, RESNET_SIDE, RESNET_SIDE)
    inception_3a = Inception(INCEPTION_INPUT[0], InceptionSpec(64, 96, 128, 16, 32, 32))
    rows = [
        measure("resnet bottleneck", "1×1 256→64, 3×3 64→64, 1×1 64→256", Bottleneck(256, 64),
                resnet_input),
        measure("two 3×3 convs at 256", "3×3 256→256, 3×3 256→256", BasicBlock(256, 256),
                resnet_input),
        measure("basic block at 64 (paper's pairing)", "3×3 64→64, 3×3 64→64", BasicBlock(64, 64),
                (64, RESNET_SIDE, RESNET_SIDE)),
        measure("inception 3a 5×5 branch, with 1×1 reduce", "1×1 192→16, 5×5 16→32",
                inception_3a.branch5x5, INCEPTION_INPUT),
        measure("inception 3a 5×5 branch, no reduce", "5×5 192→32", ConvReLU(192, 32, 5, padding=2),
                INCEPTION_INPUT),
        measure("inception 3a 3×3 branch, with 1×1 reduce", "1×1 192→96, 3×3 96→128",
                inception_3a.branch3x3, INCEPTION_INPUT),
        measure("inception 3a 3×3 branch, no reduce", "3×3 192→128",
                ConvReLU(192, 128, 3, padding=1), INCEPTION_INPUT),
    ]
    by_name = {row["design"]: row for row in rows}
    bottleneck, two_3x3 = by_name["resnet bottleneck"], by_name["two 3×3 convs at 256"]
    reduced5, plain5 = (by_name["inception 3a 5×5 branch, with 1×1 reduce"],
                        by_name["inception 3a 5×5 branch, no reduce"])
    resnet_ratio = two_3x3["conv_weights"] / bottleneck["conv_weights"]
    weight_ratio_5x5 = plain5["conv_weights"] / reduced5["conv_weights"]
    mac_ratio_5x5 = plain5["multiply_adds"] / reduced5["multiply_adds"]
    for row in rows:
        row["weights_vs_bottleneck"] = round(row["conv_weights"] / bottleneck["conv_weights"], 3)
    exact = (
        bottleneck["conv_weights"] == BOTTLENECK_WEIGHTS
        and two_3x3["conv_weights"] == TWO_3X3_WEIGHTS
    )
    judgement = exact_count(resnet_ratio, held=exact and weight_ratio_5x5 > 2 and mac_ratio_5x5 > 2,
                            measure="weights of two 3×3 convs at 256 maps / the bottleneck's (×)",
                            paper_figure="69,632 vs 1,179,648 weights (16.94×) (§4.1, Fig. 5)")
    verdict = (f"The bottleneck's convolutions have {bottleneck['conv_weights']:,} weights, two "
               f"3×3 convolutions at 256 maps {two_3x3['conv_weights']:,}: {resnet_ratio:.2f}× as "
               f"many ({bottleneck['multiply_adds'] / 1e6:,.0f} M against "
               f"{two_3x3['multiply_adds'] / 1e6:,.0f} M multiply-adds on a "
               f"{RESNET_SIDE}×{RESNET_SIDE} map). Inception 3a's 5×5 branch: "
               f"{reduced5['conv_weights']:,} weights and {reduced5['multiply_adds'] / 1e6:.1f} M "
               f"multiply-adds with the 16-map 1×1 reduction, {plain5['conv_weights']:,} and "
               f"{plain5['multiply_adds'] / 1e6:.1f} M without ({weight_ratio_5x5:.2f}× the "
               f"weights, {mac_ratio_5x5:.2f}× the multiply-adds).")

    figure = _plot(rows, by_name)

    outcome = Outcome(
        name=NAME,
        title="What 1×1 convolutions save: bottlenecks and inception reductions",
        paper=PAPER,
        claim=CLAIM,
        judgements=[judgement],
        verdict=verdict,
        settings={"resnet_input": "×".join(map(str, resnet_input)),
                  "inception_input": "×".join(map(str, INCEPTION_INPUT)), "training": "none"},
        summary={"bottleneck_weights": bottleneck["conv_weights"],
                 "two_3x3_weights": two_3x3["conv_weights"], "resnet_ratio": resnet_ratio,
                 "inception_5x5_weights": {"with_reduce": reduced5["conv_weights"],
                                           "without_reduce": plain5["conv_weights"]},
                 "inception_5x5_macs": {"with_reduce": reduced5["multiply_adds"],
                                        "without_reduce": plain5["multiply_adds"]},
                 "inception_5x5_weight_ratio": weight_ratio_5x5,
                 "inception_5x5_mac_ratio": mac_ratio_5x5},
        rows=rows,
        figure=figure,
    )
    return finish(outcome, settings, started)


def _plot(rows: list[dict], by_name: dict):
    """Weights and multiply-adds of each design, the 1×1-reduced ones in blue."""
    figure, (weights_ax, macs_ax) = new_figure(2, width=6.5, height=4.6)
    names = [row["design"] for row in rows][::-1]
    colours = [
        "tab:blue" if "with 1×1" in name or "bottleneck" in name else "tab:grey" for name in names
    ]
    weights_ax.barh(names, [by_name[n]["conv_weights"] for n in names], color=colours)
    weights_ax.set(xscale="log", xlabel="convolution weights", title="Weights")
    macs_ax.barh(names, [by_name[n]["multiply_adds"] for n in names], color=colours)
    macs_ax.set(xscale="log", xlabel="multiply-adds per image", title="Multiply-adds")
    macs_ax.set_yticklabels([])
    for ax in (weights_ax, macs_ax):
        plain_numbers(ax, "x")
        ax.grid(alpha=0.3, axis="x", which="both")
    figure.suptitle("1×1 reductions: ResNet's bottleneck and GoogLeNet's inception 3a")
    return figure
