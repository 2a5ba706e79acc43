"""The CLI as a newcomer meets it (issue 14): defaults and examples in every ``--help``, no
abbreviated options, ``snnkd methods``, a warning and a note in ``distill``, snnkd's own
option names in data errors, progress with an ETA, and ``snnkd --help`` without torch."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from plugin_utils import snnkd as snnkd_with_path
from plugin_utils import write_module_plugin

from snnkd.cli import progress
from snnkd.cli.formatting import HelpFormatter
from snnkd.cli.main import SUBCOMMANDS, build_parser, command_name, main
from snnkd.errors import SnnkdError

BUILTIN_METHODS = {"none", "logit", "feature", "blurred", "saliency", "relation", "blockwise"}
FAST = ["--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--batch-size", "64", "--T", "1",
        "--no-progress", "--device", "cpu"]


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # --help
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def subparsers() -> dict[str, argparse.ArgumentParser]:
    return dict(build_parser()._subparsers._group_actions[0].choices)


def test_top_level_help_imports_no_torch():
    code = ("import sys\nfrom snnkd.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "NO-TORCH"
    assert all(command_name(m) in proc.stdout for m in SUBCOMMANDS)  # every command still listed


def test_listed_summaries_are_the_commands_own():
    listing = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0]._choices_actions}
    assert listing == {command_name(m): s for m, s in SUBCOMMANDS.items()}


@pytest.mark.parametrize("module", list(SUBCOMMANDS))
def test_help_shows_defaults_and_an_example(module, capsys):
    cmd = command_name(module)
    rc, out, _ = run_main([cmd, "--help"], capsys)
    assert rc == 0
    assert f"examples:\n  snnkd {cmd}" in out
    parser = subparsers()[cmd]
    fmt = HelpFormatter(cmd)
    for act in parser._actions:
        if act.option_strings and act.default not in (None, False, argparse.SUPPRESS):
            text = fmt._expand_help(act)  # the text as --help prints it
            assert text.lower().count("default") == 1, (cmd, act.option_strings, text)


def test_distill_help_renders_defaults_once(capsys):
    rc, out, _ = run_main(["distill", "--help"], capsys)
    flat = " ".join(out.split())
    assert rc == 0
    for shown in ("number of time steps (default: 4)", "number of epochs (cosine schedule over them) (default: 10)",
                  "initial learning rate (default: 0.1)", "where datasets live (default: data)",
                  "--method METHOD distillation method:"):
        assert shown in flat, shown
    assert "(default: data) (default: data)" not in flat  # a help naming its default is left alone
    assert "(default: None)" not in flat and "(default: False)" not in flat


def test_abbreviated_option_is_refused(capsys, tmp_path):
    rc, _, err = run_main(["distill", "--stud", "resnet_tiny", "--out", tmp_path / "x", "--dataset", "digits"], capsys)
    assert rc == 2
    assert err.startswith("snnkd: error: unrecognized arguments: --stud") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_methods_lists_every_builtin_with_its_hyperparameters(capsys):
    rc, out, _ = run_main(["methods", "--json"], capsys)
    assert rc == 0
    records = {r["name"]: r for r in json.loads(out)}
    assert BUILTIN_METHODS <= set(records)
    for name in BUILTIN_METHODS:
        r = records[name]
        assert r["paper"], name
        assert all(h["help"] for h in r["hyperparameters"]), name  # every hyperparameter explained
    params = {r: {h["name"]: h["default"] for h in records[r]["hyperparameters"]} for r in records}
    assert params["logit"] == {"tau": 4.0, "alpha": 0.9}
    assert params["none"] == {}
    assert params["blockwise"]["kd_weight"] == 0.3 and params["blockwise"]["tau"] == 3.0
    assert params["saliency"]["nld_weight"] == 4.0 and params["blurred"]["keep"] == 0.85
    assert records["blockwise"]["default_trainer"] == "rate" and records["none"]["needs_teacher"] is False
    assert records["logit"]["paper"] == "Xu et al., CVPR 2023 (KDSNN)"
    rc, text, _ = run_main(["methods"], capsys)
    assert rc == 0 and "logit: Xu et al., CVPR 2023 (KDSNN)" in text
    assert "--param tau=4.0  softmax temperature" in text and "    (no hyperparameters)" in text


def test_methods_lists_a_plugin_method(tmp_path):
    base = write_module_plugin(tmp_path / "plug")
    r = snnkd_with_path("--plugin", "my_snnkd_plugin", "methods", path=base)
    assert r.returncode == 0, r.stderr
    assert "mine_half_ce:" in r.stdout and "--param weight=0.5" in r.stdout


def test_teacher_with_method_none_warns_and_dataset_comes_from_the_teacher(teacher_pt, tmp_path, capsys):
    out = tmp_path / "none"
    rc, _, err = run_main(["distill", "--student", "resnet_tiny", "--teacher", teacher_pt, "--method", "none",
                           "--out", out, *FAST], capsys)
    assert rc == 0, err
    lines = err.splitlines()
    warnings = [ln for ln in lines if ln.startswith("snnkd: warning:")]
    assert len(warnings) == 1 and "--teacher" in warnings[0] and "none" in warnings[0]
    assert any(ln.startswith("snnkd: note:") and "'digits'" in ln for ln in lines)
    assert yaml.safe_load((out / "config.yaml").read_text())["dataset"] == "digits"
    assert re.search(r"^epoch 1/1 .*, ETA 00:00\)$", err, re.M), err  # the last epoch: nothing left


def test_method_with_teacher_gives_no_warning(teacher_pt, tmp_path, capsys):
    rc, _, err = run_main(["distill", "--student", "resnet_tiny", "--teacher", teacher_pt, "--method", "logit",
                           "--dataset", "digits", "--out", tmp_path / "logit", *FAST], capsys)
    assert rc == 0, err
    assert "snnkd: warning" not in err and "snnkd: note" not in err


def test_eta_is_the_epochs_left_times_the_mean_epoch():
    from snnkd.train.loop import eta
    assert eta([{"time_s": 20.0}, {"time_s": 40.0}], 6) == "02:00"
    assert eta([{"time_s": 100.0}], 100) == "2:45:00"
    assert eta([], 3) == "00:00"


def test_missing_dataset_names_the_download_option(tmp_path):
    from snnkd.data import build_datasets
    with pytest.raises(SnnkdError) as e:
        build_datasets("mnist", tmp_path)
    assert "pass --download" in str(e.value) and "download=True" not in str(e.value)
    with pytest.raises(SnnkdError) as e:
        build_datasets("imagenet", tmp_path)
    assert "--download" not in str(e.value)  # nothing to download there: no false hint


def test_evaluate_and_export_show_progress_with_an_eta(teacher_pt, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "enabled", lambda a: not a.no_progress)  # as on a terminal
    rc, _, err = run_main(["evaluate", "--model", teacher_pt, "--out", tmp_path / "e.json", "--limit-test", "64",
                           "--batch-size", "16", "--device", "cpu"], capsys)
    assert rc == 0, err
    assert re.search(r"evaluate: \d+/4 \[\d\d:\d\d<\d\d:\d\d ETA", err), err
    rc, _, err = run_main(["evaluate", "--model", teacher_pt, "--out", tmp_path / "f.json", "--limit-test", "64",
                           "--device", "cpu", "--no-progress"], capsys)
    assert rc == 0 and "ETA" not in err
    rc, _, err = run_main(["export", "--model", teacher_pt, "--to", "onnx", "--out", tmp_path / "t.onnx",
                           "--limit-test", "16"], capsys)
    assert rc == 0, err
    assert "export: writing and checking onnx" in err and "ETA" in err
    assert (tmp_path / "t.onnx").is_file()
