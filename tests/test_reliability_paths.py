"""Issue 16, paths: items 1, 2 and 10 (the one-line error itself: test_one_line_errors.py).

Every case runs the real ``snnkd`` entry point in-process on
real checkpoints written by ``save_model``, and checks: the exit status, exactly one stderr
line starting ``snnkd: error:``, and that every input file is byte-identical afterwards
(SHA-256) with nothing new written.  A hypothesis property closes the class: for any
relation between an input and an output path, the command refuses with one line before
any work, or succeeds, and never touches the input.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from path_utils import forbid_work, make_models, refused, run_dir

from snnkd import io
from snnkd.cli.main import main
from snnkd.errors import SnnkdError

QUICK = ["--dataset", "digits", "--limit-train", "40", "--epochs", "1", "--batch-size", "20", "--no-progress"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return make_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def no_work(monkeypatch) -> None:
    forbid_work(monkeypatch)


# --- item 1: export --to lava must not destroy what is at --out ---------------------------------------------------

def test_item1_lava_export_into_the_run_dir_keeps_model_metrics_and_config(tmp_path, models, capsys, no_work):
    """Item 1: ``export --model R/model.pt --to lava --out R`` deleted R's files and exited 0."""
    r = run_dir(tmp_path, models, "snn")
    refused(["export", "--model", r / "model.pt", "--to", "lava", "--out", r], tmp_path, capsys,
            "contains the input --model")


def test_item1_lava_out_naming_the_model_file(tmp_path, models, capsys, no_work):
    """Item 1: ``--out R/model.pt`` turned the model file into a directory."""
    r = run_dir(tmp_path, models, "snn")
    refused(["export", "--model", r / "model.pt", "--to", "lava", "--out", r / "model.pt"], tmp_path, capsys,
            "is the input --model")


@pytest.mark.parametrize("existing", ["foreign-dir", "file"])
def test_item1_lava_out_that_is_not_an_earlier_export(tmp_path, models, capsys, no_work, existing):
    """Item 1: an existing non-empty directory snnkd did not write (or a file) is not replaced."""
    out = tmp_path / "out"
    if existing == "file":
        out.write_text("precious")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("precious")
    refused(["export", "--model", models["snn"], "--to", "lava", "--out", out], tmp_path, capsys,
            "not a directory" if existing == "file" else "refusing to replace it")


