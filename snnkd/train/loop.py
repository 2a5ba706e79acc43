"""One epoch loop for pretraining and distillation.

SGD with momentum (or AdamW) and a cosine schedule stepped once per epoch.  After every
epoch a resumable state (model, adapters, optimizer, scheduler, every RNG state and the
metric history) is written atomically; the shuffling order of epoch ``e`` is drawn from
a generator seeded with ``(seed, e)``, so a run resumed from the state of epoch ``e`` sees
exactly the batches an uninterrupted run would.  Per-epoch metrics go to a JSON-lines
file rewritten in full each epoch (and on resume), so it always matches the saved state.
On the CPU the resumed result is bitwise that of an uninterrupted run (tests/test_resume.py)
given the same thread count, which the state records: kernels split reductions by thread.
The state also records the run's settings and identity and is refused by any other run;
a state that is not shaped as written here is refused in one line before any of it is used.
A loss that stops being finite (checked every step) or weights that do (each epoch end) stop
the run with one error: no model is written and the last complete epoch's state stays.
"""

from __future__ import annotations

import functools
import math
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
from snnkd.methods.base import Method, ValidationMetrics
from snnkd.models.base import StagedNet
from snnkd.neurons.compiled import use_compiled_neurons
from snnkd.train import distributed
from snnkd.train.tensorboard import layer_rates, write_events
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
    compile_neurons: bool = False  # torch.compile the neuron loops (snnkd.neurons.compiled)
    trainer_options: dict = field(default_factory=dict)  # keyword options of the trainer's step (rate: grad)
    decay_norm_bias: bool = True  # False: no weight decay on BatchNorm parameters and biases
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


