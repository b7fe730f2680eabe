"""Re-checking claims of the papers on Fashion-MNIST: ``cnnzoo experiment NAME``.

Each experiment trains a few variants of one network with ``cnnzoo.engine.train.train`` (several
seeds where the effect is small), writes a table (``results.csv``, ``results.md``) and a plot
(``plot.png``) into its run directory and says whether the paper's claim held here, with the
numbers:

    relu-vs-tanh      AlexNet §3.1, Fig. 1: epochs to a training error, each activation at its best
    rate
    dropout           AlexNet §4.2: train-test gap with and without dropout
    lrn               AlexNet §3.3: local response normalisation, with vs without
    overlapping-pool  AlexNet §3.4: 3×3/2 vs 2×2/2 max-pooling
    batchnorm         Ioffe & Szegedy 2015: lenet5_bn vs lenet5 under the same short budget
    depth             ResNet §4.2: plain-20/56 vs ResNet-20/56 training error (degradation)
    params            ResNet's bottleneck and GoogLeNet's 1×1 reductions, counted (no training)
    gap-vs-fc         NiN §4.6: global average pooling vs a fully connected head, train-test gap
    aux-classifiers   GoogLeNet §5: auxiliary classifiers at loss weight 0.3, final accuracy
    small-kernels     VGG §2.3: two 3×3 convolutions vs one 5×5, accuracy, weights, multiply-adds
    batchnorm-lr      Ioffe & Szegedy §4.2.2: a high learning rate with and without BatchNorm
    dense-vs-res      DenseNet Table 2: DenseNet-BC-40 vs the larger ResNet-20
    augmentation      AlexNet §4.1: random crops and flips vs none, train-test gap

Each verdict ("held", "did not hold", "not resolvable at this budget") is read from a confidence
interval of
the effect over seeds (``verdict.py``). A full experiment logs its expected time up front (minutes
to about an
hour on two CPU cores) and ``budget=`` minutes sets its seeds; ``quick=True`` runs a seconds-long
version for
tests, whose numbers mean nothing. ``run_experiment(name, ...)`` is the entry point.
"""

from cnnzoo.experiments.catalog import EXPERIMENTS, run_experiment

__all__ = ["EXPERIMENTS", "run_experiment"]
