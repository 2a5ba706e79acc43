"""``snnkd distill``: train an SNN student, guided by a frozen ANN teacher."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snnkd.cli.common import (
    add_config_option,
    add_data_options,
    add_fit_options,
    add_neuron_options,
    neuron_from_args,
    parse_params,
)
from snnkd.cli.formatting import examples
from snnkd.cli.training import check_training_paths, load_data, train_and_save
from snnkd.errors import SnnkdError
from snnkd.methods import build_method, freeze, get_method, list_methods
from snnkd.models import list_models
from snnkd.runtime import build, load_model, model_meta
from snnkd.train.loop import seed_everything
from snnkd.train.trainers import get_trainer


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help="train an SNN student from an ANN teacher",
                       description="Train an SNN student with a distillation method; writes OUT/model.pt, "
                                   "OUT/metrics.jsonl (every loss term per epoch) and OUT/config.yaml.",
                       epilog=examples("snnkd distill --student vgg_tiny --teacher runs/teacher/model.pt --method logit "
                                       "--param tau=4 --out runs/logit",
                                       "snnkd distill --student vgg_tiny --dataset digits --method none --T 4 "
                                       "--out runs/baseline",
                                       "snnkd methods    # every method with its hyperparameters"))
    add_config_option(p)
    p.add_argument("--student", default=None, help=f"student architecture: {', '.join(list_models())}")
    p.add_argument("--teacher", type=Path, default=None, help="teacher model.pt from 'snnkd pretrain' "
                   "(not needed for method none)")
    p.add_argument("--method", default="none", help=f"distillation method: {', '.join(list_methods())}")
    p.add_argument("--param", action="append", default=None, metavar="KEY=VALUE",
                   help="a method hyperparameter (repeatable), e.g. --param tau=4 --param alpha=0.9")
    p.add_argument("--trainer", default=None,
                   help="how gradients are computed: bptt or rate (default: the method's preference, else bptt)")
    p.add_argument("--rate-grad", choices=["reference", "bptt"], default="reference",
                   help="rate trainer: gradient scale; reference: BPTT's / T as in the rate-based reference "
                        "code (default), bptt: BPTT-sized")
    p.add_argument("--out", type=Path, default=None, help="output directory")
    add_data_options(p)
    for act in p._actions:  # distill can take the dataset from the teacher checkpoint
        if act.dest == "dataset":
            act.help += " (default: the teacher's dataset)"
    add_fit_options(p)
    add_neuron_options(p)
    p.set_defaults(func=run, subparser=p)


def run(a: argparse.Namespace) -> int:
    if not a.student or not a.out:
        raise SnnkdError("distill needs --student and --out")
    check_training_paths(a)  # every output location, before the teacher or any data is loaded
    cls = get_method(a.method)
    trainer = a.trainer or getattr(cls, "default_trainer", "bptt")
    get_trainer(trainer)
    params = parse_params(a.param)
    teacher = None
    if a.teacher is not None:
        if not cls.needs_teacher:
            print(f"snnkd: warning: --method {a.method} trains without a teacher; --teacher {a.teacher} is only "
                  "read for its dataset, not used in the loss", file=sys.stderr)
        teacher, tmeta = load_model(a.teacher)
        if tmeta["kind"] != "ann":
            raise SnnkdError(f"{a.teacher} holds an SNN; a teacher must be an ANN from 'snnkd pretrain'")
        if a.dataset and tmeta["dataset"] != a.dataset:
            raise SnnkdError(f"teacher was trained on {tmeta['dataset']!r}, not {a.dataset!r}")
        if not a.dataset:
            a.dataset = tmeta["dataset"]
            print(f"snnkd: note: no --dataset given; using the teacher's dataset {a.dataset!r}", file=sys.stderr)
        freeze(teacher)
    elif cls.needs_teacher:
        raise SnnkdError(f"method {a.method!r} needs a teacher (--teacher)")
    data = load_data(a)
    info = data[0]
    seed_everything(a.seed)
    neuron = neuron_from_args(a)
    student = build(a.student, neuron, info.num_classes, info.in_chans, info.img_size, a.T, a.encoding, a.dataset)
    method = build_method(a.method, student, teacher, params)
    meta = model_meta(student, a.dataset, neuron, a.encoding)
    meta.update({"method": a.method, "trainer": trainer, "params": params})
    train_and_save(a, student, teacher, method, data, meta, trainer)
    return 0
