#!/usr/bin/env bash
# A real single-node SLURM cluster from Debian's packages, started by hand (no systemd),
# for testing profiles/slurm.  Needs root.  One node `localhost` with all CPUs, a fake GPU
# (gres gpu:1 backed by /dev/null) and one partition `main`; completed jobs are recorded
# in STATE/jobcomp.log (no accounting database).
#
#   bash scripts/slurm_cluster.sh start    # install if needed, write config, start, wait idle
#   bash scripts/slurm_cluster.sh stop     # stop the daemons by the pids in their pid files
#
# STATE (default /tmp/snnkd-slurm) holds spool dirs, logs and pid files.  The config must
# live at /etc/slurm/slurm.conf because the Snakemake plugin drops SLURM_CONF.  `start`
# refuses to overwrite a slurm.conf or gres.conf it did not write, and `stop` removes the
# two it wrote: a config left behind names a controller that is gone, and then every
# `snakemake` on the machine waits about 9 s at start-up, where the SLURM executor plugin
# runs `scontrol show config` (which retries the dead controller) to word its help text.
set -euo pipefail
STATE=${SNNKD_SLURM_STATE:-/tmp/snnkd-slurm}
CONF_DIR=/etc/slurm
MARK="# Written by snnkd scripts/slurm_cluster.sh: single-node test cluster."

die() { echo "slurm_cluster: $*" >&2; exit 1; }

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "root is needed to install munge and slurm (apt-get)"
  command -v apt-get >/dev/null || die "apt-get not found: install munge, slurmctld, slurmd, slurm-client by hand"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null; } ||
    die "apt-get could not install munge slurmctld slurmd slurm-client"
}

ours() {  # the file is absent or was written by this script
  [ ! -e "$1" ] || [ "$(head -n 1 "$1")" = "$MARK" ]
}

write_config() {
  local cpus mem f
  for f in "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"; do
    ours "$f" || die "$f exists and was not written by this script: not overwriting a real SLURM config"
  done
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) * 8 / 10 ))
  mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d"
  cat > "$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=snnkd
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=600
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
NodeName=localhost CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  printf '%s\nName=gpu Count=1 File=/dev/null\n' "$MARK" > "$CONF_DIR/gres.conf"
}

start_munge() {
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  if [ -s /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
    return 0  # already running
  fi
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  echo /run/munge/munged.pid > "$STATE/munged.pidfile"
}

wait_idle() {
  local i
  for i in $(seq 1 120); do
    [ -s "$STATE/slurmctld.pid" ] && ! kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null &&
      die "slurmctld exited: $(grep -m1 'fatal' "$STATE/slurmctld.log" || tail -1 "$STATE/slurmctld.log")"
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qx 'idle'; then
      return 0
    fi
    sleep 1
  done
  die "node did not become idle in 120 s; see $STATE/slurmctld.log and $STATE/slurmd.log"
}

start() {
  local t0=$SECONDS
  install_packages
  mkdir -p "$STATE"
  write_config
  rm -f "$STATE/jobcomp.log"   # completion records of this cluster's run only
  start_munge
  /usr/sbin/slurmctld -i    # -i: ignore state left from an earlier run
  /usr/sbin/slurmd -N localhost
  wait_idle
  echo "slurm_cluster: up in $((SECONDS - t0)) s (node localhost idle; state in $STATE)" >&2
}

stop_pidfile() {
  local f=$1 pid i
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  stop_pidfile "$STATE/slurmd.pid"
  stop_pidfile "$STATE/slurmctld.pid"
  if [ -s "$STATE/munged.pidfile" ]; then
    stop_pidfile "$(cat "$STATE/munged.pidfile")"
    rm -f "$STATE/munged.pidfile"
  fi
  local f
  for f in "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"; do
    if [ -e "$f" ] && ours "$f"; then rm -f "$f"; fi
  done
  echo "slurm_cluster: stopped" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: slurm_cluster.sh start|stop" ;;
esac
