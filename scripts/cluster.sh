#!/usr/bin/env bash
# A Slurm 22.05 cluster of several compute nodes on this one machine, for
# McKernel jobs (docs/slurm.md): munged, slurmctld and one slurmd per node,
# all on 127.0.0.1 (distinct NodeName and Port; Debian's Slurm is built with
# --enable-multiple-slurmd), the SPANK plugin last in plugstack.conf,
# mckernel-epilog as Epilog=, and per node its own IHK_RUNTIME_DIR, plugin
# state and so its own LWK partition (pin isolation: the nodes' partitions
# may share a CPU, only vCPU threads are pinned).
#
#   scripts/cluster.sh up       start (prints the exports for srun/sbatch)
#   scripts/cluster.sh status   daemons, nodes, partitions
#   scripts/cluster.sh down     cancel jobs, let the epilogue run, stop the
#                               daemons (by the pids this script recorded),
#                               release any partition left, remove nothing
#                               else on the machine
#
# Everything lives in $MCK_CLUSTER_DIR (default /var/tmp/mckernel-cluster):
# slurm.conf, plugstack.conf, mckernel.toml, the munge key and socket, logs,
# and nodes/<name>/{spool,ihk,state}. No file of the machine's own Slurm or
# munge is read or written.
#
# Environment: MCK_CLUSTER_NODES (default 2), MCK_TOOLS_DIR (a cargo profile
# directory with mcreboot, mcexec, ..., the plugin and mckernel-epilog;
# default target/release if built, else target/debug, built if missing),
# MCK_SPANK_PLUGIN (the plugin .so; default <tools>/libspank_mckernel.so),
# MCK_CLUSTER_SITE_EXTRA (lines appended to mckernel.toml, e.g. for tests).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${MCK_CLUSTER_DIR:-/var/tmp/mckernel-cluster}
nodes=${MCK_CLUSTER_NODES:-2}
cmd=${1:-}

