"""``snnkd pretrain``: train the ANN teacher with cross entropy."""

from __future__ import annotations

import argparse
from pathlib import Path

from snnkd.cli.common import add_config_option, add_data_options, add_fit_options
from snnkd.cli.formatting import examples
from snnkd.cli.training import check_training_paths, load_data, train_and_save
from snnkd.methods import build_method
from snnkd.models import list_models
from snnkd.runtime import build, model_meta
from snnkd.train.loop import seed_everything


def add_parser(sub) -> None:
    p = sub.add_parser("pretrain", help="train an ANN teacher",
                       description="Train an ANN teacher (ReLU) with cross entropy; writes OUT/model.pt, "
                                   "OUT/metrics.jsonl and OUT/config.yaml.",
                       epilog=examples("snnkd pretrain --model vgg_tiny --dataset digits --epochs 20 --out runs/teacher",
                                       "snnkd pretrain --config teacher.yaml --seed 1 --out runs/teacher_s1  # YAML options"))
    add_config_option(p)
    p.add_argument("--model", required=False, default=None, help=f"architecture: {', '.join(list_models())}")
    p.add_argument("--out", type=Path, required=False, default=None, help="output directory")
    add_data_options(p)
    add_fit_options(p)
    p.set_defaults(func=run, subparser=p)


def run(a: argparse.Namespace) -> int:
    from snnkd.errors import SnnkdError
    if not a.model or not a.out:
        raise SnnkdError("pretrain needs --model and --out")
    check_training_paths(a)  # every output location, before any data is loaded
    data = load_data(a)
    info = data[0]
    seed_everything(a.seed)
    model = build(a.model, None, info.num_classes, info.in_chans, info.img_size)
    method = build_method("none", model, None, {})
    train_and_save(a, model, None, method, data, model_meta(model, a.dataset, None))
    return 0