def param_groups(named: list[tuple[str, torch.nn.Parameter]], cfg: FitConfig) -> list[dict]:
    """One group with ``cfg.weight_decay``; with ``decay_norm_bias`` off, a second group
    without it for every one-dimensional parameter (BatchNorm weights and biases, layer
    biases), as the rate-based reference code's ``split_params`` does."""
    if cfg.decay_norm_bias:
        return [{"params": [p for _, p in named]}]
    decay = [p for _, p in named if p.ndim > 1]
    rest = [p for _, p in named if p.ndim <= 1]
    return [{"params": decay}, {"params": rest, "weight_decay": 0.0}]


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
                    precision: str = "fp32", metrics: ValidationMetrics | None = None) -> dict[str, float]:
    """Top-1 accuracy (%) and mean CE of ``model`` over ``loader``: all ``T`` steps of a
    batch in one forward (time folded into the batch), in ``precision`` (CE in fp32).
    ``metrics``: a method's per-epoch figures, fed every batch's stage outputs of this same
    pass (read them with ``metrics.result()``)."""
    prec = Precision(precision, device)
    was_training = model.training
    model.eval()
    correct, total, loss = 0, 0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with prec.forward():
            if metrics is None:
                z = model(x)
            else:
                out = model.forward_stages(x)
                metrics.add(x, y, out)
                z = out.logits
        loss += F.cross_entropy(z, y, reduction="sum").item()
        correct += (z.argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    return {"acc": 100.0 * correct / max(total, 1), "loss": loss / max(total, 1)}


def fit(student: StagedNet, teacher: StagedNet | None, method: Method, train_ds: Dataset, val_ds: Dataset,
        cfg: FitConfig, state_path: Path, metrics_path: Path, device: torch.device,
        tensorboard: Path | None = None) -> list[dict]:
    """Train ``student`` (and ``method``'s adapters) for ``cfg.epochs``; resume from
    ``state_path`` if it holds a complete earlier epoch.  Returns the metric history.
    ``tensorboard``: also write the history as TensorBoard events there
    (:mod:`snnkd.train.tensorboard`), each epoch."""
    step = get_trainer(cfg.trainer)
    if cfg.trainer_options:
        step = functools.partial(step, **cfg.trainer_options)
    student.to(device)
    method.to(device)
    if teacher is not None:
        teacher.to(device)
    named = [(n, p) for n, p in [*student.named_parameters(), *method.named_parameters()] if p.requires_grad]
    opt = make_optimizer(param_groups(named, cfg), cfg)
    prec = Precision(cfg.precision, device)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    history: list[dict] = []
    rates: dict[int, dict[str, float]] = {}  # firing rates per epoch, for --tensorboard only
    start = 0
    seed_everything(cfg.seed)
    if state_path.is_file():
        start, history = _resume(state_path, student, method, opt, sched, cfg, prec)
        print(f"resuming from {state_path} after epoch {start}", file=sys.stderr)
        # A kill between writing the state and the metrics leaves metrics one epoch behind.
        io.write_jsonl(metrics_path, history)
    has_val = len(val_ds) > 0  # counted before sharding: a rank's shard may be empty
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
        bad_step = ""  # where the loss first stopped being finite
        loader = (distributed.train_loader(train_ds, cfg, epoch, epoch_loader)
                  if ddp.enabled else epoch_loader(train_ds, cfg, epoch))
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, file=sys.stderr,
                   disable=not cfg.progress or not sys.stderr.isatty() or not ddp.is_main)
        for i, (x, y) in enumerate(bar, 1):
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            with use_precision(prec), use_compiled_neurons(cfg.compile_neurons):
                out = step(student, teacher, method, x, y)
            prec.step(opt)
            n = len(y)
            for k, v in out.terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * n
            loss = out.loss.item()
            if not math.isfinite(loss) and not bad_step:
                bad_step = f"epoch {epoch + 1}, step {i}: the loss is {loss}"
                if not ddp.enabled:  # under DDP all ranks stop together, after the epoch's all-reduce
                    raise _diverged(state_path, epoch, bad_step, cfg)
            sums["loss"] = sums.get("loss", 0.0) + loss * n
            correct += (out.logits.argmax(1) == y).sum().item()
            total += n
            bar.set_postfix(loss=f"{sums['loss'] / total:.3f}")
        bad_tensor = _first_non_finite(student, method)
        sums = distributed.all_sum({**sums, "\0correct": correct, "\0total": total,
                                    "\0bad": float(bool(bad_step or bad_tensor))}, device)
        correct, total = sums.pop("\0correct"), sums.pop("\0total")
        if sums.pop("\0bad"):  # on every rank at once (the flag was all-reduced)
            where = (f"the end of epoch {epoch + 1}: {bad_tensor!r} is not finite" if bad_tensor
                     else f"epoch {epoch + 1} on another rank")
            raise _diverged(state_path, epoch, bad_step or where, cfg)
        sched.step()
        student.eval()
        metrics = method.validation_metrics(student, teacher)  # fed by the validation pass itself
        with use_compiled_neurons(cfg.compile_neurons):
            val = (evaluate_loader(student, val_loader, device, cfg.precision, metrics) if len(val_ds)
                   else {"acc": 0.0, "loss": 0.0})
        rec: dict[str, Any] = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"]}
        rec.update({f"train_{k}": v / max(total, 1) for k, v in sums.items()})
        rec["train_acc"] = 100.0 * correct / max(total, 1)
        val = distributed.weighted_mean(val, len(val_ds), device)
        rec["val_acc"], rec["val_loss"] = (val["acc"], val["loss"]) if has_val else (None, None)  # null, not NaN
        extra = metrics.result() if metrics is not None else {}
        rec.update(distributed.weighted_mean(extra, len(val_ds), device))
        rec["time_s"] = round(time.time() - t0, 3)
        odd = [k for k, v in rec.items() if isinstance(v, float) and not math.isfinite(v)]
        if odd:  # the same on every rank: every figure is all-reduced
            raise _diverged(state_path, epoch, f"the end of epoch {epoch + 1}: {odd[0]} is {rec[odd[0]]}", cfg)
        history.append(rec)
        if not ddp.is_main:
            continue
        _save_state(state_path, epoch + 1, student, method, opt, sched, history, cfg, prec)
        io.write_jsonl(metrics_path, history)
        if tensorboard is not None:
            rates[epoch + 1] = layer_rates(student, val_loader if len(val_ds) else loader, device)
            write_events(tensorboard, history, rates)
        val_text = f"val {rec['val_acc']:.2f}%" if has_val else "no val"
        print(f"epoch {epoch + 1}/{cfg.epochs} loss {rec['train_loss']:.4f} train {rec['train_acc']:.2f}% "
              f"{val_text} ({rec['time_s']:.1f}s, ETA {eta(history, cfg.epochs)})", file=sys.stderr, flush=True)
    if undo_ddp is not None:
        undo_ddp()
    return history


