#!/usr/bin/env bash
# Start a single-node SLURM on this machine (localhost): munged + slurmctld + slurmd.
#
# Installs Debian's slurm-wlm and munge when missing, writes a minimal slurm.conf (the machine's
# real CPU count and memory as `slurmd -C` reports them; proctrack/linuxproc, task/none, no
# cgroups, no accounting), starts the three daemons and waits until the node is idle.
# Idempotent: returns at once when the node already answers as idle. Needs root.
# Used by tests/job/test_slurm.py (through .ci/run); safe to run by hand.
set -euo pipefail

log() { echo "start-slurm: $*" >&2; }

node_ready() {
    command -v sinfo >/dev/null 2>&1 || return 1
    local state
    state=$(timeout 5 sinfo -h -N -o '%T' 2>/dev/null | head -n1) || return 1
    [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]]
}

if node_ready; then
    log "already running ($(sinfo -h -N -o '%N %T %c CPUs %m MB'))"
    exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    log "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi

# --- munge -------------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null
fi

# --- slurm.conf --------------------------------------------------------------------------------
host=$(hostname -s)
# "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
hw=$(slurmd -C | head -n1 | sed -E 's/^NodeName=[^ ]+ //; s/ Boards=[0-9]+//')
mem=$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$hw")
hw=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$((mem * 95 / 100))/" <<<"$hw")  # headroom for the OS
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
cat >/etc/slurm/slurm.conf <<EOF
# written by .ci/start-slurm.sh: single-node SLURM on localhost
ClusterName=distdataeval
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0
NodeName=${host} NodeAddr=127.0.0.1 ${hw} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# --- daemons -----------------------------------------------------------------------------------
running() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! running /run/slurm/slurmctld.pid; then
    log "starting slurmctld"
    /usr/sbin/slurmctld
fi
if ! running /run/slurm/slurmd.pid; then
    log "starting slurmd"
    /usr/sbin/slurmd
fi

for _ in $(seq 60); do
    if node_ready; then
        log "ready: $(sinfo -h -N -o '%N %T %c CPUs %m MB')"
        exit 0
    fi
    # a node left DOWN/DRAIN by an earlier unclean stop comes back on request
    scontrol update NodeName="${host}" State=RESUME >/dev/null 2>&1 || true
    sleep 1
done
log "SLURM did not become ready; last lines of the logs:"
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
sinfo -N >&2 || true
exit 1
