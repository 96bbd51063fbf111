# shellcheck shell=bash
# tests/slurm/cluster.sh — a one-node Slurm cluster on localhost, all state in one directory.
#
# Sourced by test_slurm.sh (bash). cluster_start DIR starts munged, slurmctld and slurmd with
# configs written under DIR and exports SLURM_CONF, so that every Slurm command of the caller
# talks to this cluster only. cluster_stop cancels its jobs and stops every process it started
# (the daemons, and any slurmstepd or job process left, found by SLURM_CONF in its
# environment), by PID. Daemons run in the foreground as children of the test, so their PIDs
# are known without pid files.
#
# Facts this relies on (Slurm 22.05, Debian 12): clients find the cluster through SLURM_CONF;
# munged refuses a socket directory that others cannot traverse (mktemp -d gives 700);
# proctrack/linuxproc and task/none need no cgroups; MPI steps use --mpi=pmix.

CLUSTER_DIR=""
CLUSTER_PIDS=""      # "name:pid ..." of the daemons, in start order
CLUSTER_NODE=pgnode

say() { printf '[slurm-test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.5 s until it succeeds.
wait_for() {
    local limit=$1 what=$2 t0=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - t0 >= limit)); then
            say "timed out after ${limit}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

daemon_alive() { kill -0 "$1" 2>/dev/null; }

# start_daemon NAME COMMAND...: runs COMMAND in the background, remembers its PID.
start_daemon() {
    local name=$1
    shift
    "$@" >"$CLUSTER_DIR/log/$name.out" 2>&1 &
    CLUSTER_PIDS="$CLUSTER_PIDS $name:$!"
    say "started $name (pid $!)"
}

daemon_pid() {
    local e
    for e in $CLUSTER_PIDS; do
        [ "${e%%:*}" = "$1" ] && echo "${e#*:}"
    done
}

cluster_write_conf() {
    local d=$CLUSTER_DIR cpus mem host
    cpus=$(getconf _NPROCESSORS_ONLN) # not nproc: it obeys OMP_NUM_THREADS
    # Memory is a consumable resource (CR_Core_Memory), so --mem-per-cpu means what it says.
    mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)
    host=$(hostname -s 2>/dev/null || hostname)
    cat >"$d/etc/slurm.conf" <<EOF
# A one-node test cluster (tests/slurm/cluster.sh); every path under $d.
ClusterName=patchgridtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (120 s by
# default); starting it earlier fails it ("Job credential revoked").
AuthInfo=socket=$d/munge/munge.socket,cred_expire=15
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
TmpFS=$d/tmp
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmix
SchedulerType=sched/backfill
# Look at pending jobs every 5 s (not 30-60 s): a requeued job starts soon after it may.
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=20
MinJobAge=3600
InactiveLimit=0
SlurmdTimeout=120
MailProg=/bin/true
NodeName=$CLUSTER_NODE NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$CLUSTER_NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

# cluster_start DIR: a new (or empty) directory; it and its parents must be traversable by
# all (munged checks), so it is made mode 755.
cluster_start() {
    CLUSTER_DIR=$1
    local d=$CLUSTER_DIR
    mkdir -p "$d" && chmod 755 "$d" || return 1
    mkdir -p "$d/etc" "$d/munge" "$d/state" "$d/spool" "$d/run" "$d/log" "$d/tmp"
    chmod 755 "$d/munge"
    cluster_write_conf
    export SLURM_CONF=$d/etc/slurm.conf

    # munge: a fresh key; the socket in our directory.
    dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$d/munge/munge.key"
    start_daemon munged munged --foreground --force --key-file="$d/munge/munge.key" \
        --socket="$d/munge/munge.socket" --pid-file="$d/run/munged.pid" \
        --log-file="$d/log/munged.log" --seed-file="$d/munge/munged.seed"
    wait_for 30 "munged" munge_works || return 1

    start_daemon slurmctld slurmctld -D -i -f "$SLURM_CONF"
    wait_for 60 "slurmctld to answer" scontrol ping || return 1
    start_daemon slurmd slurmd -D -f "$SLURM_CONF" -N "$CLUSTER_NODE"
    wait_for 60 "node $CLUSTER_NODE to be idle" node_idle || return 1
    say "cluster up: $(sinfo -h -o '%P %D nodes %c cpus %m MB %T')"
}

munge_works() {
    munge -n -S "$CLUSTER_DIR/munge/munge.socket" | unmunge -S "$CLUSTER_DIR/munge/munge.socket"
}

node_idle() { [ "$(sinfo -h -n "$CLUSTER_NODE" -o %T)" = idle ]; }

# PIDs of processes other than daemons that belong to this cluster: slurmstepd and job
# processes inherit SLURM_CONF from slurmd or from the submitting test.
cluster_strays() {
    local p self=$$ mine
    mine=" $(for e in $CLUSTER_PIDS; do printf '%s ' "${e#*:}"; done)"
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = "$self" ] && continue
        case $mine in *" $p "*) continue ;; esac
        if tr "\0" "\n" 2>/dev/null <"/proc/$p/environ" | grep -qx "SLURM_CONF=$SLURM_CONF"; then
            # By executable name, so that this shell's own subshells never match.
            case $(cat "/proc/$p/comm" 2>/dev/null) in
            slurmstepd | slurm_script | srun | patchgrid) echo "$p" ;;
            esac
        fi
    done
}

