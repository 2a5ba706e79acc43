"""Optional ``torch.compile`` of the graph-free neuron loops (``--compile-neurons``, issue 12).

The loops over ``T`` in :func:`~snnkd.neurons.eligibility.record_steps` (the rate trainer's
spike pass) and in the fused BPTT kernel's forward are chains of small elementwise ops on
``[B, C, H, W]`` tensors: eager PyTorch runs each as its own memory pass (and a mixed
bf16/fp32 op at a fraction of the fp32 speed).  Inductor fuses the whole loop into one pass.
Each loop has two forms over the same step function
(:func:`~snnkd.neurons.equation.neuron_step`, so the equation is still written once): the
in-place form over preallocated ``[T, ...]`` buffers, fastest eager, and a buffer-free
step-by-step form, which is what inductor fuses best (:func:`compilable` takes both; tests
compare them for several neuron settings).

Measured (2026-12-04, torch 2.14.1, 1 thread): ``record_steps`` on bf16 inputs
``[4, 16, 64, 32, 32]`` 26.0 -> 2.2 ms (7.2 ms compiling the in-place eager form), spikes and
rates identical, eligibility within 2.4e-7.  Whole training step (``benchmarks/train_step.py``,
ResNet-18, batch 16, T = 4, 1 thread, 2026-12-04): rate trainer 636 -> 465 ms in bf16 (2.65x ->
1.94x the ANN step) and 1102 -> 997 ms in fp32; BPTT 928 -> 823 ms in bf16, 1772 -> 1697 ms in
fp32.  Compiling the whole model instead was slower (``benchmarks/compile.py``: 0.81x fp32, 0.02x bf16), which is why
only these loops are compiled.

Compilation happens once per process and neuron setting (``dynamic=True``: one graph
serves every layer's shape), about 20-30 s on these CPUs; inductor's CPU backend needs a
C++ compiler, so :func:`use_compiled_neurons` refuses with one line when none is found.
Off (the default), nothing is compiled and nothing from ``torch._dynamo`` is imported.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from snnkd.errors import SnnkdError

F = TypeVar("F", bound=Callable)

_STATE = {"on": False}


def compiled_neurons_enabled() -> bool:
    """Whether the neuron loops currently run compiled."""
    return _STATE["on"]


def check_compiler(device_type: str = "cpu") -> None:
    """Raise :class:`SnnkdError` unless torch.compile can build kernels for ``device_type``:
    a C++ compiler on PATH (inductor's CPU backend, and the host side everywhere) and, for
    CUDA, Triton."""
    if not _compiler_found(os.environ.get("CXX", "")):
        raise SnnkdError("--compile-neurons needs a C++ compiler (g++ or clang++, or $CXX) for torch.compile; "
                         "none was found on PATH")
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise SnnkdError("--compile-neurons on CUDA needs Triton for torch.compile; it is not installed")


@functools.lru_cache(maxsize=8)
def _compiler_found(cxx: str) -> bool:
    return any(c and shutil.which(c) for c in (cxx, "g++", "c++", "clang++"))


@contextmanager
def use_compiled_neurons(on: bool = True) -> Iterator[None]:
    """Within the block, the neuron loops marked :func:`compilable` run through ``torch.compile``."""
    if on:
        check_compiler()
    before = _STATE["on"]
    _STATE["on"] = on
    try:
        yield
    finally:
        _STATE["on"] = before


def compilable(fn: F, compiled_form: Callable | None = None) -> F:
    """Mark a graph-free neuron loop: ``fn`` normally; inside :func:`use_compiled_neurons`,
    ``torch.compile(compiled_form or fn, dynamic=True)`` (compiled on first use).
    ``compiled_form``: the same computation written for inductor to fuse (no buffers, no
    in-place ops) where the fastest eager form is not the fastest compiled one."""
    cache: dict[str, Callable] = {}

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not _STATE["on"]:
            return fn(*args, **kwargs)
        if "fn" not in cache:
            import torch
            import torch._dynamo

            # one graph per (T, dtype, neuron setting, grad or not): the benchmark alone needs
            # 16, more than the default limit of 8, after which dynamo would fall back to eager
            conf = torch._dynamo.config
            conf.recompile_limit = max(conf.recompile_limit, 64)
            cache["fn"] = torch.compile(compiled_form or fn, dynamic=True)
        return cache["fn"](*args, **kwargs)

    return run  # type: ignore[return-value]
