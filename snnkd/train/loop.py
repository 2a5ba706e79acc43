"""One epoch loop for pretraining and distillation.

SGD with momentum (or AdamW) and a cosine schedule stepped once per epoch.  After every
epoch a resumable state (model, adapters, optimizer, scheduler, every RNG state and the
metric history) is written atomically; the shuffling order of epoch ``e`` is drawn from
a generator seeded with ``(seed, e)``, so a run resumed from the state of epoch ``e`` sees
exactly the batches an uninterrupted run would.  Per-epoch metrics go to a JSON-lines
file rewritten in full each epoch (and on resume), so it always matches the saved state.
On the CPU the resumed result is bitwise that of an uninterrupted run (tests/test_resume.py)
given the same thread count, which the state records: kernels split reductions by thread.
The state also records the run's settings and identity and is refused by any other run.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from snnkd import io
from snnkd.errors import SnnkdError
from snnkd.methods.base import Method
from snnkd.models.base import StagedNet
from snnkd.train import distributed
from snnkd.train.trainers import Precision, get_trainer, use_precision

STATE_FORMAT = "snnkd-train-state/1"


@dataclass
class FitConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    trainer: str = "bptt"
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA): see snnkd.train.trainers.Precision
    num_workers: int = 0
    progress: bool = True
    # What is trained (model metadata, data options, teacher file hash): a training state
    # is resumed only by a run with the same identity and settings.
    identity: dict = field(default_factory=dict)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG state as tensors and plain data (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_optimizer(params, cfg: FitConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise SnnkdError(f"unknown optimizer {cfg.optimizer!r}; choose sgd or adamw")


def epoch_loader(ds: Dataset, cfg: FitConfig, epoch: int) -> DataLoader:
    g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=g, drop_last=False,
                      num_workers=cfg.num_workers)


@torch.no_grad()
def evaluate_loader(model: StagedNet, loader: DataLoader, device: torch.device,
                    precision: str = "fp32") -> dict[str, float]:
    """Top-1 accuracy (%) and mean CE of ``model`` over ``loader``: all ``T`` steps of a
    batch in one forward (time folded into the batch), in ``precision`` (CE in fp32)."""
    prec = Precision(precision, device)
    was_training = model.training
    model.eval()
    correct, total, loss = 0, 0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with prec.forward():
            z = model(x)
        loss += F.cross_entropy(z, y, reduction="sum").item()
        correct += (z.argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    return {"acc": 100.0 * correct / max(total, 1), "loss": loss / max(total, 1)}


def fit(student: StagedNet, teacher: StagedNet | None, method: Method, train_ds: Dataset, val_ds: Dataset,
        cfg: FitConfig, state_path: Path, metrics_path: Path, device: torch.device) -> list[dict]:
    """Train ``student`` (and ``method``'s adapters) for ``cfg.epochs``; resume from
    ``state_path`` if it holds a complete earlier epoch.  Returns the metric history."""
    step = get_trainer(cfg.trainer)
    student.to(device)
    method.to(device)
    if teacher is not None:
        teacher.to(device)
    params = [p for p in list(student.parameters()) + list(method.parameters()) if p.requires_grad]
    opt = make_optimizer(params, cfg)
    prec = Precision(cfg.precision, device)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    history: list[dict] = []
    start = 0
    seed_everything(cfg.seed)
    if state_path.is_file():
        start, history = _resume(state_path, student, method, opt, sched, cfg, prec)
        print(f"resuming from {state_path} after epoch {start}", file=sys.stderr)
        # A kill between writing the state and the metrics leaves metrics one epoch behind.
        io.write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in history))
    ddp = distributed.current()  # under torchrun: DDP step, sharded data, summed metrics, rank 0 writes
    undo_ddp = None
    if ddp.enabled:
        step, undo_ddp = distributed.wrap_step(student, teacher, method, cfg.trainer, step, device)
        val_ds = distributed.shard(val_ds)
    val_loader = DataLoader(val_ds, batch_size=max(cfg.batch_size, 128), shuffle=False)
    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        student.train()
        method.train()
        sums: dict[str, float] = {}
        correct = total = 0
        loader = (distributed.train_loader(train_ds, cfg, epoch, epoch_loader)
                  if ddp.enabled else epoch_loader(train_ds, cfg, epoch))
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, file=sys.stderr,
                   disable=not cfg.progress or not sys.stderr.isatty() or not ddp.is_main)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            with use_precision(prec):
                out = step(student, teacher, method, x, y)
            prec.step(opt)
            n = len(y)
            for k, v in out.terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * n
            sums["loss"] = sums.get("loss", 0.0) + out.loss.item() * n
            correct += (out.logits.argmax(1) == y).sum().item()
            total += n
            bar.set_postfix(loss=f"{sums['loss'] / total:.3f}")
        sums = distributed.all_sum({**sums, "\0correct": correct, "\0total": total}, device)
        correct, total = sums.pop("\0correct"), sums.pop("\0total")
        sched.step()
        val = evaluate_loader(student, val_loader, device, cfg.precision) if len(val_ds) else {"acc": float("nan"), "loss": float("nan")}
        rec: dict[str, Any] = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"]}
        rec.update({f"train_{k}": v / max(total, 1) for k, v in sums.items()})
        rec["train_acc"] = 100.0 * correct / max(total, 1)
        val = distributed.weighted_mean(val, len(val_ds), device)
        rec["val_acc"], rec["val_loss"] = val["acc"], val["loss"]
        student.eval()
        rec.update(distributed.weighted_mean(method.epoch_metrics(student, teacher, val_loader, device),
                                             len(val_ds), device))
        rec["time_s"] = round(time.time() - t0, 3)
        history.append(rec)
        if not ddp.is_main:
            continue
        _save_state(state_path, epoch + 1, student, method, opt, sched, history, cfg, prec)
        io.write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in history))
        print(f"epoch {epoch + 1}/{cfg.epochs} loss {rec['train_loss']:.4f} train {rec['train_acc']:.2f}% "
              f"val {rec['val_acc']:.2f}% ({rec['time_s']:.1f}s)", file=sys.stderr, flush=True)
    if undo_ddp is not None:
        undo_ddp()
    return history


def _save_state(path: Path, epoch: int, student, method, opt, sched, history, cfg: FitConfig,
                prec: Precision | None = None) -> None:
    io.save_torch(path, {"format": STATE_FORMAT, "epoch": epoch, "student": student.state_dict(),
                         "method": method.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "rng": rng_state(), "history": history,
                         "fit": asdict(cfg), "threads": torch.get_num_threads(),
                         "grad_scaler": prec.state_dict() if prec is not None else {}})


def _differences(saved: dict, now: dict) -> list[str]:
    """Names of the settings that differ (inside ``identity``: its keys)."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if k == "identity" and isinstance(a, dict) and isinstance(b, dict):
            out += [sub for sub in sorted(set(a) | set(b)) if a.get(sub) != b.get(sub)]
        elif a != b:
            out.append(k)
    return out


def _resume(path: Path, student, method, opt, sched, cfg: FitConfig,
            prec: Precision | None = None) -> tuple[int, list[dict]]:
    state = io.load_torch(path, "training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise SnnkdError(f"{path} is not an snnkd training state; delete it to start over")
    # epochs count: the cosine schedule's length is part of the saved scheduler state
    saved = {k: v for k, v in state["fit"].items() if k not in ("progress", "num_workers")}
    saved.setdefault("precision", "fp32")  # states written before --precision existed
    now = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "num_workers")}
    if saved != now:
        diff = _differences(saved, now)
        raise SnnkdError(f"{path} was written by a run with different settings ({', '.join(diff)}); "
                         "delete it to start over")
    try:
        student.load_state_dict(state["student"])
        method.load_state_dict(state["method"])
    except RuntimeError as e:
        raise SnnkdError(f"{path} does not fit this model: {str(e).splitlines()[0]}") from None
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    if prec is not None:
        prec.load_state_dict(state.get("grad_scaler") or {})
    threads = state.get("threads")
    if threads is not None and threads != torch.get_num_threads():
        # CPU kernels split reductions by thread, so the last bits of the weights may differ
        print(f"warning: {path} was written with {threads} CPU threads, this run uses "
              f"{torch.get_num_threads()}; the result may differ in the last bits from an uninterrupted run",
              file=sys.stderr)
    return int(state["epoch"]), list(state["history"])