def test_item1_atomic_dir_replaces_only_empty_or_stamped_directories(tmp_path):
    """Item 1 at its root: io.atomic_dir refuses a foreign directory, replaces its own."""
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.pt").write_bytes(b"weights")
    with pytest.raises(SnnkdError, match="refusing to replace"):
        with io.atomic_dir(foreign) as tmp:
            (tmp / "x").write_text("new")
    assert (foreign / "model.pt").read_bytes() == b"weights" and sorted(os.listdir(foreign)) == ["model.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["foreign"], "temporary directory left behind"

    out = tmp_path / "export"
    for text in ("first", "second"):  # the second run replaces the first (it carries the stamp)
        with io.atomic_dir(out) as tmp:
            (tmp / "network.json").write_text(text)
        assert (out / "network.json").read_text() == text and (out / io.EXPORT_STAMP).is_file()
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~io._UMASK  # not mkdtemp's 0700 (item 11)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "foreign"]


# --- item 2: outputs over inputs ------------------------------------------------------------------------------------

def test_item2_pretrain_state_on_its_own_model_file(tmp_path, capsys, no_work):
    """Item 2: ``pretrain --state O/model.pt`` deleted the model it had just saved."""
    out = tmp_path / "O"
    refused(["pretrain", "--model", "resnet_tiny", "--out", out, "--state", out / "model.pt", *QUICK], tmp_path,
            capsys, "--state", "same path")


def test_item2_distill_student_over_its_teacher(tmp_path, models, capsys, no_work):
    """Item 2: ``distill --teacher D/model.pt --out D`` overwrote the teacher with the student."""
    d = run_dir(tmp_path, models, "ann")
    refused(["distill", "--student", "resnet_tiny", "--method", "logit", "--teacher", d / "model.pt", "--out", d,
             "--T", "2", *QUICK], tmp_path, capsys, "contains the input --teacher")


@pytest.mark.parametrize("argv", [
    ["evaluate", "--model", "{m}", "--out", "{m}"],
    ["export", "--model", "{m}", "--to", "onnx", "--out", "{m}"],
    ["export", "--model", "{m}", "--to", "nir", "--out", "{m}"],
    ["export", "--model", "{m}", "--to", "nir", "--out", "{d}/m.nir", "--report", "{m}"],
    ["energy", "--model", "{m}", "--out", "{m}"],
    ["energy", "--model", "{m}", "--out", "{d}/e.json", "--table", "{m}"],
], ids=["evaluate-out", "onnx-out", "nir-out", "nir-report", "energy-out", "energy-table"])
def test_item2_output_over_the_model(tmp_path, models, capsys, no_work, argv):
    """Item 2: ``evaluate --model M --out M`` and ``export --to onnx --out M`` overwrote the checkpoint."""
    d = run_dir(tmp_path, models, "snn")
    argv = [a.replace("{m}", str(d / "model.pt")).replace("{d}", str(d)) for a in argv]
    refused(argv, tmp_path, capsys, "is the input --model")


def test_item2_output_given_through_a_symlink_to_the_input(tmp_path, models, capsys, no_work):
    """Item 2: another spelling of the input (a symbolic link) is the same file."""
    d = run_dir(tmp_path, models, "ann")
    (tmp_path / "alias.pt").symlink_to(d / "model.pt")
    refused(["evaluate", "--model", d / "model.pt", "--out", tmp_path / "alias.pt"], tmp_path, capsys,
            "is the input --model")


def test_item2_two_outputs_at_one_path(tmp_path, models, capsys, no_work):
    """Item 2: energy's default table of ``--out e.md`` is ``e.md`` itself."""
    refused(["energy", "--model", models["snn"], "--out", tmp_path / "e.md"], tmp_path, capsys, "same path")


def test_item2_output_inside_the_data_root(tmp_path, models, capsys, no_work):
    """Item 2: outputs never go into the (read-only) data root."""
    data = tmp_path / "data"
    data.mkdir()
    refused(["evaluate", "--model", models["ann"], "--data-root", data, "--out", data / "eval.json"], tmp_path,
            capsys, "--data-root")


# --- item 10: every output location checked before any work ----------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["export", "--model", "{snn}", "--to", "nir", "--out", "{t}/m.nir", "--report", "{t}/afile/r.json"],
    ["export", "--model", "{snn}", "--to", "onnx", "--out", "{t}/m.onnx", "--report", "{t}/afile/r.json"],
    ["export", "--model", "{snn}", "--to", "lava", "--out", "{t}/lava", "--report", "{t}/afile/r.json"],
    ["energy", "--model", "{snn}", "--out", "{t}/e.json", "--table", "{t}/afile/t.md"],
    ["energy", "--model", "{snn}", "--out", "{t}/afile/e.json", "--table", "{t}/t.md"],
    ["export", "--model", "{snn}", "--to", "nir", "--out", "{t}/x/m.nir", "--report", "{t}/x"],
], ids=["nir-report", "onnx-report", "lava-report", "energy-table", "energy-out", "out-below-report"])
def test_item10_report_location_checked_before_the_main_artifact(tmp_path, models, capsys, no_work, argv):
    """Item 10: ``--report A_FILE/r.json`` wrote the main artefact, then exited 2."""
    (tmp_path / "afile").write_text("a file, not a directory")
    argv = [a.replace("{snn}", str(models["snn"])).replace("{t}", str(tmp_path)) for a in argv]
    refused(argv, tmp_path, capsys)


