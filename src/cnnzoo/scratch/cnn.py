"""A LeNet-sized convolutional network in NumPy, trained by SGD with momentum.

Architecture (for 28×28 grey images, default sizes):

    conv 5×5, 6 maps, padding 2  → ReLU → max-pool 2×2     (N, 1, 28, 28) → (N, 6, 14, 14)
    conv 5×5, 16 maps            → ReLU → max-pool 2×2     → (N, 16, 5, 5)
    flatten → linear 400→120 → ReLU → linear 120→84 → ReLU → linear 84→10 → softmax cross-entropy

The forward pass runs the layers of ``layers.py`` in order and keeps each one's cache; the backward
pass walks the same list in reverse, handing each layer the gradient of its output and collecting
the gradients of the parameters. That is all backpropagation is.

Initialisation. Weights are drawn N(0, 2/fan_in) (He et al., 2015), fan_in = inputs per output unit
(C·kH·kW for a conv). A ReLU zeroes about half its inputs, so this variance keeps the size of the
activations roughly constant from layer to layer instead of shrinking or growing geometrically. The
last layer, which no ReLU follows, gets N(0, 1/fan_in): smaller initial logits, so the first loss is
near ln(10) ≈ 2.3 (a uniform guess) rather than confidently wrong.

SGD with momentum (the form PyTorch uses):

    v ← μ·v + g,     θ ← θ − η·v

v is a running, exponentially decaying sum of past gradients (μ = 0.9 averages over roughly 1/(1−μ)
= 10 steps). Gradient components that keep their sign add up and components that flip from batch to
batch cancel, so the step is longer along consistent directions and the zig-zag across narrow
valleys is damped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cnnzoo.errors import ConfigError
from cnnzoo.scratch._blas import single_threaded_blas
from cnnzoo.scratch.layers import (
    conv2d_backward,
    conv2d_forward,
    conv_output_size,
    linear_backward,
    linear_forward,
    maxpool_backward,
    maxpool_forward,
    relu_backward,
    relu_forward,
    softmax_cross_entropy,
)

Params = dict[str, np.ndarray]


class SmallLeNet:
    """LeNet-shaped CNN with parameters in ``self.params`` (conv{1,2}.{weight,bias},
    fc{1..}.{weight,bias})."""

    def __init__(self, *, image_size: int = 28, in_channels: int = 1,
                 channels: tuple[int, int] = (6, 16),
                 kernel_size: int = 5, first_padding: int = 2, hidden: tuple[int, ...] = (120, 84),
                 num_classes: int = 10, seed: int = 0, dtype: type = np.float32) -> None:
        self.kernel_size, self.first_padding = kernel_size, first_padding
        rng = np.random.default_rng(seed)

        def he_normal(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

        c1, c2 = channels
        k = kernel_size
        side = conv_output_size(image_size, k, 1, first_padding) // 2   # conv1 then pool
        # conv2 (no padding) then pool
        side = conv_output_size(side, k, 1, 0) // 2
        if side < 1:
            raise ConfigError(f"image_size {image_size} is too small for two {k}×{k} conv + 2×2 "
                              "pool stages")
        self.params: Params = {
            "conv1.weight": he_normal((c1, in_channels, k, k), in_channels * k * k),
            "conv1.bias": np.zeros(c1, dtype),
            "conv2.weight": he_normal((c2, c1, k, k), c1 * k * k),
            "conv2.bias": np.zeros(c2, dtype),
        }
        widths = (c2 * side * side, *hidden, num_classes)
        self.num_fc = len(widths) - 1
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
            gain = 1.0 if i == self.num_fc else 2.0
            self.params[f"fc{i}.weight"] = (rng.standard_normal((fan_in, fan_out))
                                            * np.sqrt(gain / fan_in)).astype(dtype)
            self.params[f"fc{i}.bias"] = np.zeros(fan_out, dtype)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list]:
        """Logits (N, num_classes) for images x (N, C, H, W), and the caches the backward pass
        needs."""
        p = self.params
        caches: list = []
        for i, padding in ((1, self.first_padding), (2, 0)):
            x, conv_cache = conv2d_forward(x, p[f"conv{i}.weight"], p[f"conv{i}.bias"], 1, padding)
            pre_relu = x
            x, pool_cache = maxpool_forward(relu_forward(x), 2)
            caches.append((conv_cache, pre_relu, pool_cache))
        pooled_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        caches.append(pooled_shape)
        for i in range(1, self.num_fc + 1):
            fc_in = x
            x = linear_forward(x, p[f"fc{i}.weight"], p[f"fc{i}.bias"])
            pre_relu = x
            if i < self.num_fc:  # no ReLU after the last layer: the logits may be negative
                x = relu_forward(x)
            caches.append((fc_in, pre_relu))
        return x, caches

    def backward(self, grad_logits: np.ndarray, caches: list) -> Params:
        """Gradients of the loss for every parameter, given ∂L/∂logits; walks the forward's layers
        in reverse."""
        p = self.params
        grads: Params = {}
        g = grad_logits
        for i in range(self.num_fc, 0, -1):
            fc_in, pre_relu = caches[2 + i]
            if i < self.num_fc:
                g = relu_backward(g, pre_relu)
            g, grads[f"fc{i}.weight"], grads[f"fc{i}.bias"] = linear_backward(
                g, fc_in, p[f"fc{i}.weight"]
            )
        g = g.reshape(caches[2])  # un-flatten
        for i in (2, 1):
            conv_cache, pre_relu, pool_cache = caches[i - 1]
            g = relu_backward(maxpool_backward(g, pool_cache), pre_relu)
            g, grads[f"conv{i}.weight"], grads[f"conv{i}.bias"] = conv2d_backward(g, conv_cache)
        return grads

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, Params]:
        logits, caches = self.forward(x)
        loss, grad_logits = softmax_cross_entropy(logits, labels)
        return loss, self.backward(grad_logits, caches)

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Predicted class of every image, in batches to bound the memory im2col needs."""
        with single_threaded_blas():
            return np.concatenate([self.forward(x[i:i + batch_size])[0].argmax(axis=1)
                                   for i in range(0, len(x), batch_size)])