# stop_pids SECONDS PID...: TERM, then KILL whatever is left after SECONDS.
stop_pids() {
    local limit=$1 p t0=$SECONDS left
    shift
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null
    while :; do
        left=""
        for p in "$@"; do daemon_alive "$p" && left="$left $p"; done
        [ -z "$left" ] && return 0
        if ((SECONDS - t0 >= limit)); then
            say "still running after ${limit}s, killing:$left"
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null
            return 0
        fi
        sleep 0.2
    done
}

cluster_stop() {
    [ -n "$CLUSTER_DIR" ] || return 0
    local p pid name strays
    if [ -n "$(daemon_pid slurmctld)" ] && daemon_alive "$(daemon_pid slurmctld)"; then
        scancel --quiet --partition=test 2>/dev/null
        wait_for 30 "jobs to end" no_jobs
    fi
    # A job that has ended may still have a slurmstepd cleaning up: let it finish.
    wait_for 30 "job steps to end" no_strays
    # Daemons in reverse start order: slurmd, slurmctld, munged.
    for name in slurmd slurmctld munged; do
        pid=$(daemon_pid "$name")
        [ -n "$pid" ] || continue
        if daemon_alive "$pid"; then
            stop_pids 20 "$pid"
            say "stopped $name (pid $pid)"
        fi
        wait "$pid" 2>/dev/null
    done
    strays=$(cluster_strays)
    if [ -n "$strays" ]; then
        say "stopping leftover job processes: $(echo "$strays" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        stop_pids 10 $strays
    fi
    for p in $CLUSTER_PIDS $strays; do
        if daemon_alive "${p#*:}"; then
            say "ERROR: process ${p#*:} is still running"
            return 1
        fi
    done
    CLUSTER_PIDS=""
    return 0
}

no_strays() { [ -z "$(cluster_strays)" ]; }
no_jobs() { [ -z "$(squeue -h -o %i 2>/dev/null)" ]; }

# Prints the daemon logs (on failure): each daemon's log file, or what it printed when it
# has none (a daemon that failed before opening it).
cluster_logs() {
    local name f
    for name in munged slurmctld slurmd; do
        f=$CLUSTER_DIR/log/$name.log
        [ -s "$f" ] || f=$CLUSTER_DIR/log/$name.out
        [ -s "$f" ] || continue
        echo "----- $f (last 40 lines)"
        tail -n 40 "$f"
    done
}
