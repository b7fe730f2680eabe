"""Can this heatmap be trusted? Three checks of an attribution map and a verdict from them.

(a) The model-parameter randomisation test (Adebayo et al., "Sanity checks for saliency maps",
NeurIPS 2018): the layers are randomised one after another from the top (the output layer first)
and the map is recomputed each time for the same class; Spearman's rank correlation with the
trained model's map should fall. A map that stays the same explains the image, not the model.
(b) Deletion and insertion (Petsiuk, Das & Saenko, "RISE", BMVC 2018): pixels are removed from the
image (or put back into a blurred one) in the map's order, most important first, and the class
probability is followed; its area under the curve should be small for deletion and large for
insertion, compared here with the same curves for random orders of the pixels.
(c) Agreement with occlusion (``visualize.occlusion``): a map made without gradients.

Deviations, stated: the cascade randomises a stage at a time (a convolution with its BatchNorm),
drawing each weight tensor afresh from a normal law with the trained tensor's own mean and
standard deviation, so that activations keep their scale and a map does not change only because
the signal died (the paper draws from a truncated normal). Both curves run between the image and
a blur of it that leaves no shape (σ = side/8; RISE blurs a 224-pixel image by 1 pixel, which
would leave a 28-pixel digit readable): a deleted pixel takes its blurred value, where RISE's
takes the mean colour, because on a black background (MNIST, Fashion-MNIST) a grey pixel is
itself a mark the network answers to, and deletion would then reward maps of the background.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.visualize.layers import default_stages
from cnnzoo.visualize.occlusion import rank_correlation

Explainer = Callable[[nn.Module, torch.Tensor, int], torch.Tensor]

# The verdict's thresholds. A map is trusted only if it passes every check.
# (a) Once every layer is randomised, a map that explains the model shares less than a quarter
# of its rank variance with the trained one (ρ² < 0.25); an edge map keeps ρ = 1.
RANDOMISED_RHO_MAX = 0.5
# (b) Insertion AUC minus deletion AUC, beyond the same difference for random orders, in units
# of the class probability: at least a tenth of the whole range, and at least two standard
# deviations of single random orders on this image (a random order gets there about 1 time in
# 40; on Fashion-MNIST one order's difference varies by 0.1 to 0.16, on simple data by 0.03).
GAIN_MIN = 0.1
SPREADS = 2.0
# (c) The map ranks pixels as occlusion does, at least weakly: ρ ≥ 0.2. A weak bar on purpose:
# occlusion sees the image through a square of a seventh of its side, so even a faithful map
# agrees only in part (Grad-CAM at C1 on the tests' data: 0.3 to 0.4), and smooth maps that
# share nothing can reach ±0.3 by chance, so (c) rejects maps of the wrong place, not the rest.
OCCLUSION_RHO_MIN = 0.2

STEPS = 32  # points on a deletion or insertion curve, beside its start
RANDOM_ORDERS = 16  # random pixel orders: the baseline curves and their spread


def cascade_steps(model: nn.Module, x: torch.Tensor) -> list[tuple[str, list[str]]]:
    """The layers to randomise, top first: (stage name, paths of its modules with parameters).
    Modules are placed in the stage whose output follows them in the forward pass; those after
    the last stage form ``output``.
    """
    # a forward hook fires as its module returns, so a block's comes after its layers'
    order: list[str] = []
    handles = [
        module.register_forward_hook(lambda *_, path=path: order.append(path))
        for path, module in model.named_modules()
        if path
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    first = {path: order.index(path) for path in dict.fromkeys(order)}
    ends = [(first[path], name) for name, path in default_stages(model).items() if path in first]
    modules = dict(model.named_modules())
    steps: dict[str, list[str]] = {}
    for path, index in first.items():
        if next(modules[path].parameters(recurse=False), None) is None:
            continue
        stage = next((name for end, name in sorted(ends) if end >= index), "output")
        steps.setdefault(stage, []).append(path)
    return list(reversed(steps.items()))


@torch.no_grad()
def randomise(module: nn.Module, generator: torch.Generator) -> None:
    """Each of the module's own parameters drawn afresh from N(its mean, its std)."""
    for parameter in module.parameters(recurse=False):
        mean, std = parameter.mean(), parameter.std(correction=0)
        fresh = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
        parameter.copy_(fresh * std + mean)


