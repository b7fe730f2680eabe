"""Deep-learning fundamentals from scratch, in NumPy only (this package never imports torch).

Read the modules in this order; each holds one idea:

- ``linreg`` — linear regression: the one-variable closed form, the normal equation, and gradient
  descent (batch and mini-batch), with a measured look at why badly conditioned features make it
  crawl.
- ``tiny_net`` — the smallest network (one logistic neuron) and a 784-128-10 multi-layer perceptron
  whose backpropagation is written out line by line.
- ``layers`` — the building blocks of a CNN, each as a forward and a backward function: linear,
  ReLU, convolution via im2col, max-pooling, softmax cross-entropy.
- ``cnn``      — a LeNet-sized network assembled from those layers, trained with SGD with momentum.
- ``run`` — ``run(name, out_dir=...)`` runs one demo (``linreg``, ``gd``, ``mlp``, ``cnn``), logs
  what it did, saves a plot and returns its figures.
- ``commands`` — ``cnnzoo scratch NAME``: the same demos from the command line.

Nothing is imported here, so ``import cnnzoo.scratch`` stays instant and free of NumPy's heavier
friends.
"""
