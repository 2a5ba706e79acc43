"""snnkd.export.loihi.compat: the Python 3.11 fix for Lava is needed, works, and fails loudly."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from snnkd.export.loihi import compat as lava_compat

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(importlib.util.find_spec("lava") is None, reason="Lava not installed")]

ROOT = Path(__file__).resolve().parent.parent


def _py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, cwd=ROOT)


def test_patch_changes_exactly_the_decorator() -> None:
    path = Path(importlib.util.find_spec("lava").submodule_search_locations[0]) / "magma/compiler/var_model.py"
    src = path.read_text()
    patched = lava_compat.patch_source(src)
    assert patched.count(lava_compat.NEW) == 1 and lava_compat.OLD not in patched
    assert len(patched) - len(src) == len("(unsafe_hash=True)")


def test_unknown_source_fails_loudly() -> None:
    with pytest.raises(lava_compat.LavaCompatError, match="expected exactly one"):
        lava_compat.patch_source("@dataclass(frozen=True)\nclass ByteEncoder:\n    pass\n")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the failure exists only on Python >= 3.11")
def test_lava_imports_only_with_the_hook() -> None:
    bare = _py("import lava.magma.compiler.var_model")
    assert bare.returncode != 0 and "mutable default" in bare.stderr
    fixed = _py("from snnkd.export.loihi import compat as lava_compat; lava_compat.install()\n"
                "import lava.magma.compiler.var_model as vm\n"
                "a, b = vm.CoreEncoder(), vm.CoreEncoder()\n"
                "assert hash(vm.ByteEncoder()) == hash(vm.ByteEncoder()) and a.x == b.x\n"
                "from lava.magma.core.run_configs import Loihi2SimCfg; Loihi2SimCfg(select_tag='fixed_pt')\n"
                "print('ok')")
    assert fixed.returncode == 0 and fixed.stdout.strip() == "ok", fixed.stderr[-2000:]


def test_install_after_import_is_refused() -> None:
    r = _py("from snnkd.export.loihi import compat as lava_compat; lava_compat.install()\n"
            "import lava.magma.compiler.var_model\n"
            "import sys; sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_Finder']\n"
            "lava_compat.install()")
    assert r.returncode != 0 and "imported before" in r.stderr