die() { echo "cluster.sh: $*" >&2; exit 1; }
node_names() { local i; for ((i = 1; i <= nodes; i++)); do echo "n$i"; done; }
pid_of() { cat "$1" 2>/dev/null || true; }
# A pid recorded by this cluster, still running a program whose command line
# names this cluster's directory (pid reuse never makes us signal another).
ours() {
    local pid=$1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$dir"
}
free_ports() { # <count>: distinct free TCP ports on 127.0.0.1
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
export SLURM_CONF=$dir/slurm.conf

tools_dir() {
    if [ -n "${MCK_TOOLS_DIR:-}" ]; then
        echo "$MCK_TOOLS_DIR"; return
    fi
    local t=${CARGO_TARGET_DIR:-$here/target}
    if [ -x "$t/release/mcreboot" ] && [ -f "$t/release/libspank_mckernel.so" ]; then
        echo "$t/release"
    else
        echo "$t/debug"
    fi
}

up() {
    [ "$(id -u)" -eq 0 ] || die "run as root (slurmd, munged and the LWK partitions need it)"
    [ -e /dev/kvm ] || die "/dev/kvm is missing: the nodes' LWK partitions are KVM VMs"
    if [ -f "$dir/slurmctld.pid" ] && ours "$(pid_of "$dir/slurmctld.pid")"; then
        die "a cluster already runs in $dir (scripts/cluster.sh status; down first)"
    fi
    "$here/scripts/setup-deps.sh"
    local tools plugin
    tools=$(tools_dir)
    if [ -z "${MCK_TOOLS_DIR:-}" ] && [ ! -x "$tools/mcexec" ]; then
        (cd "$here" && cargo build --workspace)
    fi
    plugin=${MCK_SPANK_PLUGIN:-$tools/libspank_mckernel.so}
    for f in mcreboot mcstop-release ihkconfig ihkosctl ihkd mcexec mckernel.img mckernel-epilog; do
        [ -e "$tools/$f" ] || die "$tools/$f is missing (cargo build --workspace)"
    done
    [ -f "$plugin" ] || die "$plugin is missing (cargo build -p spank-plugin)"

    rm -rf "$dir"
    mkdir -p "$dir"/{munge,log,state}
    chmod 755 "$dir" "$dir"/{munge,log,state}   # jobs of other users read slurm.conf and munge's socket
    local name
    for name in $(node_names); do
        mkdir -p "$dir/nodes/$name"/{spool,state,tmp}
    done
    chmod -R 755 "$dir/nodes"
    chmod 1777 "$dir"/nodes/*/tmp          # TmpFS: PMIx puts its per-job client directories there

    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 600 "$dir/munge/munge.key"
    munged --force --num-threads=4 \
        --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    cp "$dir/munge/munged.pid" "$dir/munged.pid"

    # The plugin's site file: %n is the node's name (SLURMD_NODENAME), so
    # every node has its own ihkd runtime directory and plugin state.
    cat > "$dir/mckernel.toml" <<EOF
# Site configuration of the McKernel SPANK plugin for this cluster (scripts/cluster.sh).
mcreboot = "$tools/mcreboot"
mcstop_release = "$tools/mcstop-release"
ihkconfig = "$tools/ihkconfig"
ihkosctl = "$tools/ihkosctl"
mcexec = "$tools/mcexec"
runtime_dir = "$dir/nodes/%n/ihk"
state_dir = "$dir/nodes/%n/state"
isolation = "pin"
linux_cpus = "0"
max_memory_fraction = 0.3
shared_host = true
kill_grace_secs = 3
boot_timeout_secs = 120
${MCK_CLUSTER_SITE_EXTRA:-}
EOF
    cat > "$dir/epilog.sh" <<EOF
#!/bin/sh
# Epilog= of this cluster: the plugin's epilogue with this cluster's site
# file; SLURM_CONF lets it drain the node (scontrol) when cleanup fails.
SLURM_CONF=$dir/slurm.conf exec $tools/mckernel-epilog --config $dir/mckernel.toml
EOF
    chmod 755 "$dir/epilog.sh"
    echo "required $plugin config=$dir/mckernel.toml" > "$dir/plugstack.conf"

    local ports cpus mem host nodeconf="" i=0
    read -r -a ports <<< "$(free_ports $((nodes + 1)))"
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ { print int($2 / 1024 / 4) }' /proc/meminfo)
    host=$(hostname)
    for name in $(node_names); do
        i=$((i + 1))
        nodeconf+="NodeName=$name NodeHostname=$host NodeAddr=127.0.0.1 Port=${ports[$i]} CPUs=$cpus RealMemory=$mem State=UNKNOWN"$'\n'
    done
    cat > "$SLURM_CONF" <<EOF
# A McKernel test cluster on one machine (scripts/cluster.sh); loopback only.
ClusterName=mckernel
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports[0]}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/nodes/%n/spool
TmpFS=$dir/nodes/%n/tmp
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/nodes/%n/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/nodes/%n/slurmd.log
SlurmdDebug=debug
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MessageTimeout=30
TreeWidth=50
PlugStackConfig=$dir/plugstack.conf
Epilog=$dir/epilog.sh
$nodeconf
PartitionName=lwk Nodes=ALL Default=YES MaxTime=INFINITE OverSubscribe=EXCLUSIVE State=UP
EOF

    # The daemons get no SLURM_CONF: `down` ends what has it (job leftovers).
    # Each slurmd gets its node name in its environment, which its
    # slurmstepds inherit: the plugin expands %n of the site file with it.
    env -u SLURM_CONF slurmctld -i -f "$SLURM_CONF"
    for name in $(node_names); do
        env -u SLURM_CONF SLURMD_NODENAME="$name" slurmd -N "$name" -f "$SLURM_CONF"
    done
    local deadline=$((SECONDS + 60))
    until [ "$(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)" -eq "$nodes" ]; do
        if ((SECONDS > deadline)); then
            status >&2
            die "the nodes did not become idle in 60 s (logs in $dir/log and $dir/nodes/*/slurmd.log)"
        fi
        sleep 0.5
    done
    echo "cluster.sh: $nodes nodes up ($(node_names | paste -sd' ')); configuration in $dir"
    echo "export SLURM_CONF=$SLURM_CONF"
    echo "export PATH=$tools:\$PATH   # mcexec, ihkosctl, ql_mpiexec_start"
    echo "# per node: IHK_RUNTIME_DIR=$dir/nodes/<node>/ihk ihkosctl 0 kmsg"
}

