"""Batch-wise augmentation: each operation against a plain reference, and reproducibility from a
generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnzoo.data import augment
from cnnzoo.data.views import EvalViews, flip_views, ten_crop_views


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _distinct_images(count: int = 16, channels: int = 2, side: int = 8) -> torch.Tensor:
    """Images whose every value is unique and nonzero, so a crop's position can be recovered."""
    return torch.arange(1, count * channels * side * side + 1, dtype=torch.float32).view(
        count, channels, side, side
    )


def test_to_float():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    assert augment.to_float(x).view(-1).tolist() == pytest.approx([0.0, 0.2, 1.0])
    floats = torch.rand(2, 1, 2, 2)
    assert augment.to_float(floats) is floats


def test_random_crop_equals_a_window_of_the_padded_image():
    x = _distinct_images()
    padding, size = 2, 8
    out = augment.random_crop(x, size, padding, _gen())
    assert out.shape == (16, 2, 8, 8)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    offsets = []
    for n in range(len(x)):
        matches = [(top, left) for top in range(2 * padding + 1) for left in range(2 * padding + 1)
                   if torch.equal(out[n], padded[n, :, top : top + size, left : left + size])]
        assert len(matches) == 1, f"image {n}: crop is not a window of its padded image"
        offsets.append(matches[0])
    assert len(set(offsets)) > 1  # every image draws its own offset
    # same generator, same crops
    assert torch.equal(out, augment.random_crop(x, size, padding, _gen()))
    assert not torch.equal(out, augment.random_crop(x, size, padding, _gen(1)))


def test_random_crop_keeps_dtype_and_checks_size():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    out = augment.random_crop(x, 32, 4, _gen())
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(augment.random_crop(x, 32, 0, _gen()), x)
    assert augment.random_crop(x, (20, 24), 0, _gen()).shape == (4, 3, 20, 24)
    with pytest.raises(ValueError, match="does not fit"):
        augment.random_crop(x, 40, 2, _gen())


def test_random_flip():
    x = _distinct_images(64, 1, 4)
    assert torch.equal(augment.random_flip(x, _gen(), p=0.0), x)
    assert torch.equal(augment.random_flip(x, _gen(), p=1.0), x.flip(-1))
    out = augment.random_flip(x, _gen(), p=0.5)
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    assert all(torch.equal(o, i) or f for o, i, f in zip(out, x, flipped, strict=True))
    assert 16 < sum(flipped) < 48
    assert torch.equal(out, augment.random_flip(x, _gen(), p=0.5))


def test_center_crop_and_ten_crop_views():
    x = _distinct_images(3, 2, 10)
    centre = augment.center_crop(x, 6)
    assert torch.equal(centre, x[..., 2:8, 2:8])
    views = ten_crop_views(x, 6)
    assert views.shape == (10, 3, 2, 6, 6)
    assert torch.equal(views[0], x[..., :6, :6])  # top-left
    assert torch.equal(views[1], x[..., :6, 4:])  # top-right
    assert torch.equal(views[2], x[..., 4:, :6])  # bottom-left
    assert torch.equal(views[3], x[..., 4:, 4:])  # bottom-right
    assert torch.equal(views[4], centre)
    assert torch.equal(views[5:], views[:5].flip(-1))  # the mirrored half
    pair = flip_views(x)
    assert pair.shape == (2, 3, 2, 10, 10) and torch.equal(pair[1], x.flip(-1))


def test_resize_and_normalize():
    x = torch.full((2, 3, 16, 16), 0.25)
    assert augment.resize(x, 8).shape == (2, 3, 8, 8) and augment.resize(x, 8).allclose(
        torch.tensor(0.25)
    )
    assert augment.resize(x, (20, 24)).shape == (2, 3, 20, 24)
    assert augment.resize(x, 16) is x
    as_bytes = torch.full((1, 1, 9, 9), 200, dtype=torch.uint8)
    resized = augment.resize(as_bytes, 4)
    assert resized.dtype == torch.uint8 and resized.unique().tolist() == [200]

    out = augment.normalize(x, (0.25, 0.5, 0.0), (0.5, 0.25, 1.0))
    assert out.shape == x.shape
    assert out[:, 0].unique().tolist() == [0.0] and out[:, 1].unique().tolist() == [-1.0]
    with pytest.raises(ValueError, match="3-channel"):
        augment.normalize(x, (0.5,), (0.5,))


def test_rgb_pca_matches_numpy():
    import numpy as np

    rng = np.random.default_rng(0)
    mix = np.array([[1.0, 0.5, 0.2], [0.0, 0.6, 0.3], [0.0, 0.0, 0.2]])
    pixels = np.clip(0.5 + 0.1 * rng.standard_normal((20000, 3)) @ mix, 0, 1)
    images = (
        torch.from_numpy(np.round(pixels * 255).astype(np.uint8))
        .view(200, 10, 10, 3)
        .permute(0, 3, 1, 2)
    )
    eigvals, eigvecs = augment.rgb_pca(images)
    reference = np.cov(images.permute(0, 2, 3, 1).reshape(-1, 3).numpy().T / 255.0)
    expected_vals, expected_vecs = np.linalg.eigh(reference)
    assert eigvals.numpy() == pytest.approx(expected_vals[::-1], rel=1e-4)
    assert (eigvals[:-1] >= eigvals[1:]).all()
    for i in range(3):  # eigenvectors up to sign
        assert abs(
            float(eigvecs[:, i] @ torch.from_numpy(expected_vecs[:, 2 - i]).float())
        ) == pytest.approx(1, abs=1e-4)


