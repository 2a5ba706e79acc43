"""Multi-process data-parallel training under ``torchrun`` (DDP).

``torchrun --nproc_per_node N -m snnkd pretrain|distill ...`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL on
GPUs, gloo on CPU) and picks the device ``cuda:LOCAL_RANK`` (or the CPU).  Without
those variables everything here is a no-op and training runs in one process.

Semantics (so that N processes compute what one process would):

* ``--batch-size`` is per process; the global batch is ``batch_size * N``.
* Each epoch's order is the single-process order: a :class:`DistributedSampler` whose
  permutation is the one ``epoch_loader`` draws for that epoch (seeded by seed and
  epoch); rank ``r`` takes positions ``r, r + N, ...``, so global batch ``k`` holds
  exactly the samples of single-process batch ``k`` at batch size ``batch_size * N``
  (when the training set divides evenly; otherwise the sampler pads with repeats).
* BatchNorm statistics are computed over the global batch (:class:`CrossRankBatchNorm`,
  differentiable ``all_reduce`` of per-channel sums; works with gloo and NCCL), so the
  loss is the single-process loss and DDP's gradient average is its exact gradient.
* The student and the method's adapters train inside one ``DistributedDataParallel``
  module; the teacher is frozen and identical on every rank.
* Exception: the ``rate`` trainer patches BatchNorm itself (spike-pass statistics), so
  under torchrun its BatchNorm statistics are per process, as in plain DDP without
  SyncBatchNorm; its gradients are still averaged exactly.  Measured on digits
  (resnet_tiny, T=2, 2 epochs): train loss 2.2986 (2 processes) vs 2.2972 (1 process).
* Training metrics are summed across ranks before averaging; validation is sharded.
* Only rank 0 writes files (all writes go through :mod:`snnkd.io`, which is atomic).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from snnkd.errors import SnnkdError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (``world_size`` 1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect(environ: dict[str, str] | None = None) -> DistEnv:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (as set by torchrun); one clear error if
    only some are set or they are not consistent integers."""
    env = os.environ if environ is None else environ
    present = [k for k in ENV_KEYS if k in env]
    if not present:
        return DistEnv()
    if len(present) != len(ENV_KEYS):
        missing = [k for k in ENV_KEYS if k not in env]
        raise SnnkdError(f"distributed launch is incomplete: {', '.join(present)} set but {', '.join(missing)} "
                         "missing; launch with torchrun, or unset these variables")
    try:
        rank, world, local = (int(env[k]) for k in ENV_KEYS)
    except ValueError:
        raise SnnkdError("RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                         + ", ".join(f"{k}={env[k]!r}" for k in ENV_KEYS)) from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise SnnkdError(f"inconsistent distributed launch: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
    return DistEnv(rank, world, local)


def current() -> DistEnv:
    """The job this process has joined (single process if no group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistEnv()
    return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def setup(device: str = "auto") -> torch.device:
    """Join the torchrun job if there is one and return this process's device."""
    env = detect()
    want_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not env.enabled:
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(device)
    if want_cuda:
        if not torch.cuda.is_available():
            raise SnnkdError(f"--device {device} asked for CUDA, but no GPU is visible")
        if env.local_rank >= torch.cuda.device_count():
            raise SnnkdError(f"LOCAL_RANK {env.local_rank} but only {torch.cuda.device_count()} GPUs visible")
        dev = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(dev)
    elif device in ("auto", "cpu"):
        dev = torch.device("cpu")
    else:
        raise SnnkdError(f"--device {device!r} cannot be used under torchrun; use auto, cpu or cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --- data ---------------------------------------------------------------------
class EpochOrderSampler(DistributedSampler):
    """A :class:`DistributedSampler` whose epoch permutation is given: the exact order the
    single-process loader would visit, padded with its own head to a multiple of the
    world size (as DistributedSampler pads) and strided by rank."""

    def __init__(self, ds: Dataset, order: list[int]) -> None:
        env = current()
        super().__init__(ds, num_replicas=env.world_size, rank=env.rank, shuffle=False, drop_last=False)
        if sorted(order) != list(range(len(ds))):
            raise ValueError("order must be a permutation of the dataset's indices")
        self.order = order

    def __iter__(self):
        idx = list(self.order)
        idx += (idx * (1 + self.total_size // max(len(idx), 1)))[: self.total_size - len(idx)]
        return iter(idx[self.rank:self.total_size:self.num_replicas])


def train_loader(ds: Dataset, cfg: Any, epoch: int, epoch_loader: Callable) -> DataLoader:
    """This rank's share of epoch ``epoch``.  The order is drawn by the single-process
    ``epoch_loader`` itself (over the indices, one batch), so it is seeded exactly as a
    one-process run and stays so if that loader changes."""
    from dataclasses import replace

    ref = epoch_loader(list(range(len(ds))), replace(cfg, batch_size=max(len(ds), 1), num_workers=0), epoch)
    order = [int(i) for i in next(iter(ref))] if len(ds) else []
    sampler = EpochOrderSampler(ds, order)
    sampler.set_epoch(epoch)
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers)


def shard(ds: Dataset) -> Dataset:
    """Every ``world_size``-th sample starting at this rank (no padding, no repeats)."""
    env = current()
    return Subset(ds, list(range(env.rank, len(ds), env.world_size))) if env.enabled else ds


def all_sum(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Sum each value over all ranks (identity in one process)."""
    if not current().enabled or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def weighted_mean(metrics: dict[str, float], n: int, device: torch.device) -> dict[str, float]:
    """Means over this rank's ``n`` samples -> means over all ranks' samples."""
    if not current().enabled:
        return dict(metrics)
    sums = all_sum({**{k: v * n for k, v in metrics.items()}, "\0n": n}, device)
    total = sums.pop("\0n")
    return {k: v / max(total, 1) for k, v in sums.items()}


def barrier() -> None:
    if current().enabled:
        dist.barrier()


# --- BatchNorm over the global batch ------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """``y = sum_r x_r`` on every rank; backward: ``dx_r = sum_r' dy_r'`` (also a sum)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


class CrossRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the batch of all ranks.

    ``mean = sum_r S1_r / n``, ``var = sum_r S2_r / n - mean^2`` with per-rank channel sums
    ``S1_r = sum x``, ``S2_r = sum x^2`` and ``n`` the global count, reduced by a
    differentiable ``all_reduce`` (its backward sums the gradients of all ranks, which is
    what makes DDP's averaged gradient exact).  Running statistics get the unbiased
    variance ``var * n / (n - 1)``.  Outside training or a job it is plain BatchNorm.
    Modules are converted in place by :func:`convert_batchnorm` (class swap: same
    parameters, buffers and state-dict keys).
    """

    _base: type = nn.BatchNorm2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not (self.training and current().enabled):
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        count = x.new_full((1,), x.numel() // c)
        stats = _AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / (n - 1).clamp_min(1))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


_CROSS: dict[type, type] = {}


def _cross_class(base: type) -> type:
    if base not in _CROSS:
        _CROSS[base] = type(f"CrossRank{base.__name__}", (CrossRankBatchNorm, base), {"_base": base})
    return _CROSS[base]


def convert_batchnorm(module: nn.Module) -> list[tuple[nn.Module, type]]:
    """Make every BatchNorm in ``module`` cross-rank; returns what :func:`restore_batchnorm` undoes."""
    changed = []
    for m in module.modules():
        if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
            changed.append((m, type(m)))
            m.__class__ = _cross_class(type(m))
    return changed


def restore_batchnorm(changed: list[tuple[nn.Module, type]]) -> None:
    for m, cls in changed:
        m.__class__ = cls


# --- the wrapped step ----------------------------------------------------------
class _StepModule(nn.Module):
    """Student + method adapters as one module whose forward is the method's loss, so
    DDP sees every trainable parameter and every call that builds the graph."""

    def __init__(self, student: nn.Module, method: nn.Module, teacher: nn.Module | None) -> None:
        super().__init__()
        self.student, self.method = student, method
        self._teacher = (teacher,)  # a tuple: not a submodule, so DDP leaves the frozen teacher alone

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.method(self.student, self._teacher[0], x, y)
        return out.logits, out.terms


def wrap_step(student: nn.Module, teacher: nn.Module | None, method: nn.Module, trainer: str,
              step: Callable, device: torch.device) -> tuple[Callable, Callable[[], None]]:
    """A step function with the trainer's signature that trains data-parallel, and an
    ``undo`` to call after training.  A ``ddp_safe`` trainer (``bptt``) runs inside DDP;
    others (whose step does more than one forward) run unchanged and their gradients are averaged with
    ``all_reduce`` afterwards: the same update DDP makes."""
    from snnkd.methods.base import MethodOutput
    from snnkd.train.trainers import current_precision

    changed = convert_batchnorm(student) + convert_batchnorm(method)
    undo = lambda: restore_batchnorm(changed)  # noqa: E731
    from snnkd.train.trainers import get_trainer

    if get_trainer(trainer).ddp_safe:
        ddp = DistributedDataParallel(_StepModule(student, method, teacher),
                                      device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=True, broadcast_buffers=False)

        def ddp_step(_s: Any, _t: Any, _m: Any, x: torch.Tensor, y: torch.Tensor) -> MethodOutput:
            prec = current_precision()  # the run's --precision, as in bptt_step
            with prec.forward():
                logits, terms = ddp(x, y)
            out = MethodOutput(logits, terms)
            prec.backward(out.loss)
            return out
        return ddp_step, undo
    params = [p for p in list(student.parameters()) + list(method.parameters()) if p.requires_grad]
    world = current().world_size
    for p in params:  # identical start on every rank, as DDP guarantees
        dist.broadcast(p.data, 0)

    def averaged_step(s: Any, t: Any, m: Any, x: torch.Tensor, y: torch.Tensor) -> MethodOutput:
        out = step(s, t, m, x, y)
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad.div_(world)
        return out
    return averaged_step, undo
