"""Does ``torch.compile`` speed up our BPTT training step on the CPU? (issue 12)

    nice python benchmarks/compile.py                         # resnet_tiny and ResNet-18, T = 4, fp32 and bf16
    nice python benchmarks/compile.py --models resnet_tiny --steps 10

The step is ``benchmarks/train_step.py``'s (forward under the run's :class:`Precision`,
cross-entropy, backward, SGD) on our SNN (IF neurons, folded ``[T*B, ...]`` layout) with a
3x32x32 random batch.  Two configurations per (model, precision): ``eager`` (what snnkd
trains with) and ``compiled`` (``torch.compile(net)``, default inductor backend; the
compilation happens in an untimed warm-up round and its time is printed separately).  One
process runs them interleaved, a step of each in turn with the order alternating, so load
changes on a shared machine hit both alike; the median over ``--steps`` is reported with the
speed-up of ``compiled`` over ``eager``.  A product option is worth adding only at a
speed-up >= 1.10x (printed MET / NOT MET) that also pays for the compilation within one
epoch of the default run.

Last run (2026-12-02, ``--models resnet_tiny --steps 6``, torch 2.14.1, 1 thread on 2 cores
shared with other jobs, load average 3.6-6.6): compiled is slower, fp32 0.81x (193 -> 237 ms
a step, 106 s to compile), bf16 0.02x (118 -> 5952 ms: the compiled bf16 graph recompiles or
falls back every step).  Our neuron's fused autograd function and per-step state break the
graph, so inductor gains nothing it could keep; snnkd therefore does not compile the model.
What it compiles instead, on request, is the neuron loops alone (``--compile-neurons``,
:mod:`snnkd.neurons.compiled`; ``train_step.py`` measures it as ``bptt_c`` and ``rate_c``).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import _data, _setup, _train_step, interleaved_times, step_parser  # noqa: E402  (the same step as train_step.py)

MODES = ("eager", "compiled")


def main() -> None:
    a = step_parser(__doc__, "--models", nargs="+", default=["resnet_tiny", "resnet18"]).parse_args()
    import torch

    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, SNN bptt T={a.T}, batch {a.batch}, {a.threads} threads; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    x, y = _data(a.batch)
    rows = []
    for model in a.models:
        setups = {}
        for mode in MODES:
            net, method, step_fn, opt = _setup({"model": model, "neuron": "if"}, "bptt", a.T)
            setups[mode] = (torch.compile(net) if mode == "compiled" else net, method, step_fn, opt)
        configs = [(mode, pr) for pr in a.precision for mode in MODES]
        # the warm-up round compiles (one graph per precision)
        times, warm = interleaved_times(configs, a.steps,
                                        lambda mode, pr, setups=setups: _train_step(setups[mode], x, y, pr),
                                        lambda rep, model=model: f"  {model} round {rep + 1}/{1 + a.steps}")
        for mode, pr in configs:
            med = statistics.median(times[(mode, pr)])
            rows.append((model, pr, mode, med, warm[(mode, pr)], statistics.median(times[("eager", pr)]) / med))
    print(f"\n| model | precision | mode | step ms (median of {a.steps}) | first step s | speed-up vs eager |")
    print("|---|---|---|---:|---:|---:|")
    for model, pr, mode, med, first, sp in rows:
        print(f"| {model} | {pr} | {mode} | {med * 1e3:.0f} | {first:.1f} | {sp:.2f}x |")
    print()
    for model, pr, mode, _, first, sp in rows:
        if mode == "compiled":
            print(f"goal: {model} {pr} compiled BPTT step speed-up >= 1.10x: {sp:.2f}x "
                  f"({'MET' if sp >= 1.10 else 'NOT MET'}); compilation {first:.0f} s")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