status() {
    local rc=0 name pid
    for d in slurmctld munged; do
        pid=$(pid_of "$dir/$d.pid")
        if ours "$pid"; then echo "$d: running (pid $pid)"; else echo "$d: not running"; rc=1; fi
    done
    for name in $(ls "$dir/nodes" 2>/dev/null); do
        pid=$(pid_of "$dir/nodes/$name/slurmd.pid")
        local st="not running" part="none"
        ours "$pid" && st="running (pid $pid)"
        pid=$(pid_of "$dir/nodes/$name/ihk/ihkd.pid")
        [ -n "$pid" ] && [ -d "/proc/$pid" ] && part="ihkd $pid, status $(IHK_RUNTIME_DIR=$dir/nodes/$name/ihk "$(tools_dir)/ihkosctl" 0 get status 2>/dev/null || echo '?')"
        echo "$name: slurmd $st; LWK partition: $part"
    done
    if ours "$(pid_of "$dir/slurmctld.pid")"; then
        sinfo -N -o "%N %T %E" || true
        squeue || true
    fi
    return $rc
}

# SIGTERM to a recorded daemon of ours, then wait; SIGKILL after 10 s.
stop_pid() { # <pidfile> <name>
    local pid
    pid=$(pid_of "$1")
    ours "$pid" || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        [ -d "/proc/$pid" ] || return 0
        sleep 0.1
    done
    echo "cluster.sh: $2 (pid $pid) ignored SIGTERM; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
}

down() {
    [ -d "$dir" ] || { echo "cluster.sh: no cluster in $dir"; return 0; }
    local rc=0 name pid
    if ours "$(pid_of "$dir/slurmctld.pid")"; then
        # Cancel the jobs; their epilogue releases the partitions.
        scancel --user root 2>/dev/null || true
        scancel --state=RUNNING 2>/dev/null || true
        scancel --state=PENDING 2>/dev/null || true
        local deadline=$((SECONDS + 90))
        while [ -n "$(squeue -h -o %i 2>/dev/null)" ] ||
              sinfo -h -N -o %T 2>/dev/null | grep -q comp; do
            ((SECONDS < deadline)) || { echo "cluster.sh: jobs still ending after 90 s" >&2; break; }
            sleep 0.5
        done
    fi
    # Processes of the jobs that outlived them: tasks and proxies of a killed
    # slurmstepd. Their environment names this cluster's slurm.conf and the
    # node slurmd started them on (a user's shell has no SLURMD_NODENAME).
    for e in /proc/[0-9]*/environ; do
        pid=${e#/proc/}; pid=${pid%/environ}
        [ "$pid" != $$ ] || continue
        if { tr '\0' '\n' < "$e"; } 2>/dev/null |
            awk -v c="SLURM_CONF=$SLURM_CONF" '$0 == c { a = 1 } /^SLURMD_NODENAME=/ { b = 1 } END { exit !(a && b) }'; then
            echo "cluster.sh: ending leftover job process $pid" >&2
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    for name in $(ls "$dir/nodes" 2>/dev/null); do
        stop_pid "$dir/nodes/$name/slurmd.pid" "slurmd $name"
    done
    stop_pid "$dir/slurmctld.pid" slurmctld
    stop_pid "$dir/munged.pid" munged
    # A partition the epilogue could not release.
    local stop
    stop=$(sed -n 's/^mcstop_release = "\(.*\)"$/\1/p' "$dir/mckernel.toml" 2>/dev/null)
    for name in $(ls "$dir/nodes" 2>/dev/null); do
        local rt=$dir/nodes/$name/ihk
        if [ -e "$rt/mcd0" ] || [ -s "$rt/journal" ]; then
            echo "cluster.sh: releasing the partition left on $name"
            IHK_RUNTIME_DIR=$rt "$stop" || { echo "cluster.sh: $name: mcstop+release failed" >&2; rc=1; }
        fi
    done
    echo "cluster.sh: down ($dir kept for its logs)"
    return $rc
}

case "$cmd" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: scripts/cluster.sh up|down|status   (MCK_CLUSTER_DIR=$dir)" >&2; exit 2 ;;
esac
