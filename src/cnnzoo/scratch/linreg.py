"""Linear regression three ways — closed form, normal equation, gradient descent — and why scaling
matters.

The model is ŷ = w·x + b (one feature) or ŷ = Xw + b (d features), fitted by minimising the
mean-squared error L(w, b) = (1/n) Σ_i (ŷ_i − y_i)².

One feature: the closed form
    Setting ∂L/∂w = 0 and ∂L/∂b = 0 gives two linear equations in w and b, whose solution is
        slope     = (mean(xy) − mean(x)·mean(y)) / (mean(x²) − mean(x)²)   (= cov(x, y) / var(x))
        intercept = mean(y) − slope·mean(x)        (the line passes through the means)

Many features: the normal equation
    Prepend a column of ones, A = [1 | X], and stack θ = (b, w₁, …, w_d), so that ŷ = Aθ and
    L(θ) = (1/n)‖Aθ − y‖². The gradient is ∇L = (2/n)Aᵀ(Aθ − y); setting it to zero gives
        AᵀA θ = Aᵀy.
    We *solve* this (d+1)×(d+1) system (np.linalg.solve, an LU factorisation). Computing (AᵀA)⁻¹ and
    multiplying would do more work and lose more digits to rounding.

Gradient descent
    Start from θ = 0 and repeat θ ← θ − η∇L(θ). Batch GD uses all n samples for every step;
    mini-batch GD uses a few at a time (cheaper steps, noisy gradients, several steps per pass over
    the data). L is a quadratic with the constant Hessian H = (2/n)AᵀA, and the error e = θ − θ*
    obeys exactly
        e ← (I − ηH) e.
    Along the eigenvector of H with eigenvalue λ the error is multiplied by (1 − ηλ) each step. The
    step is stable only for η < 2/λ_max; with the usual choice η = 1/λ_max the slowest direction
    (λ_min) shrinks by (1 − 1/κ) per step, where κ = λ_max/λ_min is the *condition number* of H.
    Reaching a tolerance therefore takes about κ·ln(initial error / tolerance) steps.

Why features around 10 make gradient descent crawl
    When every feature is ≈ 10, the column of ones in A is nearly a combination of the feature
    columns: raising the bias by 10 and lowering the weights so that they sum to 1 less barely
    changes any prediction. The loss is almost flat along that direction — an eigenvector of H with
    a tiny eigenvalue — so κ is huge (about 5·10⁵ in the example below) and GD needs millions of
    steps. The loss itself falls quickly: what stays wrong for millions of steps is the split
    between bias and weights.

    Standardising, z_j = (x_j − mean_j) / std_j, fixes it. Centring makes the ones column orthogonal
    to every feature column (Σ_i z_ij = 0), so bias and weights no longer trade off; scaling gives
    every feature the same spread. κ drops to a few and the same learning-rate rule converges in
    tens of steps. Because ŷ = b′ + Σ_j w′_j (x_j − mean_j)/std_j, the fitted parameters map back to
    the original features as
        w_j = w′_j / std_j,        b = b′ − Σ_j w′_j · mean_j / std_j.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

# ------------------------------------------------------------------------------------- the examples


def make_line_example(n: int = 50, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points (x, y) around the line y = 3x + 2: x uniform in [0, 10], Gaussian noise of std 2."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    return x, 3 * x + 2 + rng.normal(0, 2, n)


TRUE_WEIGHTS = np.array([6.0, 4.0, 5.0, 3.0, 2.0])
TRUE_BIAS = 2.0


def make_multivariate_example(*, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The notes' example: 20 samples × 5 features drawn from N(10, 1), y = X·(6, 4, 5, 3, 2) + 2 +
    N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 1, (20, 5))
    return x, x @ TRUE_WEIGHTS + TRUE_BIAS + rng.normal(0, 1, 20)


# --------------------------------------------------------------------------------- the closed forms


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through the points (x_i, y_i)."""
    slope = (np.mean(x * y) - np.mean(x) * np.mean(y)) / (np.mean(x * x) - np.mean(x) ** 2)
    return float(slope), float(np.mean(y) - slope * np.mean(x))


def design_matrix(x: np.ndarray) -> np.ndarray:
    """A = [1 | X]: the column of ones lets the bias be the first entry of θ."""
    return np.column_stack([np.ones(len(x)), x])


