"""Options shared by subcommands, YAML config files, and the resolved-config record.

Every option can also come from ``--config FILE.yaml`` whose keys are the option names
with ``_`` for ``-`` (``batch_size: 64``); options given on the command line win.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from snnkd import io
from snnkd.data import list_datasets
from snnkd.encoding import ENCODERS
from snnkd.errors import SnnkdError
from snnkd.neurons import SURROGATES, NeuronConfig
from snnkd.safeload import yaml_loads
from snnkd.train.trainers import PRECISIONS


def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def positive_float(s: str) -> float:
    v = float(s)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {s}")
    return v


def non_negative_int(s: str) -> int:
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {s}")
    return v


def non_negative_float(s: str) -> float:
    v = float(s)
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {s}")
    return v


def fraction(s: str) -> float:
    """A number in ``[0, 1)``, e.g. the share of the training set held out."""
    v = float(s)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {s}")
    return v


def device_name(s: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; CUDA only where a GPU is visible."""
    if s == "auto":
        return s
    try:
        dev = torch.device(s)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown device {s!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"unsupported device {s!r}; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{s!r} asked for CUDA, but no GPU is visible")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{s!r}: only {torch.cuda.device_count()} GPU(s) visible")
    return s


def add_config_option(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--config FILE.yaml``; ``help`` replaces the long help text (the model-reading commands
    give the short one)."""
    p.add_argument("--config", type=Path, help=help or "YAML file of option values (keys: option names with '_'); "
                   "command-line options override it")


def add_model_data_options(p: argparse.ArgumentParser, limit_test: str | None = None) -> None:
    """``--data-root`` and ``--download`` of the commands that read a saved model's dataset (the
    dataset's name comes from the model, so there is no ``--dataset``); with ``limit_test`` (its
    help text) also ``--limit-test``, a fixed subset of the test split."""
    p.add_argument("--data-root", type=Path, default=Path("data"), help="where datasets live")
    p.add_argument("--download", action="store_true", help="download the dataset if absent")
    if limit_test is not None:
        p.add_argument("--limit-test", type=positive_int, default=None, help=limit_test)


def add_seed_option(p: argparse.ArgumentParser, help: str = "seed for stochastic encodings") -> None:
    """``--seed`` (default 0) of the commands that run a saved model."""
    p.add_argument("--seed", type=int, default=0, help=help)


def add_data_options(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=False, default=None,
                   help=f"dataset name: {', '.join(list_datasets())}")
    g.add_argument("--data-root", type=Path, default=Path("data"), help="where datasets live (default: data)")
    g.add_argument("--download", action="store_true", help="download a torchvision dataset if absent (needs internet)")
    g.add_argument("--val-fraction", type=fraction, default=0.1,
                   help="fixed fraction of the training set held out for validation")
    g.add_argument("--limit-train", type=positive_int, default=None, help="use only this many training samples (quick runs)")
    g.add_argument("--limit-test", type=positive_int, default=None, help="use only this many test samples")
    g.add_argument("--autoaugment", action="store_true", help="CIFAR: add AutoAugment to the training transforms")
    g.add_argument("--cutout", action="store_true", help="CIFAR: add Cutout (one 16x16 erased square)")


def add_fit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=10, help="number of epochs (cosine schedule over them)")
    g.add_argument("--batch-size", type=positive_int, default=64,
                   help="mini-batch size (per process under torchrun: the global batch is this x WORLD_SIZE)")
    g.add_argument("--lr", type=positive_float, default=0.1, help="initial learning rate")
    g.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd", help="SGD with momentum, or AdamW")
    g.add_argument("--momentum", type=non_negative_float, default=0.9, help="SGD momentum")
    g.add_argument("--weight-decay", type=non_negative_float, default=5e-4, help="weight decay")
    g.add_argument("--seed", type=int, default=0, help="seed for weights, data order and noise")
    g.add_argument("--device", type=device_name, default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    g.add_argument("--num-workers", type=non_negative_int, default=0, help="DataLoader worker processes")
    add_precision_option(g)
    g.add_argument("--compile-neurons", action="store_true",
                   help="run the neuron loops through torch.compile (needs a C++ compiler; 10-30 s to compile "
                        "once; ResNet-18 rate trainer step 2.65x -> 1.94x the ANN step in bf16, see README)")
    g.add_argument("--state", type=Path, default=None,
                   help="resumable training state (default: OUT/train_state.pt); removed after success")
    g.add_argument("--no-progress", action="store_true", help="no per-batch progress bar")
    g.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files to OUT/tensorboard/ each epoch (every loss term, "
                        "accuracies, learning rate, firing rate per layer)")
    g.add_argument("--no-decay-norm-bias", action="store_true",
                   help="no weight decay on BatchNorm parameters and biases (as the rate-based reference code)")


def add_precision_option(g) -> None:
    """``--precision``: the arithmetic of convolutions and linear layers (neurons and loss stay fp32)."""
    g.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                   help="fp32, bf16 (CPU and CUDA) or fp16 (CUDA, with loss scaling): convolutions and "
                        "linear layers compute in it; neuron state and the loss stay fp32")


def add_neuron_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("spiking neurons")
    g.add_argument("--T", type=positive_int, default=4, help="number of time steps")
    g.add_argument("--neuron", choices=["if", "lif"], default="if", help="neuron model")
    g.add_argument("--threshold", type=positive_float, default=1.0, help="firing threshold theta")
    g.add_argument("--decay", type=float, default=None, help="LIF leak as retention beta in v = beta v + x")
    g.add_argument("--tau", type=float, default=None, help="LIF leak as time constant (beta = 1 - 1/tau)")
    g.add_argument("--reset", choices=["hard", "soft"], default="hard", help="reset to 0, or subtract theta")
    g.add_argument("--no-detach-reset", action="store_true", help="let gradients flow through the reset")
    g.add_argument("--surrogate", choices=list(SURROGATES), default="atan", help="surrogate gradient shape")
    g.add_argument("--surrogate-width", type=positive_float, default=0.5, help="surrogate width w")
    g.add_argument("--encoding", choices=ENCODERS.names(), default="direct", help="input encoding over T")


def neuron_from_args(a: argparse.Namespace) -> NeuronConfig:
    decay = a.decay
    if a.neuron == "lif" and a.decay is None and a.tau is None:
        decay = 0.5
    try:
        return NeuronConfig(kind=a.neuron, threshold=a.threshold, decay=decay if a.neuron == "lif" else None,
                            tau=a.tau if a.neuron == "lif" else None, reset=a.reset,
                            detach_reset=not a.no_detach_reset, surrogate=a.surrogate, width=a.surrogate_width)
    except ValueError as e:
        raise SnnkdError(f"neuron options: {e}") from None


def config_tokens(parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """Turn a YAML mapping of option values into command-line tokens, so argparse checks
    every value exactly as it checks typed options (types, choices, bounds)."""
    data = io.read_yaml(path) or {}
    if not isinstance(data, dict):
        raise SnnkdError(f"{path}: expected a mapping of option names to values")
    actions = {a.dest: a for a in parser._actions
               if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))}
    tokens: list[str] = []
    for key, value in data.items():
        act = actions.get(key) if isinstance(key, str) else None
        if act is None or key == "config":
            raise SnnkdError(f"{path}: unknown option {key!r} for 'snnkd {parser.prog.split()[-1]}'")
        flag = act.option_strings[-1]
        if isinstance(act, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise SnnkdError(f"{path}: option {key!r} must be true or false")
            if value == isinstance(act, argparse._StoreTrueAction):
                tokens.append(flag)
        elif isinstance(act, argparse._AppendAction):
            items = value.items() if isinstance(value, dict) else value if isinstance(value, list) else [value]
            for item in items:  # a mapping's values are written back as YAML, which parse_params reads
                if item == "--":
                    raise SnnkdError(f"{path}: option {key!r}: '--' is not a usable value")
                tokens.append(f"{flag}={item[0]}={_yaml_flow(item[1])}" if isinstance(item, tuple)
                              else f"{flag}={item}")
        elif isinstance(value, (list, dict, bool)):
            raise SnnkdError(f"{path}: option {key!r} takes one value, not "
                             f"{'true/false' if isinstance(value, bool) else type(value).__name__}")
        elif str(value) == "--":  # argparse drops a bare '--' even inside '--flag=--'
            raise SnnkdError(f"{path}: option {key!r}: '--' is not a usable value")
        elif value is not None:
            tokens.append(f"{flag}={value}")  # one token, so a value starting with '-' stays a value
    return tokens


def _yaml_flow(value: Any) -> str:
    """``value`` as one line of YAML that ``yaml.safe_load`` turns back into ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True)
    return text[: -len("\n...\n")] if text.endswith("\n...\n") else text.rstrip("\n")


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["tau=4", "stages=[layer1]"]`` -> ``{"tau": 4, "stages": ["layer1"]}`` (YAML values)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise SnnkdError(f"--param expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            value = yaml_loads(v, f"--param {k}")  # no aliases, bounded nesting
        except SnnkdError:
            raise SnnkdError(f"--param {k}: cannot parse value {v!r}") from None
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(v.strip()):
            value = float(v)  # YAML 1.1 reads 1e-05 (JSON's and Python's spelling) as a string
        out[k.strip()] = value
    return out


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def resolved(args: argparse.Namespace) -> dict[str, Any]:
    """The options as run, for ``config.yaml`` beside the outputs."""
    out = {}
    for k, v in vars(args).items():
        if k in ("func", "config", "subparser"):
            continue
        out[k] = str(v) if isinstance(v, Path) else v
    return out
