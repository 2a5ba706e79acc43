"""The Python API: the README's example runs as written, keyword arguments become the
commands' own options (unknown names refused by name), and ``import snnkd`` stays light."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import snnkd
from snnkd.api import command_argv
from snnkd.cli.common import parse_params
from snnkd.errors import SnnkdError

REPO = Path(__file__).resolve().parents[1]
API = {"load_model", "pretrain", "distill", "evaluate", "count_ops", "price_energy", "test_inputs", "export"}


def readme_example() -> str:
    """The first ``python`` code block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README.md: no python code block under '## Python API'"
    return blocks[0]


@pytest.mark.slow
def test_readme_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    scope: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(readme_example(), "README.md (Python API)", "exec"), scope)
    printed = out.getvalue()
    assert (tmp_path / "runs/teacher/model.pt").is_file() and (tmp_path / "runs/logit/model.pt").is_file()
    assert (tmp_path / "runs/logit/metrics.jsonl").is_file() and (tmp_path / "runs/logit.nir").is_file()
    assert scope["student"] == Path("runs/logit/model.pt")
    meta = scope["meta"]
    assert meta["kind"] == "snn" and meta["method"] == "logit" and meta["params"] == {"tau": 4, "alpha": 0.9}
    assert meta["T"] == 2
    result = scope["result"]
    assert 0.0 <= result["accuracy"] <= 100.0 and result["test_samples"] == 100 and result["synops"] > 0
    assert scope["counts"].samples == 64 and scope["counts"].synops > 0
    assert scope["report"]["round_trip_equal"] is True and scope["report"]["test_samples"] == 64
    assert re.search(r"student: \d+\.\d% correct", printed)
    assert "uJ per sample" in printed and "NIR re-import spike agreement" in printed


def test_keywords_become_the_command_options() -> None:
    argv = command_argv("distill", {"student": "resnet_tiny", "teacher": Path("t/model.pt"), "method": "logit",
                                    "params": {"tau": 4, "stages": ["layer1", "layer2"], "name": "4"}, "T": 4,
                                    "limit_train": 300, "no_progress": True, "autoaugment": False, "lr": 0.05,
                                    "seed": -3, "dataset": None, "out": Path("runs/x")})
    assert argv == ["distill", "--student=resnet_tiny", "--teacher=t/model.pt", "--method=logit",
                    "--param=tau=4", "--param=stages=[layer1, layer2]", "--param=name='4'", "--T=4",
                    "--limit-train=300", "--no-progress", "--lr=0.05", "--seed=-3", "--out=runs/x"]
    params = [a.split("=", 1)[1] for a in argv if a.startswith("--param=")]
    assert parse_params(params) == {"tau": 4, "stages": ["layer1", "layer2"], "name": "4"}  # types survive
    assert command_argv("evaluate", {"noise": ["gaussian:0.1", "rotation"]}) == \
        ["evaluate", "--noise=gaussian:0.1", "--noise=rotation"]
    assert command_argv("distill", {"param": ["tau=4"]}) == ["distill", "--param=tau=4"]


def test_unknown_option_names_are_refused_by_name() -> None:
    with pytest.raises(SnnkdError, match=r"distill: unknown options 'bogus', 'limt_train' \(known: .*limit_train"):
        command_argv("distill", {"student": "resnet_tiny", "limt_train": 3, "bogus": 1})
    with pytest.raises(SnnkdError, match="unknown option 'help'"):
        command_argv("pretrain", {"help": True})
    with pytest.raises(SnnkdError, match="'no_progress' is a flag"):
        command_argv("pretrain", {"no_progress": "yes"})
    with pytest.raises(SnnkdError, match="'epochs' takes one value"):
        command_argv("pretrain", {"epochs": [1, 2]})
    with pytest.raises(SnnkdError, match="'--' is not a usable"):
        command_argv("pretrain", {"model": "--"})
    with pytest.raises(SnnkdError, match="not both"):
        command_argv("distill", {"param": ["tau=4"], "params": {"tau": 4}})