def normal_equation(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(weights, bias) minimising the mean-squared error, from AᵀA θ = Aᵀy."""
    a = design_matrix(x)
    theta = np.linalg.solve(a.T @ a, a.T @ y)
    return theta[1:], float(theta[0])


def mse(x: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: float) -> float:
    return float(np.mean((x @ weights + bias - y) ** 2))


def mse_hessian(x: np.ndarray) -> np.ndarray:
    """H = (2/n) AᵀA, the (constant) matrix of second derivatives of the MSE with respect to θ = (b,
    w)."""
    a = design_matrix(x)
    return 2.0 / len(x) * a.T @ a


def condition_number(x: np.ndarray) -> float:
    """κ = λ_max / λ_min of the MSE's Hessian: how much more curved the steepest direction is than
    the flattest."""
    # symmetric matrix: real eigenvalues, ascending
    eigenvalues = np.linalg.eigvalsh(mse_hessian(x))
    return float(eigenvalues[-1] / eigenvalues[0])


def learning_rate_rule(x: np.ndarray) -> float:
    """η = 1/λ_max: the largest eigen-direction is solved in one step, and every direction shrinks
    monotonically."""
    return float(1.0 / np.linalg.eigvalsh(mse_hessian(x))[-1])


def standardise(x: np.ndarray, *, scale: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, std) with z = (x − mean) / std per feature; with scale=False only centre (std =
    1)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0) if scale else np.ones(x.shape[1])
    return (x - mean) / std, mean, std


def to_original_scale(weights: np.ndarray, bias: float, mean: np.ndarray, std: np.ndarray
                      ) -> tuple[np.ndarray, float]:
    """Parameters fitted on standardised features → the same model on the original features."""
    return weights / std, float(bias - np.sum(weights * mean / std))


# --------------------------------------------------------------------------------- gradient descent


@dataclass
class GDResult:
    weights: np.ndarray
    bias: float
    steps: int                  # parameter updates made
    # after how many updates each entry of `losses` and `errors` was taken
    recorded_steps: np.ndarray
    losses: np.ndarray          # mean-squared error on all the data
    errors: np.ndarray          # ‖θ − target‖₂ in original units (empty when no target was given)
    converged: bool             # reached ‖θ − target‖ ≤ tol


ToOriginal = Callable[[np.ndarray, float], tuple[np.ndarray, float]]


def _distance(weights: np.ndarray, bias: float, target: tuple[np.ndarray, float]) -> float:
    return float(np.sqrt(np.sum((weights - target[0]) ** 2) + (bias - target[1]) ** 2))


def batch_gradient_descent(x: np.ndarray, y: np.ndarray, *, lr: float, max_steps: int,
                           target: tuple[np.ndarray, float] | None = None, tol: float = 1e-4,
                           to_original: ToOriginal | None = None) -> GDResult:
    """Full-batch gradient descent on the MSE from θ = 0, recording the loss after every step.

    With a ``target`` (weights, bias) it stops at the first step where ‖θ − target‖₂ ≤ tol, θ being
    taken back to the original features by ``to_original`` when x was standardised.
    """
    n, d = x.shape
    a = design_matrix(x)
    theta = np.zeros(d + 1)
    to_original = to_original or (lambda w, b: (w, b))
    losses, errors = [], []
    converged = False
    for step in range(max_steps + 1):
        residual = a @ theta - y
        losses.append(float(np.mean(residual ** 2)))
        if target is not None:
            errors.append(_distance(*to_original(theta[1:], theta[0]), target))
            if errors[-1] <= tol:
                converged = True
                break
        if step == max_steps:
            break
        theta -= lr * (2.0 / n) * (a.T @ residual)  # θ ← θ − η ∇L,  ∇L = (2/n) Aᵀ(Aθ − y)
    weights, bias = to_original(theta[1:], float(theta[0]))
    return GDResult(weights, float(bias), step, np.arange(len(losses)), np.array(losses),
                    np.array(errors), converged)


def batch_gradient_descent_fast(x: np.ndarray, y: np.ndarray, *, lr: float, max_steps: int,
                                target: tuple[np.ndarray, float], tol: float = 1e-4,
                                block: int = 1000 ) -> GDResult:
    """The same iterates as ``batch_gradient_descent`` (no standardising), computed ``block`` steps
    at a time.

    Millions of steps of a Python loop take a minute; this takes milliseconds. One step is the
    affine map
        θ ← (I − ηH)θ + η·(2/n)Aᵀy,
    written as one (d+2)×(d+2) matrix T acting on (θ, 1). Then ``block`` steps are T^block (computed
    once, by repeated squaring), so we jump from step k to step k + block with one matrix–vector
    product. The error obeys e ← (I − ηH)e with I − ηH symmetric and all its eigenvalues in (−1, 1)
    for a stable η, so ‖e‖ never grows: if a block ends outside the tolerance, no step inside it was
    within. We therefore step singly only through the block where the tolerance is first met, and
    count exactly. Loss and error are recorded after each of the first ``block`` steps and of the
    last (single) steps, and at every block boundary in between.
    """
    n, d = x.shape
    a = design_matrix(x)
    hessian = 2.0 / n * a.T @ a
    one_step = np.eye(d + 2)
    one_step[:d + 1, :d + 1] -= lr * hessian
    one_step[:d + 1, d + 1] = lr * 2.0 / n * a.T @ y
    one_block = np.linalg.matrix_power(one_step, block)
    state = np.zeros(d + 2)
    state[-1] = 1.0

    def loss_and_error(s: np.ndarray) -> tuple[float, float]:
        theta = s[:-1]  # s = (b, w₁, …, w_d, 1)
        return float(np.mean((a @ theta - y) ** 2)), _distance(theta[1:], theta[0], target)

    loss, error = loss_and_error(state)
    recorded, losses, errors = [0], [loss], [error]
    step, converged = 0, error <= tol
    while not converged and step < max_steps:
        after_block = one_block @ state
        if step >= block and step + block <= max_steps and loss_and_error(after_block)[1] > tol:
            state, step = after_block, step + block
        # the first block (for a detailed start of the curve), and the block where the tolerance is
        # met
        else:
            state, step = one_step @ state, step + 1
        loss, error = loss_and_error(state)
        recorded.append(step)
        losses.append(loss)
        errors.append(error)
        converged = error <= tol
    return GDResult(state[1:-1], float(state[0]), step, np.array(recorded), np.array(losses),
                    np.array(errors), converged)


def minibatch_gradient_descent(x: np.ndarray, y: np.ndarray, *, lr: float, epochs: int,
                               batch_size: int, seed: int = 0) -> GDResult:
    """Mini-batch gradient descent: each epoch shuffles the samples and takes one step per batch,
    the gradient estimated from that batch alone. Records the full-data loss after every epoch.

    With a constant η the noise in the batch gradients keeps θ jittering around θ*, so the loss
    levels off slightly above the minimum instead of reaching it (a decaying η would remove that
    floor).
    """
    rng = np.random.default_rng(seed)
    n, d = x.shape
    a = design_matrix(x)
    theta = np.zeros(d + 1)
    losses = [float(np.mean((a @ theta - y) ** 2))]
    steps = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for first in range(0, n, batch_size):
            batch = order[first:first + batch_size]
            residual = a[batch] @ theta - y[batch]
            theta -= lr * (2.0 / len(batch)) * (a[batch].T @ residual)
            steps += 1
        losses.append(float(np.mean((a @ theta - y) ** 2)))
    return GDResult(theta[1:], float(theta[0]), steps, np.arange(epochs + 1), np.array(losses),
                    np.array([]), False)


# ---------------------------------------------------------------------- the conditioning experiment


@dataclass
class ConditioningResult:
    closed_form: tuple[np.ndarray, float]
    condition_numbers: dict[str, float]  # "raw", "centred", "standardised"
    learning_rates: dict[str, float]
    runs: dict[str, GDResult]            # weights and errors in original units
    tol: float
    # raw GD stopped after as many steps as standardised took
    raw_at_standardised_steps: GDResult | None = None


def conditioning_experiment(*, seed: int = 0, tol: float = 1e-4, max_steps: int = 20_000_000
                            ) -> ConditioningResult:
    """Batch GD on the multivariate example with raw, centred and standardised features.

    The same rule picks the learning rate each time (η = 1/λ_max of that problem's Hessian) and each
    run stops when its parameters, mapped back to the original features, are within ``tol`` of the
    closed form.
    """
    x, y = make_multivariate_example(seed=seed)
    target = normal_equation(x, y)
    result = ConditioningResult(target, {}, {}, {}, tol)
    for name in ("raw", "centred", "standardised"):
        if name == "raw":
            features, to_original = x, None
        else:
            features, mean, std = standardise(x, scale=name == "standardised")
            to_original = partial(to_original_scale, mean=mean, std=std)
        result.condition_numbers[name] = condition_number(features)
        lr = result.learning_rates[name] = learning_rate_rule(features)
        if name == "raw":
            result.runs[name] = batch_gradient_descent_fast(x, y, lr=lr, max_steps=max_steps,
                                                            target=target, tol=tol)
        else:
            result.runs[name] = batch_gradient_descent(features, y, lr=lr, max_steps=max_steps,
                                                       target=target,
                                                       tol=tol, to_original=to_original)
    result.raw_at_standardised_steps = batch_gradient_descent(
        x, y, lr=result.learning_rates["raw"], max_steps=result.runs["standardised"].steps,
                                                              target=target, tol=tol)
    return result
