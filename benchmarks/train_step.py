"""Training-step benchmark: ANN vs our SNN (BPTT, rate) vs spikingjelly 2.0 and snntorch 1.0.

    python benchmarks/train_step.py            # full run (ResNet-18 + small net, T = 1 2 4 8)
    python benchmarks/train_step.py --quick    # small net only, T = 1 4, fewer steps
    python benchmarks/train_step.py --precision fp32 bf16   # (default) both precisions

Precision (``--precision``, snnkd.train.trainers.Precision): every framework's step runs
under the same autocast of the same precision (the peers' neurons see what ours see);
each configuration is ``(framework, T, precision)`` and every ratio compares equal precisions.

Every configuration is the *same* network (our CIFAR ResNet-18, or the small
``resnet_tiny``, on 3x32x32 input, 10 classes), the same batch, seed, input and thread
count; only the activation differs: ReLU (``ann``), our :class:`SpikingNeuron` trained
with ``bptt`` or ``rate`` (``bptt_c``, ``rate_c``: the same with ``--compile-neurons``, the
neuron loops through torch.compile; compiled in the untimed warm-up round), spikingjelly's
multi-step ``IFNode``/``LIFNode`` (``sj``,
CPU registered ops, no cupy) and snntorch's ``Leaky`` looped over ``T`` (``snntorch``),
each in the same folded ``[T*B, ...]`` layout.  A step is forward, cross-entropy,
backward and an SGD step.  Neurons: IF, threshold 1, hard reset to 0 with detached
reset, arctan surrogate ``alpha = 2`` (``--neuron lif``: LIF ``beta = 0.5``, soft reset).

Timing: one process per network holds every framework and runs their steps interleaved
(one step of each configuration in turn, alternating the order), so load changes on a
shared machine hit all of them alike; the median over ``--steps`` is reported.
Memory: each configuration runs again in its own process for a clean peak RSS.  Figures:
samples/s, autograd saved-activation memory (bytes of the unique storages packed by
``saved_tensors_hooks`` in one step, parameters excluded) and peak RSS (``ru_maxrss``),
each also as a ratio to the ANN and to spikingjelly at the same ``T``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FRAMEWORKS = ("ann", "bptt", "bptt_c", "rate", "rate_c", "sj", "snntorch")
OURS = ("bptt", "bptt_c", "rate", "rate_c")  # *_c: the same with --compile-neurons


# --------------------------------------------------------------------------- shared by the A/B benchmarks
def step_parser(doc: str | None, *model_flags: str, **model_option) -> argparse.ArgumentParser:
    """The command line of a one-process A/B step benchmark (``channels_last.py``,
    ``compile.py``): the model option (``model_flags``, ``model_option`` as for
    ``add_argument``), then ``--T``, ``--batch``, ``--threads``, ``--steps`` and ``--precision``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(*model_flags, **model_option)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration (median)")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    return ap


def interleaved_times(configs: list[tuple], steps: int, step, progress) -> tuple[dict, dict]:
    """Time ``step(*config)`` for every configuration: one untimed warm-up round, then
    ``steps`` timed rounds, a step of each configuration in turn with the order alternating
    (load changes on a shared machine hit all alike).  After each round ``progress(round)``
    (0 = warm-up) gives the line printed to stderr.  Returns ``({config: [seconds of each
    timed step]}, {config: seconds of its warm-up step})``."""
    times: dict[tuple, list[float]] = {c: [] for c in configs}
    warm: dict[tuple, float] = {}
    for rep in range(1 + steps):
        for c in (configs if rep % 2 == 0 else configs[::-1]):
            t0 = time.perf_counter()
            step(*c)
            if rep:
                times[c].append(time.perf_counter() - t0)
            else:
                warm[c] = time.perf_counter() - t0
        print(progress(rep), file=sys.stderr, flush=True)
    return times, warm


