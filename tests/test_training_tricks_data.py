"""The data half of the fast-training tricks (issue #26): alternating flips, flip-and-shift test
views, progressive resizing and cutout, each checked by what it does to the images a model sees."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.cli import main
from cnnzoo.data import augment
from cnnzoo.data.augment import TrainAugment
from cnnzoo.data.loading import load_dataset
from cnnzoo.data.tensors import ImageTensors
from cnnzoo.data.views import VIEW_COUNTS, EvalViews, flip_shift_views
from cnnzoo.engine import loop
from cnnzoo.engine import train as train_module
from cnnzoo.engine.config import TEST_VIEWS, TrainConfig
from cnnzoo.engine.inputs import check_progressive_resize
from cnnzoo.engine.loop import StepSettings, train_one_epoch
from cnnzoo.engine.progress import Progress
from cnnzoo.engine.run import load_run
from cnnzoo.engine.schedules import PlateauDivider, progressive_side
from cnnzoo.engine.state import RunState, Trainable
from cnnzoo.engine.train import train
from cnnzoo.errors import CheckpointError, ConfigError
from cnnzoo.models.registry import create_model

CPU = torch.device("cpu")


def _quick(data_dir, out, **changes) -> TrainConfig:
    """A small fast run on the tiny MNIST-format set, with nothing left to the autotuner."""
    settings = {"model": "mlp", "model_kwargs": {"hidden": [32]}, "dataset": "mnist",
                "data_dir": str(data_dir), "epochs": 1, "batch_size": 50, "lr": 0.05,
                "out": str(out), "seed": 3, "precision": "fp32", "channels_last": False,
                "compile": "off", "device": "cpu", "snapshots": "off"}
    return TrainConfig(**{**settings, **changes})


# ------------------------------------------------------------------------------ alternating flips


def test_each_image_is_mirrored_every_other_epoch_by_a_coin_of_the_seed():
    coins = augment.flip_coins(2000, seed=7)
    masks = torch.stack([augment.alternating_flips(coins, epoch) for epoch in range(4)])
    assert (masks[0] != masks[1]).all() and (masks[1] != masks[2]).all()
    assert (masks[2] != masks[3]).all() and torch.equal(masks[0], masks[2])
    assert torch.equal(masks[0], coins)  # epoch 0 mirrors the images whose coin came up
    assert all(0.45 < mask.float().mean().item() < 0.55 for mask in masks)
    assert torch.equal(augment.flip_coins(2000, seed=7), coins)
    assert (augment.flip_coins(2000, seed=8) != coins).float().mean().item() > 0.4
    x = torch.arange(2 * 3 * 4, dtype=torch.uint8).view(2, 1, 3, 4)
    flipped = augment.flip_where(x, torch.tensor([True, False]))
    assert torch.equal(flipped[0], x[0].flip(-1)) and torch.equal(flipped[1], x[1])


class _Linear(nn.Module):
    """The smallest model a step can train: one linear layer over the pixels."""

    def __init__(self, pixels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(pixels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))

    def training_loss(self, outputs, targets, *, label_smoothing: float = 0.0) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)


class _Recorder:
    """A training pipeline that keeps every batch it hands the model."""

    def __init__(self, pipeline: TrainAugment) -> None:
        self.pipeline, self.batches = pipeline, []

    @property
    def out_size(self):
        return self.pipeline.out_size

    def __call__(self, batch, generator=None, **options):
        x = self.pipeline(batch, generator, **options)
        self.batches.append(x.detach().clone())
        return x


def _asymmetric_set(count: int, side: int = 8) -> ImageTensors:
    """Images that say who they are and whether they were mirrored: a white marker pixel at the top
    left, and the image's index (high and low byte) in the two pixels below it."""
    images = torch.zeros(count, 1, side, side, dtype=torch.uint8)
    index = torch.arange(count)
    images[:, 0, 0, 0] = 255
    images[:, 0, 1, 0] = (index // 256).to(torch.uint8)
    images[:, 0, 2, 0] = (index % 256).to(torch.uint8)
    return ImageTensors(images, index % 2)


def _read(batch: torch.Tensor) -> dict[int, bool]:
    """{image index: mirrored} of an augmented (float, unnormalised) ``_asymmetric_set`` batch."""
    mirrored = batch[:, 0, 0, -1] == 1.0
    column = torch.where(mirrored, batch.shape[-1] - 1, 0)
    rows = torch.arange(len(batch))
    high = (batch[rows, 0, 1, column] * 255).round().long()
    low = (batch[rows, 0, 2, column] * 255).round().long()
    return dict(zip((high * 256 + low).tolist(), mirrored.tolist(), strict=True))


def _flips_per_epoch(data: ImageTensors, config: TrainConfig, epochs: range,
                     generator_state: torch.Tensor | None = None) -> list[dict[int, bool]]:
    """What ``train_one_epoch`` mirrored in each of ``epochs``, starting from ``generator_state``
    (the data generator's, as a checkpoint holds it) or a fresh run's."""
    torch.manual_seed(0)
    model = _Linear(data.images[0].numel())
    generator = torch.Generator().manual_seed(config.seed)
    if generator_state is not None:
        generator.set_state(generator_state)
    trainable = Trainable(model, torch.optim.SGD(model.parameters(), lr=0.01),
                          torch.amp.GradScaler("cpu", enabled=False), None, generator)
    recorder = _Recorder(TrainAugment(out_size=None, flip=True))
    state = RunState(epoch=epochs.start, step=epochs.start * (len(data) // config.batch_size))
    seen = []
    for _ in epochs:
        recorder.batches.clear()
        train_one_epoch(model, trainable, data, recorder, config=config,
                        settings=StepSettings(CPU, memory_format=torch.contiguous_format),
                        state=state, plateau=PlateauDivider(), bar=Progress(False))
        seen.append({k: v for batch in recorder.batches for k, v in _read(batch).items()})
        state.epoch += 1
    return seen


def _alternating(seed: int, **changes) -> TrainConfig:
    return TrainConfig(flip=True, alternate_flips=True, epochs=4, batch_size=16, seed=seed,
                       schedule="constant", **changes)


def test_training_mirrors_each_image_in_alternate_epochs_half_of_them_each_time():
    data = _asymmetric_set(192)
    epochs = _flips_per_epoch(data, _alternating(seed=5), range(4))
    assert all(len(flips) == 192 for flips in epochs)  # every image, every epoch
    for image in range(192):
        pattern = [flips[image] for flips in epochs]
        assert pattern in ([True, False, True, False], [False, True, False, True]), pattern
    for flips in epochs:
        assert 0.35 < sum(flips.values()) / 192 < 0.65
    coins = augment.flip_coins(192, 5)
    assert [epochs[0][image] for image in range(192)] == coins.tolist()
    other = _flips_per_epoch(data, _alternating(seed=6), range(1))[0]
    assert other != epochs[0]  # another seed, other coins
    # without the option each epoch draws fresh coins: some images are mirrored twice in a row
    fresh = _flips_per_epoch(data, TrainConfig(flip=True, epochs=2, batch_size=16, seed=5,
                                               schedule="constant"), range(2))
    assert any(fresh[0][image] == fresh[1][image] for image in range(192))


def test_a_resumed_run_and_each_shard_mirror_as_the_uninterrupted_single_process(monkeypatch):
    data, config = _asymmetric_set(192), _alternating(seed=5)
    whole = _flips_per_epoch(data, config, range(4))
    # resumed after epoch 2: the data generator as the checkpoint saved it, the epoch from the state
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(2):
        list(data.batches(config.batch_size, shuffle=True, generator=generator, drop_last=True))
    resumed = _flips_per_epoch(data, config, range(2, 4), generator.get_state())
    assert resumed == whole[2:]
    # two processes: each trains on its shard's batches, and each image keeps its own coin
    monkeypatch.setattr(loop.distributed, "world_size", lambda: 2)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(loop.distributed, "rank", lambda rank=rank: rank)
        shards.append(_flips_per_epoch(data, config, range(4)))
    for epoch in range(4):
        first, second = shards[0][epoch], shards[1][epoch]
        assert len(first) == len(second) == 96 and not set(first) & set(second)
        assert {**first, **second} == whole[epoch]


def test_alternating_flips_need_flip_in_one_line(tiny_mnist_dir, tmp_path, capsys):
    with pytest.raises(ConfigError, match="--alternate-flips.*--flip") as refused:
        TrainConfig(alternate_flips=True)
    assert "\n" not in str(refused.value)
    code = main(["train", "--model", "mlp", "--dataset", "mnist", "--data-dir",
                 str(tiny_mnist_dir), "--alternate-flips", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--alternate-flips" in err and "--flip" in err
    assert not (tmp_path / "run").exists()


def test_a_streamed_folder_gives_each_batch_its_images_indices(tmp_path):
    from PIL import Image

    from cnnzoo.data.folder import load_image_folder

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for number in range(6):
            Image.new("L", (8, 8), color=number * 40 + (label == "b")).save(
                tmp_path / label / f"{number}.png")
    streamed = load_image_folder(tmp_path, memory_budget_bytes=0).train
    in_memory = streamed.load_all()
    draws = [torch.Generator().manual_seed(1) for _ in range(2)]
    batches = [list(data.batches(3, shuffle=True, generator=draw, indices=True))
               for data, draw in zip((streamed, in_memory), draws, strict=True)]
    assert len(batches[0]) == len(batches[1]) > 1
    for (images, labels, indices), (same, same_labels, same_indices) in zip(*batches, strict=True):
        assert torch.equal(indices, same_indices) and torch.equal(images, same)
        assert torch.equal(images, in_memory.images[indices]) and torch.equal(labels, same_labels)


def test_an_old_config_without_the_new_settings_still_loads(tmp_path):
    saved = TrainConfig().to_dict()
    for name in ("alternate_flips", "progressive_resize", "cutout"):
        del saved[name]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = TrainConfig.from_json(tmp_path / "config.json")
    assert not loaded.alternate_flips and loaded.progressive_resize is None
    assert loaded.cutout == 0
    saved["progressive_resize"] = 4  # below the smallest side it takes
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match="--progressive-resize must be ≥ 8"):
        TrainConfig.from_json(tmp_path / "config.json")


# --------------------------------------------------------------------------- flip-and-shift views


def _moved(x: torch.Tensor, down: int) -> torch.Tensor:
    """``x`` moved one pixel down and right (``down`` = 1) or up and left (-1), a zero edge left."""
    out = torch.zeros_like(x)
    if down > 0:
        out[..., 1:, 1:] = x[..., :-1, :-1]
    else:
        out[..., :-1, :-1] = x[..., 1:, 1:]
    return out


def test_flip_shift_views_are_the_image_its_mirror_and_both_moved_a_pixel_each_way():
    x = torch.rand(3, 2, 5, 7) + 0.5  # no zero inside, so the edge is the only zero
    views = flip_shift_views(x)
    assert views.shape == (6, 3, 2, 5, 7)
    assert torch.equal(views[0], x) and torch.equal(views[1], x.flip(-1))
    assert torch.equal(views[2], _moved(x, -1)) and torch.equal(views[3], _moved(x.flip(-1), -1))
    assert torch.equal(views[4], _moved(x, 1)) and torch.equal(views[5], _moved(x.flip(-1), 1))
    assert (views[2][..., -1, :] == 0).all() and (views[2][..., :, -1] == 0).all()
    assert (views[4] == 0).sum() == 3 * 2 * (5 + 7 - 1)  # one row and one column per image


def test_eval_views_offer_flip_shift_with_a_black_edge_wherever_test_views_are_chosen():
    assert set(VIEW_COUNTS) == set(TEST_VIEWS)
    batch = torch.randint(1, 256, (4, 1, 6, 6), dtype=torch.uint8)
    views = EvalViews(6, "flip-shift", mean=[0.5], std=[0.25])
    stacked = views(batch)
    assert views.num_views == 6 and stacked.shape == (6, 4, 1, 6, 6)
    centre = (batch.float() / 255 - 0.5) / 0.25
    assert torch.allclose(stacked[0], centre) and torch.allclose(stacked[1], centre.flip(-1))
    black = (0 - 0.5) / 0.25
    assert torch.allclose(stacked[2][..., -1, :], torch.full((4, 1, 6), black))
    assert torch.allclose(stacked[2][..., :-1, :-1], centre[..., 1:, 1:])
    with pytest.raises(ValueError, match="flip-shift"):
        EvalViews(6, "shift")


def test_eval_of_a_run_scores_it_with_its_own_views_and_names_the_figure_it_recorded(
        tiny_mnist_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    summary = train(_quick(tiny_mnist_dir, run_dir, flip=True, test_views="flip"))
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data-dir", str(tiny_mnist_dir), "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    # the run's own views (flip), so its own figure comes back: fp32 both times
    assert report["views"] == "flip" and report["epoch"] == 1
    assert report["top1"] == report["recorded_top1"] == summary["test_top1"]
    assert "checkpoint best (epoch 1)" in err and f"the run recorded {report['top1']:.2%}" in err
    # other views: a different question, so no recorded figure to compare with
    assert main(["eval", str(run_dir), "--test-views", "center", "--data-dir",
                 str(tiny_mnist_dir), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["views"] == "center" and "recorded" not in err


def test_eval_with_flip_shift_views_averages_the_six_views_probabilities(tiny_mnist_dir,
                                                                         tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(_quick(tiny_mnist_dir, run_dir, flip=True))
    capsys.readouterr()
    code = main(["eval", str(run_dir), "--test-views", "flip-shift", "--data-dir",
                 str(tiny_mnist_dir), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["views"] == "flip-shift" and report["images"] == 200
    # by hand: the six views of each test image, normalised, and the models' probabilities averaged
    run = load_run(run_dir)
    test = load_dataset("mnist", str(tiny_mnist_dir)).test
    pixels = test.images.float() / 255
    padded = F.pad(pixels, (1, 1, 1, 1))
    side = pixels.shape[-1]
    moved = [padded[..., 2:2 + side, 2:2 + side], padded[..., :side, :side]]
    views = [pixels, pixels.flip(-1), moved[0], padded.flip(-1)[..., 2:2 + side, 2:2 + side],
             moved[1], padded.flip(-1)[..., :side, :side]]
    mean = torch.tensor(run.input.mean).view(1, -1, 1, 1)
    std = torch.tensor(run.input.std).view(1, -1, 1, 1)
    with torch.no_grad():
        probabilities = torch.stack([run.model((view - mean) / std).softmax(-1)
                                     for view in views]).mean(0)
    by_hand = (probabilities.argmax(1) == test.labels).float().mean().item()
    assert report["top1"] == pytest.approx(by_hand, abs=1e-5)
    # predict takes the same views: one image's probabilities are its six views' average
    from PIL import Image

    Image.fromarray(test.images[0, 0].numpy()).save(tmp_path / "digit.png")
    assert main(["predict", str(run_dir), str(tmp_path / "digit.png"), "--test-views",
                 "flip-shift", "--no-prepare", "--top-k", "10", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)["results"][0]["predictions"]
    chances = {p["index"]: p["probability"] for p in predicted}
    assert [chances[k] for k in range(10)] == pytest.approx(probabilities[0].tolist(), abs=1e-5)


# --------------------------------------------------------------------------- progressive resizing


@pytest.mark.parametrize("start, full", [(16, 32), (16, 28), (8, 224), (64, 224), (18, 28),
                                         (8, 4096)])
def test_progressive_sides_grow_from_the_start_to_the_full_side_by_three_quarters(start, full):
    progress = [step / 1000 for step in range(1001)]
    sides = [progressive_side(start, full, p) for p in progress]
    assert sides[0] == start and sides == sorted(sides)
    assert all(side == full for p, side in zip(progress, sides, strict=True) if p >= 0.75)
    assert progressive_side(start, full, 0.7499) < full
    assert all(side % 4 == 0 for side in set(sides) - {start, full})
    assert len(set(sides)) <= 8


def test_a_progressively_resized_run_starts_small_and_evaluates_at_the_full_side(
        tiny_mnist_dir, tmp_path, monkeypatch):
    seen: list[tuple[bool, int]] = []
    build = train_module.build_model

    def spied(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda module, inputs: seen.append((module.training, inputs[0].shape[-1])))
        return model

    monkeypatch.setattr(train_module, "build_model", spied)
    summary = train(_quick(tiny_mnist_dir, tmp_path / "run", model="budgetnet_s",
                           model_kwargs={}, train_subset=512, epochs=2, batch_size=64,
                           progressive_resize=16))
    assert summary["epochs"] == 2
    trained = [side for training, side in seen if training]
    assert len(trained) == 16 and trained[0] == 16 and trained[-1] == 28
    assert trained == sorted(trained) and set(trained) <= {16, 20, 24, 28}
    # the build-time check ran eval mode on 16×16 once; every evaluation after it is at 28
    evaluated = [side for training, side in seen if not training]
    assert 16 in evaluated[:2] and set(evaluated[evaluated.index(16) + 1:]) == {28}


def test_progressive_resize_is_refused_for_a_model_that_cannot_take_the_side(
        tiny_mnist_dir, tmp_path, capsys):
    code = main(["train", "--model", "lenet5", "--dataset", "mnist", "--data-dir",
                 str(tiny_mnist_dir), "--progressive-resize", "16", "--epochs", "1",
                 "--train-subset", "100", "--batch-size", "50", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--progressive-resize 16" in err and "lenet5" in err and "16×16" in err
    assert "leave --progressive-resize out" in err
    resnet = create_model("resnet20", num_classes=10, in_channels=1, input_size=28)
    check_progressive_resize(resnet, 16, 28, 1)  # pools globally: takes it
    assert resnet.training  # and is left in the mode it was in
    with pytest.raises(ConfigError, match="--progressive-resize 28 must be smaller than the 28×28"):
        check_progressive_resize(resnet, 28, 28, 1)


# ------------------------------------------------------------------------------------------ cutout


def _zeroed(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool: the pixels zeroed in every channel."""
    return (x == 0).all(1)


def test_cutout_zeroes_one_square_per_image_centred_on_a_pixel_of_it():
    x = torch.ones(400, 2, 20, 18)
    out = augment.cutout(x, 6, torch.Generator().manual_seed(0))
    zeroed = _zeroed(out)
    assert ((out == 0) == zeroed[:, None]).all()  # every channel alike
    clipped = set()
    for mask in zeroed:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        # one rectangle: every pixel within its bounding box is zeroed
        assert mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
        assert mask.sum() == len(rows) * len(cols)
        for found, first, last, side in ((rows, "top", "bottom", 20), (cols, "left", "right", 18)):
            # a 6×6 square, or the part of one inside the image: at least half of it on each axis,
            # as its centre pixel is in the image
            assert 3 <= len(found) <= 6
            if len(found) < 6:
                assert found[0] == 0 or found[-1] == side - 1
                clipped.add(first if found[0] == 0 else last)
    assert clipped == {"top", "bottom", "left", "right"}  # centred: cut off on every side
    whole = (zeroed.sum((1, 2)) == 36).float().mean()
    assert 0.4 < whole < 0.7  # a centre 3 pixels from the top and left, 2 from the bottom and
    # right, or more: 15/20 × 13/18 ≈ 0.54
    assert torch.equal(out, augment.cutout(x, 6, torch.Generator().manual_seed(0)))


def test_training_with_cutout_feeds_each_image_a_square_of_the_mean(tiny_mnist_dir, tmp_path,
                                                                     monkeypatch):
    """The normalised batch the model gets has the square at zero (the training mean); the option
    is stored in config.json."""
    fed = []
    original = train_module.train_one_epoch

    def spy(net, trainable, data, augment_, **kwargs):
        fed.append(augment_(data.images[:64], torch.Generator().manual_seed(1)))
        return original(net, trainable, data, augment_, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", spy)
    config = _quick(tiny_mnist_dir, tmp_path / "run", cutout=6)
    train(config, log=lambda message: None)
    zeroed = _zeroed(fed[0]).sum((1, 2))
    assert (zeroed >= 9).all() and (zeroed == 36).float().mean() > 0.5
    assert json.loads((tmp_path / "run" / "config.json").read_text())["cutout"] == 6


def test_a_cutout_as_large_as_the_image_is_refused_in_one_line(tiny_mnist_dir, tmp_path, capsys):
    code = main(["train", "--model", "mlp", "--dataset", "mnist", "--data-dir",
                 str(tiny_mnist_dir), "--cutout", "28", "--epochs", "1", "--no-progress",
                 "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert "--cutout 28 must be smaller than the 28×28 images" in error
    assert not (tmp_path / "run" / "checkpoints").exists()
