"""Kill ``snnkd pretrain`` / ``snnkd distill`` with SIGKILL, rerun the same command, and
require weights bitwise equal and metrics equal (but wall time) to an uninterrupted run.

Each run is a real subprocess; ``tests/killer.py`` kills it at a chosen point (mid-epoch,
mid-way through writing the training state, just before the last metrics write, half-way
through writing model.pt), and one test kills it from outside at a random moment.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from resume_utils import env, metrics, snnkd, snnkd_killed, stray_files, weights_differences

pytestmark = pytest.mark.slow
OUTPUTS = {"model.pt", "metrics.jsonl", "config.yaml"}
DATA = ["--dataset", "digits", "--limit-train", "200", "--batch-size", "32", "--no-progress", "--seed", "3"]


def pretrain_args(out: Path) -> list[str]:
    return ["pretrain", "--model", "resnet_tiny", "--epochs", "3", "--out", str(out), *DATA]


def distill_args(out: Path, teacher: Path) -> list[str]:
    # Poisson encoding: the input spikes are random, so the resumed run must restore the RNG.
    return ["distill", "--student", "resnet_tiny", "--teacher", str(teacher), "--method", "logit",
            "--param", "tau=2", "--T", "2", "--encoding", "poisson", "--epochs", "2", "--out", str(out), *DATA]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    """Uninterrupted pretrain and distill runs (the pretrained model is also the teacher)."""
    root = tmp_path_factory.mktemp("reference")
    r = snnkd(pretrain_args(root / "pretrain"))
    assert r.returncode == 0, r.stderr
    r = snnkd(distill_args(root / "distill", root / "pretrain" / "model.pt"))
    assert r.returncode == 0, r.stderr
    return {"pretrain": root / "pretrain", "distill": root / "distill", "teacher": root / "pretrain" / "model.pt"}


def assert_same_as(ref: Path, out: Path) -> None:
    assert weights_differences(ref / "model.pt", out / "model.pt") == []
    assert metrics(out / "metrics.jsonl") == metrics(ref / "metrics.jsonl")
    assert stray_files(out, OUTPUTS) == []  # no state left behind, no temporary files


def kill_and_resume(args: list[str], where: str, n: int) -> subprocess.CompletedProcess:
    killed = snnkd_killed(where, n, args)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = snnkd(args)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr, again.stderr
    return again


def assert_resumed(stderr: str, after: int | None) -> None:
    """The run resumed after epoch ``after`` (None: it started afresh)."""
    if after is None:
        assert "resuming from" not in stderr, stderr
    else:
        assert f"after epoch {after}\n" in stderr, stderr


def test_pretrain_killed_three_times_resumes_identically(reference, tmp_path):
    """Killed again and again, as a preempted job is: each run resumes from the last
    complete state (a half-written one is ignored) and the end result is identical."""
    out = tmp_path / "run"
    args = pretrain_args(out)
    kills = [  # (kill point, last complete epoch in the state afterwards)
        ("step", 10, 1),                   # mid-epoch 2 (7 steps per epoch)
        ("write:train_state.pt", 1, 1),    # this run's first state (epoch 2) half-written, not renamed
        ("before:metrics.jsonl", 3, 3),    # epoch 3's state saved, its metrics line not yet written
    ]
    after = None
    for where, n, saved in kills:
        killed = snnkd_killed(where, n, args)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert_resumed(killed.stderr, after)
        if where.startswith("write:"):
            assert list(out.glob(".train_state.pt.*.tmp")), "the kill left no half-written state"
        after = saved
    again = snnkd(args)
    assert again.returncode == 0, again.stderr
    assert_resumed(again.stderr, after)
    assert_same_as(reference["pretrain"], out)


def test_distill_poisson_resumes_identically_after_mid_write_kill(reference, tmp_path):
    out = tmp_path / "run"
    kill_and_resume(distill_args(out, reference["teacher"]), "write:model.pt", 1)
    assert_same_as(reference["distill"], out)


def test_distill_resumes_identically_after_kill_at_random_moment(reference, tmp_path):
    """SIGKILL from outside at a random moment after the first state file appears."""
    out = tmp_path / "run"
    args = distill_args(out, reference["teacher"])
    proc = subprocess.Popen([sys.executable, "-m", "snnkd", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env())
    try:
        deadline = time.monotonic() + 200
        while not (out / "train_state.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "run ended before its first state"
            time.sleep(0.005)
        time.sleep(random.Random().uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    again = snnkd(args)
    assert again.returncode == 0, again.stderr
    assert_same_as(reference["distill"], out)