@pytest.mark.parametrize("link", ["dangling", "looping"])
@pytest.mark.parametrize("cmd", ["pretrain", "distill", "evaluate", "export-lava", "plot"])
def test_item10_dangling_or_looping_symlink_out_refused_before_training(tmp_path, models, capsys, no_work,
                                                                       link, cmd):
    """Item 10: a dangling or looping symlink as ``--out`` passed the check and failed after an epoch."""
    out = tmp_path / "out"
    if link == "dangling":
        out.symlink_to(tmp_path / "missing")
    else:
        (tmp_path / "other").symlink_to(out)
        out.symlink_to(tmp_path / "other")
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"epoch": 1, "bw_acc_snn": 1.0}\n')
    argv = {"pretrain": ["pretrain", "--model", "resnet_tiny", "--out", out, *QUICK],
            "distill": ["distill", "--student", "resnet_tiny", "--out", out, "--T", "2", *QUICK],
            "evaluate": ["evaluate", "--model", models["ann"], "--out", out / "eval.json"],
            "export-lava": ["export", "--model", models["snn"], "--to", "lava", "--out", out],
            "plot": ["plot-blockwise", "--metrics", metrics, "--out", out]}[cmd]
    refused(argv, tmp_path, capsys, f"{link} symbolic link")


# --- property: any relation between an input and an output path ---------------------------------------------------

RELATIONS = ["equal", "parent", "child", "sibling", "link-to-input", "link-to-parent", "dotdot-equal", "grandparent"]
COMMANDS = ["evaluate", "export-onnx", "export-lava", "energy", "distill"]
REFUSED = {"equal", "parent", "child", "link-to-input", "link-to-parent", "dotdot-equal", "grandparent"}


def output_for(relation: str, model: Path, root: Path) -> Path:
    d = model.parent
    if relation == "equal":
        return model
    if relation == "parent":
        return d
    if relation == "grandparent":
        return root
    if relation == "child":
        return model / "out"
    if relation == "sibling":
        return d / "other"
    if relation == "dotdot-equal":
        return d / ".." / d.name / model.name
    link = root / "link"
    link.symlink_to(model if relation == "link-to-input" else d)
    return link


class ReachedWork(SnnkdError):
    pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(relation=st.sampled_from(RELATIONS), command=st.sampled_from(COMMANDS))
def test_property_output_never_touches_the_input(models, capsys, monkeypatch, relation, command):
    """Items 1, 2, 10 as a property: refused with one line before any work, or run without
    touching the input; a sibling path is always accepted."""
    import snnkd.cli.distill
    import snnkd.cli.energy
    import snnkd.cli.export

    def reached(*_a, **_k):
        raise ReachedWork("reached the work")
    for mod in (snnkd.cli.export, snnkd.cli.energy, snnkd.cli.distill):
        monkeypatch.setattr(mod, "load_model", reached)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        model = root / "in" / "model.pt"
        shutil.copy(models["ann" if command in ("evaluate", "distill") else "snn"], model)
        out = output_for(relation, model, root)
        if command == "evaluate" and relation == "sibling":
            out = out.with_suffix(".json")
        argv = {"evaluate": ["evaluate", "--model", model, "--out", out, "--limit-test", "20", "--ops-batches", "1"],
                "export-onnx": ["export", "--model", model, "--to", "onnx", "--out", out],
                "export-lava": ["export", "--model", model, "--to", "lava", "--out", out],
                "energy": ["energy", "--model", model, "--out", out],
                "distill": ["distill", "--student", "resnet_tiny", "--method", "logit", "--teacher", model,
                            "--out", out, "--T", "2", *QUICK]}[command]
        before = hashlib.sha256(model.read_bytes()).hexdigest()
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        lines = capsys.readouterr().err.splitlines()
        assert model.is_file() and hashlib.sha256(model.read_bytes()).hexdigest() == before
        if relation in REFUSED:
            assert rc == 2 and len(lines) == 1 and lines[0].startswith("snnkd: error: "), lines
            assert "reached the work" not in lines[0], "refused only after work began"
            assert sorted(os.listdir(root / "in")) == ["model.pt"]
        elif command == "evaluate":
            assert rc == 0 and out.is_file(), lines
        else:
            assert rc == 2 and lines == ["snnkd: error: reached the work"], lines
