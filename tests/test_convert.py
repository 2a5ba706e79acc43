"""ANN-to-SNN conversion (``snnkd convert``, issue 15): on real digits teachers the converted
SNN approaches the ANN's accuracy as T grows, its scales are the percentile of the recorded
activations, it is evaluated and priced like a student, bad conversion checkpoints are
refused in one line, exports refuse it, and the workflow plans and summarises conversions."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from export_models import scratch, teacher
from torch import nn

from snnkd import io
from snnkd.cli.inputs import model_inputs
from snnkd.cli.main import main
from snnkd.convert import NEURON, ScaledIF
from snnkd.neurons import NeuronConfig
from snnkd.runtime import load_model

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"


@functools.cache
def converted(arch: str, T: int, percentile: float = 99.9) -> Path:
    """``snnkd convert`` of the digits teacher ``arch`` at ``T``; its model.pt."""
    out = scratch() / f"{arch}-T{T}-p{percentile}"
    rc = main(["convert", "--teacher", str(teacher(arch)), "--out", str(out), "--T", str(T),
               "--percentile", str(percentile), "--calib-batches", "4"])
    assert rc == 0
    return out / "model.pt"


@functools.cache
def evaluated(model: Path) -> dict:
    out = model.parent / "eval.json"
    assert main(["evaluate", "--model", str(model), "--out", str(out)]) == 0
    return json.loads(out.read_text())


def refused(capsys, argv: list[str]) -> str:
    """Run ``snnkd ARGV``; it must fail with status 2 and exactly one ``snnkd: error:`` line."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("snnkd: error: "), err
    return err[0]


# --- the neuron -----------------------------------------------------------------------------

@pytest.mark.parametrize("T", [4, 16, 64])
def test_scaled_if_rate_is_the_clipped_activation_within_one_over_T(T: int) -> None:
    """Constant current a into lambda * IF(a / lambda) (soft reset): mean output = min(a, lambda)
    within lambda / T (Rueckauer et al. 2017, eq. 2-5)."""
    neuron = ScaledIF(T=T)
    neuron.scale.fill_(2.5)
    a = torch.linspace(-1.0, 4.0, 101)
    y = neuron(a.repeat(T)).reshape(T, -1).mean(0)
    expected = a.clamp(0.0, 2.5)
    assert float((y - expected).abs().max()) <= 2.5 / T + 1e-6
    assert set(torch.unique(neuron(a.repeat(T))).tolist()) <= {0.0, 2.5}  # graded spikes of value lambda


# --- accuracy on real teachers ----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg_tiny", "resnet_tiny"])
def test_converted_accuracy_rises_with_T_and_reaches_the_ann(arch: str) -> None:
    ann = evaluated(teacher(arch))
    acc = {T: evaluated(converted(arch, T))["accuracy"] for T in (4, 64)}
    assert acc[64] >= acc[4], acc
    assert acc[64] >= ann["accuracy"] - 3.0, (ann["accuracy"], acc)


@pytest.mark.slow
def test_evaluate_prices_a_conversion_like_a_student() -> None:
    ev = evaluated(converted("vgg_tiny", 16))
    assert ev["kind"] == "snn" and ev["T"] == 16 and ev["method"] == "convert"
    rates = ev["firing_rates"]
    assert rates and all(0.0 < r < 1.0 for r in rates.values()), rates  # spikes per neuron per step
    layers = {layer["name"]: layer for layer in ev["layers"]}
    first, *rest = layers.values()
    assert first["input"] == "real" and first["macs"] > 0  # analog images into the first conv
    assert rest and all(r["synops"] > 0 and r["macs"] == 0 for r in rest), rest  # graded spikes are events
    assert ev["synops"] > 0 and all(v > 0 for v in ev["energy_uj"].values()), ev["energy_uj"]


