"""Muon (Jordan et al., 2024) for convolution filters and Nesterov SGD for every other parameter,
in one optimiser.

Muon takes the momentum direction of a weight matrix and replaces it by the nearest semi-orthogonal
matrix, its polar factor U Vᵀ (from the SVD U S Vᵀ), before stepping: every direction the update
spans moves by the same amount, however small its singular value was in the raw gradient. An exact
SVD per step would be slow, so the polar factor is approximated by a few iterations of an odd
quintic polynomial in the matrix (a Newton–Schulz iteration) whose coefficients were tuned for speed
rather than convergence: five iterations take the singular values of a random matrix to between
about 0.7 and 1.15 (very small ones rise less), close enough to orthogonal for training, in matrix
products only. The products run in bf16 when the run trains in bf16, as Muon's authors run them,
and in fp32 otherwise: where the autotuner chose bf16 the hardware has it natively (on a 2-core AMX
Xeon the iteration for budgetnet_l's filters takes 4.9 ms a step instead of 8.7), while a forced
``--precision bf16`` on a CPU without native bf16 makes it slower, as it makes the whole step. The
autotuner times its steps with SGD, so Muon's share never enters its choice. The iteration is
insensitive to bf16's rounding (its singular values land in the same band).

Left alone, the filters grow: each step adds an orthogonal matrix of a fixed size, so their norm
rises step after step (budgetnet_l's three banks 15–17 times their initial norm after 32 of
budgetnet-best's epochs, measured), and since the BatchNorm after each filter undoes its scale, a
step of the same size turns it less and less. A group whose ``fixed_norm`` is true is first scaled
back to norm √(output channels) before every step, as airbench's Muon does: the learning rate and
its schedule alone then set how far each step turns the filters. On budgetnet it did not beat the
unheld filters (measured on the AMX Xeon, seed 0): 94.49% in budgetnet-strong's 5 minutes at rate
0.02 (94.34% at 0.05, 94.01% at 0.1) against 94.58% unheld, and 94.81% in budgetnet-best's 20 at
0.015 against 94.86%, so the recipes leave it off.

A convolution filter bank (out, in, kh, kw) is treated as the matrix (out, in·kh·kw). Biases,
normalisation parameters and linear layers are left to plain SGD with momentum, as in airbench.
Which rule a parameter group follows is its ``orthogonalise`` entry; ``engine.build.make_optimizer``
puts the 4-D trainable parameters in such a group.
"""

from __future__ import annotations

import torch

# (a, b, c) of X ← aX + (bA + cA²)X with A = XXᵀ: a steep slope at 0 (a), then kept near 1
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
NEWTON_SCHULZ_STEPS = 5


def orthogonalise(matrix: torch.Tensor, steps: int = NEWTON_SCHULZ_STEPS,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An approximately semi-orthogonal matrix of ``matrix``'s shape with its singular vectors
    (singular values near 1, not exactly 1), computed in ``dtype`` by ``steps`` quintic
    Newton–Schulz iterations."""
    a, b, c = NEWTON_SCHULZ
    x = matrix.to(dtype)
    tall = x.shape[0] > x.shape[1]
    if tall:  # iterate on the wide side: XXᵀ is then the smaller square
        x = x.T
    x = x / (x.norm() + 1e-7)  # the Frobenius norm bounds the spectral norm: singular values ≤ 1
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def muon_direction(update: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The step direction Muon takes for a filter bank's momentum ``update`` (out, in, kh, kw): the
    orthogonalised (out, in·kh·kw) matrix (computed in ``dtype``), scaled up by √(rows/cols) when it
    has more rows than columns (whose rows cannot all be unit vectors), in the update's shape and
    dtype."""
    rows = update.shape[0]
    matrix = update.reshape(rows, -1)
    scale = max(1.0, rows / matrix.shape[1]) ** 0.5
    direction = orthogonalise(matrix, dtype=dtype) * scale
    return direction.reshape(update.shape).to(update.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for the groups whose ``orthogonalise`` is true (4-D convolution filters), SGD with
    momentum for the others.

    Each group has ``lr``, ``momentum``, ``nesterov`` and ``weight_decay`` (L2, added to the
    gradient). For a gradient g and momentum buffer B, B ← μB + g and the direction is g + μB with
    Nesterov (else B); an orthogonalised group then replaces it by ``muon_direction`` of it. The
    parameter moves by −lr × the direction, after a ``fixed_norm`` group's filter bank is scaled to
    norm √(output channels). The only state is each parameter's buffer, so
    ``state_dict`` and ``load_state_dict`` are torch.optim.Optimizer's own. ``matmul_dtype`` is
    the precision of the Newton–Schulz products (bf16 for a model that trains in bf16).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, nesterov: bool = True,
                 weight_decay: float = 0.0, matmul_dtype: torch.dtype = torch.float32) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum}")
        self.matmul_dtype = matmul_dtype
        defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov,
                    "weight_decay": weight_decay, "orthogonalise": False, "fixed_norm": False}
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["orthogonalise"] and any(p.dim() != 4 for p in group["params"]):
                raise ValueError("Muon orthogonalises convolution filters only (4-D parameters)")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum, nesterov = group["momentum"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffer = state["momentum_buffer"]
                buffer.mul_(momentum).add_(grad)
                direction = grad.add(buffer, alpha=momentum) if nesterov else buffer
                if group["orthogonalise"]:
                    direction = muon_direction(direction, self.matmul_dtype)
                    # a checkpoint written before fixed_norm existed restores groups without it
                    if group.get("fixed_norm"):
                        p.mul_(p.shape[0] ** 0.5 / p.norm().clamp_min(1e-12))
                p.add_(direction, alpha=-group["lr"])
        return loss
