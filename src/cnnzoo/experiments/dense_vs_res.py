"""DenseNet-BC against ResNet at a similar size: accuracy per parameter.

Huang, Liu, van der Maaten & Weinberger (2017), section 4.3 and Table 2: dense connectivity reuses
features, so a DenseNet-BC needs fewer parameters for the same accuracy; with 0.8 M parameters (L =
100, k = 12) it reaches
4.51% error on augmented CIFAR-10, where a 1.7 M-parameter ResNet-110 reaches 6.41%.

Here: ``densenet_bc_40_k12`` (176 k parameters for one input channel) against ``resnet20`` (269 k),
the smallest of each family in the zoo, 5 epochs over 10,000 Fashion-MNIST images with SGD (momentum
0.9, Nesterov, weight decay 1e-4, cosine schedule). The claim is read as non-inferiority: with 65%
of ResNet-20's parameters, DenseNet-BC is not worse by more than half a point of test accuracy (the
interval's lower end above −0.5), which is a higher accuracy per parameter.
"""

from __future__ import annotations

from cnnzoo.experiments.base import ExperimentSettings
from cnnzoo.experiments.two_arms import Arm, Comparison, run_comparison

COMMON = dict(
    batch_size=64,
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    nesterov=True,
    weight_decay=1e-4,
    schedule="cosine",
)

DENSE_VS_RES = Comparison(
    name="dense-vs-res",
    title="DenseNet-BC-40 (k = 12) vs ResNet-20: accuracy per parameter",
    paper="Huang, Liu, van der Maaten & Weinberger, 2017 (DenseNet), section 4.3, Table 2",
    claim="A DenseNet-BC is at least as accurate as a ResNet with more parameters (here: not "
          "worse by more than 0.5 points with 65% of the parameters).",
    claimed=Arm("densenet_bc_40_k12", "densenet_bc_40_k12"),
    other=Arm("resnet20", "resnet20"),
    full=dict(COMMON, train_subset=10000, test_subset=2000, epochs=5),
    quick=dict(COMMON, train_subset=128, test_subset=128, epochs=1),
    paper_figure="DenseNet-BC (0.8 M params) 4.51% vs ResNet-110 (1.7 M) 6.41% error, CIFAR-10+ "
                 "(Table 2)",
    paper_effect=1.9,
    negligible=0.0,
    minimum=-0.5,
    minutes_per_seed=6.2,  # measured: 2-core Xeon (AMX), fp32, 2026-12-05
)


def run(settings: ExperimentSettings) -> dict:
    return run_comparison(DENSE_VS_RES, settings)