# --- the scales ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("percentile", [99.9, 50.0])
def test_scales_are_the_percentile_of_the_recorded_activations(percentile: float) -> None:
    ann, meta = load_model(teacher("vgg_tiny"))
    x, _ = model_inputs(meta, "data", "calibration", 4 * 64, seed=0)  # what convert records on
    values: dict[str, list[torch.Tensor]] = {}
    relus = {n: m for n, m in ann.named_modules() if isinstance(m, nn.ReLU)}
    for name, m in relus.items():
        m.register_forward_hook(lambda mod, i, out, n=name: values.setdefault(n, []).append(out.flatten()))
    with torch.no_grad():
        for batch in x.split(64):
            ann(batch)
    snn, smeta = load_model(converted("vgg_tiny", 8, percentile))
    got = {n: float(m.scale) for n, m in snn.named_modules() if isinstance(m, ScaledIF)}
    assert sorted(got) == sorted(relus)
    for name, parts in values.items():
        acts = torch.cat(parts).numpy()
        assert got[name] == pytest.approx(float(np.percentile(acts[acts > 0], percentile)), rel=1e-6)
    assert smeta["conversion"]["percentile"] == percentile and smeta["conversion"]["calib_samples"] == 256
    assert smeta["neuron"] == NEURON.to_dict() and NeuronConfig(**smeta["neuron"]).reset == "soft"


# --- bad inputs and foreign checkpoints ------------------------------------------------------------

def _rewrite(src: Path, dst: Path, edit) -> Path:
    obj = torch.load(src, weights_only=True)
    edit(obj)
    torch.save(obj, dst)
    return dst


def _first_scale(obj: dict) -> str:
    return next(k for k in obj["state_dict"] if k.endswith(".scale"))