def untrained_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture with every parameter randomised: a network that learnt nothing."""
    generator = torch.Generator().manual_seed(seed)
    fresh = copy.deepcopy(model)
    for module in fresh.modules():
        randomise(module, generator)
    return fresh.eval()


def cascade(
    model: nn.Module, x: torch.Tensor, target: int, explainers: dict[str, Explainer],
    trained: dict[str, torch.Tensor], *, seed: int = 0,
) -> dict:
    """The randomisation test: {"steps": stage names randomised so far, top first, "rho": {method:
    ρ with the trained map after each step}, "randomised": {method: the map once all are}}.
    """
    generator = torch.Generator().manual_seed(seed)
    subject = copy.deepcopy(model).eval()
    modules = dict(subject.named_modules())
    steps = cascade_steps(model, x)
    rho: dict[str, list[float]] = {name: [] for name in explainers}
    last: dict[str, torch.Tensor] = {}
    for _, paths in steps:
        for path in paths:
            randomise(modules[path], generator)
        for name, explain in explainers.items():
            last[name] = explain(subject, x, target)
            rho[name].append(rank_correlation(trained[name], last[name]))
    return {"steps": [stage for stage, _ in steps], "rho": rho, "randomised": last}


def blurred(x: torch.Tensor) -> torch.Tensor:
    """``x`` under a Gaussian blur of σ = side/8, reflected at the borders: insertion's canvas."""
    side = min(x.shape[-2:])
    sigma = side / 8
    radius = min(int(3 * sigma), side - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    rows = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    padded = F.pad(x, (0, 0, radius, radius), mode="reflect")
    x = F.conv2d(padded, rows, groups=channels)
    padded = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    return F.conv2d(padded, rows.transpose(2, 3), groups=channels)


def _ranked(importance: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pixel indices, most important first; equal values (a map's flat zeros) in random order."""
    shuffle = torch.randperm(importance.numel(), generator=generator)
    order = importance.flatten()[shuffle].argsort(descending=True, stable=True)
    return shuffle[order]


@torch.no_grad()
def _curves(model: nn.Module, x: torch.Tensor, target: int, order: torch.Tensor) -> tuple:
    """Class probability as the pixels in ``order`` are deleted, and as they are inserted."""
    _, _, h, w = x.shape
    counts = torch.linspace(0, h * w, STEPS + 1).round().long()
    rank = torch.empty(h * w, dtype=torch.long)
    rank[order] = torch.arange(h * w)
    shown = (rank[None] < counts[:, None]).view(-1, 1, h, w).to(x.dtype)  # (STEPS+1, 1, H, W)
    deleted = blurred(x) * shown + x * (1 - shown)
    inserted = blurred(x) * (1 - shown) + x * shown
    probabilities = torch.cat(
        [model(chunk).softmax(-1)[:, target] for chunk in torch.cat([deleted, inserted]).split(128)]
    )
    return probabilities[: STEPS + 1], probabilities[STEPS + 1 :]


def area(curve: torch.Tensor) -> float:
    """Area under a curve sampled evenly over the fraction of pixels, 0 to 1 (trapezoids)."""
    return float(torch.trapezoid(curve, dx=1 / (len(curve) - 1)))


def removal_curves(
    model: nn.Module, x: torch.Tensor, target: int, importance: torch.Tensor | None, *,
    seed: int = 0,
) -> dict:
    """Deletion and insertion curves in the order of ``importance`` (None: the mean of
    ``RANDOM_ORDERS`` random orders, and the standard deviation of one order's insertion AUC minus
    deletion AUC as ``spread``), with their areas.
    """
    generator = torch.Generator().manual_seed(seed)
    pixels = x.shape[-2] * x.shape[-1]
    if importance is not None:
        deletion, insertion = _curves(model, x, target, _ranked(importance, generator))
        return {"deletion": deletion, "insertion": insertion,
                "deletion_auc": area(deletion), "insertion_auc": area(insertion)}
    runs = [_curves(model, x, target, torch.randperm(pixels, generator=generator))
            for _ in range(RANDOM_ORDERS)]
    deletion = torch.stack([d for d, _ in runs]).mean(0)
    insertion = torch.stack([i for _, i in runs]).mean(0)
    differences = torch.tensor([area(i) - area(d) for d, i in runs])
    return {"deletion": deletion, "insertion": insertion, "deletion_auc": area(deletion),
            "insertion_auc": area(insertion), "spread": float(differences.std())}


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the input, largest over channels, scaled to [0, 1]: an
    'explanation' that reads only the image, the failing control of the randomisation test.
    """
    sobel = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=x.dtype)
    kernels = torch.stack([sobel, sobel.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    channels = x[0][:, None]  # (C, 1, H, W)
    gradients = F.conv2d(F.pad(channels, (1, 1, 1, 1), mode="replicate"), kernels)
    edges = gradients.pow(2).sum(1).sqrt().amax(0)
    return edges / edges.max() if edges.max() > 0 else edges


def explainers(
    model: nn.Module, methods: list[str], *, cam_layer: str | None, patch: int, stride: int
) -> dict[str, Explainer]:
    """Each method as a function of (model, x, class) → (H, W) map. ``edges`` and ``untrained``
    (Grad-CAM of a copy of the network with random weights) are controls that ignore the
    trained weights, so the randomisation test must fail them.
    """
    from cnnzoo.visualize.cam import grad_cam, saliency
    from cnnzoo.visualize.occlusion import probability_drop

    fresh = untrained_copy(model, seed=1) if "untrained" in methods else None
    table: dict[str, Explainer] = {
        "grad-cam": lambda m, x, t: grad_cam(m, x, t, cam_layer)["cam"],
        "saliency": saliency,
        "occlusion": lambda m, x, t: probability_drop(m, x, t, patch=patch, stride=stride)["map"],
        "edges": lambda m, x, t: edge_map(x),
        "untrained": lambda m, x, t: grad_cam(fresh, x, t, cam_layer)["cam"],
    }
    return {name: table[name] for name in methods}


def judge(report: dict) -> dict:
    """The verdict on one map from its figures: {"trust": bool, "line": the figures that decided,
    failing checks first}.
    """
    passed, failed = [], []
    if report["flat"]:
        failed.append("the map is flat (nothing to rank)")
    # decided on the figures as printed (two decimals), so a line never reads "0.20 < 0.2"
    rho = round(report["randomised_rho"], 2)
    (passed if rho < RANDOMISED_RHO_MAX else failed).append(
        f"randomised ρ {rho:.2f} {'<' if rho < RANDOMISED_RHO_MAX else '≥'} {RANDOMISED_RHO_MAX}"
    )
    gain, needed = round(report["gain"], 2), round(report["gain_needed"], 2)
    ok = gain >= needed
    (passed if ok else failed).append(
        f"insertion−deletion AUC {gain:+.2f} over random {'≥' if ok else '<'} {needed:.2f}"
    )
    agreement = report["occlusion_rho"]
    if agreement is not None:
        agreement = round(agreement, 2)
        ok = agreement >= OCCLUSION_RHO_MIN
        (passed if ok else failed).append(
            f"occlusion ρ {agreement:.2f} {'≥' if ok else '<'} {OCCLUSION_RHO_MIN}"
        )
    trust = not failed
    return {"trust": trust, "line": ("trust: " if trust else "do not trust: ")
            + "; ".join(failed + passed)}


def check_image(
    model: nn.Module, x: torch.Tensor, target: int, methods: dict[str, Explainer],
    reference: Explainer, *, seed: int = 0,
) -> dict:
    """The three checks for each method on one image (1, C, H, W) and class: {"steps": the
    cascade's stages, "random": the random orders' curves, "methods": {name: figures, maps,
    curves and verdict}}. ``reference`` makes the occlusion map the methods are compared with.
    """
    trained = {name: explain(model, x, target).detach() for name, explain in methods.items()}
    occluded = trained["occlusion"] if "occlusion" in methods else reference(model, x, target)
    randomised = cascade(model, x, target, methods, trained, seed=seed)
    random = removal_curves(model, x, target, None, seed=seed)
    baseline = random["insertion_auc"] - random["deletion_auc"]
    results = {}
    for name, heat in trained.items():
        curves = removal_curves(model, x, target, heat, seed=seed)
        report = {
            "map": heat,
            "randomised_map": randomised["randomised"][name].detach(),
            "cascade_rho": randomised["rho"][name],
            "randomised_rho": randomised["rho"][name][-1],
            "flat": bool(heat.max() == heat.min()),
            **curves,
            "gain": curves["insertion_auc"] - curves["deletion_auc"] - baseline,
            "gain_needed": max(GAIN_MIN, SPREADS * random["spread"]),
            "occlusion_rho": None if name == "occlusion" else rank_correlation(heat, occluded),
        }
        results[name] = report | judge(report)
    return {"steps": randomised["steps"], "random": random, "methods": results}


def cam_candidates(model: nn.Module, x: torch.Tensor, limit: int = 4) -> list[str]:
    """The last ``limit`` stages whose output is still a map of 2×2 or more: where Grad-CAM can
    look. On a small input these are few, and the checks choose among them.
    """
    from cnnzoo.visualize.activations import activations
    from cnnzoo.visualize.cam import raise_no_maps

    outputs = activations(model, x[:1])
    spatial = [name for name, value in outputs.items()
               if value.dim() == 4 and min(value.shape[-2:]) >= 2]
    if not spatial:
        raise_no_maps(model)
    return spatial[-limit:]


def choose_cam_layer(reports: dict[str, list[dict]]) -> str:
    """The layer whose Grad-CAM is trusted on the most images, then with the largest mean gain
    over random orders: ``reports`` maps each candidate layer to its per-image reports.
    """
    def score(layer: str) -> tuple[int, float]:
        rows = reports[layer]
        return sum(row["trust"] for row in rows), sum(row["gain"] for row in rows) / len(rows)

    return max(reports, key=score)


def occlusion_settings(side: int, patch: int | None = None, stride: int | None = None) -> dict:
    """Occlusion's square and step for an image of ``side`` pixels: as ``show occlusion``, about a
    seventh of the image, moved by half of it, unless given."""
    patch = patch or max(2, side // 7)
    return {"patch": patch, "stride": stride or max(1, patch // 2)}


def thresholds() -> dict:
    """The verdict's thresholds, as reports state them."""
    return {"randomised_rho_max": RANDOMISED_RHO_MAX, "gain_min": GAIN_MIN,
            "gain_random_spreads": SPREADS, "occlusion_rho_min": OCCLUSION_RHO_MIN}


def report_row(name: str, label: str, report: dict, steps: list[str]) -> dict:
    """One method's verdict and the figures behind it, rounded for a report (``--json``, the
    explorer); ``steps`` are the cascade's stages."""
    keep = ("trust", "randomised_rho", "deletion_auc", "insertion_auc", "gain", "gain_needed",
            "occlusion_rho")
    row = {"method": name, "label": label, "verdict": report["line"], "flat": report["flat"]}
    row |= {key: report[key] if isinstance(report[key], bool) or report[key] is None
            else round(float(report[key]), 4) for key in keep}
    row["cascade"] = [{"randomised": step, "rho": round(rho, 4)}
                      for step, rho in zip(steps, report["cascade_rho"], strict=True)]
    return row


def random_row(random: dict) -> dict:
    """The random orders' areas and the spread of one order's gain, rounded for a report."""
    return {"deletion_auc": round(random["deletion_auc"], 4),
            "insertion_auc": round(random["insertion_auc"], 4),
            "spread": round(random["spread"], 4)}


def candidate_rows(reports: dict[str, list[dict]]) -> list[dict]:
    """Per candidate Grad-CAM layer, on how many images the checks trusted it, its mean gain and
    mean randomised ρ: what chose the layer."""
    return [{"layer": name, "trusted": sum(r["trust"] for r in rows), "images": len(rows),
             "mean_gain": round(sum(r["gain"] for r in rows) / len(rows), 4),
             "mean_randomised_rho": round(sum(r["randomised_rho"] for r in rows) / len(rows), 4)}
            for name, rows in reports.items()]