def test_pca_lighting_offsets_have_the_expected_statistics():
    eigvals = torch.tensor([0.2, 0.05, 0.01])
    q, _ = torch.linalg.qr(torch.tensor([[1.0, 0.3, -0.2], [0.4, 1.0, 0.1], [-0.3, 0.2, 1.0]]))
    std, count = 0.1, 20000
    x = torch.rand(count, 3, 2, 2)
    offsets = augment.pca_lighting(x, eigvals, q, std, _gen()) - x
    # one shift per image
    assert torch.allclose(offsets, offsets[:, :, :1, :1].expand_as(offsets), atol=1e-6)
    per_image = offsets[:, :, 0, 0].double()
    expected_cov = (q.double() * (eigvals.double() * std) ** 2) @ q.double().T
    assert per_image.mean(0).abs().max() < 4 * (eigvals.max() * std) / count**0.5
    assert torch.allclose(torch.cov(per_image.T), expected_cov,
                          atol=0.05 * expected_cov.abs().max())
    assert torch.equal(augment.pca_lighting(x, eigvals, q, std, _gen()) - x, offsets)


def test_train_augment_pipelines():
    batch = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    cifar = augment.TrainAugment(32, crop_padding=4, flip=True, mean=(0.5,) * 3, std=(0.25,) * 3)
    out = cifar(batch, _gen())
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out, cifar(batch, _gen()))
    assert out.min() >= (0 - 0.5) / 0.25 and out.max() <= (1 - 0.5) / 0.25

    eigvals, eigvecs = augment.rgb_pca(batch)
    alexnet = augment.TrainAugment(24, flip=True, pca_std=0.1, eigvals=eigvals, eigvecs=eigvecs,
                                   resize_to=28)
    assert alexnet(batch, _gen()).shape == (8, 3, 24, 24)
    upsized = augment.TrainAugment(64)(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8),
                                       _gen())
    assert upsized.shape == (2, 1, 64, 64)
    plain = augment.TrainAugment(None)(batch, _gen())
    assert torch.equal(plain, batch.float() / 255)
    with pytest.raises(ValueError, match="rgb_pca"):
        augment.TrainAugment(32, pca_std=0.1)


def test_eval_views():
    batch = torch.randint(0, 256, (5, 3, 40, 40), dtype=torch.uint8)
    centre = EvalViews(32, "center", mean=(0.5,) * 3, std=(0.5,) * 3)(batch)
    assert centre.shape == (1, 5, 3, 32, 32)
    flips = EvalViews(32, "flip")(batch)
    assert flips.shape == (2, 5, 3, 32, 32) and torch.equal(flips[1], flips[0].flip(-1))
    ten = EvalViews(32, "ten-crop")(batch)
    assert ten.shape == (10, 5, 3, 32, 32)
    assert torch.equal(ten[0], batch[..., :32, :32].float() / 255)
    resized = EvalViews(24, "center", resize_to=28)(batch)
    assert resized.shape == (1, 5, 3, 24, 24)
    with pytest.raises(ValueError, match="views"):
        EvalViews(32, "five-crop")


def test_a_photo_on_a_light_background_is_prepared_as_fashion_mnist_was():
    """A dataset image turned into a 'photo' (dark object on white, small, off-centre, 300×200)
    comes back close to the original: inverted, trimmed, resized by its longest side and centred."""
    from PIL import Image

    from cnnzoo.data.photos import light_background_warning, prepare_like_mnist

    # light on black, filling the frame's height, as they do
    garment = np.full((28, 16), 200, dtype=np.uint8)
    garment[8:20, 4:12] = 120
    original = np.zeros((28, 28), dtype=np.uint8)
    original[:, 6:22] = garment
    photo = np.full((200, 300), 250, dtype=np.uint8)
    big = np.asarray(Image.fromarray(255 - garment).resize((64, 112), Image.Resampling.NEAREST))
    photo[30:142, 40:104] = big
    prepared, steps = prepare_like_mnist(Image.fromarray(photo), 28)
    assert prepared.shape == (28, 28) and prepared.dtype == np.uint8
    assert steps[0].startswith("inverted") and any(step.startswith("trimmed") for step in steps)
    assert np.corrcoef(prepared.ravel().astype(float), original.ravel().astype(float))[0, 1] > 0.8
    # the dataset's own images pass through unchanged in content, and are not flagged
    same, steps = prepare_like_mnist(Image.fromarray(original), 28)
    assert steps == [] and np.array_equal(same, original)
    assert light_background_warning(same, inverted=True) is None
    assert "inverted" in light_background_warning(photo, inverted=True)
    assert "not inverted" in light_background_warning(photo, inverted=False)
