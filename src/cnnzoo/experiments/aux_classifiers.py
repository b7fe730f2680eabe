"""GoogLeNet's auxiliary classifiers: do the extra losses at 4a and 4d help training?

Szegedy et al. (2015), section 5: two small classifiers on inception 4a and 4d add their losses,
weighted by 0.3, during training only, meant to strengthen the gradient reaching the lower layers
and to regularise. The paper gives no ablation of them; Szegedy et al. (2016, "Rethinking the
Inception architecture", section 4) found they did not speed training up early on and gave a
slightly higher accuracy near the end.

Here: ``googlenet_small(width=0.25)`` with ``aux_logits=True`` (the heads, loss weight 0.3 as in the
paper) against ``aux_logits=False``, 3 epochs over 8,000 Fashion-MNIST images. The verdict is read
from the final test accuracy; the per-epoch curves in the plot show the training speed.
"""

from __future__ import annotations

from cnnzoo.experiments.base import ExperimentSettings
from cnnzoo.experiments.two_arms import Arm, Comparison, run_comparison

COMMON = dict(batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="cosine")

AUX_CLASSIFIERS = Comparison(
    name="aux-classifiers",
    title="GoogLeNet: auxiliary classifiers (loss weight 0.3) vs none",
    paper="Szegedy et al., 2015 (GoogLeNet), section 5; Szegedy et al., 2016, section 4",
    claim="Auxiliary classifiers on intermediate layers, their losses weighted 0.3, improve the "
          "final accuracy of the network trained with them.",
    claimed=Arm("aux", "googlenet_small", {"aux_logits": True, "width": 0.25}),
    other=Arm("no-aux", "googlenet_small", {"aux_logits": False, "width": 0.25}),
    full=dict(COMMON, train_subset=8000, test_subset=2000, epochs=3),
    quick=dict(COMMON, train_subset=128, test_subset=128, epochs=1),
    paper_figure="no ablation in the 2015 paper; 'slightly higher' final accuracy and no early "
                 "speed-up (2016 paper, §4)",
    minutes_per_seed=2.6,  # measured: 2-core Xeon (AMX), fp32, 2026-12-05
)


def run(settings: ExperimentSettings) -> dict:
    return run_comparison(AUX_CLASSIFIERS, settings)
