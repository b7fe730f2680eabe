"""BatchNorm and the learning rate: does a rate ten times higher train with BN, and not without?

Ioffe & Szegedy (2015), sections 3.3 and 4.2.2: normalising each layer's inputs keeps a larger rate
from blowing up the scale of the activations and gradients, so a normalised network can train at
rates that make the plain one diverge; their Inception with BN trained at 5× and 30× the original
rate (73.0% and 74.8% top-1 against Inception's 72.2%, Fig. 3).

Here: ``lenet5_bn`` against ``lenet5`` at rate 0.5 — ten times the 0.05 of the ``batchnorm``
experiment — with SGD (momentum 0.9, weight decay 5e-4) held constant, 2 epochs over 20,000
Fashion-MNIST images. A run whose loss turns NaN counts as chance (10%) on the test set: it has
learnt nothing it can use. The verdict is read from the test accuracy, BN minus plain.
"""

from __future__ import annotations

from cnnzoo.experiments.base import ExperimentSettings
from cnnzoo.experiments.two_arms import Arm, Comparison, run_comparison

HIGH_RATE = 0.5  # ten times ablations.SGD's rate; plain lenet5 diverged at it in a one-epoch probe
COMMON = dict(
    batch_size=128,
    optimizer="sgd",
    lr=HIGH_RATE,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="constant",
)

BATCHNORM_LR = Comparison(
    name="batchnorm-lr",
    title=f"BatchNorm at a high learning rate ({HIGH_RATE:g}): lenet5_bn vs lenet5",
    paper="Ioffe & Szegedy, 2015, 'Batch normalization', sections 3.3 and 4.2.2",
    claim="With batch normalisation a much higher learning rate still trains; without it the same "
          "rate fails (diverges or learns far less).",
    claimed=Arm("batchnorm", "lenet5_bn"),
    other=Arm("plain", "lenet5"),
    full=dict(COMMON, train_subset=20000, test_subset=2000, epochs=2),
    quick=dict(COMMON, train_subset=512, test_subset=256, epochs=1),
    paper_figure="Inception + BN at 5× and 30× the rate: 73.0% and 74.8% top-1, Inception 72.2% "
                 "(Fig. 3)",
    negligible=1.0,
    minutes_per_seed=0.1,  # measured: 2-core Xeon (AMX), fp32, 2026-12-05
)


def run(settings: ExperimentSettings) -> dict:
    return run_comparison(BATCHNORM_LR, settings)
