"""``run(name, out_dir=...)``: one scratch demo — it logs what it does, saves one plot and returns
its figures.

    linreg  one-variable closed form, normal equation vs numpy.linalg.lstsq, batch vs mini-batch GD
    gd      gradient descent on raw vs centred vs standardised features: condition numbers and steps
    mlp     the one-neuron network on a toy task, then a 784-128-10 MLP on Fashion-MNIST
    cnn     the NumPy LeNet on a few thousand Fashion-MNIST images

Every demo returns a JSON-able dict whose ``plot`` is the path of the PNG it wrote. ``quick=True``
shrinks the data and epochs so that each demo takes a few seconds (for tests). Plots are drawn with
matplotlib's Agg canvas directly, without pyplot, so no window opens and no global backend setting
is changed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from cnnzoo.console import Log, log_to_stderr, to_jsonable
from cnnzoo.errors import ConfigError
from cnnzoo.figures import new_figure
from cnnzoo.scratch import cnn, linreg, tiny_net
from cnnzoo.scratch._blas import single_threaded_blas
from cnnzoo.scratch._fashion_mnist import load_fashion_mnist

NAMES = ("linreg", "gd", "mlp", "cnn")


def run(name: str, *, out_dir: Path, quick: bool = False, data_dir: str | None = None,
        log: Log = log_to_stderr) -> dict:
    """Run the demo ``name`` (one of NAMES), write its plot into ``out_dir`` and return its
    figures."""
    demos = {"linreg": _run_linreg, "gd": _run_gd, "mlp": _run_mlp, "cnn": _run_cnn}
    if name not in demos:
        raise ConfigError(f"unknown scratch demo {name!r}; choose one of {', '.join(NAMES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with single_threaded_blas():
        figures = demos[name](out_dir=out_dir, quick=quick, data_dir=data_dir, log=log)
    return to_jsonable(figures)


# ------------------------------------------------------------------------------------------ helpers


def _save(figure, path: Path, log: Log) -> str:
    figure.savefig(path, dpi=110)
    log(f"plot: {path}")
    return str(path)


def _fmt(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _epoch_means(step_losses: list[float], epochs: int) -> np.ndarray:
    return np.array([chunk.mean() for chunk in np.array_split(np.asarray(step_losses), epochs)])


# ------------------------------------------------------------------------------------------- linreg


def _run_linreg(*, out_dir: Path, quick: bool, data_dir: str | None, log: Log) -> dict:
    x1, y1 = linreg.make_line_example()
    slope, intercept = linreg.fit_line(x1, y1)
    lstsq_line = np.linalg.lstsq(linreg.design_matrix(x1), y1, rcond=None)[0]
    log(f"one feature, 50 points around y = 3x + 2: slope {slope:.4f}, intercept {intercept:.4f} "
        f"(lstsq: {lstsq_line[1]:.4f}, {lstsq_line[0]:.4f})")

    x, y = linreg.make_multivariate_example()
    weights, bias = linreg.normal_equation(x, y)
    lstsq = np.linalg.lstsq(linreg.design_matrix(x), y, rcond=None)[0]
    difference = float(np.max(np.abs(np.r_[bias, weights] - lstsq)))
    best_loss = linreg.mse(x, y, weights, bias)
    log(f"5 features, 20 samples around 10, true weights {_fmt(linreg.TRUE_WEIGHTS)}, bias "
        f"{linreg.TRUE_BIAS}")
    log(f"normal equation: weights {_fmt(weights)}, bias {bias:.4f}, MSE {best_loss:.4f} (largest "
        f"difference from lstsq {difference:.1e})")
    log("  the bias is far from 2: with features all near 10 the data hardly tell the bias from "
        "the weights")

    # GD on standardised features (see `gd` for why), batch: 1 step per epoch; mini-batch: 4 steps
    # of 5 samples.
    z, mean, std = linreg.standardise(x)
    lr = linreg.learning_rate_rule(z)
    epochs = 100
    batch = linreg.batch_gradient_descent(z, y, lr=lr, max_steps=epochs)
    mini = linreg.minibatch_gradient_descent(z, y, lr=lr / 2, epochs=epochs, batch_size=5)
    batch_w, batch_b = linreg.to_original_scale(batch.weights, batch.bias, mean, std)
    mini_w, mini_b = linreg.to_original_scale(mini.weights, mini.bias, mean, std)
    log(f"batch GD, {epochs} steps (lr {lr:.3f}): weights {_fmt(batch_w)}, bias {batch_b:.4f}, MSE "
        f"{batch.losses[-1]:.4f}")
    log(f"mini-batch GD, {epochs} epochs × 4 batches of 5 (lr {lr / 2:.3f}): weights "
        f"{_fmt(mini_w)}, bias {mini_b:.4f}, MSE {mini.losses[-1]:.4f} (the batch noise keeps it a "
        "little above the minimum)")

    figure, (left, right) = new_figure(2, width=5.5)
    left.scatter(x1, y1, s=12, label="data")
    line_x = np.array([0.0, 10.0])
    left.plot(line_x, slope * line_x + intercept, color="C1",
              label=f"fit y = {slope:.2f}x + {intercept:.2f}")
    left.set(xlabel="x", ylabel="y", title="One feature: closed form")
    left.legend()
    right.plot(batch.recorded_steps, batch.losses, label="batch GD")
    right.plot(mini.recorded_steps, mini.losses, label="mini-batch GD (5 samples)")
    right.axhline(best_loss, color="grey", linestyle="--", label="normal equation")
    right.set(yscale="log", xlabel="epoch", ylabel="mean-squared error",
              title="5 features, standardised")
    right.legend()
    return {
        "slope": slope, "intercept": intercept, "weights": weights, "bias": bias,
        "true_weights": linreg.TRUE_WEIGHTS, "true_bias": linreg.TRUE_BIAS, "mse": best_loss,
        "lstsq_max_abs_difference": difference,
        "batch_gd_weights": batch_w, "batch_gd_bias": batch_b, "batch_gd_mse": batch.losses[-1],
        "minibatch_gd_weights": mini_w, "minibatch_gd_bias": mini_b,
            "minibatch_gd_mse": mini.losses[-1],
        "plot": _save(figure, out_dir / "scratch_linreg.png", log),
    }


# ----------------------------------------------------------------------------------------------- gd


def _run_gd(*, out_dir: Path, quick: bool, data_dir: str | None, log: Log) -> dict:
    # Even the raw run takes well under a second (see batch_gradient_descent_fast), so quick changes
    # nothing.
    result = linreg.conditioning_experiment()
    target_w, target_b = result.closed_form
    log(f"closed form (normal equation): weights {_fmt(target_w)}, bias {target_b:.4f}")
    log(f"batch GD from 0 with η = 1/λ_max(Hessian), until ‖θ − θ*‖ ≤ {result.tol:g} (in original "
        "units):")
    for name, run in result.runs.items():
        kappa, lr = result.condition_numbers[name], result.learning_rates[name]
        reached = f"{run.steps:,} steps" if run.converged else f"not reached in {run.steps:,} steps"
        log(f"  {name:>12}: condition number {kappa:12,.1f}, η {lr:.2e}: {reached}, final error "
            f"{run.errors[-1]:.1e} (≈ κ·ln(e₀/tol) = "
            f"{kappa * math.log(run.errors[0] / result.tol):,.0f})")
    x, y = linreg.make_multivariate_example()
    best_loss = linreg.mse(x, y, target_w, target_b)
    standardised, same_budget = result.runs["standardised"], result.raw_at_standardised_steps
    log(f"after the same {standardised.steps} steps, raw GD is still {same_budget.errors[-1]:.2f} "
        f"away from θ* (MSE {same_budget.losses[-1]:.3f}; minimum {best_loss:.3f})")
    raw = result.runs["raw"]
    # first record within 20% of the minimum MSE
    near = int(np.argmax(raw.losses <= 1.2 * best_loss))
    log(
        f"raw GD's MSE is within 20% of the minimum by step {raw.recorded_steps[near]:,}, yet θ is "
        f"then still {raw.errors[near]:.2f} away: what is left lies along the nearly flat "
        "direction that trades the bias against the weights, where the gradient is tiny"
    )
    log(f"standardised GD, mapped back: weights {_fmt(standardised.weights)}, bias "
        f"{standardised.bias:.4f}")

    figure, (left, right) = new_figure(2, width=5.5)
    for name, run in result.runs.items():
        after_start = run.recorded_steps > 0  # a log axis has no room for step 0
        steps = run.recorded_steps[after_start]
        label = f"{name} (κ = {result.condition_numbers[name]:,.0f}, {run.steps:,} steps)"
        left.plot(steps, np.maximum(run.losses[after_start] - best_loss, 1e-16), label=label)
        right.plot(steps, run.errors[after_start], label=label)
    left.set(xscale="log", yscale="log", xlabel="step", ylabel="MSE − minimum MSE",
             title="Loss above the minimum")
    right.axhline(result.tol, color="grey", linestyle="--", label="tolerance")
    right.set(xscale="log", yscale="log", xlabel="step", ylabel="‖θ − θ*‖",
              title="Distance to the closed form")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    return {
        "weights": standardised.weights, "bias": standardised.bias,
        "closed_form_weights": target_w, "closed_form_bias": target_b,
        "steps_raw": raw.steps, "steps_centred": result.runs["centred"].steps,
        "steps_standardised": standardised.steps,
        "converged_raw": raw.converged, "converged_standardised": standardised.converged,
        "condition_number_raw": result.condition_numbers["raw"],
        "condition_number_centred": result.condition_numbers["centred"],
        "condition_number_standardised": result.condition_numbers["standardised"],
        "learning_rate_raw": result.learning_rates["raw"],
        "learning_rate_standardised": result.learning_rates["standardised"],
        "tolerance": result.tol, "final_error_raw": raw.errors[-1],
            "final_error_standardised": standardised.errors[-1],
        "raw_error_at_standardised_steps": same_budget.errors[-1],
        "raw_mse_at_standardised_steps": same_budget.losses[-1], "minimum_mse": best_loss,
        "raw_steps_to_mse_within_20_percent": raw.recorded_steps[near],
            "raw_error_then": raw.errors[near],
        "raw_weights": raw.weights, "raw_bias": raw.bias,
        "plot": _save(figure, out_dir / "scratch_gd.png", log),
    }


# ---------------------------------------------------------------------------------------------- mlp


def _run_mlp(*, out_dir: Path, quick: bool, data_dir: str | None, log: Log) -> dict:
    points, classes = tiny_net.make_two_blobs()
    neuron_w, neuron_b, neuron_losses = tiny_net.train_logistic_neuron(
        points, classes, lr=0.5, steps=100
    )
    neuron_accuracy = float(np.mean(((points @ neuron_w + neuron_b) > 0) == classes))
    log(f"one neuron on two 2-D blobs, 100 GD steps: loss {neuron_losses[0]:.3f} → "
        f"{neuron_losses[-1]:.3f}, accuracy {neuron_accuracy:.1%}, w = {_fmt(neuron_w)}, b = "
        f"{neuron_b:.3f}")

    images, epochs, test_images = (1000, 2, 1000) if quick else (20_000, 10, 10_000)
    x_train, y_train = load_fashion_mnist("train", images, data_dir)
    x_test, y_test = load_fashion_mnist("test", test_images, data_dir)
    x_train, x_test = tiny_net.flatten_images(x_train, x_test)
    model = tiny_net.MLP(784, 128, 10)
    lr, batch_size = 0.1, 64
    log(f"MLP 784-128-10 (ReLU, softmax cross-entropy), plain SGD lr {lr}, batch {batch_size}, "
        f"{images:,} Fashion-MNIST training images, {epochs} epoch(s)")
    start = time.perf_counter()
    losses = tiny_net.train_mlp(model, x_train, y_train, epochs=epochs, batch_size=batch_size,
                                lr=lr, log=log)
    seconds = time.perf_counter() - start
    train_accuracy = float(np.mean(model.predict(x_train) == y_train))
    test_accuracy = float(np.mean(model.predict(x_test) == y_test))
    log(f"trained in {seconds:.1f} s: train accuracy {train_accuracy:.2%}, test accuracy "
        f"{test_accuracy:.2%} on {len(y_test):,} test images")

    figure, (left, right) = new_figure(2, width=5.5)
    left.plot(neuron_losses)
    left.set(xlabel="step", ylabel="binary cross-entropy", title="One neuron, two blobs")
    right.plot(losses, alpha=0.4, label="mini-batch loss")
    per_epoch = -(-images // batch_size)
    right.plot(np.arange(1, epochs + 1) * per_epoch - 1, _epoch_means(losses, epochs), "o-",
               label="epoch mean")
    right.set(xlabel="step", ylabel="cross-entropy", title="MLP 784-128-10, test accuracy "
                                                           f"{test_accuracy:.1%}")
    right.legend()
    return {
        "neuron_accuracy": neuron_accuracy, "neuron_loss": neuron_losses[-1],
        "test_accuracy": test_accuracy, "train_accuracy": train_accuracy, "train_seconds": seconds,
        "images": images, "test_images": len(y_test), "epochs": epochs, "hidden": 128,
            "learning_rate": lr,
        "batch_size": batch_size, "final_train_loss": float(_epoch_means(losses, epochs)[-1]),
        "plot": _save(figure, out_dir / "scratch_mlp.png", log),
    }


# ---------------------------------------------------------------------------------------------- cnn


def _run_cnn(*, out_dir: Path, quick: bool, data_dir: str | None, log: Log) -> dict:
    images, epochs, test_images = (1000, 2, 1000) if quick else (8000, 6, 10_000)
    # test images scored after each epoch, to follow progress cheaply
    monitor = min(1000, test_images)
    x_train, y_train = load_fashion_mnist("train", images, data_dir)
    x_test, y_test = load_fashion_mnist("test", test_images, data_dir)
    x_train, x_test = cnn.standardise_images(x_train, x_test)
    model = cnn.SmallLeNet()
    parameters = sum(p.size for p in model.params.values())
    lr, momentum, batch_size = 0.02, 0.9, 64
    log("LeNet-sized CNN (conv5×5·6 pad 2 → pool → conv5×5·16 → pool → 120 → 84 → 10, "
        f"{parameters:,} parameters), float32, SGD lr {lr} (cosine to 0), momentum {momentum}, "
        f"batch {batch_size}, {images:,} training images, {epochs} epoch(s); per-epoch accuracy on "
        f"the first {monitor:,} test images")
    history = cnn.train(model, x_train, y_train, epochs=epochs, batch_size=batch_size, lr=lr,
                        momentum=momentum,
                        x_test=x_test[:monitor], y_test=y_test[:monitor], log=log)
    start = time.perf_counter()
    test_accuracy = float(np.mean(model.predict(x_test) == y_test))
    eval_seconds = time.perf_counter() - start
    log(f"test accuracy {test_accuracy:.2%} on {len(y_test):,} test images after "
        f"{history.seconds:.1f} s of training ({images * epochs / history.seconds:,.0f} images/s); "
        f"evaluation took {eval_seconds:.1f} s")

    figure, (left, right) = new_figure(2, width=5.5)
    per_epoch = -(-images // batch_size)
    left.plot(history.step_losses, alpha=0.4, label="mini-batch loss")
    left.plot(np.arange(1, epochs + 1) * per_epoch - 1, _epoch_means(history.step_losses, epochs),
              "o-", label="epoch mean")
    left.set(xlabel="step", ylabel="cross-entropy", title="NumPy LeNet: training loss")
    left.legend()
    right.plot(np.arange(1, epochs + 1), history.epoch_test_accuracy, "o-")
    right.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1),
              title=f"Test accuracy ({monitor:,} images), final {test_accuracy:.1%} on "
                    f"{len(y_test):,}")
    return {
        "test_accuracy": test_accuracy, "train_seconds": history.seconds,
            "eval_seconds": eval_seconds,
        "images": images, "test_images": len(y_test), "epochs": epochs, "batch_size": batch_size,
        "learning_rate": lr, "momentum": momentum, "parameters": parameters,
        "final_train_loss": float(_epoch_means(history.step_losses, epochs)[-1]),
        "epoch_test_accuracy": history.epoch_test_accuracy, "epoch_test_images": monitor,
        "plot": _save(figure, out_dir / "scratch_cnn.png", log),
    }
