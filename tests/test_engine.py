"""The training engine: runs, resume, checkpoints that survive crashes and refuse code, evaluation,
prediction."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.engine import checkpoint as ckpt
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.evaluate import evaluate_run
from cnnzoo.engine.predict import predict_files
from cnnzoo.engine.run import load_run
from cnnzoo.engine.schedules import PlateauDivider, lr_factor
from cnnzoo.engine.train import train
from cnnzoo.errors import RunDirectoryError


def tiny_config(data_dir: Path, out: Path, **changes) -> TrainConfig:
    settings = dict(model="convnet", dataset="mnist", data_dir=str(data_dir), epochs=2,
                    batch_size=50, lr=0.05, out=str(out), seed=3)
    settings.update(changes)
    return TrainConfig(**settings)


def test_a_run_learns_and_writes_its_run_directory(tiny_mnist_dir, tmp_path):
    summary = train(tiny_config(tiny_mnist_dir, tmp_path / "run"))
    run = tmp_path / "run"
    assert summary["test_top1"] > 0.9  # the tiny dataset is easy: a square per class
    for name in ("config.json", "metrics.csv", "summary.json", "curves.png", "confusion.png",
                 "per_class.csv", "checkpoints/last.safetensors", "checkpoints/best.safetensors"):
        assert (run / name).is_file(), name
    written = json.loads((run / "summary.json").read_text())
    expected_keys = {"model", "dataset", "epochs", "train_seconds", "images_per_second", "params",
                     "test_top1", "test_top5", "best_test_top1"}
    assert expected_keys <= set(written)
    assert (
        written["epochs"] == 2
        and 0 <= written["test_top1"] <= 1
        and written["best_test_top1"] >= written["test_top1"]
    )
    config = json.loads((run / "config.json").read_text())
    assert config["versions"]["torch"] == torch.__version__
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs
    assert Image.open(run / "curves.png").size[0] > 300


def test_a_run_figures_name_the_network_with_its_builder_arguments(tiny_mnist_dir, tmp_path,
                                                                   monkeypatch):
    import cnnzoo.engine.plots as plots

    titles = []
    for name in ("curves_png", "confusion_png"):
        drawn = getattr(plots, name)
        monkeypatch.setattr(plots, name, lambda *a, drawn=drawn, **k: titles.append(k["title"])
                            or drawn(*a, **k))
    train(tiny_config(tiny_mnist_dir, tmp_path / "run", model="mlp",
                      model_kwargs={"hidden": [16, 8]}, epochs=1))
    curves, confusion = titles
    assert curves == "mlp variant (hidden=[16,8]) on mnist"
    assert confusion.startswith("mlp variant (hidden=[16,8])\ntest top-1 ")
    # and so do the views of the run (`cnnzoo show ...`), which title their figures with its label
    assert load_run(tmp_path / "run").label == "mlp variant (hidden=[16,8]) (trained on mnist)"


def test_resumed_run_ends_with_the_same_weights(tiny_mnist_dir, tmp_path, monkeypatch):
    # Dropout and augmentation draw random numbers: resume must restore every generator to match
    # exactly.
    import cnnzoo.engine.epochs as engine  # where each epoch's metrics.csv is written

    common = dict(model="alexnet_small", model_kwargs={"widths": [8, 16, 16, 16, 16], "hidden": 32},
                  crop_padding=2, epochs=3, batch_size=100)
    train(tiny_config(tiny_mnist_dir, tmp_path / "straight", **common))

    write_metrics = engine.write_metrics

    def die_in_epoch_two(run_dir, history):
        if len(history) == 2:
            # the process is killed after epoch 2's steps, before its checkpoint
            raise KeyboardInterrupt
        write_metrics(run_dir, history)

    monkeypatch.setattr(engine, "write_metrics", die_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_mnist_dir, tmp_path / "interrupted", **common))
    monkeypatch.setattr(engine, "write_metrics", write_metrics)
    assert (
        ckpt.load_checkpoint(tmp_path / "interrupted/checkpoints/last.safetensors").meta["epoch"]
        == 1
    )

    train(TrainConfig(), resume=tmp_path / "interrupted")
    straight = ckpt.load_checkpoint(tmp_path / "straight/checkpoints/last.safetensors")
    resumed = ckpt.load_checkpoint(tmp_path / "interrupted/checkpoints/last.safetensors")
    assert straight.meta["epoch"] == resumed.meta["epoch"] == 3
    for name, value in straight.model_state.items():
        assert torch.equal(value, resumed.model_state[name]), name
    assert (tmp_path / "interrupted/metrics.csv").read_text().count("\n") == 4  # header + 3 epochs


def test_the_schedule_depends_on_total_epochs_only_through_progress():
    assert lr_factor("onecycle", 0.25) == pytest.approx(1.0)
    assert lr_factor("onecycle", 1.0) == pytest.approx(0.0)
    assert lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 0.05, warmup=0.1) == pytest.approx(0.5)
    assert lr_factor("step", 0.9, epoch=65, step_epochs=30) == pytest.approx(0.01)
    divider = PlateauDivider(patience=1)
    factors = [divider.update(error) for error in (0.5, 0.4, 0.4, 0.4, 0.39, 0.39, 0.39)]
    assert factors == [1, 1, 1, 0.1, 0.1, 0.1, 0.01]


def test_crash_while_writing_a_checkpoint_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "last.safetensors"
    ckpt.save_checkpoint(path, model_state={"w": torch.ones(3)}, meta={"epoch": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        ckpt.save_checkpoint(path, model_state={"w": torch.zeros(3)}, meta={"epoch": 2})
    loaded = ckpt.load_checkpoint(path)
    assert loaded.meta["epoch"] == 1 and torch.equal(loaded.model_state["w"], torch.ones(3))
    # no temporary file left behind
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "best.safetensors"
    ckpt.save_checkpoint(path, model_state={"w": torch.ones(100)}, meta={"epoch": 1})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ckpt.CheckpointError, match="best.safetensors"):
        ckpt.load_checkpoint(path)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the pickle ran code"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran.txt"
    evil = tmp_path / "weights.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"w": torch.ones(2), "payload": _RunsCode(marker)}, handle)
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        ckpt.load_checkpoint(evil)
    assert not marker.exists()


def test_a_plain_state_dict_loads_with_the_model_named(tmp_path):
    import cnnzoo

    model = cnnzoo.create_model("lenet5")
    torch.save(model.state_dict(), tmp_path / "lenet.pt")
    loaded = load_run(tmp_path / "lenet.pt", model_name="lenet5")
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value)
    with pytest.raises(ckpt.CheckpointError, match="--model"):
        load_run(tmp_path / "lenet.pt")


def test_unwritable_output_directory_is_a_clear_error(tiny_mnist_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RunDirectoryError, match="--out"):
        train(tiny_config(tiny_mnist_dir, blocker / "run", epochs=1))


def test_evaluate_and_predict_from_a_run(tiny_mnist_dir, tmp_path):
    run = tmp_path / "run"
    summary = train(tiny_config(tiny_mnist_dir, run, model="lenet5_1998", epochs=3, lr=0.01))
    loaded = load_run(run)
    assert loaded.model.cfg.input_size == (1, 32, 32) and loaded.data_size == 28
    result = evaluate_run(loaded, data_dir=str(tiny_mnist_dir))
    assert result.top1 == pytest.approx(summary["best_test_top1"])
    assert evaluate_run(loaded, data_dir=str(tiny_mnist_dir), views="flip").images == 200
    # PNG files written from the test set are classified as the dataset's labels say
    from cnnzoo.data.idx import read_idx_pair

    images, labels = read_idx_pair(tiny_mnist_dir / "t10k-images-idx3-ubyte.gz",
                                   tiny_mnist_dir / "t10k-labels-idx1-ubyte.gz", limit=20)
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(paths[-1])
    results = predict_files(loaded, paths, top_k=3)
    predicted = np.array([r["predictions"][0]["index"] for r in results])
    assert (predicted == labels).mean() >= 0.9
    assert all(len(r["predictions"]) == 3 for r in results)
    probabilities = [p["probability"] for p in results[0]["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001


def test_googlenet_auxiliary_losses_train(tiny_mnist_dir, tmp_path):
    summary = train(tiny_config(tiny_mnist_dir, tmp_path / "g", model="googlenet_small", epochs=1,
                                batch_size=100, train_subset=200, test_subset=100))
    assert summary["epochs"] == 1 and np.isfinite(summary["test_top1"])


def test_short_real_fashion_mnist_run_reaches_a_floor(fashion_mnist_dir, tmp_path):
    # 10,000 real images, two epochs of the modern LeNet: comfortably above 75% (chance is 10%).
    summary = train(TrainConfig(model="lenet5", dataset="fashion-mnist",
                                data_dir=str(fashion_mnist_dir), epochs=2, batch_size=64, lr=0.05,
                                train_subset=10_000, test_subset=2_000, out=str(tmp_path / "real")))
    assert summary["test_top1"] > 0.75


def test_resume_extends_a_finished_run_and_refuses_other_changes(tiny_mnist_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_mnist_dir, run, epochs=1))
    with pytest.raises(ValueError, match="raise --epochs"):
        train(None, resume=run)
    with pytest.raises(ValueError, match="only --epochs"):
        train(None, resume=run, overrides={"lr": 0.1})
    summary = train(None, resume=run, overrides={"epochs": 2})
    assert summary["epochs"] == 2
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_ten_crop_needs_crops_and_uses_padded_images(tiny_mnist_dir, tmp_path):
    with pytest.raises(ValueError, match="--crop-padding"):
        train(tiny_config(tiny_mnist_dir, tmp_path / "a", epochs=1, test_views="ten-crop"))
    summary = train(tiny_config(tiny_mnist_dir, tmp_path / "b", epochs=1, test_views="ten-crop",
                                crop_padding=2))
    assert summary["test_views"] == "ten-crop"
    loaded = load_run(tmp_path / "b")
    views = loaded.input.eval_pipeline("ten-crop")(torch.full((3, 1, 28, 28), 255,
                                                              dtype=torch.uint8))
    assert views.shape == (10, 3, 1, 28, 28)
    corner, centre = views[0], views[4]
    assert not torch.equal(corner, centre)  # a padded corner crop shows the zero border


def test_misspelt_model_setting_is_a_clear_error(tiny_mnist_dir, tmp_path):
    with pytest.raises(ValueError, match="dropuot"):
        train(tiny_config(tiny_mnist_dir, tmp_path / "r", model="mlp",
                          model_kwargs={"dropuot": 0.1}))


def test_folders_too_big_for_memory_stream_through_training_and_evaluation(tmp_path, capsys):
    """--memory-budget 0 streams an image folder; training and `cnnzoo eval` both work on the
    streamed folder (eval used to fail with AttributeError: 'StreamingImageFolder' object has no
    attribute 'images')."""
    from cnnzoo.cli import main

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label, colour in enumerate((30, 220)):
            (tmp_path / "imgs" / split / f"class{label}").mkdir(parents=True)
            for index in range(12):
                pixels = np.clip(rng.normal(colour, 10, (20, 20, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(
                    tmp_path / "imgs" / split / f"class{label}" / f"{index}.png"
                )
    summary = train(TrainConfig(model="lenet5", dataset=f"folder:{tmp_path / 'imgs'}", epochs=3,
                                batch_size=8, lr=0.05, memory_budget=0, out=str(tmp_path / "run")))
    assert summary["test_top1"] == 1.0  # dark vs bright images
    for budget in ("0", "100"):  # streamed, then in memory: the same verdict
        assert main(["eval", str(tmp_path / "run"), "--memory-budget", budget, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["top1"] == 1.0 and report["images"] == 24


# ------------------------------------------------------------------------------ damaged checkpoints


def _lenet_checkpoint(path: Path, changes: dict | None = None) -> Path:
    """A lenet5 checkpoint with the metadata train() writes, ``changes`` applied ("input.size": 1
    sets a key inside "input")."""
    import cnnzoo

    meta = {"model": "lenet5", "model_kwargs": {"num_classes": 10, "in_channels": 1,
                                                "input_size": 28},
            "classes": [f"class {i}" for i in range(10)], "data_size": 28,
            "dataset": "fashion-mnist", "epoch": 1,
            "input": {"size": 28, "mean": [0.286], "std": [0.353], "crop_padding": 0}}
    for key, value in (changes or {}).items():
        *parents, last = key.split(".")
        target = meta
        for parent in parents:
            target = target[parent]
        target[last] = value
    ckpt.save_checkpoint(path, model_state=cnnzoo.create_model("lenet5").state_dict(), meta=meta)
    return path


@pytest.mark.parametrize("changes, message", [
    # 4 TB allocated
    ({"input.size": 1_000_000}, "input.size is 1000000, not a whole number from 1 to 4,096"),
    ({"input.size": 32}, "input.size is 32, but its model_kwargs build lenet5 for 28×28 images"),
    ({"input.mean": [0.1, 0.2, 0.3]}, r"input.mean is \[0.1, 0.2, 0.3\], not a list of 1 finite "
                                      r"number"),
    ({"input.std": [0]}, "input.std is .0., not a list of 1 positive number"),
    ({"input.crop_padding": -5}, "input.crop_padding is -5"),  # was silently accepted
    ({"input.extra": 1}, "'input' is"),  # TypeError
    ({"data_size": 10**6}, "data_size is 1000000"),  # MemoryError
    # IndexError in predict
    ({"classes": ["a", "b"]}, "'classes' names 2 classes, but its lenet5 has 10 outputs"),
    ({"classes": list(range(10))}, "not a list of class names"),
    ({"model": "lenet6"}, "holds a model named \"lenet6\".*Did you mean lenet5"),  # no file named
    ({"model": 5}, "'model' is 5, not a model name"),
    # TypeError: argument after ** must be a mapping
    ({"model_kwargs": [1, 2]}, "'model_kwargs' is \\[1, 2\\]"),
    ({"model_kwargs.dropuot": 0.5}, "do not build lenet5 .TypeError: lenet5.. got an unexpected "
                                    "keyword"),
    ({"model_kwargs.num_classes": 5}, "weights do not fit lenet5 .*5 in the model"),
    ({"model": "mlp", "model_kwargs": {"hidden": [100_000] * 3}}, "mlp with 20,079,700,010 "
                                                                  "parameters, more than "
                                                                  # 80 GB allocated
                                                                  "the 500,000,000"),
    ({"model": "mlp", "model_kwargs": {"hidden": [1] * 20_000}}, "more than 5,000 modules, "
                                                                 "parameters and buffers"),
    ({"dataset": 7}, "'dataset' is 7, not a data set's name"),
    ({"epoch": "ten"}, "'epoch' is \"ten\", not an epoch number"),
    ({"epoch": 3, "test_top1": 7}, "'test_top1' is 7, not an accuracy"),
    ({"epoch": 3, "test_top1": True}, "'test_top1' is true, not an accuracy"),
])
def test_damaged_checkpoint_metadata_is_refused_before_building(tmp_path, changes, message):
    path = _lenet_checkpoint(tmp_path / "best.safetensors", changes)
    with pytest.raises(ckpt.CheckpointError, match=message) as err:
        load_run(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("header, message", [
    ({"format": ckpt.FORMAT}, "metadata is missing"),  # KeyError: 'meta'
    ({"format": ckpt.FORMAT, "meta": "{not json"}, "metadata is not valid JSON"),  # JSONDecodeError
    ({"format": ckpt.FORMAT, "meta": "[1, 2]"}, "metadata is not a JSON object"),  # AttributeError
])
def test_a_checkpoint_header_without_usable_metadata(tmp_path, header, message):
    from safetensors.torch import save_file

    path = tmp_path / "best.safetensors"
    save_file({"model.w": torch.ones(2)}, path, metadata=header)
    with pytest.raises(ckpt.CheckpointError, match=message) as err:
        load_run(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_predict_refuses_a_huge_input_size_fast_in_little_memory(tmp_path):
    """`cnnzoo predict` on a checkpoint asking for 1,000,000×1,000,000 images: exit 2 and one line,
    in a child process whose address space is capped at 3 GiB (it tried to allocate 4 TB)."""
    import resource
    import subprocess
    import sys

    path = _lenet_checkpoint(tmp_path / "best.safetensors", {"input.size": 1_000_000})
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "image.png")

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    result = subprocess.run([sys.executable, "-m", "cnnzoo", "predict", str(path),
                             str(tmp_path / "image.png")],
                            capture_output=True, text=True, timeout=120, preexec_fn=cap_memory,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        result.stderr.count("\n") == 1
        and str(path) in result.stderr
        and "input.size is 1000000" in result.stderr
    )


def _trainable(name: str):
    import cnnzoo
    from cnnzoo.engine.state import Trainable

    model = cnnzoo.create_model(name)
    return Trainable(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                     torch.amp.GradScaler("cpu", enabled=False), None, torch.Generator())


def test_resume_refuses_bare_weights_best_checkpoints_and_other_models(tmp_path):
    from safetensors.torch import save_file

    from cnnzoo.engine.state import RunState, restore_last, save_last

    lenet = _trainable("lenet5")
    # AttributeError: 'NoneType' … 'copy'
    save_file(lenet.model.state_dict(), tmp_path / "bare.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="has no run state or optimiser state or random "
                                                   "states"):
        restore_last(tmp_path / "bare.safetensors", lenet)
    best = _lenet_checkpoint(tmp_path / "best.safetensors", {"run_state": vars(RunState(epoch=1))})
    with pytest.raises(ckpt.CheckpointError, match="has no optimiser state or random states"):
        restore_last(best, lenet)
    save_last(tmp_path / "mlp.safetensors", _trainable("mlp"), {"model": "mlp",
                                                                "run_state": vars(RunState())})
    with pytest.raises(ckpt.CheckpointError,
                       match="holds \"mlp\", but this run .* trains lenet5") as err:
        # RuntimeError: Missing key(s)… over many lines
        restore_last(tmp_path / "mlp.safetensors", lenet)
    assert str(tmp_path / "mlp.safetensors") in str(err.value) and "\n" not in str(err.value)


def test_resume_from_a_checkpoint_file_or_a_run_with_bare_weights_is_one_line(
    tiny_mnist_dir, tmp_path, capsys
):
    from safetensors.torch import save_file

    from cnnzoo.cli import main
    from cnnzoo.engine.outputs import write_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    write_config(run, tiny_config(tiny_mnist_dir, run, model="lenet5"))
    save_file(_trainable("lenet5").model.state_dict(), run / "checkpoints" / "last.safetensors")
    for source, named in ((run, run / "checkpoints" / "last.safetensors"),
                          (run / "checkpoints" / "last.safetensors",
                           run / "checkpoints" / "last.safetensors")):
        assert main(["train", "--resume", str(source), "--no-progress"]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and str(named) in error


def test_a_bf16_run_reports_the_accuracy_and_loss_eval_gives_in_fp32(tiny_mnist_dir, tmp_path):
    """A run trained in bf16 still scores itself in fp32, as `cnnzoo eval` does: its summary, the
    metrics and the per-class table are the numbers eval gives the same checkpoint (bf16 scoring
    once put a 20,000-image run 0.02 points away from eval's figure)."""
    # barely trained (a tiny rate), so that its answers are close calls that bf16 moves
    summary = train(tiny_config(tiny_mnist_dir, tmp_path / "run", epochs=1, precision="bf16",
                                lr=1e-4, channels_last=False, snapshots="off"))
    assert summary["precision"] == "bf16"
    result = evaluate_run(load_run(tmp_path / "run"), data_dir=str(tiny_mnist_dir))
    last = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[-1].split(",")
    assert float(last[4]) == pytest.approx(result.loss, abs=6e-6)  # test_loss, 5 decimals kept
    assert summary["test_top1"] == pytest.approx(result.top1, abs=1e-9)
    assert list(summary["per_class_top1"].values()) == pytest.approx(result.per_class_accuracy,
                                                                     abs=6e-6)
