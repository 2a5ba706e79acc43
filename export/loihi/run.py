"""Run the Loihi network in Lava (``Loihi2SimCfg(select_tag='fixed_pt')``) in a child process.

Lava runs its processes in worker processes, and an error in one of them can hang the
run instead of failing it; so the run happens in ``python -m snnkd.export.loihi.run`` under a
wall-clock limit, in its own session and process group, which :func:`run_lava` kills
whole (``SIGKILL`` to the group, then waits until no live member is left) on every way
out: success, error, timeout, ``SIGTERM``/``SIGINT``/``SIGHUP`` to the parent (turned
into :class:`Terminated` for the duration of the run, see :func:`signals_raise`) and
interpreter exit (``atexit``).  The child kills its own group if its parent disappears
(a ``SIGKILL`` to the parent).

Everything the run writes lives in one private ``snnkd-lava-*`` directory under
``TMPDIR``, removed only after the whole group is dead (so it outlives the child): the
inputs, the results, the child's log, and the child's ``TMPDIR`` (multiprocessing's
``pymp-*`` sockets of Lava's shared-memory manager, torch caches).  Lava's shared-memory
segments are named ``/dev/shm/psm_snnkd<pgid>_*`` so that those of a killed run can be
removed too.  The results are read only after the child exited 0; a crash, a full disk
or a missing result file is one :class:`SnnkdError` line.

Child: reads the network (``netx`` mode: the netx HDF5 loaded by
``lava.lib.dl.netx.hdf5.Network``; ``graph`` mode: :func:`snnkd.export.loihi.graph.build_graph`),
feeds the graded inputs ``x_q [N, T, C, H, W]`` through a ``RingBuffer`` (sample ``k``'s
step ``t`` at Lava step ``k T + t``), records every layer's spikes and the output
membrane with ``Monitor`` processes for ``N T + depth`` steps, and writes them to an npz.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from snnkd.errors import SnnkdError

SHM_DIR = Path("/dev/shm")
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a full disk or quota, in any writer
# a socket path in the child is BASE/snnkd-lava-XXXXXXXX/tmp/pymp-XXXXXXXX/listener-XXXXXXXX
# (BASE + 56 bytes) and AF_UNIX allows 107
MAX_BASE = 48
LOW_SPACE = 1 << 20  # bytes: less free space than this where a Lava run failed means the disk was full
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """``SIGTERM``, ``SIGINT`` or ``SIGHUP`` received while :func:`signals_raise` was active.
    A ``KeyboardInterrupt``, so that every ``finally`` runs and the command ends as an interrupt."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """For the duration of the block, ``SIGTERM``/``SIGINT``/``SIGHUP`` raise :class:`Terminated`
    in the main thread (the first one only: later ones are ignored while cleaning up), so that
    child groups are killed and temporary files removed.  A signal that was ignored stays
    ignored; outside the main thread this does nothing.  Nests."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not fired:
            fired.append(signum)
            raise Terminated(signum)

    old = {s: signal.getsignal(s) for s in _HANDLED}
    for s, h in old.items():
        if h is not signal.SIG_IGN:
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def write_error(path: str | os.PathLike, e: OSError) -> SnnkdError:
    """The one error line for an ``OSError`` while writing ``path``."""
    return SnnkdError(f"cannot write {os.fspath(path)!r}: {e.strerror or e}")


