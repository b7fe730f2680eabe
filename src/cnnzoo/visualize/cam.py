"""Where the network looks: Grad-CAM (Selvaraju et al., "Grad-CAM: visual explanations from deep
networks via gradient-based localization", ICCV 2017), plain gradient saliency (Simonyan, Vedaldi &
Zisserman, "Deep inside convolutional networks", 2014) and, as a check that needs no gradients,
occlusion (Zeiler & Fergus, 2014).

Grad-CAM weighs each map of a late convolutional stage by the mean gradient of the class score over
it, sums, keeps the positive part and upsamples to the input: ReLU(Σ_k mean(∂y_c/∂A_k) · A_k).
Written here with one forward hook (a dozen lines) rather than taken from Captum, which would fit
beside torch but adds a package for what is a weighted sum. Occlusion slides a grey (zero after
normalisation) patch over the image and records how much the class score drops; on a trained model
the two maps agree (tests/test_show.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.visualize.activations import raise_reused
from cnnzoo.visualize.drawing import HEAT_CMAP, show_image
from cnnzoo.visualize.layers import POOLS, default_stages, resolve_layers


def default_cam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The last convolutional stage whose output is still a map (at least 2×2): where Grad-CAM looks
    by default (LeNet-5: C3, since S4 is 5×5 and C5 is 1×1 or fully connected; ResNet: its last
    block; GoogLeNet: 5b)."""
    from cnnzoo.visualize.activations import activations

    stages = default_stages(model)
    # every stage that runs once (a reused module has no one map)
    outputs = activations(model, x[:1])
    spatial = [name for name,
               value in outputs.items() if value.dim() == 4 and min(value.shape[-2:]) >= 2]
    if not spatial:
        raise_no_maps(model)
    modules = dict(model.named_modules())
    before_pool = [
        name
        for name in spatial
        if name not in ("S2", "S4") and not isinstance(modules[stages[name]], POOLS)
    ]
    return (before_pool or spatial)[-1]


def raise_no_maps(model: nn.Module):
    from cnnzoo.errors import ConfigError

    raise ConfigError(f"{model.cfg.name} has no convolutional feature map of 2×2 or more to look "
                      "at")


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | None = None,
             layer: str | None = None) -> dict:
    """Grad-CAM of class ``target`` (default: the predicted one) at ``layer`` (default
    ``default_cam_layer``) for one image x (1, C, H, W): {"cam": (H, W) in [0, 1], "layer", "class",
    "logits"}."""
    layer = layer or default_cam_layer(model, x)
    path = resolve_layers(model, [layer])[layer]
    captured = {}

    def keep(module, inputs, output):
        # a copy the later in-place ReLUs leave alone, so its gradient is its own
        output = output.clone()
        captured["calls"] = captured.get("calls", 0) + 1
        captured["maps"] = output
        return output

    handle = dict(model.named_modules())[path].register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x)
            target = int(logits[0].argmax()) if target is None else target
            maps = captured["maps"]
            if captured["calls"] > 1:
                raise_reused(model, path, captured["calls"])
            (gradient,) = torch.autograd.grad(logits[0, target], maps)
    finally:
        handle.remove()
    weights = gradient[0].mean(dim=(1, 2), keepdim=True)  # (K, 1, 1): mean gradient per map
    cam = F.relu((weights * maps[0]).sum(0)).detach()  # (h, w)
    cam = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear",
                        align_corners=False)[0, 0]
    cam = cam / cam.max() if cam.max() > 0 else cam
    return {"cam": cam, "layer": layer, "module": path, "class": target,
            "map_size": list(maps.shape[-2:]), "logits": logits.detach()[0]}


def saliency(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """|∂y_target/∂x|, the largest over channels, scaled to [0, 1]: (H, W)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(model(x)[0, target], x)
    grad = gradient[0].abs().amax(0)
    return grad / grad.max() if grad.max() > 0 else grad


@torch.no_grad()
def occlusion(
    model: nn.Module, x: torch.Tensor, target: int, *, patch: int = 6, stride: int = 2
) -> torch.Tensor:
    """How much the class score drops when a ``patch``² square around each pixel is set to the mean
    image (zero after normalisation): (H, W), averaged over the patches covering each pixel. A
    brute-force attribution without gradients, to check Grad-CAM against."""
    _, _, h, w = x.shape
    base = model(x)[0, target]
    starts = [
        (r, c) for r in range(0, h - patch + 1, stride) for c in range(0, w - patch + 1, stride)
    ]
    batch = x.repeat(len(starts), 1, 1, 1)
    for i, (r, c) in enumerate(starts):
        batch[i, :, r:r + patch, c:c + patch] = 0
    drops = torch.cat([base - model(chunk)[:, target] for chunk in batch.split(256)])
    total, count = torch.zeros(h, w), torch.zeros(h, w)
    for drop, (r, c) in zip(drops, starts, strict=True):
        total[r:r + patch, c:c + patch] += drop
        count[r:r + patch, c:c + patch] += 1
    return total / count.clamp_min(1)


def draw_cam(image: np.ndarray, result: dict, sal: torch.Tensor, *, classes: list[str], title: str):
    """The image, Grad-CAM over it, and the gradient saliency, one colour scale (inferno) for both
    maps."""
    from cnnzoo.figures import new_figure

    figure, axes = new_figure(3, width=3.2, height=3.9)
    probabilities = result["logits"].float().softmax(-1)
    name = classes[result["class"]]
    show_image(axes[0], image, title=f"input\npredicted {classes[int(probabilities.argmax())]} "
                                     f"({float(probabilities.max()):.0%})")
    show_image(axes[1], image)
    axes[1].imshow(result["cam"].numpy(), cmap=HEAT_CMAP, alpha=0.55, vmin=0, vmax=1,
                              interpolation="bilinear")
    axes[1].set_title(f"Grad-CAM for {name!r}\nat {result['layer']} ({result['module']}, "
                      f"{result['map_size'][0]}×{result['map_size'][1]})", fontsize=9)
    scale = axes[2].imshow(sal.numpy(), cmap=HEAT_CMAP, vmin=0, vmax=1)
    show_image(
        axes[2],
        sal.numpy(),
        cmap=HEAT_CMAP,
        vmin=0,
        vmax=1,
        title=f"gradient saliency for {name!r}\nmax over channels of |∂y/∂x|",
    )
    figure.colorbar(scale, ax=axes, shrink=0.7, label="relative importance (0–1)")
    figure.suptitle(title, fontsize=11)
    return figure
