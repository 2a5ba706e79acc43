"""Issue 16, export reliability: the Lava child's process group and every temporary file are
gone on every way out (signals, errors, success), a full disk is one error line, the Lava
output directory gets the umask's mode; and the issue-15 ``lava_outputs.npz`` race.

Every test runs the real export (a subprocess ``snnkd`` where a signal or a crash is the
point) on the small digits models of :mod:`export_models`, with ``TMPDIR`` pointed at the
test's own directory, and scans ``/proc`` for survivors of the Lava child's session.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from export_models import trained

from snnkd.errors import SnnkdError

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
needs_lava = pytest.mark.skipif(importlib.util.find_spec("lava") is None, reason="Lava not installed")
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find processes")
LEFTOVER_PREFIXES = ("snnkd-lava-", "pymp-")  # our Lava run directories, multiprocessing's (Lava's manager)
TEMP_SUFFIXES = (".tmp", ".old", ".part")  # atomic writers' ``.NAME.*.tmp`` and the child's result in progress


# ------------------------------------------------------------------------------------------ helpers
def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """``(state, ppid, pgrp, session)`` of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = text[text.rfind(")") + 2:].split()
    return f[0], int(f[1]), int(f[2]), int(f[3])


def survivors(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group or session id is ``pgid``."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and (s := _stat(int(d))) is not None and s[0] not in "ZX" and pgid in (s[2], s[3]):
            out.append(int(d))
    return out


def lava_child_of(parent: int, deadline: float, workers: int = 2) -> int | None:
    """The pid of ``parent``'s ``snnkd.export.loihi.run`` child once its group has ``workers`` live
    members (Lava's worker processes started); None if that did not happen by ``deadline``."""
    while time.monotonic() < deadline:
        for d in os.listdir("/proc"):
            if not d.isdigit() or (s := _stat(int(d))) is None or s[1] != parent:
                continue
            with contextlib.suppress(OSError):
                if b"snnkd.export.loihi.run" in Path(f"/proc/{d}/cmdline").read_bytes() and \
                        len(survivors(int(d))) >= workers:
                    return int(d)
        time.sleep(0.1)
    return None


def kill_survivors(pgid: int | None) -> None:
    """Test cleanup: end what a failing run left of the child we found (by its group id)."""
    if pgid is not None:
        for pid in survivors(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def lava_children_using(tmpdir: Path) -> list[int]:
    """Live ``snnkd.export.loihi.run`` processes whose ``TMPDIR`` lies under ``tmpdir``."""
    found = []
    for d in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if d.isdigit() and b"snnkd.export.loihi.run" in Path(f"/proc/{d}/cmdline").read_bytes() \
                    and str(tmpdir).encode() in Path(f"/proc/{d}/environ").read_bytes() \
                    and (s := _stat(int(d))) is not None and s[0] not in "ZX":
                found.append(int(d))
    return found


def leftovers(d: Path) -> list[str]:
    """Temporary files or directories in ``d`` (caches of other libraries, such as torch's
    ``torchinductor_*`` or onnxruntime's ``.ses``, are not ours to remove)."""
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir()
                  if p.name.startswith(LEFTOVER_PREFIXES) or (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIXES)))


def shm_leftovers(pgid: int) -> list[str]:
    shm = Path("/dev/shm")
    return sorted(p.name for p in shm.glob(f"psm_snnkd{pgid}_*")) if shm.is_dir() else []


