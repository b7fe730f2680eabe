"""The data step of a run: load the dataset, keep the requested subsets, measure the normalisation
statistics and fit the images to the side the model will see. It never builds the model: the side
comes in as a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnzoo.data.augment import TrainAugment, normalize, rgb_pca, to_float
from cnnzoo.data.dataset import ImageDataset, Shard, pad_images
from cnnzoo.data.loading import load_dataset
from cnnzoo.engine import distributed
from cnnzoo.engine.config import TrainConfig
from cnnzoo.engine.inputs import InputSpec, channel_statistics
from cnnzoo.errors import ConfigError

MIB = 1024**2


@dataclass
class LoadedData:
    """The dataset as found, before it is fitted to a model."""

    train: ImageDataset
    test: ImageDataset
    classes: list[str]
    sample: torch.Tensor  # up to 10,000 training images drawn at random, for the statistics
    note: str | None = None  # how it was read, where that was a choice (an image folder's side)

    @property
    def channels(self) -> int:
        return self.sample.shape[1]

    @property
    def side(self) -> int:
        return self.sample.shape[-1]


@dataclass
class PreparedData:
    """The datasets as the model will see them, and what the checkpoints must remember about
    that."""

    train: ImageDataset
    test: ImageDataset
    classes: list[str]
    channels: int
    native_side: int  # the dataset's own image side
    spec: InputSpec
    # up to 10,000 training images drawn at random, padded to the model's side (uint8)
    sample: torch.Tensor
    # eigenvalues and vectors, for AlexNet's colour noise
    rgb_pca: tuple[torch.Tensor, torch.Tensor] | None = None

    def normalised_sample(self, count: int) -> torch.Tensor:
        """``count`` of the sampled training images as the model sees them: float, normalised, on
        the CPU."""
        return normalize(to_float(self.sample[:count].cpu()), self.spec.mean, self.spec.std)

    def augmentation(self, config: TrainConfig) -> TrainAugment:
        eigvals, eigvecs = self.rgb_pca or (None, None)
        return self.spec.train_pipeline(flip=config.flip, pca_std=config.pca_noise, eigvals=eigvals,
                                        eigvecs=eigvecs, cutout=config.cutout)


def subset_indices(total: int, count: int | None, seed: int) -> torch.Tensor:
    """The images ``--train-subset``/``--test-subset`` keep: a seeded random ``count`` of ``total``
    (not the first ones: image folders are ordered by class)."""
    if not count or count >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count]


def _random_subset(data: ImageDataset, count: int | None, seed: int) -> ImageDataset:
    return (
        data
        if not count or count >= len(data)
        else data.subset(subset_indices(len(data), count, seed))
    )


def _statistics_sample(data: ImageDataset, seed: int, count: int = 10_000) -> torch.Tensor:
    """Up to ``count`` training images, drawn at random, for the normalisation statistics and PCA.

    Under several processes each reads a consecutive part of the sample and the parts are gathered,
    so a streamed folder decodes each image of it once in all, and every process holds the same
    sample as one process alone would.
    """
    generator = torch.Generator().manual_seed(seed)
    count = min(count, len(data))
    shard = Shard(distributed.rank(), distributed.world_size())
    part_size = max(1, -(-count // shard.world))
    part = next(data.batches(part_size, shuffle=True, generator=generator, shard=shard), None)
    if part is None:  # more processes than images: this one reads none
        part = (torch.empty((0, data.num_channels, *data.image_size), dtype=torch.uint8,
                            device=data.device),)
    return distributed.concatenate_over_processes(part[0])[:count]


def load_data(config: TrainConfig) -> LoadedData:
    """``config.dataset`` with its subsets, in memory or streamed as ``--memory-budget`` allows.
    An image folder is decoded at ``--input-size`` if given (one resampling, straight to the model's
    side), else at the side and in the channels its images suggest."""
    budget = None if config.memory_budget is None else int(config.memory_budget * MIB)
    data = load_dataset(config.dataset, config.data_dir, memory_budget_bytes=budget,
                        image_size=config.input_size)
    train = _random_subset(data.train, config.train_subset, config.seed)
    test = _random_subset(data.test, config.test_subset, config.seed)
    return LoadedData(train, test, data.classes, _statistics_sample(train, config.seed), data.note)


def prepare_data(
    data: LoadedData, config: TrainConfig, side: int, device: torch.device
) -> PreparedData:
    """Fit ``data`` to ``side``×``side`` inputs, measure its statistics and move it where training
    happens."""
    # zero-padded where the model wants slightly larger images (in memory once, streamed batch by
    # batch)
    train, test = data.train.pad_to(side), data.test.pad_to(side)
    sample = pad_images(data.sample, side)
    mean, std = channel_statistics(sample)
    spec = InputSpec(size=side, mean=mean, std=std, crop_padding=config.crop_padding)
    pca = None
    if config.pca_noise > 0:
        if data.channels != 3:
            raise ConfigError(
                f"--pca-noise needs RGB images; {config.dataset} has {data.channels} channel(s). "
                "Drop --pca-noise for grey datasets."
            )
        pca = rgb_pca(sample)
    return PreparedData(train.to(device), test.to(device), data.classes, data.channels, data.side,
                        spec, sample, pca)
