"""torchvision's state-dict key layouts mapped onto cnnzoo's module names, for ``cnnzoo import``.

torchvision is not a dependency: each map below is written from torchvision's published architecture
definitions (``torchvision/models/{alexnet,vgg,resnet,densenet,googlenet}.py``). A map only renames
keys; whether the tensors then fit is checked by their shapes, and where the two architectures
differ ``ARCHITECTURE_NOTES`` says precisely where, so that a mismatch explains itself:

- VGG: the same layers under the same names (``features.N``, ``classifier.0/3/6``); identical.
- ResNet: ``conv1``/``bn1`` are cnnzoo's ``stem.0``/``stem.1``; a block's ``convK``/``bnK`` are
  ``convK.0``/``convK.1``; ``downsample`` is ``shortcut``. Both are "ResNet v1.5" (the bottleneck
  strides its 3×3 convolution), so the weights are the same function.
- DenseNet: ``features.norm5`` is ``features.norm_final`` and the bare ``classifier`` Linear is
  ``classifier.fc``; the pre-2018 keys (``norm.1``, ``conv.2``) that torchvision still rewrites are
  rewritten here too.
- AlexNet and GoogLeNet are different networks under the same name (see the notes).

Wrappers add prefixes to every key: ``module.`` (DataParallel / DistributedDataParallel),
``_orig_mod.`` (torch.compile) and ``model.`` (Lightning); ``strip_wrappers`` removes them.
"""

from __future__ import annotations

import re

import torch

WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")

ARCHITECTURE_NOTES = {
    "alexnet": ("torchvision's AlexNet is the one-tower variant of Krizhevsky's 'one weird trick' "
                "(2014): 64-192-384-256-256 kernels and dropout before fc6/fc7, while cnnzoo's "
                "alexnet is d2l's 96-256-384-384-256 (its convolution shapes differ) and, with "
                "conv1's padding 1, ends in 5×5 maps (fc6 of 6,400 inputs) where torchvision "
                "pools to 6×6 (9,216)"),
    "googlenet": ("torchvision's GoogLeNet puts BatchNorm after every convolution (bias-free "
                  "convs, bn.* keys), has no LRN and uses 3×3 kernels in the '5×5' branch (a "
                  "known bug it keeps), while cnnzoo's googlenet is the 2014 paper's (biased "
                  "convs, LRN, 5×5)"),
}

_RESNET_RULES = [
    (r"^conv1\.(.*)$", r"stem.0.\1"),
    (r"^bn1\.(.*)$", r"stem.1.\1"),
    (r"^(layer\d+\.\d+)\.conv(\d)\.(.*)$", r"\1.conv\2.0.\3"),
    (r"^(layer\d+\.\d+)\.bn(\d)\.(.*)$", r"\1.conv\2.1.\3"),
    (r"^(layer\d+\.\d+)\.downsample\.(.*)$", r"\1.shortcut.\2"),
]
_DENSENET_RULES = [
    # the pre-2018 checkpoints torchvision still rewrites: denselayer1.norm.1.weight -> norm1.weight
    (r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12])\.(.*)$", r"\1\2.\3"),
    (r"^features\.norm5\.(.*)$", r"features.norm_final.\1"),
    (r"^classifier\.(weight|bias)$", r"classifier.fc.\1"),
]
_GOOGLENET_RULES = [
    (r"^conv1\.conv\.(.*)$", r"stem.conv1.conv.\1"),
    (r"^conv2\.conv\.(.*)$", r"stem.conv2_reduce.conv.\1"),
    (r"^conv3\.conv\.(.*)$", r"stem.conv2.conv.\1"),
    (r"^(inception\w+)\.branch1\.conv\.(.*)$", r"\1.branch1x1.conv.\2"),
    (r"^(inception\w+)\.branch2\.0\.conv\.(.*)$", r"\1.branch3x3.reduce.conv.\2"),
    (r"^(inception\w+)\.branch2\.1\.conv\.(.*)$", r"\1.branch3x3.conv.conv.\2"),
    (r"^(inception\w+)\.branch3\.0\.conv\.(.*)$", r"\1.branch5x5.reduce.conv.\2"),
    (r"^(inception\w+)\.branch3\.1\.conv\.(.*)$", r"\1.branch5x5.conv.conv.\2"),
    (r"^(inception\w+)\.branch4\.1\.conv\.(.*)$", r"\1.branch_pool.proj.conv.\2"),
    (r"^fc\.(.*)$", r"classifier.fc.\1"),
]
# torchvision's classifier Sequential has no Flatten (its forward flattens): fc8 is index 6, not 7
_ALEXNET_RULES = [(r"^classifier\.6\.(.*)$", r"classifier.7.\1")]

_FAMILIES = {"alexnet": _ALEXNET_RULES, "vgg": [], "resnet": _RESNET_RULES,
             "densenet": _DENSENET_RULES, "googlenet": _GOOGLENET_RULES}
# the registered names whose layout is torchvision's architecture (the small variants are not)
_MAPPED = re.compile(r"^(alexnet|vgg(11|13|16|19)(_bn)?|resnet(18|34|50|101|152)|"
                     r"densenet(121|161|169|201)|googlenet)$")


def family(name: str) -> str | None:
    """The torchvision family whose key layout ``name`` (a registered model) can take, or None."""
    if not _MAPPED.match(name):
        return None
    return next(key for key in _FAMILIES if name.startswith(key))


def strip_wrappers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` without the prefixes a training wrapper put on every key, and those prefixes."""
    removed = []
    for prefix in WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
            removed.append(prefix)
    return state, removed


def from_torchvision(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` in torchvision's layout renamed to the cnnzoo model ``name``'s (unchanged where no
    rule applies)."""
    rules = [(re.compile(pattern), target) for pattern, target in _FAMILIES[family(name)]]
    renamed = {}
    for key, value in state.items():
        for pattern, target in rules:
            new, count = pattern.subn(target, key)
            if count:
                key = new
                break
        renamed[key] = value
    return renamed