class SGDMomentum:
    """v ← μ·v + g; θ ← θ − η·v, updating the parameter arrays in place (matches
    ``torch.optim.SGD``)."""

    def __init__(self, params: Params, lr: float, momentum: float = 0.9) -> None:
        self.params, self.lr, self.momentum = params, lr, momentum
        self.velocity = {name: np.zeros_like(value) for name, value in params.items()}

    def step(self, grads: Params) -> None:
        for name, param in self.params.items():
            v = self.velocity[name]
            v *= self.momentum
            v += grads[name]
            param -= self.lr * v


def standardise_images(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """uint8 (N, H, W) images → float32 (N, 1, H, W) with zero mean and unit variance.

    The mean and standard deviation come from the training images only and are applied to the others
    too; inputs centred on 0 keep the first layer's pre-activations centred, which makes training
    faster.
    """
    mean = float(train.mean()) / 255.0
    std = float(train.std()) / 255.0
    return [
        ((images.astype(np.float32) / 255.0 - mean) / std)[:, None] for images in (train, *others)
    ]


@dataclass
class TrainHistory:
    step_losses: list[float] = field(default_factory=list)   # mini-batch loss after every step
    epoch_test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0                                     # training time, evaluation excluded


def train(
    model: SmallLeNet,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.02,
    momentum: float = 0.9,
    seed: int = 0,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> TrainHistory:
    """Mini-batch SGD with momentum, reshuffling the data every epoch (so each pass sees different
    batches).

    The learning rate follows a cosine from ``lr`` down to 0 over the whole run,
    η_t = lr · ½(1 + cos(π t / T)): large steps early to make progress, small ones at the end so the
    weights settle instead of bouncing around the minimum with the mini-batch noise.
    """
    rng = np.random.default_rng(seed)
    optimiser = SGDMomentum(model.params, lr, momentum)
    history = TrainHistory()
    batches_per_epoch = -(-len(x_train) // batch_size)
    total_steps, step = epochs * batches_per_epoch, 0
    with single_threaded_blas():
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            order = rng.permutation(len(x_train))
            for first in range(0, len(order), batch_size):
                batch = order[first:first + batch_size]
                loss, grads = model.loss_and_grads(x_train[batch], y_train[batch])
                optimiser.lr = lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
                optimiser.step(grads)
                history.step_losses.append(loss)
                step += 1
            history.seconds += time.perf_counter() - start
            message = (f"epoch {epoch}/{epochs}: mean train loss "
                       f"{np.mean(history.step_losses[-batches_per_epoch:]):.4f}")
            if x_test is not None and y_test is not None:
                history.epoch_test_accuracy.append(float(np.mean(model.predict(x_test) == y_test)))
                message += f", test accuracy {history.epoch_test_accuracy[-1]:.2%}"
            log(message + f" ({history.seconds:.1f} s of training so far)")
    return history