def test_bad_input_raises_snnkd_error_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(SnnkdError, match="--epochs: must be a positive integer, got 0"):
        snnkd.pretrain(model="resnet_tiny_wide", dataset="digits", epochs=0, out=out)
    with pytest.raises(SnnkdError, match="pretrain needs --model and --out"):
        snnkd.pretrain(dataset="digits", out=out)
    with pytest.raises(SnnkdError, match="unknown option 'studnet'"):
        snnkd.distill(studnet="resnet_tiny", out=out)
    with pytest.raises(SnnkdError, match="needs a teacher"):
        snnkd.distill(student="resnet_tiny", method="logit", dataset="digits", out=out)
    assert not out.exists()


def test_all_lists_the_api_and_every_name_resolves() -> None:
    assert API | {"SnnkdError"} <= set(snnkd.__all__)
    for name in snnkd.__all__:
        assert getattr(snnkd, name) is not None, name
    assert snnkd.SnnkdError is SnnkdError and snnkd.export.to_nir and snnkd.export.to_onnx and snnkd.export.to_lava
    assert set(snnkd.export.__all__) == {"to_nir", "to_onnx", "to_lava"}
    with pytest.raises(AttributeError):
        snnkd.no_such_name  # noqa: B018


def test_import_snnkd_and_snnkd_export_do_not_import_torch() -> None:
    code = "import sys, snnkd, snnkd.export; dir(snnkd); assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_evaluate_of_a_path_and_of_the_model_in_memory_agree(teacher_pt: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    by_path = snnkd.evaluate(teacher_pt, limit_test=32, ops_batches=1, out=out)
    assert json.loads(out.read_text()) == by_path and by_path["model"] == str(teacher_pt)
    model, meta = snnkd.load_model(teacher_pt)
    in_memory = snnkd.evaluate(model, "digits", meta=meta, limit_test=32, ops_batches=1)
    assert in_memory["model"] is None and in_memory["test_samples"] == 32 == by_path["test_samples"]
    for key in ("accuracy", "loss", "macs", "energy_uj", "params"):
        assert in_memory[key] == by_path[key], key
    with pytest.raises(SnnkdError, match="belongs to dataset 'digits', not 'cifar10'"):
        snnkd.evaluate((model, meta), "cifar10")
    with pytest.raises(SnnkdError, match="needs its metadata"):
        snnkd.evaluate(model)
    with pytest.raises(SnnkdError, match="unknown option 'limit'"):
        snnkd.evaluate(teacher_pt, limit=3)


def test_count_ops_and_price_energy(teacher_pt: Path) -> None:
    model, meta = snnkd.load_model(teacher_pt)
    x, y = snnkd.test_inputs(meta, limit=8)
    one = snnkd.count_ops(model, (x, y))
    two = snnkd.count_ops(model, [(x[:4], y[:4]), (x[4:], y[4:])])
    assert one.samples == two.samples == 8 and one.macs == pytest.approx(two.macs) and one.synops == 0
    priced = snnkd.price_energy(one)
    digital = [e for e in priced.values() if e["model"] == "digital"]
    assert digital and all(e["total_uj"] > 0 and e["total_uj"] == pytest.approx(e["total_pj"] / 1e6) for e in digital)
    assert all(e["total_uj"] is None for e in priced.values() if e["model"] == "event_driven")  # an ANN


def test_export_to_onnx_from_python(teacher_pt: Path, tmp_path: Path) -> None:
    report = snnkd.export.to_onnx(teacher_pt, tmp_path / "t.onnx", limit=16)
    assert report["within_tolerance"] is True and report["test_samples"] == 16 and (tmp_path / "t.onnx").is_file()
    model, meta = snnkd.load_model(teacher_pt)
    x, y = snnkd.test_inputs(meta, limit=4)
    with pytest.raises(SnnkdError, match="give both x and y"):
        snnkd.export.to_onnx((model, meta), tmp_path / "u.onnx", x=x)
    with pytest.raises(SnnkdError, match="refusing to overwrite"):
        snnkd.export.to_onnx(teacher_pt, teacher_pt)
    with pytest.raises(SnnkdError, match="contains the input model"):
        snnkd.export.to_lava(teacher_pt, teacher_pt.parent)  # refused before Lava or any data
    assert not (tmp_path / "u.onnx").exists()
