#!/usr/bin/env bash
# A single-node Slurm cluster for trying `schedule print --slurm-array` (and for the tests): munge and Slurm
# from Debian's packages (apt-get install slurm-wlm munge), run as root without systemd, everything under
# one folder. Usage:  tests/slurm/cluster.sh start DIR [CTLD_PORT SLURMD_PORT]   (prints `export SLURM_CONF=...`)
#                     tests/slurm/cluster.sh stop DIR
# Ports default to 16817 and 16818; give others to run several clusters at once (the tests do).
set -euo pipefail
action=${1:?start or stop}
dir=$(realpath -m "${2:?a folder for the state of the cluster}")
conf="$dir/slurm.conf"
ctld_port=${3:-16817}
slurmd_port=${4:-16818}

stop() {
  local pids=()
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
    if [ -s "$pidfile" ]; then pids+=("$(cat "$pidfile")"); kill "${pids[-1]}" 2>/dev/null || true; fi
  done
  for _ in $(seq 1 100); do  # gone, ports free, before a next cluster starts
    alive=""
    for pid in "${pids[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive=yes; fi; done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
}

if [ "$action" = stop ]; then stop; exit 0; fi
[ "$action" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

mkdir -p "$dir/spool" "$dir/state" "$dir/log"
host=$(hostname -s)
cpus=$(nproc)
memory=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
[ -f "$dir/munge.key" ] || mungekey --create --keyfile="$dir/munge.key"
chmod 600 "$dir/munge.key"
munged --force -S "$dir/munge.socket" --key-file="$dir/munge.key" --log-file="$dir/log/munged.log" \
  --pid-file="$dir/munged.pid" --seed-file="$dir/munge.seed"
cat > "$conf" <<CONF
ClusterName=fmriprepcleanup
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
CONF
export SLURM_CONF="$conf"
slurmctld -i -f "$conf"
slurmd -f "$conf"
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -q idle; then echo "export SLURM_CONF=$conf"; exit 0; fi
  sleep 1
done
echo "the node did not come up; see $dir/log" >&2
stop
exit 1