def eta(history: list[dict], epochs: int) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour) left: the epochs to go times the mean epoch time so far."""
    times = [r["time_s"] for r in history if isinstance(r.get("time_s"), (int, float))]
    left = round((epochs - len(history)) * (sum(times) / len(times) if times else 0.0))
    h, rest = divmod(max(left, 0), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


def _diverged(state_path: Path, epoch: int, what: str, cfg: FitConfig) -> SnnkdError:
    """The error for a run whose loss or weights stopped being finite in (0-based) ``epoch``.
    No model is written; the state of the last complete epoch (all good) stays for a resume."""
    if epoch > 0 and state_path.is_file():
        kept = (f"the state of epoch {epoch} stays at {str(state_path)!r} (resuming needs the same settings; "
                "delete it to change them)")
    else:
        kept = "no epoch completed, so no state was kept"
    return SnnkdError(f"training diverged at {what}; no model written, {kept}; lower --lr (now {cfg.lr:g})")


def _first_non_finite(*modules: torch.nn.Module) -> str | None:
    """Name of the first floating parameter or buffer holding a NaN or infinity (one sync)."""
    named = [(f"{j}:{n}" if j else n, t) for j, m in enumerate(modules)
             for n, t in [*m.named_parameters(), *m.named_buffers()] if t.is_floating_point() or t.is_complex()]
    if not named:
        return None
    ok = torch.stack([torch.isfinite(t.detach()).all() for _, t in named])
    if bool(ok.all()):
        return None
    return named[int((~ok).nonzero()[0, 0])][0]


def _save_state(path: Path, epoch: int, student, method, opt, sched, history, cfg: FitConfig,
                prec: Precision | None = None) -> None:
    io.save_torch(path, {"format": STATE_FORMAT, "epoch": epoch, "student": student.state_dict(),
                         "method": method.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "rng": rng_state(), "history": history,
                         "fit": asdict(cfg), "threads": torch.get_num_threads(),
                         "grad_scaler": prec.state_dict() if prec is not None else {}})


def _differences(saved: dict, now: dict) -> list[str]:
    """The settings that differ (inside ``identity``: its keys), with both values where short."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if k == "identity" and isinstance(a, dict) and isinstance(b, dict):
            out += [_both(sub, a.get(sub), b.get(sub)) for sub in sorted(set(a) | set(b)) if a.get(sub) != b.get(sub)]
        elif a != b:
            out.append(_both(k, a, b))
    return out


def _both(name: str, then: Any, now: Any) -> str:
    """``name: THEN then, NOW now`` for short plain values, else just ``name``."""
    plain = all(v is None or isinstance(v, (str, int, float)) for v in (then, now))
    return f"{name}: {then!r} then, {now!r} now" if plain and len(repr(then) + repr(now)) <= 240 else name


# What _save_state writes, key -> type; "threads" and "grad_scaler" may be absent (older states).
_STATE_TYPES: dict[str, type] = {"format": str, "epoch": int, "student": dict, "method": dict, "optimizer": dict,
                                 "scheduler": dict, "rng": dict, "history": list, "fit": dict}
_STATE_OPTIONAL: dict[str, type] = {"threads": int, "grad_scaler": dict}


def _incomplete(path: Path, why: str) -> SnnkdError:
    return SnnkdError(f"incomplete training state {str(path)!r}: {why}; delete it to start over")


