"""Inference throughput of the ImageNet models: cnnzoo's ``optimize_for_inference`` against plain fp32 eager.

Both sides run the same weights on the same batch of real images (Fashion-MNIST test images, resized to
224×224 and repeated to three channels); besides images/s and their ratio, the top-1 agreement of the two
sides' predictions shows that the speed costs no accuracy beyond rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnzoo.bench.timing import compare
from cnnzoo.engine.inference import optimize_for_inference
from cnnzoo.engine.runtime import synchronize
from cnnzoo.models.registry import create_model

IMAGENET_MODELS = ("resnet18", "alexnet", "googlenet", "densenet121", "vgg11")


def real_images_224(images: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` uint8 grey images as a normalised 3×224×224 float batch."""
    x = images[:count].float() / 255.0
    x = F.interpolate(x, size=224, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return (x - 0.45) / 0.25


def inference_throughput(model_name: str, images: torch.Tensor, *, batch_size: int = 16, repeats: int = 3,
                         agreement_images: int = 64, method: str = "compile", precision: str = "auto",
                         device: torch.device | str = "cpu") -> dict:
    device = torch.device(device)
    torch.manual_seed(0)
    model = create_model(model_name).eval().to(device)
    batch = real_images_224(images, batch_size).to(device)
    fast = optimize_for_inference(model, batch, method=method, precision=precision)
    eager = create_model(model_name).eval().to(device)
    eager.load_state_dict(model.state_dict())

    def run_eager() -> int:
        with torch.no_grad():
            eager(batch)
        synchronize(device)
        return batch_size

    def run_fast() -> int:
        fast(batch)
        synchronize(device)
        return batch_size

    result = compare(run_eager, run_fast, repeats=repeats)
    agree = total = 0
    with torch.no_grad():
        for start in range(0, agreement_images, batch_size):
            x = real_images_224(images[start:start + batch_size], batch_size).to(device)
            agree += (eager(x).argmax(1) == fast(x).argmax(1)).sum().item()
            total += x.shape[0]
    return {"model": model_name, "device": device.type, "batch_size": batch_size, "method": method, **result, "top1_agreement": round(agree / total, 4),
            "images_compared": total}
