"""The layers of a CNN as pairs of functions: a forward pass and the backward pass that undoes it
for gradients.

Backpropagation needs, for every layer y = f(x; θ), one rule: given g_y = ∂L/∂y (the gradient of the
loss with respect to the layer's output, same shape as y), return g_x = ∂L/∂x and g_θ = ∂L/∂θ. By
the chain rule these are the vector–Jacobian products g_x = (∂y/∂x)ᵀ g_y and g_θ = (∂y/∂θ)ᵀ g_y.
Each forward function returns what its backward will need (the "cache"), so nothing is recomputed.

Shapes follow PyTorch: images are (N, C, H, W), conv weights (F, C, kH, kW). Linear weights are
stored (in, out) so that the forward is simply ``x @ weight``. Every function keeps its input's
dtype (float32 for training speed, float64 for gradient checks).

Layers and their gradients
--------------------------
Linear       y = x W + b                  g_x = g_y Wᵀ,  g_W = xᵀ g_y,  g_b = Σ_rows g_y
ReLU         y = max(x, 0)                g_x = g_y ⊙ [x > 0]
Convolution  y[n,f,i,j] = b[f] + Σ_{c,u,v} W[f,c,u,v] · x_pad[n, c, i·s + u, j·s + v]
             im2col turns this into one matrix product (below); the backward is the linear layer's,
             followed by col2im, which adds each window's gradient back onto the pixels it was
             copied from.
Max-pool y = the largest value of each k×k window; the gradient flows only to that argmax position,
             because the other positions did not influence y.
Softmax cross-entropy
             p = softmax(z),  L = −(1/N) Σ_n log p[n, y_n],   g_z = (p − onehot(y)) / N

im2col ------ A convolution is a dot product between the kernel and every window of the (padded)
input. Copy each window into a row: the input becomes a matrix of shape (N·H_out·W_out, C·kH·kW),
the kernels a matrix (F, C·kH·kW), and the whole convolution is one matrix product, which BLAS does
fast. The output size is H_out = ⌊(H + 2·padding − kH) / stride⌋ + 1 (and likewise for W).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# ------------------------------------------------------------------------------------- linear, ReLU


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """y = x @ weight + bias, for x (N, in), weight (in, out), bias (out,)."""
    return x @ weight + bias


def linear_backward(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (grad_x, grad_weight, grad_bias) given grad_out = ∂L/∂y of shape (N, out)."""
    # Each output y[n, o] = Σ_i x[n, i] W[i, o] + b[o]: x[n, i] reaches the loss through every
    # output o (hence the sum over o in g_y Wᵀ), and W[i, o] through every sample n (hence the sum
    # over n in xᵀ g_y).
    return grad_out @ weight.T, x.T @ grad_out, grad_out.sum(axis=0)


def relu_forward(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """∂L/∂x = ∂L/∂y where x > 0, else 0 (at exactly 0 we take the derivative as 0, as PyTorch
    does)."""
    return grad_out * (x > 0)


# -------------------------------------------------------------------------------------- convolution


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def im2col(
    x: np.ndarray, kernel_h: int, kernel_w: int, stride: int = 1, padding: int = 0
) -> np.ndarray:
    """Copy every kH×kW window of the zero-padded x (N, C, H, W) into a row: (N·H_out·W_out,
    C·kH·kW).

    Rows are ordered (n, i, j) — sample, output row, output column; columns (c, u, v) — channel,
    kernel row, kernel column, which is the order of ``weight.reshape(F, -1)``.
    """
    n, c, h, w = x.shape
    out_h = conv_output_size(h, kernel_h, stride, padding)
    out_w = conv_output_size(w, kernel_w, stride, padding)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    # A view, no copy: windows[n, c, i, j, u, v] = x[n, c, i + u, j + v] for every stride-1 position
    # (i, j)...
    windows = sliding_window_view(x, (kernel_h, kernel_w), axis=(2, 3))
    # ...of which a stride s keeps every s-th. Still a view; the reshape below makes the one copy.
    windows = windows[:, :, ::stride, ::stride]
    assert windows.shape[2:4] == (out_h, out_w)
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * out_h * out_w, c * kernel_h * kernel_w)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel_h: int, kernel_w: int,
           stride: int = 1, padding: int = 0) -> np.ndarray:
    """The adjoint of im2col: add each row's entries back onto the input pixels they were copied
    from.

    Overlapping windows share pixels, so a pixel's gradient is the *sum* over all windows that
    contain it. We loop over the kH·kW kernel offsets (25 for a 5×5 kernel), each step adding a
    whole strided slice for all samples, channels and positions at once — never a loop over pixels.
    """
    n, c, h, w = x_shape
    out_h = conv_output_size(h, kernel_h, stride, padding)
    out_w = conv_output_size(w, kernel_w, stride, padding)
    # (n, i, j, c, u, v) -> (u, v, n, c, i, j): for a fixed offset (u, v), an (N, C, H_out, W_out)
    # block.
    blocks = cols.reshape(n, out_h, out_w, c, kernel_h, kernel_w).transpose(4, 5, 0, 3, 1, 2)
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for u in range(kernel_h):
        for v in range(kernel_w):
            # Offset (u, v) of the window at output (i, j) is padded pixel (i·s + u, j·s + v).
            padded[:, :, u:u + stride * out_h:stride, v:v + stride * out_w:stride] += blocks[u, v]
    return padded[:, :, padding:padding + h, padding:padding + w]


