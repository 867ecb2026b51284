#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `slurm` test tier (tests/slurm) and .ci/run.
#
#   scripts/slurm_local.sh install   apt-get install slurm-wlm and munge if sbatch is absent (root)
#   scripts/slurm_local.sh start     write slurm.conf + a munge key under $EBPO_SLURM_DIR, start
#                                    munged, slurmctld and slurmd, wait until the node is idle
#   scripts/slurm_local.sh stop      stop the three daemons by their pid files
#
# Needs root (slurmd runs jobs as their submitting user; SlurmUser=root). Everything the cluster writes
# lives in $EBPO_SLURM_DIR (default /tmp/ebpo-slurm); the node has the machine's CPUs and 20 GB.
set -euo pipefail
DIR=${EBPO_SLURM_DIR:-/tmp/ebpo-slurm}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

install() {
  command -v sbatch >/dev/null && command -v munged >/dev/null && return 0
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

start() {
  mkdir -p "$DIR"/{state,spool,log,munge}
  chmod 755 "$DIR"  # munged runs as the munge user and must reach $DIR/munge (its parents too)
  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)
  cat > "$CONF" <<CONF
ClusterName=ebpo
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
MinJobAge=600
KillWait=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  # munge: its own key and socket under $DIR, run as the munge user (munged refuses root-owned dirs)
  chown -R munge:munge "$DIR/munge"
  chmod 700 "$DIR/munge"
  [ -f "$DIR/munge/munge.key" ] || runuser -u munge -- mungekey -c -k "$DIR/munge/munge.key"
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" --force
  slurmctld -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 1 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      echo "slurm_local: node $host idle (SLURM_CONF=$CONF)"
      return 0
    fi
    sleep 0.5
  done
  echo "slurm_local: the node did not become idle; see $DIR/log" >&2
  sinfo >&2 || true
  return 1
}

stop() {
  for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      rm -f "$pidfile"
    fi
  done
  echo "slurm_local: stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
