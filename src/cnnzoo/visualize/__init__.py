"""Seeing inside a network: what its kernels look like, what each stage computes on one image, where
it looks (Grad-CAM, saliency), which training images it finds alike, its most confident mistakes,
its features in 2-D, its classifier slid over a larger image as a score map, and its ONNX export
checked against PyTorch.

One module per view; each has plain functions that return data (tensors, dicts of numbers) and a
``draw_…`` function that turns them into a matplotlib figure through ``cnnzoo.figures.new_figure``
(never pyplot). ``source`` opens a run directory or a model name; ``drawing`` holds the shared
tiling and colour maps. The ``cnnzoo show …``, ``cnnzoo scoremap`` and ``cnnzoo export`` commands
are thin layers over these.
"""