ConvCache = tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, int, int]


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int = 1,
                   padding: int = 0 ) -> tuple[np.ndarray, ConvCache]:
    """2-D convolution (cross-correlation, as in every deep-learning library) of x (N, C, H, W) with
    weight (F, C, kH, kW) and bias (F,). Returns y (N, F, H_out, W_out) and the cache for the
    backward."""
    n = x.shape[0]
    f, _, kernel_h, kernel_w = weight.shape
    out_h = conv_output_size(x.shape[2], kernel_h, stride, padding)
    out_w = conv_output_size(x.shape[3], kernel_w, stride, padding)
    cols = im2col(x, kernel_h, kernel_w, stride, padding)       # (N·H_out·W_out, C·kH·kW)
    # (N·H_out·W_out, F): one matrix product
    out = cols @ weight.reshape(f, -1).T + bias
    out = out.reshape(n, out_h, out_w, f).transpose(0, 3, 1, 2)  # back to (N, F, H_out, W_out)
    return np.ascontiguousarray(out), (x.shape, cols, weight, stride, padding)


def conv2d_backward(grad_out: np.ndarray, cache: ConvCache) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
    """Return (grad_x, grad_weight, grad_bias) given grad_out of shape (N, F, H_out, W_out)."""
    x_shape, cols, weight, stride, padding = cache
    f, _, kernel_h, kernel_w = weight.shape
    # In im2col form the convolution is a linear layer, out = cols @ Wᵀ + b, so its backward is the
    # linear one. (N·H_out·W_out, F), rows ordered like cols
    grad_rows = grad_out.transpose(0, 2, 3, 1).reshape(-1, f)
    grad_weight = (grad_rows.T @ cols).reshape(weight.shape)
    grad_bias = grad_rows.sum(axis=0)
    grad_cols = grad_rows @ weight.reshape(f, -1)                # (N·H_out·W_out, C·kH·kW)
    grad_x = col2im(grad_cols, x_shape, kernel_h, kernel_w, stride, padding)
    return grad_x, grad_weight, grad_bias


# -------------------------------------------------------------------------------------- max-pooling


MaxPoolCache = tuple[tuple[int, int, int, int], np.ndarray, int]


def maxpool_forward(x: np.ndarray, size: int = 2) -> tuple[np.ndarray, MaxPoolCache]:
    """Max over non-overlapping size×size windows (stride = size) of x (N, C, H, W).

    Rows or columns left over when H or W is not a multiple of ``size`` are dropped, as PyTorch's
    ``max_pool2d`` does by default. The cache keeps, for every window, which of its size² positions
    won.
    """
    n, c, h, w = x.shape
    out_h, out_w = h // size, w // size
    cropped = x[:, :, :out_h * size, :out_w * size]
    # (N, C, H_out, size, W_out, size) -> (N, C, H_out, W_out, size·size): each window on the last
    # axis.
    windows = (cropped.reshape(n, c, out_h, size, out_w, size)
               .transpose(0, 1, 2, 4, 3, 5).reshape(n, c, out_h, out_w, size * size))
    winner = windows.argmax(axis=-1)  # ties go to the first position
    out = np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0]
    return out, (x.shape, winner, size)


def maxpool_backward(grad_out: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """Route each output's gradient to the input position that was the maximum of its window; 0
    elsewhere."""
    (n, c, h, w), winner, size = cache
    out_h, out_w = grad_out.shape[2:]
    grad_windows = np.zeros((n, c, out_h, out_w, size * size), dtype=grad_out.dtype)
    np.put_along_axis(grad_windows, winner[..., None], grad_out[..., None], axis=-1)
    grad_x = np.zeros((n, c, h, w), dtype=grad_out.dtype)
    grad_x[:, :, : out_h * size, : out_w * size] = (
        grad_windows.reshape(n, c, out_h, out_w, size, size)
        .transpose(0, 1, 2, 4, 3, 5)
        .reshape(n, c, out_h * size, out_w * size)
    )
    return grad_x


# -------------------------------------------------------------------------- softmax cross-entropy


def softmax(logits: np.ndarray) -> np.ndarray:
    # softmax(z) = softmax(z − c) for any constant c; subtracting the row maximum keeps exp() from
    # overflowing.
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) (N, K) against integer labels (N,), and its gradient.

    loss = (1/N) Σ_n [log Σ_k exp z[n, k] − z[n, y_n]] (the log-sum-exp form never takes log of 0)
    ∂loss/∂z = (softmax(z) − onehot(y)) / N (the softmax's and the log's Jacobians cancel)
    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sum_exp = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(n)
    loss = float(np.mean(log_sum_exp - shifted[rows, labels]))
    grad = softmax(logits)
    grad[rows, labels] -= 1
    return loss, grad / n