def _default_signals() -> None:
    """In the child: SIGINT and SIGTERM as a terminal would deliver them.  A test run started
    in the background by a non-interactive shell inherits SIGINT ignored, and snnkd rightly
    keeps an ignored signal ignored (as under nohup), which would make the signal tests moot."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def snnkd_popen(args: list[str], tmpdir: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmpdir)}
    return subprocess.Popen([sys.executable, "-m", "snnkd", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_signals, **kw)


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("snnkd:"), err[-3000:]
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def short_tmp():
    """A TMPDIR with a short path: under a long one (pytest's tmp_path) the Lava run moves its
    directory to /tmp, for multiprocessing's socket paths (AF_UNIX: 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="snnkd-t-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def small_fs(short_tmp):
    """A 1 MiB tmpfs (needs root, as here and in CI); ``fill(free_kib)`` leaves that much free."""
    mnt = short_tmp / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a small tmpfs is not permitted here ({r.stderr.strip()}): cannot fill a disk for real")

    def fill(free_kib: int) -> Path:
        with open(mnt / "fill", "wb") as f:  # tmpfs counts pages: leaves free_kib (+- 4 KiB)
            with contextlib.suppress(OSError):  # free_kib=0: fill it up
                f.write(b"\0" * ((1024 - free_kib) * 1024))
        return mnt

    try:
        yield fill
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def names_in(mnt: Path) -> list[str]:
    return sorted(p.name for p in mnt.iterdir() if p.name != "fill")


# ------------------------------------------------------------------------------------------ item 5
@needs_lava
@needs_proc
@pytest.mark.parametrize("sig,workers", [(signal.SIGTERM, 2), (signal.SIGINT, 1)],
                         ids=["SIGTERM-while-Lava-workers-run", "SIGINT-as-the-child-starts"])
def test_item5_signal_during_lava_export_kills_the_child_group_and_removes_temps(tmp_path, short_tmp, sig,
                                                                                 workers) -> None:
    """Item 5: SIGTERM (once Lava's workers run) or SIGINT (as soon as the Lava child exists;
    SIGINT with workers running: the issue-15 test) to ``snnkd export --to lava``: one line, a
    non-zero exit, no process of the child's session left, no temporary file or directory."""
    model = trained("vgg_tiny")
    tmpdir, out = short_tmp, tmp_path / "lava"
    proc = snnkd_popen(["export", "--model", str(model), "--to", "lava", "--out", str(out),
                        "--limit-test", "100", "--timeout", "200"], tmpdir)
    child = None
    try:
        child = lava_child_of(proc.pid, time.monotonic() + 150, workers)
        assert child is not None, "the Lava child never started (its workers)"
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0
        one_error_line(err)
        assert survivors(child) == [], f"Lava processes survived: {survivors(child)}"
        assert leftovers(tmpdir) == [] and shm_leftovers(child) == []
        assert not out.exists() and leftovers(tmp_path) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.communicate()
        kill_survivors(child)


# ------------------------------------------------------------------------------------------ issue 15
@needs_lava
@needs_proc
def test_issue15_lava_outputs_race_the_child_is_dead_before_its_directory_goes(tmp_path, short_tmp,
                                                                              monkeypatch) -> None:
    """Issue 15: lava_outputs race.  The run's temporary directory must outlive the Lava child:
    when the export is interrupted, by the time the interrupt reaches the caller the child's
    whole group is dead and only then is the directory gone (before, the directory was removed
    while the child still ran, which then died on ``lava_outputs.npz``: FileNotFoundError)."""
    from snnkd.cli.inputs import model_inputs
    from snnkd.export.loihi.pipeline import export_lava
    from snnkd.runtime import load_model

    tmpdir = short_tmp
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    model, meta = load_model(trained("vgg_tiny"))
    seen: list[int] = []
    running = threading.Event()
    running.set()

    def interrupt() -> None:
        child = lava_child_of(os.getpid(), time.monotonic() + 150)
        if child is not None and running.is_set():
            seen.append(child)
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignored: see _default_signals
    t = threading.Thread(target=interrupt, daemon=True)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            export_lava(model, meta, tmp_path / "lava", *model_inputs(meta, "data", "test", 100),
                        model_inputs(meta, "data", "calibration", 64)[0], timeout=200)
        assert seen, "the Lava child never started"
        assert survivors(seen[0]) == [], "the Lava child still ran after the export returned"
        assert leftovers(tmpdir) == [] and shm_leftovers(seen[0]) == []
    finally:
        running.clear()
        t.join(timeout=200)
        signal.signal(signal.SIGINT, previous)
        kill_survivors(seen[0] if seen else None)


@needs_proc
def test_issue15_a_missing_result_is_one_error_and_no_process_survives(tmp_path, monkeypatch) -> None:
    """Issue 15: a child that exits 0 without its results (and leaves a worker behind, as Lava
    can) is one clear error; its worker is killed and its directory removed on that path too."""
    import numpy as np

    from snnkd.export.loihi import run as lava_run

    pidfile = tmp_path / "worker.pid"
    script = ("import os, subprocess, sys\n"
              "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
              f"open({str(pidfile)!r}, 'w').write(str(w.pid))\n")
    monkeypatch.setattr(lava_run, "_child_command", lambda *a: [sys.executable, "-c", script])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(SnnkdError, match="wrote no results") as e:
        lava_run.run_lava(tmp_path, "graph", np.zeros((1, 2, 1, 2, 2), np.int32), 60)
    assert "\n" not in str(e.value)
    worker = int(pidfile.read_text())
    assert (s := _stat(worker)) is None or s[0] in "ZX", "the child's worker survived"
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------ item 6
def test_item6_full_disk_energy_is_one_line_and_leaves_nothing(tmp_path, small_fs) -> None:
    """Item 6: ``snnkd energy`` writing onto a full disk: one ``cannot write`` line, no temp file."""
    mnt = small_fs(0)
    proc = snnkd_popen(["energy", "--model", str(trained("vgg_tiny")), "--out", str(mnt / "e.json"),
                        "--limit-test", "8"], tmp_path)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode not in (0, -signal.SIGSEGV, 139)
    line = one_error_line(err)
    assert line.startswith("snnkd: error: cannot write") and "No space left on device" in line, line
    assert names_in(mnt) == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize("target", ["nir", "onnx"])
def test_item6_full_disk_nir_onnx_is_one_line_and_leaves_nothing(tmp_path, small_fs, target) -> None:
    """Item 6: ``export --to nir|onnx`` onto a full disk: ``cannot write ...: No space left on
    device``, a non-zero exit, no traceback, no temporary file, no report."""
    mnt = small_fs(24)
    out = mnt / f"m.{target}"
    proc = snnkd_popen(["export", "--model", str(trained("vgg_tiny")), "--to", target, "--out", str(out),
                        "--report", str(tmp_path / "r.json"), "--limit-test", "8", "--no-third-party"]
                       if target == "nir" else
                       ["export", "--model", str(trained("vgg_tiny")), "--to", target, "--out", str(out),
                        "--report", str(tmp_path / "r.json"), "--limit-test", "8"], tmp_path)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode not in (0, -signal.SIGSEGV, 139)
    line = one_error_line(err)
    assert line.startswith("snnkd: error: cannot write") and "No space left on device" in line, line
    assert names_in(mnt) == [] and not (tmp_path / "r.json").exists() and leftovers(tmp_path) == []


@needs_lava
@needs_proc
@pytest.mark.parametrize("where", ["out", "TMPDIR"])
def test_item6_full_disk_lava_no_segfault_no_temp_files(tmp_path, short_tmp, small_fs, where) -> None:
    """Item 6: ``export --to lava`` with ~35 KB free on ``--out``'s disk (HDF5 used to segfault
    there) or on ``TMPDIR`` (the Lava child's files): one line, no crash, nothing left behind."""
    mnt = small_fs(35)
    out = mnt / "lava" if where == "out" else tmp_path / "lava"
    tmpdir = mnt if where == "TMPDIR" else short_tmp
    proc = snnkd_popen(["export", "--model", str(trained("vgg_tiny")), "--to", "lava", "--out", str(out),
                        "--report", str(tmp_path / "r.json"), "--limit-test", "4", "--timeout", "200"], tmpdir)
    _, err = proc.communicate(timeout=280)
    assert proc.returncode not in (0, -signal.SIGSEGV, 139), err[-2000:]
    line = one_error_line(err)
    assert "cannot write" in line and "No space left on device" in line, line
    assert leftovers(mnt) == [] and (where == "TMPDIR" or names_in(mnt) == [])
    assert not out.exists() and not (tmp_path / "r.json").exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------ item 11
@needs_lava
@needs_proc
def test_item11_mode_lava_output_dir_gets_the_umask_mode_and_a_clean_run_leaves_nothing(tmp_path, short_tmp) -> None:
    """Item 11: mode.  The Lava output directory is 0755 and its files 0644 under umask 022
    (not mkdtemp's 0700); a successful run also leaves no process and no temporary file."""
    tmpdir, out = short_tmp, tmp_path / "lava"
    proc = snnkd_popen(["export", "--model", str(trained("vgg_tiny")), "--to", "lava", "--out", str(out),
                        "--limit-test", "4", "--timeout", "200"], tmpdir, umask=0o022)
    _, err = proc.communicate(timeout=280)
    assert proc.returncode == 0, err[-3000:]
    assert out.stat().st_mode & 0o777 == 0o755
    files = list(out.iterdir())
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files), \
        {p.name: oct(p.stat().st_mode & 0o777) for p in files}
    assert leftovers(tmpdir) == [] and leftovers(tmp_path) == []
    assert lava_children_using(tmpdir) == []


def test_a_lava_run_under_a_long_tmpdir_moves_to_tmp(tmp_path) -> None:
    """Under a TMPDIR too long for multiprocessing's AF_UNIX socket paths (Lava's manager died
    with ``EOFError``), the run's private directory goes to /tmp; it is removed afterwards."""
    from snnkd.export.loihi import run as lava_run

    long_dir = tmp_path / ("d" * 60)
    with lava_run._work_dir(long_dir) as w:
        assert w.parent == Path("/tmp") and w.name.startswith("snnkd-lava-")
        assert len(os.fsencode(w / "tmp" / "pymp-abcdefgh" / "listener-abcdefgh")) <= 107
    assert not w.exists()
    with lava_run._work_dir(Path("/tmp")) as w:  # a short one is used as it is
        assert w.parent == Path("/tmp")
