"""``cnnzoo import``, end to end: the networks a student writes in a notebook, trained here in a
plain PyTorch loop (no cnnzoo code), saved in every format cnnzoo imports, imported, and then used
by predict, summary and every view, as a run cnnzoo trained would be.

The three networks are the source notes' own kinds: a class-based 2-conv net (with functional ReLU
and pooling in its forward), d2l's ``nn.Sequential`` LeNet, and cnnzoo's ResNet-18 saved as a
torchvision-layout state dict (the key renaming below is written out by hand from torchvision's
``resnet.py``, independently of ``engine/torchvision_keys.py``).
"""

from __future__ import annotations

import json
import re
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import ConfigError

NET_PY = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn


    class Net(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.fc = nn.Linear(16 * 7 * 7, num_classes)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            return self.fc(torch.flatten(x, 1))


    def lenet():
        return nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.Sigmoid(),
            nn.Linear(84, 10))


    class Reused(nn.Module):
        """One ReLU module used after both convolutions, and an in-place one."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.act = nn.ReLU(inplace=True)
            self.fc = nn.Linear(4 * 28 * 28, 10)

        def forward(self, x):
            x = self.relu(self.conv1(x))
            x = self.relu(self.act(self.conv2(x)))
            return self.fc(x.flatten(1))
''')


def toy_batch(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable toy: a bright square at each class's own place on a dark 28×28 image."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = rng.integers(0, 40, (count, 1, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        row, col = divmod(int(label), 5)
        image[0, 4 + row * 12: 12 + row * 12, 2 + col * 5: 6 + col * 5] = 220
    return torch.from_numpy(images), torch.from_numpy(labels)


def train_plainly(model: nn.Module, steps: int = 4) -> nn.Module:
    """A few steps of the notebook loop: SGD on x/255, cross-entropy."""
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for step in range(steps):
        images, labels = toy_batch(32, step)
        loss = F.cross_entropy(model(images.float() / 255), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def torchvision_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """cnnzoo's ResNet keys as torchvision's resnet.py names them (stem.0 is conv1, a block's
    convK.1 is bnK, shortcut is downsample)."""
    rules = [(r"^stem\.0\.", "conv1."), (r"^stem\.1\.", "bn1."),
             (r"\.conv(\d)\.0\.", r".conv\1."), (r"\.conv(\d)\.1\.", r".bn\1."),
             (r"\.shortcut\.", ".downsample.")]
    renamed = {}
    for key, value in state.items():
        for pattern, target in rules:
            key = re.sub(pattern, target, key)
        renamed[key] = value
    return renamed


FORMATS = ("pt", "safetensors", "torchscript", "pt2")
NETWORKS = ("net", "lenet", "resnet18")


@pytest.fixture(scope="module")
def workshop(tmp_path_factory):
    """The user's folder: net.py, 20 images, and each network trained and saved in every format."""
    root = tmp_path_factory.mktemp("notebook")
    (root / "net.py").write_text(NET_PY)
    namespace: dict = {}
    exec(compile(NET_PY, str(root / "net.py"), "exec"), namespace)
    torch.manual_seed(0)
    from cnnzoo.models.registry import create_model  # only to build the zoo architecture

    models = {"net": namespace["Net"](), "lenet": namespace["lenet"](),
              "resnet18": create_model("resnet18", num_classes=10, in_channels=1, input_size=28)}
    images, _ = toy_batch(20, 99)
    paths = []
    for i, image in enumerate(images):
        paths.append(root / f"image{i}.png")
        Image.fromarray(image[0].numpy()).save(paths[-1])
    saved = {}
    batch = torch.export.Dim("batch", min=1, max=1024)
    for name, model in models.items():
        model = train_plainly(model)
        state = model.state_dict()
        if name == "resnet18":
            state = torchvision_layout(state)
        example = torch.zeros(2, 1, 28, 28)
        torch.save(state, root / f"{name}.pt")
        save_file({k: v.contiguous() for k, v in state.items()}, root / f"{name}.safetensors")
        traced = torch.jit.script(model) if name != "resnet18" else torch.jit.trace(model, example)
        traced.save(str(root / f"{name}_ts.pt"))
        torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)),
                          root / f"{name}.pt2")
        saved[name] = model
    return {"root": root, "models": saved, "images": paths, "inputs": images.float() / 255}


