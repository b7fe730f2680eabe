"""The figure of ``cnnzoo show trust`` for one image: a row per method with its verdict, the map
over the image, the map once every layer is randomised, the randomisation cascade, and the
deletion and insertion curves beside those of random pixel orders (``visualize.trust``).
"""

from __future__ import annotations

import numpy as np

from cnnzoo.visualize.drawing import HEAT_CMAP, grid_figure, show_image
from cnnzoo.visualize.trust import RANDOMISED_RHO_MAX

TRUST_COLOUR, DOUBT_COLOUR = "#1a7f37", "#b3261e"  # green, red: the verdict at a glance


def _unit(heat) -> np.ndarray:
    """A map scaled to [0, 1] for drawing: only its order counts, and occlusion's is signed."""
    values = heat.float().numpy()
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _overlay(ax, image: np.ndarray, heat, title: str, colour: str = "black") -> None:
    show_image(ax, image)
    ax.imshow(_unit(heat), cmap=HEAT_CMAP, alpha=0.6, vmin=0, vmax=1, interpolation="bilinear")
    ax.set_title(title, fontsize=8, color=colour)


def _cascade(ax, steps: list[str], rho: list[float]) -> None:
    positions = range(1, len(steps) + 1)
    ax.plot(positions, rho, marker="o", color="black")
    ax.axhline(RANDOMISED_RHO_MAX, color=DOUBT_COLOUR, linestyle="--", linewidth=1)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xticks(list(positions), [f"+{name}" for name in steps], rotation=60, fontsize=6)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("rank correlation ρ", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_title("layers randomised from the top:\nρ with the trained map (the last < "
                 f"{RANDOMISED_RHO_MAX})", fontsize=8)


def _curves(ax, kind: str, report: dict, random: dict) -> None:
    fractions = np.linspace(0, 1, len(report[kind]))
    ax.plot(fractions, report[kind].numpy(), color="black", label="the map's order")
    ax.plot(fractions, random[kind].numpy(), color="grey", linestyle="--", label="random orders")
    ax.fill_between(fractions, report[kind].numpy(), alpha=0.15, color="black")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'put back'}",
                  fontsize=7)
    ax.set_ylabel("class probability", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="upper right" if kind == "deletion" else "lower right")
    better = "lower" if kind == "deletion" else "higher"
    ax.set_title(f"{kind}: AUC {report[f'{kind}_auc']:.2f}\n(random orders "
                 f"{random[f'{kind}_auc']:.2f}; {better} is better)", fontsize=8)


def draw_trust(image: np.ndarray, result: dict, *, labels: dict[str, str], title: str):
    """``result`` from ``trust.check_image``; ``labels`` names each method's row."""
    methods = result["methods"]
    figure, axes = grid_figure(len(methods), 5, cell=2.9, extra_height=1.0)
    for row, (name, report) in zip(axes, methods.items(), strict=True):
        verdict = "TRUST" if report["trust"] else "DO NOT TRUST"
        colour = TRUST_COLOUR if report["trust"] else DOUBT_COLOUR
        agreement = report["occlusion_rho"]
        occlusion = "" if agreement is None else f"\nρ with occlusion {agreement:.2f}"
        _overlay(row[0], image, report["map"], f"{labels[name]}\n{verdict}\ngain over random "
                                               f"{report['gain']:+.2f} (≥ "
                                               f"{report['gain_needed']:.2f}){occlusion}", colour)
        _overlay(row[1], image, report["randomised_map"],
                 f"every layer randomised\nρ = {report['randomised_rho']:.2f}")
        _cascade(row[2], result["steps"], report["cascade_rho"])
        _curves(row[3], "deletion", report, result["random"])
        _curves(row[4], "insertion", report, result["random"])
    figure.suptitle(title, fontsize=10)
    return figure