# ---------------------------------------------------------------------------- process group
def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group or session is ``pgid``."""
    if not Path("/proc").is_dir():  # no procfs: ask the kernel about the group only
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except (ProcessLookupError, PermissionError):
            return []
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # state ppid pgrp session ...
        if fields[0] not in ("Z", "X") and pgid in (int(fields[2]), int(fields[3])):
            found.append(int(d))
    return found


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """``SIGKILL`` the child's whole group and session, reap the child and wait (at most
    ``grace`` seconds) until no live member is left.  Safe to call more than once."""
    pgid = proc.pid
    deadline = time.monotonic() + grace
    while True:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        members = group_members(pgid)
        for pid in members:  # also those that left the group but not the session
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        if not members or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def remove_shared_memory(pgid: int) -> None:
    """Remove the shared-memory segments a (killed) Lava child of group ``pgid`` left."""
    if SHM_DIR.is_dir():
        for p in SHM_DIR.glob(f"psm_snnkd{pgid}_*"):
            with contextlib.suppress(OSError):
                p.unlink()


def _run_group(cmd: list[str], env: dict[str, str], timeout: float, log: Path) -> int:
    """Run ``cmd`` in a new session, output to ``log``; return its exit status.  The group is
    dead when this returns or raises (``SnnkdError`` on timeout, ``Terminated`` on a signal)."""
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)

    def cleanup() -> None:
        kill_group(proc)
        remove_shared_memory(proc.pid)

    atexit.register(cleanup)
    try:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SnnkdError(f"the Lava run did not finish within {timeout} s (stopped); try fewer samples") from None
    finally:
        cleanup()  # Lava workers may outlive even a clean exit of the child
        atexit.unregister(cleanup)


@contextlib.contextmanager
def _work_dir(work: Path | None) -> Iterator[Path]:
    """A private directory for one run, removed afterwards, in ``work`` if given, else in
    ``TMPDIR``; in ``/tmp`` if that path is so long that the child's ``TMPDIR`` in it would not
    leave room for multiprocessing's socket paths (Lava's manager then dies with ``EOFError``)."""
    base = Path(work) if work is not None else Path(tempfile.gettempdir())
    try:
        base.mkdir(parents=True, exist_ok=True)
        if len(os.fsencode(base.resolve())) > MAX_BASE and os.access("/tmp", os.W_OK | os.X_OK):
            base = Path("/tmp")  # Lava's manager sockets would not fit (AF_UNIX paths are short)
        path = Path(tempfile.mkdtemp(prefix="snnkd-lava-", dir=base))
    except OSError as e:
        raise write_error(base, e) from None
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _child_command(net_dir: Path, mode: str, inp: Path, out: Path, h5: Path) -> list[str]:
    """The child imports the snnkd the parent imported: ``-P`` keeps the working directory off
    ``sys.path``, so a source checkout there (whose ``snnkd/`` lacks ``snnkd.export``, which
    installs from ``export/``) cannot shadow the installed package."""
    return [sys.executable, "-P", "-m", "snnkd.export.loihi.run", "--net", str(net_dir), "--mode", mode,
            "--inputs", str(inp), "--out", str(out), "--h5", str(h5)]


def _failure(status: int, log: Path, work: Path) -> SnnkdError:
    """One error line for a child that exited ``status`` != 0."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    try:
        free = shutil.disk_usage(work).free
    except OSError:
        free = None
    full = free is not None and free < LOW_SPACE  # Lava's helper processes may die of it with another error
    if full or any("No space left on device" in ln or "Disk quota exceeded" in ln for ln in lines):
        said = f"; the run said: {lines[-1].strip()}" if lines and "No space left" not in lines[-1] else ""
        return SnnkdError(f"cannot write {str(work)!r} (the Lava run's temporary files, in TMPDIR): "
                          f"No space left on device" + (f" ({free // 1024} KiB free{said})" if full else ""))
    if status < 0:
        return SnnkdError(f"the Lava run crashed ({signal.Signals(-status).name})"
                          + (f"; last output: {lines[-1].strip()}" if lines else ""))
    return SnnkdError(f"the Lava run failed (exit {status})" + (f": {lines[-1].strip()}" if lines else ""))


