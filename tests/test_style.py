"""The code style the project is kept in: ``ruff check`` (rules in pyproject.toml) over every
Python file and ``snakefmt --check`` over the Snakefile and workflow/ (``snakemake --lint``
is tests/test_workflow.py::test_lint_clean).  Run by the suite, so CI enforces them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (it is in the 'test' extra: bash scripts/setup.sh)")
    return str(path)


def test_ruff_check_is_clean():
    out = subprocess.run([tool("ruff"), "check", "--no-cache", "--output-format", "concise", "."], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_snakefmt_check_is_clean():
    out = subprocess.run([tool("snakefmt"), "--check", "Snakefile", "workflow"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
