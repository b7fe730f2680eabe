"""Dropout: the gap between training and test accuracy with and without dropout in the FC layers.

Krizhevsky, Sutskever & Hinton (2012), section 4.2: dropout (p = 0.5) in the first two fully
connected layers; without it their network overfits substantially (Hinton et al., 2012 and
Srivastava et al., 2014 introduce the method). The paper gives no number for the gap.

Here, a regime where dropout has something to act on: ``alexnet_small`` with ``dropout=0.5`` and
``dropout=0.0`` on only 1,000 Fashion-MNIST images for 30 epochs (Adam, batches of 32: about 940
steps), so both arms can memorise their training images long before the end, without weight decay so
that dropout is the only regulariser, over 3 seeds (the seed draws the 1,000 images too). LRN is off
in both arms: it is beside the point and costs half the CPU time. The training accuracy is measured
after training in eval mode on the images trained on (see ``two_arms``); the verdict is read from
the gap, and the test accuracy is reported beside it, since a smaller gap bought with a worse fit
would not be the claim.
"""

from __future__ import annotations

from cnnzoo.experiments.base import ExperimentSettings
from cnnzoo.experiments.two_arms import Arm, Comparison, run_comparison

# Adam and small batches for the reason given in ablations.ADAM: alexnet_small leaves its starting
# plateau much sooner with Adam than with plain SGD.
COMMON = dict(
    model="alexnet_small",
    batch_size=32,
    optimizer="adam",
    lr=1e-3,
    weight_decay=0.0,
    schedule="cosine",
)

DROPOUT = Comparison(
    name="dropout",
    title="Dropout: train–test gap with and without, on 1,000 images",
    paper="Krizhevsky, Sutskever & Hinton, 2012 (AlexNet), section 4.2",
    claim="Dropout (p = 0.5) in the hidden fully connected layers substantially reduces "
          "overfitting: the gap between training and test accuracy is smaller than without it.",
    claimed=Arm("dropout0.5", "alexnet_small", {"dropout": 0.5, "lrn": False}),
    other=Arm("dropout0", "alexnet_small", {"dropout": 0.0, "lrn": False}),
    full=dict(COMMON, train_subset=1000, test_subset=2000, epochs=30),
    quick=dict(COMMON, train_subset=256, test_subset=256, epochs=1),
    paper_figure="'substantial overfitting' without dropout; no figure for the gap (§4.2)",
    measure="gap",
    negligible=0.5,
    minutes_per_seed=2.7,  # measured: 2-core Xeon (AMX), fp32, 2026-12-05
    eval_train=True,
    notes=(
        "Training accuracy is measured in eval mode (dropout off) on the 1,000 training images "
        "after training; the running accuracy during training sees half the hidden units dropped.",
    ),
)


def run(settings: ExperimentSettings) -> dict:
    return run_comparison(DROPOUT, settings)
