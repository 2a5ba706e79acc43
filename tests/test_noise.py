"""Noise-robustness variants (KDSNN Tab. 2) and ``snnkd evaluate --noise`` on digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from snnkd.cli.main import main
from snnkd.errors import SnnkdError
from snnkd.noise import KDSNN_MNIST, parse_variant, variant_transform


def _digit() -> torch.Tensor:
    x = torch.zeros(1, 16, 16)
    x[0, 3:13, 6:9] = 1.0  # a vertical bar on black
    return x


@pytest.mark.parametrize("spec", ["gaussian:0.05", *KDSNN_MNIST])
def test_variants_keep_shape_and_range_and_are_seeded(spec: str) -> None:
    x = _digit()
    torch.manual_seed(3)
    a = variant_transform(spec)(x)
    torch.manual_seed(3)
    b = variant_transform(spec)(x)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, x) or spec == "rotation"


def test_gaussian_noise_has_the_asked_sigma() -> None:
    torch.manual_seed(0)
    x = torch.full((1, 64, 64), 0.5)
    y = variant_transform("gaussian:0.03")(x)
    assert (y - x).std().item() == pytest.approx(0.03, rel=0.05)
    assert torch.equal(variant_transform("gaussian:0")(x), x)


def test_backgrounds_keep_the_object_and_differ_in_smoothness() -> None:
    x = _digit()
    torch.manual_seed(0)
    rand = variant_transform("random_noise")(x)
    smooth = variant_transform("background")(x)
    obj = x > 0
    assert torch.equal(rand[obj], x[obj]) and torch.equal(smooth[obj], x[obj])
    assert (rand[~obj] > 0).float().mean() > 0.99
    # a blurred texture varies much less from pixel to pixel than white noise
    assert smooth.diff(dim=-1).abs().mean() < 0.6 * rand.diff(dim=-1).abs().mean()


def test_rotation_turns_the_bar() -> None:
    x = _digit()
    torch.manual_seed(1)
    outs = [variant_transform("rotation")(x) for _ in range(8)]
    assert any((o - x).abs().sum() > 5 for o in outs)
    assert all(o.sum() <= x.sum() * 1.2 for o in outs)  # rotated, not brightened


@pytest.mark.parametrize("spec", ["gauss:1", "gaussian", "gaussian:-1", "rotation:30", "blur"])
def test_bad_specs_are_one_clear_error(spec: str) -> None:
    with pytest.raises(SnnkdError):
        parse_variant(spec)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_evaluate_noise_on_digits(tmp_path: Path) -> None:
    out = tmp_path / "ann"
    assert main(["pretrain", "--model", "vgg_tiny", "--dataset", "digits", "--epochs", "3", "--optimizer", "adamw",
                 "--lr", "0.01", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    ev = tmp_path / "eval.json"
    args = ["evaluate", "--model", str(out / "model.pt"), "--out", str(ev), "--device", "cpu", "--noise", "gaussian:0"]
    args += [t for v in ("gaussian:0.3", "rotation", "rotation_background") for t in ("--noise", v)]
    assert main(args) == 0
    res = json.loads(ev.read_text())
    noise = res["noise"]
    assert set(noise) == {"gaussian:0", "gaussian:0.3", "rotation", "rotation_background"}
    assert res["accuracy"] > 80
    assert noise["gaussian:0"]["accuracy"] == pytest.approx(res["accuracy"])  # same normalisation path
    assert noise["rotation"]["accuracy"] < res["accuracy"] - 20
    assert noise["rotation_background"]["accuracy"] <= noise["rotation"]["accuracy"] + 5
    assert main(["evaluate", "--model", str(out / "model.pt"), "--out", str(ev), "--noise", "gauss:1"]) == 2
