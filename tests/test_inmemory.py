"""The in-memory uint8 data path gives torchvision's values bit for bit, batched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mnist_files import write_mnist_idx
from torch.utils.data import DataLoader, Subset
from torchvision import datasets as tvd
from torchvision.transforms import v2

from snnkd.data import build_datasets, build_transforms, dataset_info
from snnkd.inmemory import InMemoryImages, split_transform


def test_mnist_batches_equal_torchvision_per_sample_path(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path)
    train, val, test = build_datasets("mnist", tmp_path, val_fraction=0.1)
    info = dataset_info("mnist")
    ref_train = tvd.MNIST(tmp_path, train=True, transform=build_transforms(info, True))
    ref_test = tvd.MNIST(tmp_path, train=False, transform=build_transforms(info, False))
    assert isinstance(train.dataset, InMemoryImages) and train.dataset.per_sample is None  # all batched

    x, y = next(iter(DataLoader(train, batch_size=len(train))))
    x_ref = torch.stack([ref_train[i][0] for i in train.indices])
    assert type(x) is torch.Tensor and x.dtype == torch.float32 and x.shape == (270, 1, 28, 28)
    assert torch.equal(x, x_ref)
    assert y.tolist() == [ref_train[i][1] for i in train.indices]
    # one sample at a time (evaluate's noise path indexes samples) gives the same values
    assert torch.equal(test[3][0], ref_test[3][0]) and test[3][1] == ref_test[3][1]
    xt, _ = next(iter(DataLoader(test, batch_size=100)))
    assert torch.equal(xt, torch.stack([ref_test[i][0] for i in range(100)]))
    # unnormalised (Poisson encoding, noise evaluation): torchvision's ToDtype(scale) values
    _, _, raw = build_datasets("mnist", tmp_path, normalize=False)
    ref_raw = tvd.MNIST(tmp_path, train=False, transform=build_transforms(info, False, normalize=False))
    assert torch.equal(raw[5][0], ref_raw[5][0])
    assert torch.allclose(raw[5][0], ref_test.data[5].unsqueeze(0).float() / 255, atol=1e-7, rtol=0)


def test_random_augmentations_stay_per_sample_and_match_torchvision() -> None:
    info = dataset_info("cifar10")
    t = build_transforms(info, train=True)  # RandomCrop(pad 4), RandomHorizontalFlip, ToDtype, Normalize
    per_sample, batched = split_transform(t)
    assert [type(s) for s in per_sample.transforms] == [v2.RandomCrop, v2.RandomHorizontalFlip]
    assert [type(s) for s in batched.transforms] == [v2.ToDtype, v2.Normalize]
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    ds = InMemoryImages(images, torch.arange(16) % 10, t)
    torch.manual_seed(7)
    got = torch.stack([x for x, _ in ds.__getitems__(list(range(16)))])
    torch.manual_seed(7)
    want = torch.stack([t(images[i]) for i in range(16)])
    assert torch.equal(got, want)
    # the crops differ between samples: the randomness is drawn per image, not per batch
    torch.manual_seed(7)
    same = InMemoryImages(images[:1].expand(16, -1, -1, -1).clone(), torch.zeros(16), t)
    outs = torch.stack([x for x, _ in same.__getitems__(list(range(16)))])
    assert len({tuple(o.flatten()[:64].tolist()) for o in outs}) > 1


def test_subset_fetches_through_the_batched_path() -> None:
    images = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8)
    t = v2.Compose([v2.ToDtype(torch.float32, scale=True)])
    ds = InMemoryImages(images, torch.arange(50) % 10, t)
    calls = []
    original = ds.__getitems__
    ds.__getitems__ = lambda idx: calls.append(len(idx)) or original(idx)
    x, y = next(iter(DataLoader(Subset(ds, list(range(10, 50))), batch_size=16)))
    assert calls == [16]
    assert torch.equal(x, torch.stack([t(im) for im in images[10:26]]))
    assert y.tolist() == [i % 10 for i in range(10, 26)]


@pytest.mark.parametrize("images,targets,match", [
    (torch.zeros(4, 1, 8, 8), torch.zeros(4), "uint8"),
    (torch.zeros(4, 8, 8, dtype=torch.uint8), torch.zeros(4), "uint8"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(3), "labels"),
])
def test_bad_arrays_are_refused(images, targets, match) -> None:
    with pytest.raises(ValueError, match=match):
        InMemoryImages(images, targets)