# --------------------------------------------------------------------------- worker
def _peer_act(fw: str, neuron: str, T: int):
    """Factory for spikingjelly / snntorch neurons in our folded ``[T*B, ...]`` layout
    (``self.T`` is set by :func:`_set_T`)."""
    import torch
    from torch import nn

    if fw == "sj":
        from spikingjelly.activation_based import neuron as sjn
        from spikingjelly.activation_based import surrogate as sjs

        def make_node():
            if neuron == "if":
                return sjn.IFNode(v_threshold=1.0, v_reset=0.0, surrogate_function=sjs.ATan(alpha=2.0),
                                  detach_reset=True, step_mode="m")
            return sjn.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=None,
                               surrogate_function=sjs.ATan(alpha=2.0), detach_reset=True, step_mode="m")

        class SJAct(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.node = make_node()
                self.T = T

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                self.node.reset()
                return self.node(x.reshape(self.T, -1, *x.shape[1:])).reshape(x.shape)

        return SJAct

    import snntorch as snn
    from snntorch import surrogate as sts

    class SnnTorchAct(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lif = snn.Leaky(beta=1.0 if neuron == "if" else 0.5, threshold=1.0,
                                 spike_grad=sts.atan(alpha=2.0),
                                 reset_mechanism="zero" if neuron == "if" else "subtract")
            self.T = T

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            xs = x.reshape(self.T, -1, *x.shape[1:])
            mem = torch.zeros_like(xs[0])
            out = []
            for t in range(self.T):
                spk, mem = self.lif(xs[t], mem)
                out.append(spk)
            return torch.stack(out).reshape(x.shape)

    return SnnTorchAct


def _build(model: str, fw: str, neuron: str, T: int):
    from snnkd.models import create_model
    from snnkd.models.registry import MODELS
    from snnkd.neurons import NeuronConfig

    if fw == "ann":
        return create_model(model, None, 10, 3, 32)
    if fw in OURS:
        cfg = NeuronConfig() if neuron == "if" else NeuronConfig(kind="lif", decay=0.5, reset="soft")
        return create_model(model, cfg, 10, 3, 32, T)
    net = MODELS[model](act_layer=_peer_act(fw, neuron, T), num_classes=10, in_chans=3, img_size=32)
    net.arch, net.in_chans, net.img_size = model, 3, 32
    return _set_T(net, fw, T)


def _set_T(net, fw: str, T: int):
    """Our models: ``set_T``; peers: the encoder repeats the input ``T`` times (``_steps.T``) and
    every wrapped neuron unfolds with the same ``T``."""
    if fw in OURS:
        return net.set_T(T)
    if fw != "ann":
        net._steps.T = T  # the model's TimeSteps; set_T refuses a net without snnkd neurons
        for m in net.modules():
            if type(m).__name__ in ("SJAct", "SnnTorchAct"):
                m.T = T
    return net


def _setup(spec: dict, fw: str, T: int):
    """Model, method, trainer step function and optimizer for one framework."""
    import torch

    from snnkd.methods import build_method
    from snnkd.train.trainers import get_trainer

    torch.manual_seed(0)
    net = _build(spec["model"], fw, spec["neuron"], T)
    net.train()
    method = build_method("none", net, None, {})
    step_fn = get_trainer("rate" if fw.startswith("rate") else "bptt")
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    return net, method, step_fn, opt


def _data(batch: int):
    import torch

    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)


def _train_step(setup, x, y, precision: str = "fp32", compiled: bool = False) -> float:
    """One step; ``compiled``: inside :func:`~snnkd.neurons.compiled.use_compiled_neurons`
    (what ``--compile-neurons`` does), else eager."""
    from snnkd.neurons.compiled import use_compiled_neurons
    from snnkd.train.trainers import Precision, use_precision

    net, method, step_fn, opt = setup
    prec = Precision(precision, x.device)
    opt.zero_grad(set_to_none=True)
    with use_precision(prec), use_compiled_neurons(compiled):
        out = step_fn(net, None, method, x, y)
    prec.step(opt)
    return out.loss.item()


def timing_worker(spec: dict) -> dict:
    """Step times of every (framework, T) of one model in one process, interleaved step
    by step so that load changes hit every configuration alike; medians."""
    import torch

    torch.set_num_threads(spec["threads"])
    x, y = _data(spec["batch"])
    setups = {fw: _setup(spec, fw, 1) for fw in spec["frameworks"]}
    configs = [(fw, T, pr) for pr in spec["precisions"] for T in spec["Ts"] for fw in spec["frameworks"]
               if fw != "ann" or T == spec["Ts"][0]]
    times: dict[str, list[float]] = {f"{fw}:{T if fw != 'ann' else 1}:{pr}": [] for fw, T, pr in configs}
    for rep in range(spec["warmup"] + spec["steps"]):
        order = configs if rep % 2 == 0 else configs[::-1]
        for fw, T, pr in order:
            _set_T(setups[fw][0], fw, 1 if fw == "ann" else T)
            t0 = time.perf_counter()
            _train_step(setups[fw], x, y, pr, fw.endswith("_c"))  # the warm-up round compiles *_c
            if rep >= spec["warmup"]:
                times[f"{fw}:{T if fw != 'ann' else 1}:{pr}"].append(time.perf_counter() - t0)
        print(f"  {spec['model']}: repetition {rep + 1}/{spec['warmup'] + spec['steps']}", file=sys.stderr, flush=True)
    return {k: statistics.median(v) for k, v in times.items()}


def memory_worker(spec: dict) -> dict:
    """Saved activations and peak RSS of one configuration (its own process)."""
    import resource

    import torch

    torch.set_num_threads(spec["threads"])
    x, y = _data(spec["batch"])
    setup = _setup(spec, spec["fw"], spec["T"])
    params = {p.untyped_storage().data_ptr() for p in setup[0].parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _train_step(setup, x, y, spec["precision"], spec["fw"].endswith("_c"))
    return {"saved_bytes": sum(seen.values()), "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


# --------------------------------------------------------------------------- driver
def _run(mode: str, spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    p = subprocess.run([sys.executable, __file__, "--worker", mode, json.dumps(spec)], stdout=subprocess.PIPE,
                       text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{mode} worker for {spec} failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _fmt_ratio(v: float, ref: float | None) -> str:
    return f"{v / ref:6.2f}x" if ref else "      -"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small net only, T = 1 and 4, few steps")
    ap.add_argument("--models", nargs="+", default=None, help="default: resnet18 resnet_tiny")
    ap.add_argument("--T", nargs="+", type=int, default=None, help="default: 1 2 4 8")
    ap.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per configuration (median); "
                    "default 4 for resnet18, 16 for the small net, 6 with --quick")
    ap.add_argument("--neuron", choices=["if", "lif"], default="if")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"],
                    help="precisions measured (fp16: CUDA only)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-configuration memory subprocesses")
    ap.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = timing_worker if a.worker[0] == "timing" else memory_worker
        print(json.dumps(fn(json.loads(a.worker[1]))))
        return
    models = a.models or (["resnet_tiny"] if a.quick else ["resnet18", "resnet_tiny"])
    Ts = a.T or ([1, 4] if a.quick else [1, 2, 4, 8])
    import torch

    print(f"torch {torch.__version__}, {a.threads} threads, batch {a.batch}, input 3x32x32, 10 classes, "
          f"neuron {a.neuron}, SGD; python {sys.version.split()[0]}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    t_start = time.time()
    med: dict[tuple, dict] = {}
    for model in models:
        steps = a.steps or (6 if a.quick else (4 if model == "resnet18" else 16))
        base = {"model": model, "batch": a.batch, "threads": a.threads, "neuron": a.neuron}
        times = _run("timing", {**base, "frameworks": a.frameworks, "Ts": Ts, "steps": steps, "warmup": 1,
                                "precisions": a.precision})
        for key, sec in times.items():
            fw, T, pr = key.split(":")
            med[(model, fw, int(T), pr)] = {"step_s": sec, "saved_bytes": float("nan"), "peak_rss": float("nan")}
        if not a.no_memory:
            for (m, fw, T, pr), rec in med.items():
                if m == model:
                    rec.update(_run("memory", {**base, "fw": fw, "T": T, "precision": pr}))
        print(f"{model} done ({time.time() - t_start:.0f}s)", file=sys.stderr, flush=True)
    for model in models:
        for pr in a.precision:
            _table(med, model, a, Ts, pr)
    print("\n(samples/s ratios > 1: faster than the reference; memory ratios < 1: less memory than the reference;"
          "\n saved MB: autograd saved tensors of one step, parameters excluded; RSS: peak resident set of a"
          "\n process that ran that configuration alone)")
    _goals(med, models, Ts, a.precision)
    print(f"\ntotal time {time.time() - t_start:.0f}s, load average at the end {os.getloadavg()[0]:.1f}")


def _table(med: dict, model: str, a: argparse.Namespace, Ts: list[int], pr: str) -> None:
    ann = med.get((model, "ann", 1, pr))
    print(f"\n== {model} (batch {a.batch}, {a.threads} threads, precision {pr}) ==")
    print(f"{'framework':9s} {'prec':4s} {'T':>2s} {'samples/s':>10s} {'vsANN':>7s} {'vsSJ':>7s} {'step ms':>8s}"
          f" {'saved MB':>9s} {'vsANN':>7s} {'vsSJ':>7s} {'RSS MB':>8s} {'vsANN':>7s} {'vsSJ':>7s}")
    for fw in a.frameworks:
        for T in ([1] if fw == "ann" else Ts):
            m = med[(model, fw, T, pr)]
            sj = med.get((model, "sj", T, pr))
            sps = a.batch / m["step_s"]

            def r(key: str, ref: dict | None, m: dict = m) -> str:
                return _fmt_ratio(m[key], ref[key] if ref else None)
            print(f"{fw:9s} {pr:4s} {T:2d} {sps:10.2f} {_fmt_ratio(sps, a.batch / ann['step_s'] if ann else None)}"
                  f" {_fmt_ratio(sps, a.batch / sj['step_s'] if sj else None)} {m['step_s'] * 1e3:8.1f}"
                  f" {m['saved_bytes'] / 2**20:9.1f} {r('saved_bytes', ann)} {r('saved_bytes', sj)}"
                  f" {m['peak_rss'] / 2**20:8.1f} {r('peak_rss', ann)} {r('peak_rss', sj)}")


def _goals(med: dict, models: list[str], Ts: list[int], precisions: list[str]) -> None:
    """The issue-12 goals, each printed MET / NOT MET (ratios within this one run)."""
    print("\n== goals ==")

    def line(model: str, text: str, value: float, ok: bool) -> None:
        print(f"[{model}] {text}: {value:.2f}x ({'MET' if ok else 'NOT MET'})")

    for model in models:
        def get(fw, T, pr, model=model):
            return med.get((model, fw, T, pr))
        for bp, how in (("bptt", ""), ("bptt_c", " (--compile-neurons)")):
            if 4 in Ts and get(bp, 4, "bf16") and get("bptt", 4, "fp32"):
                sp = get("bptt", 4, "fp32")["step_s"] / get(bp, 4, "bf16")["step_s"]
                line(model, f"bf16 BPTT step{how} at T=4 vs our fp32 step, speed-up (goal >= 1.8x)", sp, sp >= 1.8)
        for pr in precisions:
            for bp, how in (("bptt", ""), ("bptt_c", " (--compile-neurons)")):
                for peer, label in (("sj", "spikingjelly"), ("snntorch", "snntorch")):
                    if 4 in Ts and get(bp, 4, pr) and get(peer, 4, pr):
                        sp = get(peer, 4, pr)["step_s"] / get(bp, 4, pr)["step_s"]
                        line(model, f"{pr} BPTT step{how} at T=4 vs {label}, speed-up (goal >= 1.1x)", sp, sp >= 1.1)
            for rt, how in (("rate", ""), ("rate_c", " (--compile-neurons)")):
                if 4 in Ts and get(rt, 4, pr) and get("ann", 1, pr):
                    r = get(rt, 4, pr)["step_s"] / get("ann", 1, pr)["step_s"]
                    line(model, f"{pr} rate step{how} at T=4 vs ANN step, time (goal <= 2.4x)", r, r <= 2.4)
                if 8 in Ts and 1 in Ts and get(rt, 8, pr) and get(rt, 1, pr) \
                        and get(rt, 1, pr)["saved_bytes"] > 0:  # NaN (--no-memory): not measured, no line
                    r = get(rt, 8, pr)["saved_bytes"] / get(rt, 1, pr)["saved_bytes"]
                    line(model, f"{pr} rate{how} saved activations T=8 vs T=1 (goal <= 1.2x)", r, r <= 1.2)

if __name__ == "__main__":
    main()