BAD_CHECKPOINTS = {
    "negative-scale": (lambda o: o["state_dict"][_first_scale(o)].fill_(-1.0), "must be a finite number > 0"),
    "zero-scale": (lambda o: o["state_dict"][_first_scale(o)].fill_(0.0), "must be a finite number > 0"),
    "nan-scale": (lambda o: o["state_dict"][_first_scale(o)].fill_(float("nan")), "non-finite"),
    "no-record": (lambda o: o["meta"].pop("conversion"), "do not fit architecture"),
    "record-not-mapping": (lambda o: o["meta"].update(conversion=[1, 2]), "expected a mapping"),
    "foreign-method": (lambda o: o["meta"]["conversion"].update(method="snntoolbox"), "unknown method"),
    "unknown-field": (lambda o: o["meta"]["conversion"].update(extra=1), "unknown fields ['extra']"),
    "bad-percentile": (lambda o: o["meta"]["conversion"].update(percentile=250.0), "percentile must lie"),
    "bool-batches": (lambda o: o["meta"]["conversion"].update(calib_batches=True), "calib_batches must be"),
    "hard-reset": (lambda o: o["meta"]["neuron"].update(reset="hard"), "soft reset"),
    "scale-missing": (lambda o: o["state_dict"].pop(_first_scale(o)), "do not fit architecture"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_conversion_checkpoint_is_refused_in_one_line(case: str, tmp_path: Path, capsys) -> None:
    edit, expected = BAD_CHECKPOINTS[case]
    bad = _rewrite(converted("vgg_tiny", 4), tmp_path / "bad.pt", edit)
    line = refused(capsys, ["evaluate", "--model", str(bad), "--out", str(tmp_path / "eval.json")])
    assert expected in line, line
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.slow
def test_convert_refuses_bad_inputs_and_writes_nothing(tmp_path: Path, capsys) -> None:
    snn = converted("vgg_tiny", 4)
    out = tmp_path / "out"
    assert "holds an SNN" in refused(capsys, ["convert", "--teacher", str(snn), "--out", str(out)])
    assert "(0, 100]" in refused(capsys, ["convert", "--teacher", str(teacher()), "--out", str(out),
                                          "--percentile", "101"])
    assert "--percentile" in refused(capsys, ["convert", "--teacher", str(teacher()), "--out", str(out),
                                              "--percentile", "0"])
    assert "needs --teacher" in refused(capsys, ["convert", "--out", str(out)])
    assert not out.exists()
    src = teacher()
    before = src.read_bytes()
    refused(capsys, ["convert", "--teacher", str(src), "--out", str(src.parent)])  # would overwrite the teacher
    assert src.read_bytes() == before


@pytest.mark.slow
def test_max_pooling_is_refused_naming_the_layer(tmp_path: Path, capsys) -> None:
    from snnkd.runtime import build, model_meta

    ann = build("sew_resnet18", None, 10, 1, 8, dataset="digits")
    path = tmp_path / "sew.pt"
    io.save_checkpoint(path, ann.state_dict(), model_meta(ann, "digits", None))
    line = refused(capsys, ["convert", "--teacher", str(path), "--out", str(tmp_path / "c")])
    assert "'stem.3' is max pooling" in line
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["nir", "onnx", "lava"])
def test_export_of_a_conversion_is_refused_in_one_line(target: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / f"out.{target}"
    line = refused(capsys, ["export", "--model", str(converted("vgg_tiny", 4)), "--to", target, "--out", str(out)])
    assert "ANN-to-SNN conversion" in line and target in line
    assert not out.exists() and not Path(str(out) + ".json").exists()


# --- workflow ----------------------------------------------------------------------------

def _smk(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                           *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_dry_run_plans_a_conversion_per_teacher_and_T(tmp_path: Path) -> None:
    r = _smk(tmp_path, "-n", "-p", "--configfile", str(ROOT / "config" / "config.yaml"))
    text = r.stdout + r.stderr
    assert r.returncode == 0, text[-3000:]
    for T in (4, 8, 16, 32, 64):
        assert f"results/evaluate/convert/digits/rtw/T{T}/eval.json" in text
        assert f"snnkd convert --teacher results/pretrain/digits/rtw/model.pt --out results/convert/digits/rtw/T{T} " \
               f"--T {T}" in text
    assert text.count("rule convert:") == 5 and text.count("rule evaluate_convert:") == 5


@pytest.mark.slow
def test_undefined_teacher_in_the_convert_block_stops_the_dry_run(tmp_path: Path) -> None:
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "test" / "tiny.yaml").read_text())
    cfg["convert"] = {"datasets": ["digits"], "teachers": ["nosuch"], "T": [4]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = _smk(tmp_path, "-n", "--configfile", str(path))
    assert r.returncode != 0 and "convert.teachers: nosuch not defined" in r.stdout + r.stderr


@pytest.mark.slow
def test_summary_and_plots_put_conversions_beside_the_students(tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPTS))
    import plots
    import summarise

    tev = teacher("vgg_tiny").parent / "eval.json"
    evaluated(teacher("vgg_tiny"))
    records = []
    for T in (4, 64):
        evaluated(converted("vgg_tiny", T))
        records.append({"dataset": "digits", "teacher": "vt", "student": "vt", "method": "convert",
                        "trainer": "none", "T": T, "seed": 0, "metrics": None, "teacher_eval": str(tev),
                        "eval": str(converted("vgg_tiny", T).parent / "eval.json")})
    tsv, md = tmp_path / "s.tsv", tmp_path / "s.md"
    summarise.main(records, str(tsv), str(md))
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    head, body = rows[0], rows[1:]
    assert [r[head.index("method")] for r in body] == ["convert", "convert"]
    assert [r[head.index("T")] for r in body] == ["4", "64"]
    assert all(r[head.index("teacher_accuracy")] != "-" for r in body)
    assert "| convert |" in md.read_text()
    figs = [tmp_path / f for f in ("e.png", "r.png", "c.png", "t.png")]
    plots.main(records, *map(str, figs))
    assert all(f.stat().st_size > 1000 for f in figs)
