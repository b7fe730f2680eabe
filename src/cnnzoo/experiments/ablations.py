"""With-or-without checks of three design choices: LRN, overlapping pooling, BatchNorm.

Each trains the same network with the choice on and off, for the same number of epochs over the same
images (the papers' claims are per step, so the arms get equal steps, not equal seconds; the seconds
are reported), over several seeds, and judges the per-seed difference in test accuracy by its
interval (``two_arms``):

- ``lrn`` — Krizhevsky et al. (2012), section 3.3: local response normalisation lowers the top-1
  error by
  1.4% on ImageNet and the test error of a 4-layer CNN on CIFAR-10 from 13% to 11%.
  ``alexnet_small(lrn=True)`` against ``lrn=False``: 2 epochs over 8,000 images.
- ``overlapping-pool`` — Krizhevsky et al. (2012), section 3.4: 3×3 pools with stride 2
  (overlapping) instead of 2×2 with stride 2 lower the top-1 error by 0.4%.
  ``alexnet_small(overlapping_pool=True/False)``, LRN off in both arms (it is beside the point and
  halves the CPU time): 2 epochs over 12,000 images.
- ``batchnorm`` — Ioffe & Szegedy (2015): normalising each layer's inputs per mini-batch speeds
  training up (the same accuracy in 14 times fewer steps on ImageNet), so under the same short
  budget the normalised network should be ahead. ``lenet5_bn`` against ``lenet5``: 2 epochs over all
  60,000 images, 5 seeds.

The AlexNet arms train with Adam (see ``ADAM`` for why) and test on the first 2,000 test images;
LeNet with SGD and momentum, tested on all 10,000. The effects the AlexNet paper reports are about
as large as the seed-to-seed spread here, so their results tables say how many seeds the paper's
effect would need.
"""

from __future__ import annotations

from cnnzoo.experiments.base import ExperimentSettings
from cnnzoo.experiments.two_arms import Arm, Comparison, run_comparison

ALEXNET_PAPER = "Krizhevsky, Sutskever & Hinton, 2012 (AlexNet)"
# alexnet_small has no normalisation layer to keep its 8 layers' signal in range, and plain SGD
# leaves its starting plateau slowly: in 45 s of one-cycle training the AlexNet recipe reached 69%
# with SGD and 81% with Adam. Small batches give more steps for the same images at the same CPU
# throughput.
ADAM = dict(batch_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cosine")
# lenet5 is shallow enough for SGD with momentum, the optimiser of the BatchNorm paper.
SGD = dict(
    batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="onecycle"
)
QUICK_ALEXNET = dict(ADAM, train_subset=256, test_subset=256, epochs=1)

ABLATIONS = {
    "lrn": Comparison(
        name="lrn",
        title="Local response normalisation: with vs without",
        paper=f"{ALEXNET_PAPER}, section 3.3",
        claim="Local response normalisation after the first two convolutions improves test "
              "accuracy.",
        claimed=Arm("lrn", "alexnet_small", {"lrn": True}),
        other=Arm("no-lrn", "alexnet_small", {"lrn": False}),
        full=dict(ADAM, train_subset=8000, test_subset=2000, epochs=2),
        quick=QUICK_ALEXNET,
        paper_figure="top-1 error 1.4 points lower on ImageNet; 13% → 11% test error on CIFAR-10 "
                     "(§3.3)",
        paper_effect=1.4,
        minutes_per_seed=1.1,  # measured: 2-core Xeon (AMX), fp32, 2026-12-05
    ),
    "overlapping-pool": Comparison(
        name="overlapping-pool",
        title="Overlapping pooling (3×3/2) vs non-overlapping (2×2/2)",
        paper=f"{ALEXNET_PAPER}, section 3.4",
        claim="Overlapping max-pooling (3×3 windows, stride 2) improves test accuracy over "
              "non-overlapping 2×2/2 pooling.",
        claimed=Arm("overlapping", "alexnet_small", {"overlapping_pool": True, "lrn": False}),
        other=Arm("non-overlapping", "alexnet_small", {"overlapping_pool": False, "lrn": False}),
        full=dict(ADAM, train_subset=12000, test_subset=2000, epochs=2),
        quick=QUICK_ALEXNET,
        paper_figure="top-1 error 0.4 points lower on ImageNet (§3.4)",
        paper_effect=0.4,
        negligible=0.1,
        minutes_per_seed=1.6,  # measured: 2-core Xeon (AMX), fp32, 2026-12-05
    ),
    "batchnorm": Comparison(
        name="batchnorm",
        title="Batch normalisation: lenet5_bn vs lenet5 under the same short budget",
        paper="Ioffe & Szegedy, 2015, 'Batch normalization: accelerating deep network training by "
              "reducing internal covariate shift'",
        claim="Batch normalisation speeds training up: under the same short training budget the "
              "normalised network reaches a higher test accuracy.",
        claimed=Arm("batchnorm", "lenet5_bn"),
        other=Arm("plain", "lenet5"),
        full=dict(SGD, train_subset=None, test_subset=None, epochs=2),
        quick=dict(SGD, train_subset=1000, test_subset=500, epochs=1),
        paper_figure="Inception's final accuracy in 14× fewer steps on ImageNet (§4.2.2, Fig. 2)",
        default_seeds=5,
        minutes_per_seed=0.25,  # measured: 2-core Xeon (AMX), fp32, 2026-12-05
    ),
}


def run(name: str, settings: ExperimentSettings) -> dict:
    return run_comparison(ABLATIONS[name], settings)
