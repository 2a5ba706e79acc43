"""The workflow on a real single-node SLURM (scripts/slurm_test.sh): the cluster is started
from Debian's packages, the tiny SLURM config runs through profiles/slurm with the distill
job on a fake GPU, SLURM's own records must show every job COMPLETED, and the daemons are
stopped by pid.  Needs root and apt-get (or the packages installed)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def slurm_available() -> str | None:
    """None when the test can run, else the reason it cannot."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        return None if os.geteuid() == 0 else "SLURM daemons need root to start"
    if os.geteuid() != 0:
        return "not root: cannot apt-get install munge/slurm"
    if not shutil.which("apt-get"):
        return "no apt-get: cannot install munge/slurm"
    return None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_workflow_on_real_slurm(tmp_path: Path):
    reason = slurm_available()
    if reason:
        pytest.skip(reason)
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        pytest.skip("a slurmctld is already running on this machine; not starting a second cluster")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_test.sh"), str(tmp_path / "wf")],
                       capture_output=True, text=True, timeout=880,
                       env={**os.environ, "SNNKD_SLURM_STATE": str(tmp_path / "slurm")})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "slurm_test: OK" in out and "with gres/gpu=1" in out, out[-2000:]
    assert (tmp_path / "wf" / "results" / "summary" / "summary.tsv").is_file()
    stopped = subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode != 0
    assert stopped, "slurmctld still running after the script stopped the cluster"
    # the config it wrote is gone: a stale one makes every later snakemake wait ~9 s on scontrol
    assert not Path("/etc/slurm/slurm.conf").exists() and not Path("/etc/slurm/gres.conf").exists()
    print(out)  # cluster start-up and workflow times, shown with pytest -s / -rA
