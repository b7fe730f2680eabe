"""Tests for cnnzoo.scratch: closed forms vs lstsq, every hand-written backward vs finite
differences and vs PyTorch autograd, training steps that lower the loss, the demos, and that the
package never imports torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnzoo.errors import DataFilesMissing
from cnnzoo.scratch import cnn, layers, linreg, tiny_net

needs_data = pytest.mark.needs_fashion_mnist


def numerical_gradient(
    f, x: np.ndarray, eps: float = 1e-6, entries: np.ndarray | None = None
) -> np.ndarray:
    """Central differences (f(x + ε) − f(x − ε)) / 2ε of the scalar f() for every (or the listed)
    entry of x, perturbing x in place. Where `entries` is given, the other entries are left NaN."""
    grad = np.full(x.shape, np.nan) if entries is not None else np.zeros(x.shape)
    for index in (range(x.size) if entries is None else entries):
        i = np.unravel_index(index, x.shape)
        original = x[i]
        x[i] = original + eps
        up = f()
        x[i] = original - eps
        down = f()
        x[i] = original
        grad[i] = (up - down) / (2 * eps)
    return grad


def t(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -------------------------------------------------------------------------------- linear regression


def test_fit_line_and_normal_equation_equal_lstsq():
    x, y = linreg.make_line_example()
    slope, intercept = linreg.fit_line(x, y)
    np.testing.assert_allclose([intercept, slope], np.linalg.lstsq(linreg.design_matrix(x), y,
                                                                   rcond=None)[0],
                               rtol=1e-10)

    x, y = linreg.make_multivariate_example()
    assert x.shape == (20, 5)
    weights, bias = linreg.normal_equation(x, y)
    np.testing.assert_allclose(np.r_[bias, weights], np.linalg.lstsq(linreg.design_matrix(x), y,
                                                                     rcond=None)[0],
                               rtol=1e-9, atol=1e-9)


def test_standardised_gradient_descent_reaches_closed_form():
    x, y = linreg.make_multivariate_example()
    target = linreg.normal_equation(x, y)
    z, mean, std = linreg.standardise(x)
    run = linreg.batch_gradient_descent(z, y, lr=linreg.learning_rate_rule(z), max_steps=1000,
                                        target=target,
                                        tol=1e-9, to_original=lambda w,
                                        b: linreg.to_original_scale(w, b, mean, std))
    assert run.converged and run.steps < 150
    np.testing.assert_allclose(run.weights, target[0], atol=1e-9)
    assert abs(run.bias - target[1]) < 1e-9
    assert np.all(np.diff(run.losses) <= 1e-12)  # η = 1/λ_max: the loss never goes up


def test_fast_gradient_descent_gives_the_plain_iterates():
    x, y = linreg.make_multivariate_example()
    target = linreg.normal_equation(x, y)
    lr = linreg.learning_rate_rule(x)
    plain = linreg.batch_gradient_descent(x, y, lr=lr, max_steps=3000, target=target)
    fast = linreg.batch_gradient_descent_fast(x, y, lr=lr, max_steps=3000, target=target, block=250)
    assert plain.steps == fast.steps == 3000 and not fast.converged
    np.testing.assert_allclose(fast.weights, plain.weights, atol=1e-9)
    assert fast.bias == pytest.approx(plain.bias, abs=1e-9)
    # Same first step at which the tolerance is met, on a problem where the plain loop is quick.
    z, _, _ = linreg.standardise(x)
    target_z = linreg.normal_equation(z, y)
    lr_z = linreg.learning_rate_rule(z)
    plain = linreg.batch_gradient_descent(z, y, lr=lr_z, max_steps=10_000, target=target_z,
                                          tol=1e-10)
    fast = linreg.batch_gradient_descent_fast(z, y, lr=lr_z, max_steps=10_000, target=target_z,
                                              tol=1e-10, block=7)
    assert plain.converged and fast.converged and plain.steps == fast.steps


def test_conditioning_experiment():
    result = linreg.conditioning_experiment()
    assert result.condition_numbers["raw"] > 1e5 > 10 > result.condition_numbers["standardised"]
    raw, standardised = result.runs["raw"], result.runs["standardised"]
    assert raw.converged and standardised.converged
    assert raw.steps > 10_000 * standardised.steps
    for run in (raw, standardised):
        np.testing.assert_allclose(run.weights, result.closed_form[0], atol=result.tol)


def test_minibatch_gradient_descent_lowers_the_loss():
    x, y = linreg.make_multivariate_example()
    z, _, _ = linreg.standardise(x)
    run = linreg.minibatch_gradient_descent(z, y, lr=linreg.learning_rate_rule(z) / 2, epochs=50,
                                            batch_size=5)
    assert run.steps == 200
    assert (
        run.losses[-1] < 1.2 * linreg.mse(x, y, *linreg.normal_equation(x, y)) < run.losses[0] / 100
    )


# --------------------------------------------------------------------------------------- the layers


def test_linear_and_relu_forward_backward(rng):
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    upstream = rng.standard_normal((4, 3))
    grad_x, grad_w, grad_b = layers.linear_backward(upstream, x, w)

    def loss():
        return float(np.sum(layers.linear_forward(x, w, b) * upstream))

    for analytic, param in ((grad_x, x), (grad_w, w), (grad_b, b)):
        np.testing.assert_allclose(analytic, numerical_gradient(loss, param), rtol=1e-6, atol=1e-8)
    xt, wt, bt = t(x), t(w), t(b)
    out = F.linear(xt, wt.T, bt)
    np.testing.assert_allclose(layers.linear_forward(x, w, b), out.detach().numpy(), rtol=1e-12)
    out.backward(torch.tensor(upstream))
    for analytic, tensor in ((grad_x, xt), (grad_w, wt), (grad_b, bt)):
        np.testing.assert_allclose(analytic, tensor.grad.numpy(), rtol=1e-12, atol=1e-12)

    x = rng.standard_normal((3, 7))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kink at 0
    upstream = rng.standard_normal(x.shape)
    analytic = layers.relu_backward(upstream, x)
    numeric = numerical_gradient(lambda: float(np.sum(layers.relu_forward(x) * upstream)), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    xt = t(x)
    torch.relu(xt).backward(torch.tensor(upstream))
    np.testing.assert_allclose(layers.relu_forward(x), np.maximum(x, 0))
    np.testing.assert_allclose(analytic, xt.grad.numpy(), rtol=1e-12)


def test_im2col_and_col2im_are_adjoint(rng):
    # <im2col(x), c> = <x, col2im(c)> for all x and c is what makes col2im the correct backward of
    # im2col.
    x = rng.standard_normal((2, 3, 7, 6))
    cols = layers.im2col(x, 3, 2, stride=2, padding=1)
    c = rng.standard_normal(cols.shape)
    assert np.sum(cols * c) == pytest.approx(np.sum(x * layers.col2im(c, x.shape, 3, 2, 2, 1)),
                                             rel=1e-12)


@pytest.mark.parametrize("stride, padding, kernel", [(1, 0, (3, 3)), (1, 2, (5, 5)), (2, 1, (3, 3)),
                                                     (3, 2, (4, 3)), (2, 0, (2, 2))])
def test_conv2d_matches_finite_differences_and_torch(rng, stride, padding, kernel):
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, *kernel))
    b = rng.standard_normal(4)
    out, cache = layers.conv2d_forward(x, w, b, stride, padding)
    expected = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride,
                        padding=padding)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-10, atol=1e-10)

    upstream = rng.standard_normal(out.shape)
    grad_x, grad_w, grad_b = layers.conv2d_backward(upstream, cache)

    def loss():
        return float(np.sum(layers.conv2d_forward(x, w, b, stride, padding)[0] * upstream))

    for analytic, param in ((grad_x, x), (grad_w, w), (grad_b, b)):
        np.testing.assert_allclose(analytic, numerical_gradient(loss, param), rtol=1e-6, atol=1e-7)
    xt, wt, bt = t(x), t(w), t(b)
    F.conv2d(xt, wt, bt, stride=stride, padding=padding).backward(torch.tensor(upstream))
    for analytic, tensor in ((grad_x, xt), (grad_w, wt), (grad_b, bt)):
        np.testing.assert_allclose(analytic, tensor.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, size", [((2, 3, 6, 8), 2), ((2, 2, 7, 5), 2), ((1, 2, 9, 9), 3)])
def test_maxpool_matches_finite_differences_and_torch(rng, shape, size):
    # distinct values: no ties, and no window's top two within ε of each other
    x = rng.standard_normal(shape)
    out, cache = layers.maxpool_forward(x, size)
    np.testing.assert_allclose(out, F.max_pool2d(torch.tensor(x), size).numpy())
    upstream = rng.standard_normal(out.shape)
    analytic = layers.maxpool_backward(upstream, cache)
    numeric = numerical_gradient(
        lambda: float(np.sum(layers.maxpool_forward(x, size)[0] * upstream)), x
    )
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    xt = t(x)
    F.max_pool2d(xt, size).backward(torch.tensor(upstream))
    np.testing.assert_allclose(analytic, xt.grad.numpy(), rtol=1e-12)


def test_softmax_cross_entropy_matches_finite_differences_and_torch(rng):
    logits, labels = rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, 6)
    loss, grad = layers.softmax_cross_entropy(logits, labels)
    numeric = numerical_gradient(lambda: layers.softmax_cross_entropy(logits, labels)[0], logits)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    zt = t(logits)
    expected = F.cross_entropy(zt, torch.tensor(labels))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-12)
    # Huge logits: still finite, thanks to the max shift.
    loss, grad = layers.softmax_cross_entropy(np.array([[1000.0, 0.0, -1000.0]]), np.array([1]))
    assert loss == pytest.approx(1000.0) and np.all(np.isfinite(grad))


def test_logistic_neuron_gradient_and_training(rng):
    x, y = tiny_net.make_two_blobs(40)
    w, b = rng.standard_normal(2), 0.3
    loss, grad_w, grad_b = tiny_net.logistic_loss_and_grads(x, y, w, b)
    expected = F.binary_cross_entropy_with_logits(torch.tensor(x @ w + b), torch.tensor(y))
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(
        grad_w,
        numerical_gradient(lambda: tiny_net.logistic_loss_and_grads(x, y, w, b)[0], w),
        rtol=1e-6,
    )
    bias = np.array([b])
    numeric_b = numerical_gradient(lambda: tiny_net.logistic_loss_and_grads(x, y, w, bias[0])[0],
                                   bias)
    assert grad_b == pytest.approx(numeric_b[0], rel=1e-6)
    _, _, losses = tiny_net.train_logistic_neuron(x, y, steps=50)
    assert losses[-1] < losses[0] / 2


# ----------------------------------------------------------------------------------- whole networks


def test_mlp_backward_matches_finite_differences_and_torch(rng):
    model = tiny_net.MLP(12, 7, 4, seed=3, dtype=np.float64)
    for name in ("b1", "b2"):  # non-zero biases, so their gradients are tested in general position
        model.params[name] += rng.standard_normal(model.params[name].shape) * 0.1
    x, labels = rng.standard_normal((5, 12)), rng.integers(0, 4, 5)
    loss, grads = model.loss_and_grads(x, labels)

    p = {name: t(value) for name, value in model.params.items()}
    expected = F.cross_entropy(torch.relu(t(x, False) @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"],
                               torch.tensor(labels))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, p[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
        numeric = numerical_gradient(lambda: model.loss_and_grads(x, labels)[0], model.params[name])
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def torch_lenet_loss(params: dict[str, torch.Tensor], x: torch.Tensor, labels: torch.Tensor,
                     first_padding: int, num_fc: int) -> torch.Tensor:
    h = F.max_pool2d(torch.relu(F.conv2d(x, params["conv1.weight"], params["conv1.bias"],
                                         padding=first_padding)), 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, params["conv2.weight"], params["conv2.bias"])), 2)
    h = h.flatten(1)
    for i in range(1, num_fc + 1):
        h = F.linear(h, params[f"fc{i}.weight"].T, params[f"fc{i}.bias"])
        if i < num_fc:
            h = torch.relu(h)
    return F.cross_entropy(h, labels)


def test_cnn_backward_matches_finite_differences_and_torch(rng):
    model = cnn.SmallLeNet(image_size=16, channels=(3, 4), hidden=(7,), num_classes=5, seed=2,
                           dtype=np.float64)
    for name, value in model.params.items():
        if name.endswith("bias"):
            value += rng.standard_normal(value.shape) * 0.1
    x, labels = rng.standard_normal((3, 1, 16, 16)), rng.integers(0, 5, 3)
    loss, grads = model.loss_and_grads(x, labels)
    assert set(grads) == set(model.params)

    p = {name: t(value) for name, value in model.params.items()}
    expected = torch_lenet_loss(p, t(x, False), torch.tensor(labels), model.first_padding,
                                model.num_fc)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, p[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
        entries = rng.choice(grad.size, size=min(grad.size, 12), replace=False)
        numeric = numerical_gradient(lambda: model.loss_and_grads(x, labels)[0],
                                     model.params[name], entries=entries)
        np.testing.assert_allclose(grad.ravel()[entries], numeric.ravel()[entries], rtol=1e-5,
                                   atol=1e-8, err_msg=name)


def test_sgd_momentum_matches_torch(rng):
    params = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    tensors = [torch.tensor(value.copy(), requires_grad=True) for value in params.values()]
    ours = cnn.SGDMomentum(params, lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD(tensors, lr=0.1, momentum=0.9)
    for _ in range(4):
        grads = {name: rng.standard_normal(value.shape) for name, value in params.items()}
        ours.step(grads)
        for tensor, grad in zip(tensors, grads.values(), strict=True):
            tensor.grad = torch.tensor(grad)
        theirs.step()
    for value, tensor in zip(params.values(), tensors, strict=True):
        np.testing.assert_allclose(value, tensor.detach().numpy(), rtol=1e-12)


def test_a_few_sgd_steps_reduce_the_loss(rng):
    x = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 32)
    model = cnn.SmallLeNet(seed=0)
    assert all(value.dtype == np.float32 for value in model.params.values())
    optimiser = cnn.SGDMomentum(model.params, lr=0.01, momentum=0.9)
    first, grads = model.loss_and_grads(x, labels)
    assert all(grads[name].dtype == np.float32 for name in grads)  # float32 all the way through
    for _ in range(5):
        optimiser.step(grads)
        loss, grads = model.loss_and_grads(x, labels)
    assert loss < 0.8 * first

    mlp = tiny_net.MLP(seed=0)
    flat = x.reshape(32, -1)
    losses = tiny_net.train_mlp(mlp, flat, labels, epochs=5, batch_size=32, lr=0.05)
    assert losses[-1] < 0.8 * losses[0]


# ----------------------------------------------------------------------------------- demos, imports


@pytest.mark.parametrize("name, keys", [
    ("linreg", {"slope", "intercept", "weights", "bias", "lstsq_max_abs_difference"}),
    ("gd", {"weights", "bias", "closed_form_weights", "closed_form_bias", "steps_raw",
            "steps_standardised", "condition_number_raw", "condition_number_standardised"}),
    pytest.param("mlp", {"test_accuracy", "train_seconds", "images", "neuron_accuracy"},
                 marks=needs_data),
    pytest.param("cnn", {"test_accuracy", "train_seconds", "images", "epochs"}, marks=needs_data),
])
def test_run_quick_writes_plot_and_returns_figures(tmp_path, name, keys):
    import json

    from cnnzoo.scratch.run import run

    messages: list[str] = []
    figures = run(name, out_dir=tmp_path / "out", quick=True, log=messages.append)
    assert keys | {"plot"} <= set(figures)
    json.dumps(figures)  # JSON-able
    plot = Path(figures["plot"])
    assert plot.parent == tmp_path / "out" and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert messages
    if name == "gd":
        assert figures["steps_raw"] > 1000 * figures["steps_standardised"]
        np.testing.assert_allclose(figures["weights"], figures["closed_form_weights"], atol=1e-4)
    if name == "cnn":
        # quick: 1000 images, 2 epochs; far above chance (0.1)
        assert figures["test_accuracy"] > 0.3


def test_run_rejects_unknown_names(tmp_path):
    from cnnzoo.scratch.run import run

    with pytest.raises(ValueError, match="unknown scratch demo"):
        run("resnet", out_dir=tmp_path)


@needs_data
def test_fashion_mnist_loader():
    from cnnzoo.scratch._fashion_mnist import load_fashion_mnist

    images, labels = load_fashion_mnist("test", 300)
    assert images.shape == (300, 28, 28) and images.dtype == np.uint8
    assert (
        labels.shape == (300,)
        and labels.dtype == np.int64
        and set(np.unique(labels)) <= set(range(10))
    )
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", 10)


@pytest.fixture
def no_fashion_mnist(tmp_path, monkeypatch):
    """Hide every real copy of Fashion-MNIST: no environment folder, an empty Debian folder and
    cache."""
    from cnnzoo.data import sources

    monkeypatch.delenv(sources.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    hidden = dataclasses.replace(sources.DATASETS["fashion-mnist"],
                                 system_dirs=(tmp_path / "no-debian-copy",))
    monkeypatch.setattr(sources, "DATASETS", {**sources.DATASETS, "fashion-mnist": hidden})


def test_fashion_mnist_loader_says_where_it_looked(tmp_path, no_fashion_mnist):
    from cnnzoo.scratch._fashion_mnist import load_fashion_mnist

    with pytest.raises(DataFilesMissing, match="train-images-idx3-ubyte.gz"):
        load_fashion_mnist("train", 10, data_dir=tmp_path)


def test_single_threaded_blas_limits_and_restores():
    from threadpoolctl import threadpool_info

    from cnnzoo.scratch._blas import single_threaded_blas

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    with single_threaded_blas():
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before


@pytest.fixture
def cli_with_scratch():
    from cnnzoo import cli

    return cli.main


def test_cli_scratch_gd_quick_json(tmp_path, capsys, cli_with_scratch):
    import json

    out = tmp_path / "gd"
    assert cli_with_scratch(["scratch", "gd", "--quick", "--json", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    figures = json.loads(captured.out)  # exactly one JSON object on stdout
    assert figures["demo"] == "gd" and figures["quick"] is True and figures["out_dir"] == str(out)
    assert figures["steps_raw"] > 1000 * figures["steps_standardised"]
    assert Path(figures["plot"]).parent == out and Path(figures["plot"]).is_file()
    assert "plot:" in captured.err  # the progress went to stderr


def test_cli_scratch_help_and_bad_name(capsys, cli_with_scratch):
    with pytest.raises(SystemExit) as exit_info:
        cli_with_scratch(["scratch", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("linreg", "gd", "mlp", "cnn", "--quick", "--data-dir", "--json"):
        assert name in text
    with pytest.raises(SystemExit) as exit_info:
        cli_with_scratch(["scratch", "resnet"])
    assert exit_info.value.code == 2


def test_cli_scratch_missing_data_is_a_user_error(tmp_path, capsys, no_fashion_mnist,
                                                  cli_with_scratch):
    # a folder without the files (one that does not exist is refused as it is parsed)
    (tmp_path / "none").mkdir()
    code = cli_with_scratch(["scratch", "mlp", "--quick", "--out", str(tmp_path / "o"),
                             "--data-dir", str(tmp_path / "none")])
    assert code == 2
    assert "data files not found" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["cnnzoo.scratch", "cnnzoo.scratch.linreg",
                                    "cnnzoo.scratch.tiny_net",
                                    "cnnzoo.scratch.layers", "cnnzoo.scratch.cnn",
                                    "cnnzoo.scratch.run",
                                    "cnnzoo.scratch._fashion_mnist", "cnnzoo.scratch._blas",
                                    "cnnzoo.commands.scratch"])
def test_scratch_never_imports_torch(module):
    code = f"import {module}; import sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_scratch_runs_without_torch(tmp_path):
    code = ("import sys; from cnnzoo import cli; assert cli.main(['scratch', 'linreg', '--quick', "
            f"'--out', {str(tmp_path)!r}]) == 0; assert 'torch' not in sys.modules, 'torch was "
            "imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
