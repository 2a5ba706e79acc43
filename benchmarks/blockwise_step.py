"""Block-wise under the rate trainer against logit KD under BPTT, one training step each (issue 11).

    nice python benchmarks/blockwise_step.py                  # T = 4 and 8, bf16, batch 64
    nice python benchmarks/blockwise_step.py --T 4 --steps 5

The setting of ``config/reproduce/blockwise_rate_vs_bptt.yaml``: teacher ``resnet_fm_wide``
(ANN, frozen), student ``resnet_fm`` (IF, hard reset), 1x28x28 input, 10 classes, batch 64,
SGD, one thread.  Configurations: ``logit`` under ``bptt`` (the reference), ``blockwise``
under ``rate``, and ``blockwise`` under ``rate`` with ``--compile-neurons`` (compiled in the
untimed warm-up round).  Steps run interleaved in one process, the order alternating, so
load changes hit all alike; medians over ``--steps``.  The reproduction's bar is on CPU time
per epoch from the workflow's benchmark files (<= 0.6x at T = 4); a step is an epoch's unit
of work (the data path is 0.2-0.4 % of a step, ``benchmarks/data_path.py``), so this ratio
is what an epoch's ratio would be on an idle core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import _train_step, interleaved_times  # noqa: E402  (train_step.py's step and interleaving)

CONFIGS = (("logit", "bptt", False), ("blockwise", "rate", False), ("blockwise", "rate", True))


def _setup(method_name: str, trainer: str, T: int, lr: float = 0.1):
    import torch

    from snnkd.methods import build_method
    from snnkd.models import create_model
    from snnkd.neurons import NeuronConfig
    from snnkd.train import rate as _rate  # noqa: F401  (registers the rate trainer)
    from snnkd.train.trainers import get_trainer

    torch.manual_seed(0)
    teacher = create_model("resnet_fm_wide", None, 10, 1, 28).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = create_model("resnet_fm", NeuronConfig(), 10, 1, 28, T).train()
    params = {"tau": 4, "alpha": 0.9} if method_name == "logit" else {}
    method = build_method(method_name, student, teacher, params)
    opt = torch.optim.SGD([*student.parameters(), *method.parameters()], lr=lr, momentum=0.9, weight_decay=5e-4)
    step_fn = get_trainer(trainer)

    def with_teacher(s, _none, m, x, y):  # train_step._train_step passes no teacher
        return step_fn(s, teacher, m, x, y)

    return student, method, with_teacher, opt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per configuration (median)")
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(a.batch, 1, 28, 28, generator=g), torch.randint(0, 10, (a.batch,), generator=g)
    print(f"torch {torch.__version__}, 1 thread, batch {a.batch}, {a.precision}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    setups = {(m, tr, c, T): _setup(m, tr, T) for T in a.T for m, tr, c in CONFIGS}

    def step(m: str, tr: str, compiled: bool, T: int) -> None:
        _train_step(setups[(m, tr, compiled, T)], x, y, a.precision, compiled)

    times, warm = interleaved_times(list(setups), a.steps, step, lambda rep: f"  round {rep + 1}/{1 + a.steps}")
    print(f"\n| T | method / trainer | step ms (median of {a.steps}) | first step s | vs logit / bptt |")
    print("|---|---|---:|---:|---:|")
    for T in a.T:
        ref = statistics.median(times[("logit", "bptt", False, T)])
        for m, tr, c in CONFIGS:
            med = statistics.median(times[(m, tr, c, T)])
            name = f"{m} / {tr}" + (" --compile-neurons" if c else "")
            print(f"| {T} | {name} | {med * 1e3:.0f} | {warm[(m, tr, c, T)]:.1f} | {med / ref:.2f}x |")
    for T in a.T:
        ref = statistics.median(times[("logit", "bptt", False, T)])
        for c in (False, True):
            r = statistics.median(times[("blockwise", "rate", c, T)]) / ref
            print(f"T={T}: blockwise/rate{' --compile-neurons' if c else ''} step vs logit/bptt: {r:.2f}x "
                  f"(bar at T=4: <= 0.6x, {'MET' if r <= 0.6 else 'NOT MET'})")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
