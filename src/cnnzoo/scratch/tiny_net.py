"""The smallest network and a small multi-layer perceptron, with every derivative written out by
hand.

1. One neuron: logistic regression
    z = x·w + b,   p = σ(z) = 1 / (1 + e^(−z))   (the probability that the label is 1)
    Binary cross-entropy: L = −(1/n) Σ_i [y_i log p_i + (1 − y_i) log(1 − p_i)].
    Because σ′(z) = p(1 − p), the chain rule collapses to a strikingly simple gradient:
        ∂L/∂z_i = (p_i − y_i) / n,    ∂L/∂w = Xᵀ(p − y) / n,    ∂L/∂b = mean(p − y)
    — "prediction minus truth", exactly as for linear regression. We compute the loss from z
    directly, using log(1 + e^z) − y·z, which is the same quantity without ever taking log(0).

2. A multi-layer perceptron: 784 → 128 (ReLU) → 10, softmax cross-entropy
    Forward, for a batch x of shape (n, 784):
        a = x W₁ + b₁        (n, 128)     pre-activations of the hidden layer
        h = max(a, 0)        (n, 128)     ReLU
        z = h W₂ + b₂        (n, 10)      logits, one score per class
        L = −(1/n) Σ_i log softmax(z_i)[y_i]
    Backward — the chain rule applied from the loss back to the input, reusing the forward's values:
        g_z  = (softmax(z) − onehot(y)) / n
        g_W₂ = hᵀ g_z            g_b₂ = Σ_rows g_z
        g_h  = g_z W₂ᵀ
        g_a  = g_h ⊙ [a > 0]     the ReLU lets gradient through only where the unit was active
        g_W₁ = xᵀ g_a            g_b₁ = Σ_rows g_a
    Each weight gradient is (input of the layer)ᵀ × (gradient at its output): a weight's influence
    on the loss is the input it multiplies times the sensitivity of the loss to the sum it feeds.
    Plain SGD then steps every parameter against its gradient: θ ← θ − η g_θ.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnzoo.scratch._blas import single_threaded_blas
from cnnzoo.scratch.layers import softmax_cross_entropy

# --------------------------------------------------------------------------------------- one neuron


def make_two_blobs(n: int = 200, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A toy binary task: n points in 2-D, half around (−1, −1) labelled 0 and half around (1, 1)
    labelled 1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    points = rng.normal(0, 1, (n, 2)) + np.where(labels[:, None] == 1, 1.0, -1.0)
    return points, labels.astype(np.float64)


def sigmoid(z: np.ndarray) -> np.ndarray:
    # 1/(1 + e^(−z)) overflows e^(−z) for very negative z; the equivalent e^z/(1 + e^z) is safe
    # there.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def logistic_loss_and_grads(x: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: float
                            ) -> tuple[float, np.ndarray, float]:
    """Binary cross-entropy of the neuron σ(x·w + b) and its gradients (∂L/∂w, ∂L/∂b)."""
    z = x @ weights + bias
    # −[y log σ(z) + (1−y) log(1−σ(z))], rearranged
    loss = float(np.mean(np.logaddexp(0, z) - y * z))
    grad_z = (sigmoid(z) - y) / len(y)
    return loss, x.T @ grad_z, float(grad_z.sum())


def train_logistic_neuron(x: np.ndarray, y: np.ndarray, *, lr: float = 0.5, steps: int = 100
                          ) -> tuple[np.ndarray, float, list[float]]:
    """Gradient descent on the neuron from w = 0, b = 0. Returns (weights, bias, loss before every
    step)."""
    weights, bias = np.zeros(x.shape[1]), 0.0
    losses = []
    for _ in range(steps):
        loss, grad_w, grad_b = logistic_loss_and_grads(x, y, weights, bias)
        losses.append(loss)
        weights -= lr * grad_w
        bias -= lr * grad_b
    return weights, bias, losses


# --------------------------------------------------------------------------- multi-layer perceptron


class MLP:
    """in → hidden (ReLU) → classes, with parameters W1 (in, hidden), b1, W2 (hidden, classes),
    b2."""

    def __init__(self, inputs: int = 784, hidden: int = 128, classes: int = 10, *, seed: int = 0,
                 dtype: type = np.float32) -> None:
        rng = np.random.default_rng(seed)
        # N(0, 2/fan_in) (He) before a ReLU keeps the activations' scale steady; N(0, 1/fan_in) for
        # the logits.
        self.params = {
            "W1": (rng.standard_normal((inputs, hidden)) * np.sqrt(2 / inputs)).astype(dtype),
            "b1": np.zeros(hidden, dtype),
            "W2": (rng.standard_normal((hidden, classes)) * np.sqrt(1 / hidden)).astype(dtype),
            "b2": np.zeros(classes, dtype),
        }

    def logits(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        return np.maximum(x @ p["W1"] + p["b1"], 0) @ p["W2"] + p["b2"]

    def loss_and_grads(
        self, x: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Forward pass, then backpropagation, line for line as in the module docstring."""
        p = self.params
        a = x @ p["W1"] + p["b1"]
        h = np.maximum(a, 0)
        z = h @ p["W2"] + p["b2"]
        loss, g_z = softmax_cross_entropy(z, labels)  # g_z = (softmax(z) − onehot(y)) / n
        g_h = g_z @ p["W2"].T
        g_a = g_h * (a > 0)
        grads = {"W2": h.T @ g_z, "b2": g_z.sum(axis=0), "W1": x.T @ g_a, "b1": g_a.sum(axis=0)}
        return loss, grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        with single_threaded_blas():
            return self.logits(x).argmax(axis=1)


def flatten_images(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """uint8 (N, 28, 28) → float32 (N, 784) rows, centred and scaled with the training images' mean
    and std."""
    mean, std = float(train.mean()) / 255.0, float(train.std()) / 255.0
    return [
        (images.reshape(len(images), -1).astype(np.float32) / 255.0 - mean) / std
        for images in (train, *others)
    ]


def train_mlp(
    model: MLP,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.1,
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> list[float]:
    """Plain mini-batch SGD (θ ← θ − η·g), reshuffled each epoch. Returns the loss of every step."""
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    with single_threaded_blas():
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(x))
            for first in range(0, len(x), batch_size):
                batch = order[first:first + batch_size]
                loss, grads = model.loss_and_grads(x[batch], labels[batch])
                for name, grad in grads.items():
                    model.params[name] -= lr * grad
                losses.append(loss)
            per_epoch = -(-len(x) // batch_size)
            log(f"epoch {epoch}/{epochs}: mean train loss {np.mean(losses[-per_epoch:]):.4f}")
    return losses
