"""Packaging: the top-level ``export/`` folder installs as ``snnkd.export`` (a setuptools
``package-dir`` mapping), the explicit package list in pyproject.toml names every package in
the tree, and a built wheel holds ``snnkd/export/...`` and no generic top-level ``export``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def tree_packages() -> set[str]:
    """Every package in the source tree, under the name it is installed as."""
    names = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "snnkd").rglob("__init__.py")}
    names |= {".".join(("snnkd",) + p.parent.relative_to(REPO).parts)
              for p in (REPO / "export").rglob("__init__.py")}
    return names


def test_package_list_names_every_package():
    assert set(PYPROJECT["packages"]) == tree_packages()
    assert PYPROJECT["package-dir"]["snnkd.export"] == "export"


def test_installed_name_is_snnkd_export(tmp_path):
    # outside the checkout, so that the working directory on sys.path cannot hide a missing mapping
    code = ("import importlib.util as u, snnkd.export.loihi.run as r; print(r.__file__); "
            "print(u.find_spec('export'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    path, spec = out.stdout.split()
    assert Path(path).resolve() == REPO / "export" / "loihi" / "run.py" and spec == "None"


@pytest.mark.slow
def test_wheel_layout(tmp_path):
    # build from a copy of the tracked files: setuptools writes build/ and *.egg-info into its source
    src = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("snnkd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "snnkd/export/loihi/run.py" in names and "snnkd/export/nir_export.py" in names
    assert "snnkd/resources/energy.yaml" in names
    assert not [n for n in names if n.startswith("export/")]
