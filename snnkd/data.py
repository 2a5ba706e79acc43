"""Dataset registry (:data:`DATASETS`): torchvision datasets and transforms, scikit-learn digits,
the MNIST-variation sets (:mod:`snnkd.variants`),
CIFAR10-DVS; plugins add theirs with :func:`register_dataset` (entry-point group ``snnkd.datasets``).

Every dataset returns ``(train, val, test)`` splits.  The validation split is a fixed
fraction of the training set chosen by a fixed generator (seed 0), so it is the same
for every run.  Offline, a dataset that is not on disk raises one error naming the
layout torchvision expects.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision import datasets as tvd
from torchvision.transforms import v2

from snnkd import io
from snnkd.errors import SnnkdError
from snnkd.inmemory import InMemoryImages, split_transform
from snnkd.registry import Registry
from snnkd.variants import variant_splits

Splits = tuple[Dataset, Dataset, Dataset]
SplitFn = Callable[[Path, Callable, Callable, bool], Splits]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_chans: int
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str  # the on-disk layout expected under the data root, for error messages
    splits: SplitFn | None = field(default=None, repr=False, compare=False)  # set by register_dataset


DATASETS: Registry[DatasetInfo] = Registry("dataset", group="snnkd.datasets")
INFO = DATASETS  # the former name: a mapping dataset name -> DatasetInfo


def register_dataset(info: DatasetInfo) -> Callable[[SplitFn], SplitFn]:
    """Decorator: register dataset ``info.name`` whose data comes from the decorated
    ``splits(root, train_transform, test_transform, download) -> (train, train_eval, test)``
    (the training set with training / test-time transforms, and the test set)."""
    def deco(fn: SplitFn) -> SplitFn:
        DATASETS.add(info.name, replace(info, splits=fn))
        return fn
    return deco


class DigitsDataset(Dataset):
    """scikit-learn's 1,797 8x8 digits (ships with the wheel), pixel values / 16.

    A fixed stratified 80/20 train/test split (seed 0)."""

    def __init__(self, train: bool, transform: Callable | None = None) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        idx_train, idx_test = train_test_split(np.arange(len(d.target)), test_size=0.2,
                                               random_state=0, stratify=d.target)
        idx = idx_train if train else idx_test
        self.data = torch.tensor(d.images[idx] / 16.0, dtype=torch.float32).unsqueeze(1)
        self.targets = torch.tensor(d.target[idx], dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        x = self.data[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[i])

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """One batch at once (the transform is element-wise: normalisation only)."""
        per_sample, batched = split_transform(self.transform)
        if per_sample is not None:
            return [self[i] for i in indices]
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        x = self.data[idx] if batched is None else batched(self.data[idx])
        return list(zip(x.unbind(0), self.targets[idx].tolist(), strict=True))


def build_transforms(info: DatasetInfo, train: bool, normalize: bool = True, autoaugment: bool = False,
                     cutout: bool = False) -> v2.Compose:
    """Standard transforms: CIFAR crop (pad 4) + flip (+ AutoAugment, Cutout); ImageNet
    random-resized crop + flip / resize 256 + centre crop 224; MNIST-like and digits
    no augmentation.  Normalisation last (off for Poisson encoding)."""
    t: list = []
    tensor_input = info.name == "digits"
    if not tensor_input:
        t.append(v2.ToImage())
    if train and info.name.startswith("cifar"):
        t += [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]
        if autoaugment:
            t.append(v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10))
    elif info.name == "imagenet":
        t += ([v2.RandomResizedCrop(224), v2.RandomHorizontalFlip()] if train
              else [v2.Resize(256), v2.CenterCrop(224)])
    t.append(v2.ToDtype(torch.float32, scale=True))
    if train and cutout and info.name.startswith("cifar"):
        # Cutout (DeVries & Taylor 2017) as RandomErasing of one fixed 16x16 square.
        t.append(v2.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0))
    if normalize:
        t.append(v2.Normalize(info.mean, info.std))
    return v2.Compose(t)


def _fashion_from_debian(root: Path) -> None:
    """Decompress Debian's Fashion-MNIST IDX files into torchvision's raw layout.

    Parallel jobs may call this at once on an empty root: each file is written under a
    unique temporary name and renamed into place, and a job skips the work only when *all*
    four files are there (a check on one file let a second job read the set while the first
    was still writing the 47 MB training images)."""
    raw = root / "FashionMNIST" / "raw"
    names = [f"{split}-{kind}-ubyte" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]
    if all((raw / n).is_file() for n in names) or not DEBIAN_FASHION_MNIST.is_dir():
        return
    raw.mkdir(parents=True, exist_ok=True)
    for n in names:
        gz, dst = DEBIAN_FASHION_MNIST / f"{n}.gz", raw / n
        if gz.is_file() and not dst.is_file():
            with gzip.open(gz, "rb") as fi:
                io.write_stream(dst, fi)


def _torchvision(cls: Callable[..., Dataset], prepare: Callable[[Path], None] | None = None) -> SplitFn:
    """The splits of a torchvision dataset class taking ``train=``: torchvision reads and
    checks the files; the images are then handed out a batch at a time from one uint8
    tensor (:class:`snnkd.inmemory.InMemoryImages`, bit-identical values, no PIL)."""
    def splits(root: Path, t_train: Callable, t_test: Callable, download: bool) -> Splits:
        if prepare is not None:
            prepare(root)
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
        return (InMemoryImages.from_torchvision(train, t_train), InMemoryImages.from_torchvision(train, t_test),
                InMemoryImages.from_torchvision(test, t_test))
    return splits


@register_dataset(DatasetInfo("digits", 10, 1, 8, (0.3,), (0.38,), "none (ships with scikit-learn)"))
def _digits(root: Path, t_train: Callable, t_test: Callable, download: bool) -> Splits:
    return DigitsDataset(True, t_train), DigitsDataset(True, t_test), DigitsDataset(False, t_test)


register_dataset(DatasetInfo("mnist", 10, 1, 28, (0.1307,), (0.3081,),
                             "<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"))(
    _torchvision(tvd.MNIST))
# MNIST-variation sets (snnkd.variants): real MNIST with the corruption in training and test
# images; mean / std measured on their 60,000 training images.
_VARIANT_STATS = {"background": (0.5534, 0.2267), "random_noise": (0.5560, 0.3040),
                  "rotation": (0.1306, 0.3081), "rotation_background": (0.5533, 0.2268)}
for _v, (_m, _s) in _VARIANT_STATS.items():
    register_dataset(DatasetInfo(f"mnist_{_v}", 10, 1, 28, (_m,), (_s,),
                                 "<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte "
                                 f"(real MNIST; {_v} applied by snnkd.variants)"))(variant_splits(_v))
register_dataset(DatasetInfo("fashion_mnist", 10, 1, 28, (0.2860,), (0.3530,),
                             "<root>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte "
                             "(or Debian's dataset-fashion-mnist package)"))(
    _torchvision(tvd.FashionMNIST, _fashion_from_debian))
register_dataset(DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                             "<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"))(
    _torchvision(tvd.CIFAR10))
register_dataset(DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                             "<root>/cifar-100-python/{train,test,meta}"))(
    _torchvision(tvd.CIFAR100))


@register_dataset(DatasetInfo("cifar10_dvs", 10, 2, 48, (0.0, 0.0), (1.0, 1.0),
                              "<root>/CIFAR10DVS/<class>/*.aedat4 (tonic; optional extra snnkd[dvs])"))
def _cifar10_dvs(root: Path, t_train: Callable, t_test: Callable, download: bool) -> Splits:
    """Event frames ``[F, 2, H, W]`` through tonic (:mod:`snnkd.dvs`); no image transforms."""
    from snnkd.dvs import cifar10_dvs
    train, test = cifar10_dvs(root, download)
    return train, train, test


@register_dataset(DatasetInfo("imagenet", 1000, 3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                              "<root>/{train,val}/<wnid>/*.JPEG (ImageFolder layout), or torchvision's "
                              "<root>/ILSVRC2012_devkit_t12.tar.gz + ILSVRC2012_img_{train,val}.tar"))
def _imagenet(root: Path, t_train: Callable, t_test: Callable, download: bool) -> Splits:
    def one(train: bool, transform: Callable) -> Dataset:
        if (root / "ILSVRC2012_devkit_t12.tar.gz").is_file() or (root / "meta.bin").is_file():
            # torchvision's layout: the archives are unpacked into <root>/{train,val} once
            return tvd.ImageNet(root, split="train" if train else "val", transform=transform)
        split = root / ("train" if train else "val")
        if not split.is_dir():
            raise RuntimeError(f"{split} missing")
        return tvd.ImageFolder(split, transform=transform)
    return one(True, t_train), one(True, t_test), one(False, t_test)


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS[name]


def build_datasets(name: str, root: str | Path = "data", val_fraction: float = 0.1, download: bool = False,
                   normalize: bool = True, autoaugment: bool = False, cutout: bool = False,
                   limit_train: int | None = None, limit_test: int | None = None
                   ) -> tuple[Dataset, Dataset, Dataset]:
    """``(train, val, test)``.  ``val`` is a fixed ``val_fraction`` of the training set
    (evaluated with test-time transforms); ``limit_*`` take fixed subsets for quick runs."""
    info = dataset_info(name)
    root = Path(root)
    t_train = build_transforms(info, True, normalize, autoaugment, cutout)
    t_test = build_transforms(info, False, normalize)
    try:
        full_train, full_eval, test = info.splits(root, t_train, t_test, download)
    except (RuntimeError, OSError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]
        fetch = "download=True" in why  # torchvision's wording for its option; ours is --download
        why = why.replace(" You can use download=True to download it", "").rstrip(".")
        how = "the download failed; " if download else "pass --download to fetch it; " if fetch else ""
        raise SnnkdError(f"dataset {name!r} not found under {root} ({why}); {how}"
                         f"expected layout: {info.layout}") from None
    n = len(full_train)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    n_val = int(round(val_fraction * n))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if limit_train:
        train_idx = train_idx[:limit_train]
        val_idx = val_idx[: max(1, limit_train // 5)] if val_idx else val_idx
    train, val = Subset(full_train, train_idx), Subset(full_eval, val_idx)
    if limit_test:
        test = Subset(test, torch.randperm(len(test), generator=torch.Generator().manual_seed(1))[:limit_test].tolist())
    return train, val, test