def import_args(workshop, network: str, fmt: str) -> list[str]:
    root = workshop["root"]
    source = {"pt": f"{network}.pt", "safetensors": f"{network}.safetensors",
              "torchscript": f"{network}_ts.pt", "pt2": f"{network}.pt2"}[fmt]
    argv = ["import", str(root / source), "--out", str(root / f"run-{network}-{fmt}")]
    if fmt in ("pt", "safetensors"):
        # a cnnzoo architecture defaults to its own side (224 for resnet18): say it trained at 28
        argv += (["--model", "resnet18", "--input-size", "28"] if network == "resnet18" else
                 ["--code", f"{root / 'net.py'}:{'Net' if network == 'net' else 'lenet'}",
                  "--input-size", "1,28,28"])
    elif fmt == "torchscript":
        argv += ["--input-size", "1,28,28"]
    return argv


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("network", NETWORKS)
def test_an_imported_model_predicts_as_the_plain_model(workshop, capsys, network, fmt):
    code, _, err = cli(capsys, *import_args(workshop, network, fmt), "--json")
    assert code == 0, err
    run = str(workshop["root"] / f"run-{network}-{fmt}")
    code, out, err = cli(capsys, "predict", run, *map(str, workshop["images"]), "--top-k", "10",
                         "--no-prepare", "--json", "--run-code")
    assert code == 0, err
    results = json.loads(out)["results"]
    model = workshop["models"][network]
    with torch.no_grad():
        expected = model(workshop["inputs"]).softmax(-1)
    for i, item in enumerate(results):
        got = {int(p["class"]): p["probability"] for p in item["predictions"]}
        assert torch.allclose(torch.tensor([got[c] for c in range(10)]), expected[i], atol=1e-5)

    code, out, err = cli(capsys, "summary", run, "--json", "--run-code")
    assert code == 0, err
    assert json.loads(out)["total_params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("network", NETWORKS)
def test_every_view_runs_or_says_in_one_line_why_not(workshop, capsys, network, fmt, tmp_path):
    root = workshop["root"]
    run = root / f"run-{network}-{fmt}"
    if not run.exists():
        assert cli(capsys, *import_args(workshop, network, fmt))[0] == 0
    image = str(workshop["images"][0])
    opaque = fmt in ("torchscript", "pt2")
    views = {("show", "filters", str(run)): not opaque,
             ("show", "maps", str(run), image): not opaque,
             ("show", "cam", str(run), image): not opaque,
             # no FC head to rewrite: global pooling (resnet18) or an imported module tree
             ("scoremap", str(run), image): False,
             ("export", str(run), "--images", "4"): True}
    for argv, works in views.items():
        out = str(tmp_path / ("x.onnx" if argv[0] == "export" else "show"))
        code, _, err = cli(capsys, *argv, "--out", out, "--run-code")
        lines = [line for line in err.splitlines() if line.startswith("cnnzoo")]
        assert code == (0 if works else 2), (argv, err)
        if not works:
            assert len(lines) == 1 and "error:" in lines[0], err
            assert opaque or argv[0] == "scoremap"
            if opaque and argv[0] == "show":
                assert "hooks cannot see into" in lines[0]


def test_a_code_run_loads_only_with_run_code(workshop, capsys):
    run = workshop["root"] / "run-net-pt"
    if not run.exists():
        assert cli(capsys, *import_args(workshop, "net", "pt"))[0] == 0
    code, _, err = cli(capsys, "predict", str(run), str(workshop["images"][0]))
    assert code == 2 and "--run-code" in err and "net.py" in err
    with pytest.raises(ConfigError, match=r"run_code=True"):
        cnnzoo.load_run(run)
    assert cnnzoo.predict(cnnzoo.load_run(run, run_code=True), workshop["images"][0], top_k=1)


def test_the_data_views_and_eval_run_on_an_import_with_a_dataset(workshop, capsys, tmp_path,
                                                                 tiny_mnist_dir):
    root = workshop["root"]
    run = tmp_path / "run"
    code, _, err = cli(capsys, "import", str(root / "lenet.pt"), "--code",
                       f"{root / 'net.py'}:lenet", "--input-size", "1,28,28", "--dataset",
                       "mnist", "--out", str(run))
    assert code == 0, err
    data = ["--data-dir", str(tiny_mnist_dir), "--run-code"]
    assert cli(capsys, "eval", str(run), *data[:2], "--run-code", "--json")[0] == 0
    for argv in (["errors", str(run), "--count", "4"], ["embedding", str(run), "--images", "100"],
                 ["neighbours", str(run), str(workshop["images"][0]), "--queries", "20"]):
        code, _, err = cli(capsys, "show", *argv, *data, "--out", str(tmp_path / "show"))
        assert code == 0, (argv, err)
    # compare loads its runs as every command does, --run-code included
    code, _, err = cli(capsys, "compare", str(run), str(run), *data, "--out",
                       str(tmp_path / "compare"))
    assert code == 0, err


def test_torchvision_alexnet_is_refused_in_one_line_that_says_where_it_differs(tmp_path, capsys):
    # torchvision's AlexNet (the one-tower 2014 variant): 64 kernels in conv1, fc8 at classifier.6
    shapes = {"features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
              "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)}
    torch.save({k: torch.zeros(v) for k, v in shapes.items()}, tmp_path / "alexnet.pth")
    code, _, err = cli(capsys, "import", str(tmp_path / "alexnet.pth"), "--model", "alexnet",
                       "--out", str(tmp_path / "run"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "missing" in err and "one weird trick" in err
    assert '"features.0.bias" is 64 in the file but 96 in the model' in err
    assert not (tmp_path / "run").exists()


def test_a_mismatch_lists_missing_unexpected_and_wrongly_shaped_keys(workshop, capsys, tmp_path):
    state = dict(workshop["models"]["net"].state_dict())
    state["extra.weight"] = torch.zeros(3)
    state["fc.weight"] = torch.zeros(5, 784)
    del state["conv2.bias"]
    torch.save(state, tmp_path / "bad.pt")
    code, _, err = cli(capsys, "import", str(tmp_path / "bad.pt"), "--code",
                       f"{workshop['root'] / 'net.py'}:Net", "--input-size", "1,28,28",
                       "--out", str(tmp_path / "run"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "missing \"conv2.bias\"" in err and "unexpected \"extra.weight\"" in err
    assert "\"fc.weight\" is 5×784 in the file but 10×784" in err


def test_a_failing_forward_pass_is_one_line_with_the_shapes(workshop, capsys, tmp_path):
    code, _, err = cli(capsys, *import_args(workshop, "net", "torchscript")[:2], "--input-size",
                       "1,32,32", "--out", str(tmp_path / "run"))
    assert code == 2 and "1×1×32×32" in err and len(err.strip().splitlines()) == 1


def test_a_reused_relu_gives_correct_maps_or_names_the_module(workshop, capsys, tmp_path):
    from cnnzoo.engine.imported import code_model, imported_config
    from cnnzoo.visualize.activations import activations

    model = code_model(workshop["root"] / "net.py", "Reused", None).eval()
    model.cfg = imported_config("Reused", (1, 28, 28), 10)
    x = workshop["inputs"][:1]
    outputs = activations(model, x)
    assert "relu" not in outputs  # it ran twice: no one map to show
    with torch.no_grad():
        before_relu = model.conv2(model.relu(model.conv1(x)))
    # conv2's map as it left conv2: the in-place ReLU after it did not overwrite the copy
    assert before_relu.min() < 0 and torch.equal(outputs["conv2"], before_relu)
    torch.save(model.state_dict(), tmp_path / "reused.pt")
    run = tmp_path / "run"
    assert cli(capsys, "import", str(tmp_path / "reused.pt"), "--code",
               f"{workshop['root'] / 'net.py'}:Reused", "--input-size", "1,28,28",
               "--out", str(run))[0] == 0
    image = str(workshop["images"][0])
    for view in (["maps", str(run), image, "--layers", "relu"],
                 ["cam", str(run), image, "--layer", "relu"]):
        code, _, err = cli(capsys, "show", *view, "--run-code", "--out", str(tmp_path / "s"))
        assert code == 2 and "'relu' (ReLU) runs 2 times" in err, err
    code, _, err = cli(capsys, "show", "cam", str(run), image, "--run-code", "--out",
                       str(tmp_path / "s"))
    assert code == 0, err


def test_summary_follows_functional_pooling_and_takes_a_code_model(workshop, capsys):
    code, out, err = cli(capsys, "summary", "--code", f"{workshop['root'] / 'net.py'}:Net",
                         "--input-size", "1,28,28", "--json")
    assert code == 0, err
    layers = {layer["name"]: layer for layer in json.loads(out)["layers"]}
    # conv1 3×3: 3; F.max_pool2d 2/2: 4, jump 2; conv2 3×3: 4 + 2·2 = 8
    assert (layers["conv2"]["receptive_field"], layers["conv2"]["jump"]) == (8, 2)


def test_a_cnnzoo_checkpoint_imports_with_its_own_normalisation_and_classes(tiny_mnist_dir,
                                                                            tmp_path, capsys):
    """Imported without --mean/--std, a cnnzoo run's weights took raw pixels: 91% fell to 66%."""
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=2,
                      out=str(tmp_path / "run"), precision="fp32", channels_last=False,
                      compile="off", snapshots="off"))
    code, _, err = cli(capsys, "import", str(tmp_path / "run" / "checkpoints" / "best.safetensors"),
                       "--model", "lenet5", "--out", str(tmp_path / "imported"))
    assert code == 0, err
    assert "normalisation: the checkpoint's own" in err
    original, imported = cnnzoo.load_run(tmp_path / "run"), cnnzoo.load_run(tmp_path / "imported")
    assert imported.input.mean == original.input.mean != [0.0]
    assert imported.classes == original.classes
    data = {"data_dir": tiny_mnist_dir}
    assert (cnnzoo.evaluate(imported, "mnist", **data).top1
            == cnnzoo.evaluate(original, "mnist", **data).top1)


def test_an_onnx_file_is_refused_as_what_it_is(tmp_path, capsys):
    (tmp_path / "lenet5.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")  # as export writes
    code, _, err = cli(capsys, "import", str(tmp_path / "lenet5.onnx"), "--model", "lenet5",
                       "--out", str(tmp_path / "run"))
    assert code == 2 and "an ONNX graph" in err and "best.safetensors" in err
    assert not (tmp_path / "run").exists()
