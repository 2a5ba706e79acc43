"""Issue 16, item 11 and "every exception escaping a command becomes one line": a newline or
control character in a path or message cannot forge a second error line, every exception
ends as exactly one ``snnkd: error:`` line (the traceback only under ``--debug``), an
interrupt exits 130 and a SIGTERM 143, and ``--help``/``--version`` still exit 0."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from path_utils import ann_file, forbid_work, refused

from snnkd.cli.main import main
from snnkd.errors import SnnkdError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_work(monkeypatch) -> None:
    forbid_work(monkeypatch)

# --- item 11 (newline) and every escaping exception is one line ------------------------------------------------------

def test_item11_newline_in_a_path_cannot_fake_a_second_error_line(tmp_path):
    """Item 11: a newline in a path split the one error line in two (real process)."""
    bad = tmp_path / "x\nsnnkd: error: forged line"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "snnkd", "evaluate", "--model", str(bad), "--out",
                           str(tmp_path / "e.json")], capture_output=True, text=True, timeout=300, env=env)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("snnkd: error: "), proc.stderr
    assert "x\\nsnnkd: error: forged line" in lines[0]
    assert sorted(os.listdir(tmp_path)) == []


def test_item11_newline_in_an_output_path_equal_to_the_input(tmp_path, capsys, no_work):
    """Item 11: the paths in path errors are quoted and escaped, one line."""
    d = tmp_path / "run\nsnnkd: error: forged"
    d.mkdir()
    ann_file(d / "model.pt")
    line = refused(["evaluate", "--model", d / "model.pt", "--out", d], tmp_path, capsys, "contains the input")
    assert "run\\nsnnkd: error: forged" in line


@pytest.mark.parametrize("exc,status,words", [
    (ValueError("broken\nsecond line"), 1, ["internal error ValueError: broken", "--debug"]),
    (KeyError("state_dict"), 1, ["internal error KeyError"]),
    (OSError(errno.ENOSPC, "No space left on device", "/x/out\n.tmp"), 1, ["no space left on device", "'/x/out\\n.tmp'"]),
    (PermissionError(errno.EACCES, "Permission denied", "/x/y"), 1, ["'/x/y'", "Permission denied"]),
    (RecursionError("maximum recursion depth exceeded"), 2, ["nested too deeply"]),
    (MemoryError(), 1, ["out of memory"]),
    (SnnkdError("bad input\x1b[2K\rline"), 2, ["bad input\\x1b[2K\\rline"]),
], ids=["value-error", "key-error", "disk-full", "permission", "recursion", "memory", "control-chars"])
def test_every_escaping_exception_is_one_line(monkeypatch, capsys, exc, status, words):
    """'Every exception escaping a command becomes one snnkd: error: line'; --debug adds the traceback."""
    import snnkd.cli.plot_blockwise as pb

    def boom(*_a, **_k):
        raise exc
    monkeypatch.setattr(pb, "plot_blockwise", boom)
    monkeypatch.setattr(pb, "check_paths", lambda **_k: {}, raising=False)
    monkeypatch.delenv("SNNKD_DEBUG", raising=False)
    argv = ["plot-blockwise", "--metrics", "m.jsonl", "--out", "o"]
    assert main(argv) == status
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("snnkd: error: "), lines
    for w in words:
        assert w in lines[0], (w, lines[0])
    for debug_argv, env in ((["--debug", *argv], None), (argv, "1")):
        if env:
            monkeypatch.setenv("SNNKD_DEBUG", env)
        assert main(debug_argv) == status
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and err.splitlines()[-1] == lines[0]


def test_interrupt_stays_exit_130(monkeypatch, capsys):
    import snnkd.cli.plot_blockwise as pb

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt
    monkeypatch.setattr(pb, "plot_blockwise", interrupted)
    monkeypatch.setattr(pb, "check_paths", lambda **_k: {}, raising=False)
    assert main(["plot-blockwise", "--metrics", "m", "--out", "o"]) == 130
    assert capsys.readouterr().err.splitlines() == ["snnkd: interrupted"]


def test_sigterm_turned_interrupt_exits_143(monkeypatch, capsys):
    """A SIGTERM the Lava runner turns into an interrupt ends as the shell's 128 + 15."""
    import signal

    import snnkd.cli.plot_blockwise as pb
    from snnkd.export.loihi.run import Terminated

    def terminated(*_a, **_k):
        raise Terminated(signal.SIGTERM)
    monkeypatch.setattr(pb, "plot_blockwise", terminated)
    monkeypatch.setattr(pb, "check_paths", lambda **_k: {}, raising=False)
    assert main(["plot-blockwise", "--metrics", "m", "--out", "o"]) == 143
    assert capsys.readouterr().err.splitlines() == ["snnkd: interrupted"]


def test_help_and_version_still_exit_0(capsys):
    for argv in (["--help"], ["--version"], ["--debug", "--version"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
