"""MNIST-variation datasets (snnkd.variants): fixed, per-image corruptions of real-format MNIST."""

from __future__ import annotations

import pytest
import torch
from mnist_files import write_mnist_idx

from snnkd.data import build_datasets, list_datasets
from snnkd.errors import SnnkdError
from snnkd.variants import VARIANT_DATASETS, corrupt_images


def _raw(ds) -> torch.Tensor:
    return ds.dataset.data if hasattr(ds, "dataset") else ds.data


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_mnist_idx(tmp_path_factory.mktemp("mnist"), n_train=120, n_test=40)


def test_every_variant_is_registered():
    assert set(VARIANT_DATASETS) <= set(list_datasets())
    assert VARIANT_DATASETS == ("mnist_background", "mnist_random_noise", "mnist_rotation", "mnist_rotation_background")


@pytest.mark.parametrize("name", VARIANT_DATASETS)
def test_sets_are_fixed_and_leave_the_global_rng_alone(root, name):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_datasets(name, root, normalize=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_datasets(name, root, normalize=False)
    clean = build_datasets("mnist", root, normalize=False)
    for sa, sb, sc in zip(a, b, clean):
        assert torch.equal(_raw(sa), _raw(sb))  # the same set in every job
        assert _raw(sa).shape == _raw(sc).shape and _raw(sa).dtype == torch.uint8
        assert not torch.equal(_raw(sa), _raw(sc))
        assert torch.equal(sa.dataset.targets if hasattr(sa, "dataset") else sa.targets,
                           sc.dataset.targets if hasattr(sc, "dataset") else sc.targets)
    # training and test images draw from different seeds: the first test image's corruption
    # is not the first training image's
    tr, te = _raw(a[0]).float(), _raw(a[2]).float()
    assert not torch.equal(tr[0] - _raw(clean[0]).float()[0], te[0] - _raw(clean[2]).float()[0])


def test_random_noise_is_a_uniform_background_behind_the_digit(root):
    clean = _raw(build_datasets("mnist", root, normalize=False)[0])
    noisy = _raw(build_datasets("mnist_random_noise", root, normalize=False)[0])
    assert (noisy >= clean).all()  # max(x, u): the digit stays
    bg = noisy[clean < 96].float() / 255  # the synthetic files' background pixels are < 96
    assert abs(bg.mean().item() - 0.5) < 0.05 and bg.max() > 0.95  # mostly max(x, U(0,1))


def test_rotation_turns_each_image_by_its_own_angle():
    img = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    img[:, :, 2:6, 12:16] = 255  # a block near the top edge
    out = corrupt_images(img, "rotation", seed=0)
    assert out.sum() > 0 and not torch.equal(out, img)
    moved = [tuple(torch.nonzero(o[0]).float().mean(0).round().tolist()) for o in out]
    assert len(set(moved)) == len(moved)  # eight images, eight different positions


def test_missing_mnist_is_one_clear_error(tmp_path):
    with pytest.raises(SnnkdError, match=r"mnist_rotation.*MNIST/raw"):
        build_datasets("mnist_rotation", tmp_path)
