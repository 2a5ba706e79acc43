"""``--tensorboard``: event files beside metrics.jsonl with every loss term, accuracies, the
learning rate and (SNNs) the firing rate per layer, read back with TensorBoard's own reader;
writing them changes nothing about the training itself."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from snnkd.cli.main import main

pytestmark = pytest.mark.slow
RUN = ["--dataset", "digits", "--limit-train", "200", "--limit-test", "50", "--epochs", "2", "--batch-size", "50",
       "--no-progress", "--seed", "0"]


def scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def records(path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time_s"} for line in path.read_text().splitlines()]


def test_distill_writes_every_term_and_rate_and_trains_the_same(tmp_path):
    args = ["distill", "--student", "resnet_tiny", "--method", "none", "--T", "2", *RUN]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--out", str(tmp_path / "tb"), "--tensorboard"]) == 0
    assert records(tmp_path / "tb" / "metrics.jsonl") == records(tmp_path / "plain" / "metrics.jsonl")
    assert not (tmp_path / "plain" / "tensorboard").exists()
    got = scalars(tmp_path / "tb" / "tensorboard")
    rows = [json.loads(line) for line in (tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()]
    for key, tag in (("train_loss", "loss/total"), ("train_ce", "loss/ce"), ("val_acc", "accuracy/val"),
                     ("train_acc", "accuracy/train"), ("lr", "lr")):
        assert [s for s, _ in got[tag]] == [1, 2], tag
        assert [v for _, v in got[tag]] == pytest.approx([r[key] for r in rows], rel=1e-6), tag
    rates = {t: v for t, v in got.items() if t.startswith("firing_rate/")}
    assert len(rates) >= 4  # every spiking layer of resnet_tiny
    assert all(0.0 <= v <= 1.0 and [s for s, _ in pts] == [1, 2] for pts in rates.values() for _, v in pts)


def test_pretrain_of_an_ann_has_no_firing_rates(tmp_path):
    assert main(["pretrain", "--model", "vgg_tiny", *RUN, "--out", str(tmp_path / "t"), "--tensorboard"]) == 0
    got = scalars(tmp_path / "t" / "tensorboard")
    assert "loss/total" in got and "accuracy/val" in got
    assert not [t for t in got if t.startswith("firing_rate/")]
