"""Dataset registry, transforms, splits and encodings on the offline data."""


import pytest
import torch
from PIL import Image

from snnkd.data import DEBIAN_FASHION_MNIST, build_datasets, build_transforms, dataset_info
from snnkd.encoding import DirectEncoder, PoissonEncoder
from snnkd.errors import SnnkdError


def test_digits_splits_are_fixed_and_disjoint():
    tr1, va1, te1 = build_datasets("digits", val_fraction=0.1)
    tr2, va2, _ = build_datasets("digits", val_fraction=0.1)
    assert (len(tr1), len(va1), len(te1)) == (1293, 144, 360)
    assert tr1.indices == tr2.indices and va1.indices == va2.indices
    assert not set(tr1.indices) & set(va1.indices)
    x, y = tr1[0]
    assert x.shape == (1, 8, 8) and 0 <= y < 10
    counts = torch.bincount(torch.tensor([te1[i][1] for i in range(len(te1))]), minlength=10)
    assert counts.min() >= 35  # stratified test split


def test_limit_train_takes_a_fixed_subset():
    tr, va, te = build_datasets("digits", limit_train=100, limit_test=50)
    assert len(tr) == 100 and len(va) == 20 and len(te) == 50


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package(tmp_path):
    tr, va, te = build_datasets("fashion_mnist", root=tmp_path)
    assert len(tr) + len(va) == 60000 and len(te) == 10000
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    x, y = te[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= y < 10


def test_fashion_unpack_completes_a_set_another_job_left_half_written(tmp_path, monkeypatch):
    """Parallel distill jobs unpack Debian's files into one empty root at once: a job that
    finds only some of the four files must write the rest, not hand torchvision a partial set
    (seen: 'dataset not found' from the second of two jobs started together)."""
    import gzip

    import snnkd.data as data
    src = tmp_path / "debian"
    src.mkdir()
    names = [f"{s}-{k}-ubyte" for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]
    for n in names:
        with gzip.open(src / f"{n}.gz", "wb") as f:
            f.write(n.encode())
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", src)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"t10k-labels-idx1-ubyte")  # the first job's only file so far
    data._fashion_from_debian(tmp_path / "root")
    assert sorted(p.name for p in raw.iterdir()) == sorted(names)
    assert all((raw / n).read_bytes() == n.encode() for n in names)


@pytest.mark.parametrize("name,layout", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                         ("mnist", "MNIST/raw"), ("imagenet", "ImageFolder")])
def test_missing_dataset_offline_names_layout(tmp_path, name, layout):
    with pytest.raises(SnnkdError, match=layout):
        build_datasets(name, root=tmp_path)


def test_unknown_dataset():
    with pytest.raises(SnnkdError, match="digits"):
        dataset_info("svhn")


def test_cifar_train_transform_augments_and_normalises():
    info = dataset_info("cifar10")
    img = Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy())
    t = build_transforms(info, train=True, autoaugment=True, cutout=True)
    torch.manual_seed(0)
    a, b = t(img), t(img)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    assert not torch.equal(a, b)  # random crop / flip / autoaugment
    test_t = build_transforms(info, train=False)
    assert torch.equal(test_t(img), test_t(img))


def test_encoders():
    x = torch.rand(64, 1, 8, 8)
    d = DirectEncoder()(x, 3)
    assert d.shape == (3, 64, 1, 8, 8) and torch.equal(d[2], x)
    torch.manual_seed(0)
    p = PoissonEncoder()(x, 400)
    assert set(p.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(p.mean(0), x, atol=0.1)