def _check_state(path: Path, state: dict, sched) -> None:
    """Refuse (one line) a training state that is not shaped as :func:`_save_state` writes it:
    a missing key, a value of the wrong type, weights that are not named tensors."""
    for key, typ in [*_STATE_TYPES.items(), *((k, t) for k, t in _STATE_OPTIONAL.items() if k in state)]:
        if key not in state:
            raise _incomplete(path, f"no {key!r}")
        v = state[key]
        if not isinstance(v, typ) or isinstance(v, bool):
            raise _incomplete(path, f"{key!r} is a {type(v).__name__}, not a {typ.__name__}")
    if state["epoch"] < 1:
        raise _incomplete(path, f"epoch {state['epoch']} (a state is written after epoch 1 or later)")
    for key in ("student", "method"):
        bad = [k for k, v in state[key].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if bad:
            raise _incomplete(path, f"{key!r} holds {bad[0]!r}, not a named tensor")
    if not all(isinstance(r, dict) for r in state["history"]):
        raise _incomplete(path, "'history' is not a list of per-epoch records")
    number = (int, float)
    for k, v in sched.state_dict().items():  # the schedule this run builds: same keys, same kinds
        got = state["scheduler"].get(k)
        if k not in state["scheduler"] or not (isinstance(got, number) if isinstance(v, number) else
                                               isinstance(got, type(v))) or isinstance(got, bool) != isinstance(v, bool):
            raise _incomplete(path, f"its scheduler state has {k!r} = {got!r}")


def _check_optimizer(path: Path, opt: torch.optim.Optimizer) -> None:
    """After loading: every per-parameter tensor of the optimizer state has its parameter's shape."""
    for group in opt.param_groups:
        for p in group["params"]:
            for name, t in opt.state.get(p, {}).items():
                if isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape != p.shape:
                    raise _incomplete(path, f"optimizer state {name!r} has shape {tuple(t.shape)}, "
                                            f"its parameter {tuple(p.shape)}")


def _resume(path: Path, student, method, opt, sched, cfg: FitConfig,
            prec: Precision | None = None) -> tuple[int, list[dict]]:
    state = io.load_torch(path, "training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise SnnkdError(f"{path} is not an snnkd training state; delete it to start over")
    _check_state(path, state, sched)  # before any of it is used (issue 16 item 11)
    # epochs count: the cosine schedule's length is part of the saved scheduler state
    saved = {k: v for k, v in state["fit"].items() if k not in ("progress", "num_workers")}
    saved.setdefault("precision", "fp32")  # states written before --precision existed
    saved.setdefault("compile_neurons", False)  # ... and before --compile-neurons
    now = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "num_workers")}
    if saved != now:
        diff = _differences(saved, now)
        raise SnnkdError(f"{path} was written by a run with different settings ({'; '.join(diff)}); "
                         "delete it to start over")
    if state["epoch"] > cfg.epochs:
        raise _incomplete(path, f"epoch {state['epoch']} of a {cfg.epochs}-epoch run")
    try:
        student.load_state_dict(state["student"])
        method.load_state_dict(state["method"])
    except RuntimeError as e:
        raise SnnkdError(f"{path} does not fit this model: {str(e).splitlines()[0]}") from None
    try:
        opt.load_state_dict(state["optimizer"])
        _check_optimizer(path, opt)
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        why = str(e).splitlines()[0] if str(e) else ""
        raise _incomplete(path, f"its optimizer or RNG state does not load ({type(e).__name__}: {why})") from None
    if prec is not None:
        prec.load_state_dict(state.get("grad_scaler") or {})
    threads = state.get("threads")
    if threads is not None and threads != torch.get_num_threads():
        # CPU kernels split reductions by thread, so the last bits of the weights may differ
        print(f"warning: {path} was written with {threads} CPU threads, this run uses "
              f"{torch.get_num_threads()}; the result may differ in the last bits from an uninterrupted run",
              file=sys.stderr)
    return int(state["epoch"]), list(state["history"])
