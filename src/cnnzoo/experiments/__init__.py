"""Re-checking claims of the papers on Fashion-MNIST: ``cnnzoo experiment NAME``.

Each experiment trains a few variants of one network with ``cnnzoo.engine.train.train`` (several seeds where
the effect is small), writes a table (``results.csv``, ``results.md``) and a plot (``plot.png``) into its run
directory and says plainly whether the paper's claim held here, with the numbers:

    relu-vs-tanh      AlexNet §3.1, Fig. 1: epochs to 25% training error with ReLU and with tanh
    dropout           AlexNet §4.2: train-test gap with and without dropout
    lrn               AlexNet §3.3: local response normalisation, with vs without
    overlapping-pool  AlexNet §3.4: 3×3/2 vs 2×2/2 max-pooling
    batchnorm         Ioffe & Szegedy 2015: lenet5_bn vs lenet5 under the same short budget
    depth             ResNet §4.2: plain-20/56 vs ResNet-20/56 training error (degradation)
    params            ResNet's bottleneck and GoogLeNet's 1×1 reductions, counted (no training)

Each full experiment is sized to take about ten minutes on two CPU cores; ``quick=True`` runs a
seconds-long version for tests, whose numbers mean nothing. ``run_experiment(name, ...)`` is the entry point.
"""

from cnnzoo.experiments.catalog import EXPERIMENTS, run_experiment

__all__ = ["EXPERIMENTS", "run_experiment"]
