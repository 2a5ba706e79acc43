"""A real snnkd plugin for the tests: a model, a method, a dataset and a trainer, written as
a package with entry points (installed with pip --target into a test folder) or as a plain
module for ``--plugin``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_CODE = '''"""A user's own model, method, dataset and trainer for snnkd ({suffix})."""

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from snnkd.data import DatasetInfo, register_dataset
from snnkd.methods.base import Method, MethodOutput, register_method
from snnkd.models.registry import register_model
from snnkd.models.resnet import CifarResNet
from snnkd.train.trainers import bptt_step, register_trainer


@register_model
def {prefix}_net(act_layer, num_classes, in_chans, img_size):
    return CifarResNet([1], [8], 8, act_layer, num_classes, in_chans)


@register_method
class HalfCE(Method):
    name = "{prefix}_half_ce"
    needs_teacher = False
    default_trainer = "{prefix}_bptt"

    def __init__(self, student, teacher, weight: float = 0.5) -> None:
        super().__init__(student, teacher)
        self.weight = float(weight)

    def forward(self, student, teacher, x, y):
        logits = student(x)
        return MethodOutput(logits, {{"ce": self.weight * F.cross_entropy(logits, y)}})


@register_trainer("{prefix}_bptt", ddp_safe=True)
def {prefix}_step(student, teacher, method, x, y):
    return bptt_step(student, teacher, method, x, y)


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.2
    for k in range(4):  # class k lights up quadrant k
        r, c = divmod(k, 2)
        x[y == k, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 0.8
    return TensorDataset(x, y)


@register_dataset(DatasetInfo("{prefix}_blobs", 4, 1, 8, (0.3,), (0.4,), "none (generated)"))
def _splits(root, t_train, t_test, download):
    train = _blobs(96, 0)
    return train, train, _blobs(32, 1)
'''

PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "snnkd-demo-plugin"
version = "0.1.0"

[tool.setuptools]
packages = ["snnkd_demo"]

[project.entry-points."snnkd.models"]
demo = "snnkd_demo.registrations"
[project.entry-points."snnkd.methods"]
demo = "snnkd_demo.registrations"
[project.entry-points."snnkd.datasets"]
demo = "snnkd_demo.registrations"
[project.entry-points."snnkd.trainers"]
demo = "snnkd_demo.registrations"
"""


def install_entry_point_plugin(base: Path) -> Path:
    """Build the plugin package under ``base/src`` and pip-install it into ``base/site`` (returned)."""
    src, site = base / "src", base / "site"
    (src / "snnkd_demo").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "snnkd_demo" / "__init__.py").write_text("")
    (src / "snnkd_demo" / "registrations.py").write_text(PLUGIN_CODE.format(prefix="demo", suffix="entry points"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True, capture_output=True, timeout=300)
    return site


def write_module_plugin(base: Path) -> Path:
    """A plain module ``my_snnkd_plugin`` (no entry points) in ``base``, for ``--plugin``."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "my_snnkd_plugin.py").write_text(PLUGIN_CODE.format(prefix="mine", suffix="--plugin"))
    return base


def snnkd(*args: str, path: Path | None = None, cwd: Path | None = None, timeout: int = 300,
          env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m snnkd ARGS`` with ``path`` on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "SNNKD_PLUGINS"}
    env.update(env_extra or {})
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "snnkd", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