def run_lava(net_dir: Path, mode: str, x_q: np.ndarray, timeout: int, work: Path | None = None,
             h5: Path | None = None) -> dict[str, np.ndarray]:
    """Parent side: run the child on ``x_q`` (int, ``[N, T, C, H, W]``); return its recordings
    (``spikes:<layer>`` ``[steps, ...]`` in Lava ``(W, H, C)`` order, ``v:output``, ``seconds``).
    The run's files live in a private directory (under ``work`` if given, else ``TMPDIR``)
    removed once the child's group is dead; nothing of the run survives it."""
    with signals_raise(), _work_dir(work) as w:
        inp, out, log, tmp = w / "lava_inputs.npz", w / "lava_outputs.npz", w / "lava.log", w / "tmp"
        try:
            tmp.mkdir()
            with open(inp, "wb") as f:
                np.savez(f, x_q=x_q.astype(np.int32))
        except OSError as e:
            raise write_error(inp, e) from None
        # The directory the parent imported snnkd from comes first; no empty entry (an empty
        # PYTHONPATH item puts the working directory on the child's sys.path).
        import snnkd
        root = Path(snnkd.__file__).resolve().parent.parent
        paths = [str(root), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
        env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": os.pathsep.join(paths)}
        cmd = _child_command(Path(net_dir), mode, inp, out, Path(h5 or Path(net_dir) / "network.net"))
        try:
            status = _run_group(cmd, env, timeout, log)
        except OSError as e:  # the log file cannot be created, or the interpreter cannot start
            raise write_error(log, e) if e.errno in WRITE_ERRNOS else SnnkdError(
                f"cannot start the Lava run: {e.strerror or e}") from None
        if status != 0:
            raise _failure(status, log, w)
        if not out.is_file():
            raise SnnkdError(f"the Lava run exited 0 but wrote no results ({str(out)!r} is missing)")
        try:
            with np.load(out, allow_pickle=False) as z:
                return {k: np.array(z[k]) for k in z.files}
        except Exception as e:  # a damaged npz: zipfile/ValueError/OSError
            raise SnnkdError(f"the Lava run's results {str(out)!r} are unreadable: {type(e).__name__}") from None


# ---------------------------------------------------------------------------- child
def _name_shared_memory() -> None:
    """Name this run's shared-memory segments ``psm_snnkd<pgid>_*`` (inherited by Lava's
    forked processes), so that the parent can remove those of a killed run."""
    import secrets
    from multiprocessing import shared_memory

    prefix = f"/psm_snnkd{os.getpgrp()}_"
    shared_memory._make_filename = lambda: prefix + secrets.token_hex(8)  # type: ignore[attr-defined]


def _watch_parent() -> None:
    """Kill this process group when the parent is gone (it was ``SIGKILL``-ed)."""
    ppid = os.getppid()

    def watch() -> None:
        while os.getppid() == ppid:
            time.sleep(0.5)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def _child(net_dir: Path, mode: str, inputs: Path, out: Path, h5: Path) -> None:
    _watch_parent()
    _name_shared_memory()
    from snnkd.export.loihi import compat as lava_compat
    lava_compat.install()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    from snnkd.export.loihi.graph import INPUT_MESSAGE_BITS, build_graph, load_net, to_xyz

    net = load_net(net_dir)
    x_q = np.load(inputs)["x_q"]
    N, T = x_q.shape[:2]
    data = to_xyz(x_q.reshape(N * T, *x_q.shape[2:]))          # [N T, W, H, C]
    ring = RingBuffer(data=np.moveaxis(data, 0, -1).astype(np.int32))
    if mode == "netx":
        from lava.lib.dl import netx
        nx = netx.hdf5.Network(net_config=str(h5), input_message_bits=INPUT_MESSAGE_BITS,
                               reset_interval=T, reset_offset=1)
        ring.s_out.connect(nx.inp)
        if len(nx.layers) != len(net.layers):
            raise RuntimeError(f"netx built {len(nx.layers)} layers, expected {len(net.layers)}")
        neurons = {layer.name: blk.neuron for layer, blk in zip(net.layers, nx.layers)}
    else:
        neurons = build_graph(net, ring.s_out)
    steps = N * T + net.layers[-1].depth
    monitors = {}
    for layer in net.layers:
        mon = Monitor()
        target = neurons[layer.name].v if layer.kind == "out" else neurons[layer.name].s_out
        mon.probe(target, steps)
        monitors[layer.name] = (mon, target)
    t0 = time.time()
    ring.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    result = {}
    try:
        for layer in net.layers:
            mon, target = monitors[layer.name]
            data = mon.get_data()[target.process.name][target.name]
            key = "v:output" if layer.kind == "out" else f"spikes:{layer.name}"
            result[key] = np.asarray(data).astype(np.int32)
    finally:
        ring.stop()
    result["seconds"] = np.array(time.time() - t0)
    part = out.with_name(out.name + ".part")  # the parent never sees a half-written file
    with open(part, "wb") as f:
        np.savez(f, **result)
    os.replace(part, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="run a snnkd Loihi network in Lava (child process)")
    p.add_argument("--net", type=Path, required=True)
    p.add_argument("--mode", choices=["netx", "graph"], required=True)
    p.add_argument("--inputs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--h5", type=Path, required=True, help="netx HDF5 (netx mode)")
    a = p.parse_args(argv)
    try:
        _child(a.net, a.mode, a.inputs, a.out, a.h5)
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        print(f"snnkd-lava: {e.strerror}", file=sys.stderr)  # the parent turns this into one line
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
