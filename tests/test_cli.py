"""The ``snnkd`` command end to end on digits: pretrain -> distill -> evaluate."""

import json

import pytest
import yaml
from conftest import QUICK, snnkd

from snnkd.runtime import load_model


def test_chain_outputs(trained):
    for name in ("teacher", "none", "logit"):
        out = trained[name].parent
        assert {p.name for p in out.iterdir()} == {"model.pt", "metrics.jsonl", "config.yaml"}
        lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in lines] == [1, 2]
        assert all(0 <= r["val_acc"] <= 100 for r in lines)
    logit = [json.loads(line) for line in (trained["logit"].parent / "metrics.jsonl").read_text().splitlines()]
    assert {"train_ce", "train_kd", "train_loss"} <= set(logit[0])
    assert logit[0]["train_loss"] == pytest.approx(logit[0]["train_ce"] + logit[0]["train_kd"], rel=1e-5)
    cfg = yaml.safe_load((trained["logit"].parent / "config.yaml").read_text())
    assert cfg["method"] == "logit" and cfg["T"] == 2 and cfg["param"] == ["tau=4", "alpha=0.9"]
    model, meta = load_model(trained["logit"])
    assert meta["kind"] == "snn" and meta["T"] == 2 and meta["params"] == {"tau": 4, "alpha": 0.9}
    assert model.is_spiking and model.T == 2


def test_teacher_learns(trained):
    _, meta = load_model(trained["teacher"])
    assert meta["test_acc"] > 60.0  # 2 epochs on 300 digits; chance is 10%


def test_evaluate_writes_metrics(trained, tmp_path):
    out = tmp_path / "eval.json"
    snnkd("evaluate", "--model", str(trained["logit"]), "--out", str(out), "--limit-test", "64")
    r = json.loads(out.read_text())
    assert r["kind"] == "snn" and r["test_samples"] == 64
    assert 0 <= r["accuracy"] <= 100
    assert r["synops"] > 0 and r["macs"] > 0
    assert set(r["firing_rates"]) and all(0 <= v <= 1 for v in r["firing_rates"].values())
    assert r["energy_uj"]["cmos45nm"] == pytest.approx((r["macs"] * 4.6 + r["synops"] * 0.9) / 1e6)
    out_ann = tmp_path / "teacher.json"
    snnkd("evaluate", "--model", str(trained["teacher"]), "--out", str(out_ann), "--limit-test", "64")
    ra = json.loads(out_ann.read_text())
    assert ra["synops"] == 0 and ra["firing_rates"] == {}


def test_config_file_and_override(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"model": "vgg_tiny", "dataset": "digits", "epochs": 5, "limit_train": 64,
                                   "batch_size": 32, "no_progress": True}))
    snnkd("pretrain", "--config", str(cfg), "--epochs", "1", "--out", str(tmp_path / "o"))
    resolved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert resolved["epochs"] == 1 and resolved["model"] == "vgg_tiny" and resolved["limit_train"] == 64


@pytest.mark.parametrize("cmd", ["pretrain", "distill", "evaluate"])
def test_help_explains_every_option(cmd):
    proc = snnkd(cmd, "--help")
    from snnkd.cli.main import build_parser
    sub = build_parser()._subparsers._group_actions[0].choices[cmd]
    for act in sub._actions:
        if act.option_strings and act.dest != "help":
            assert act.help, f"{cmd} {act.option_strings} has no help text"
            assert act.option_strings[-1] in proc.stdout


def test_unknown_method_is_one_error_line(tmp_path):
    proc = snnkd("distill", "--student", "resnet_tiny", "--method", "nosuch", "--out", str(tmp_path / "x"),
                 *QUICK, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "unknown method 'nosuch'" in proc.stderr and "logit" in proc.stderr
    assert not (tmp_path / "x").exists()
