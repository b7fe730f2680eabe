"""Global average pooling vs a fully connected head: NiN's structural regulariser.

Lin, Chen & Yan (2013), sections 3.2 and 4.6: NiN's last mlpconv block gives one map per class and
averages it, a head with no parameters to fit, which the paper argues cannot overfit and so acts as
a regulariser. Its comparison (CIFAR-10, the same network with the average pool replaced by a fully
connected layer): test error 10.41% with global average pooling, 10.88% with the FC layer and
dropout, 11.59% with the FC layer alone.

Here: ``nin_small(head="gap")`` against ``nin_small(head="fc")`` (the flattened 10×6×6 class maps to
the ten classes), both with BatchNorm (beside the point, and it lets NiN train in CPU minutes) and
dropout 0.5 before the class maps, on 2,000 Fashion-MNIST images for 15 epochs: a regime where a
network can overfit. The gap is eval-mode training accuracy minus test accuracy; the test accuracy
and the parameters are reported beside it.
"""

from __future__ import annotations

from cnnzoo.experiments.base import ExperimentSettings
from cnnzoo.experiments.two_arms import Arm, Comparison, run_comparison

COMMON = dict(batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cosine")

GAP_VS_FC = Comparison(
    name="gap-vs-fc",
    title="NiN: global average pooling vs a fully connected head",
    paper="Lin, Chen & Yan, 2013, 'Network In Network', sections 3.2 and 4.6",
    claim="Global average pooling over per-class maps, with no parameters of its own, overfits "
          "less than a fully connected head on the same features: a smaller train-test gap.",
    claimed=Arm("gap", "nin_small", {"head": "gap", "batch_norm": True}),
    other=Arm("fc", "nin_small", {"head": "fc", "batch_norm": True}),
    full=dict(COMMON, train_subset=2000, test_subset=2000, epochs=15),
    quick=dict(COMMON, train_subset=128, test_subset=128, epochs=1),
    paper_figure="CIFAR-10 test error 10.41% with GAP, 10.88% FC + dropout, 11.59% FC alone "
                 "(§4.6); no figure for the gap",
    measure="gap",
    negligible=0.5,
    minutes_per_seed=7.0,  # measured: 2-core Xeon (AMX), fp32, 2026-12-05
    eval_train=True,
)


def run(settings: ExperimentSettings) -> dict:
    return run_comparison(GAP_VS_FC, settings)
