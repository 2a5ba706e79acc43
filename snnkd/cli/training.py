"""What ``pretrain`` and ``distill`` share: data, the fit, and writing the outputs.

Outputs in ``OUT``: ``model.pt`` (weights + rebuild metadata), ``metrics.jsonl`` (one line
per epoch), ``config.yaml`` (the options as run).  The resumable state lives at
``--state`` (default ``OUT/train_state.pt``) and is removed once the outputs exist.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
from pathlib import Path

import torch

from snnkd import io
from snnkd.cli.common import resolved
from snnkd.data import build_datasets, dataset_info
from snnkd.errors import SnnkdError
from snnkd.methods.base import Method
from snnkd.models.base import StagedNet
from snnkd.neurons.compiled import check_compiler, use_compiled_neurons
from snnkd.paths import check_paths
from snnkd.runtime import save_model
from snnkd.train import distributed
from snnkd.train.loop import FitConfig, evaluate_loader, fit
from snnkd.train.trainers import check_precision, get_trainer


def load_data(a: argparse.Namespace):
    if not a.dataset:
        raise SnnkdError("no dataset given (--dataset)")
    info = dataset_info(a.dataset)
    train, val, test = build_datasets(a.dataset, a.data_root, a.val_fraction, a.download, True,
                                      a.autoaugment, a.cutout, a.limit_train, a.limit_test)
    return info, train, val, test


def fit_config(a: argparse.Namespace, trainer: str = "bptt") -> FitConfig:
    return FitConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, optimizer=a.optimizer,
                     momentum=a.momentum, weight_decay=a.weight_decay, seed=a.seed, trainer=trainer,
                     precision=a.precision, compile_neurons=a.compile_neurons, num_workers=a.num_workers,
                     progress=not a.no_progress,
                     trainer_options=trainer_options(a, trainer), decay_norm_bias=not a.no_decay_norm_bias)


def trainer_options(a: argparse.Namespace, trainer: str) -> dict:
    """The keyword options the trainer's step takes (``rate``: ``grad`` from ``--rate-grad``)."""
    accepted = inspect.signature(get_trainer(trainer)).parameters
    return {"grad": a.rate_grad} if "grad" in accepted and getattr(a, "rate_grad", None) else {}


def run_identity(a: argparse.Namespace, meta: dict) -> dict:
    """What a training state belongs to: the model metadata, the data options, the data root
    (resolved) and the teacher file's SHA-256, as plain JSON data (so it loads with ``weights_only=True``)."""
    ident = {**meta, **{k: getattr(a, k, None) for k in ("limit_train", "val_fraction", "autoaugment", "cutout")}}
    ident["data_root"] = str(Path(a.data_root).resolve())  # other data, another run (issue 16 item 7)
    teacher = getattr(a, "teacher", None)
    if teacher:
        ident["teacher_sha256"] = hashlib.sha256(Path(teacher).read_bytes()).hexdigest()
    return json.loads(json.dumps(ident, default=str))


def check_training_paths(a: argparse.Namespace) -> None:
    """Every path of a ``pretrain``/``distill`` run checked before any work (issue 16 items 2, 10):
    no output may be, hold or lie in an input (``--teacher``, ``--config``) or ``--data-root``,
    ``--state`` may not be one of the output files, and every location must be writable."""
    out = Path(a.out)
    check_paths(inputs={"--teacher": getattr(a, "teacher", None), "--config": getattr(a, "config", None)},
                trees={"--data-root": a.data_root}, out_dirs={"--out": out},
                outputs={"--out model": out / "model.pt", "metrics file": out / "metrics.jsonl",
                         "config record": out / "config.yaml", "--state": a.state or out / "train_state.pt"})


def train_and_save(a: argparse.Namespace, student: StagedNet, teacher: StagedNet | None, method: Method,
                   data, meta: dict, trainer: str = "bptt") -> dict:
    info, train, val, test = data
    out = Path(a.out)
    state = Path(a.state) if a.state else out / "train_state.pt"
    for target in (state, out / "metrics.jsonl", out / "model.pt", out / "config.yaml"):
        io.check_writable(target)  # before hours of training, not after
        io.remove_stale_temps(target)  # left by a run that was killed while writing
    device = distributed.setup(a.device)  # joins the torchrun job if launched by torchrun
    check_precision(a.precision, device)
    if a.compile_neurons:
        check_compiler(device.type)  # before any work, not at the first step
    cfg = fit_config(a, trainer)
    cfg.identity = run_identity(a, meta)
    history = fit(student, teacher, method, train, val, cfg, state, out / "metrics.jsonl", device,
                  tensorboard=out / "tensorboard" if getattr(a, "tensorboard", False) else None)
    if not distributed.current().is_main:  # only rank 0 evaluates and writes the outputs
        distributed.teardown()
        return {}
    with use_compiled_neurons(a.compile_neurons):
        test_metrics = evaluate_loader(student, torch.utils.data.DataLoader(test, batch_size=256), device, a.precision)
    student.cpu()
    save_model(out / "model.pt", student, meta, {"test_acc": test_metrics["acc"], "epochs": len(history)})
    io.write_yaml(out / "config.yaml", resolved(a))
    state.unlink(missing_ok=True)
    distributed.teardown()
    print(f"test accuracy {test_metrics['acc']:.2f}% -> {out / 'model.pt'}")
    return test_metrics
