#!/bin/bash
# tests/slurm/test_slurm.sh BUILD_DIR — the slurm/ job scripts on a real Slurm cluster.
#
# Starts a one-node cluster on localhost (munged, slurmctld, slurmd; state in a temporary
# directory: tests/slurm/cluster.sh), then:
#   1. sweep      slurm/sweep.sbatch on a small config == a plain `mpirun` run, bitwise
#   2. requeue    the same, requeued mid-run with `scontrol requeue`: resumes, identical
#   3. usr1       the same, signalled mid-run with `scancel --signal=USR1 --batch`: the script
#                 stops the ranks, requeues itself, resumes, identical
#   4. resubmit   the same, cancelled mid-run (`scancel`): stays cancelled; submitting the same
#                 command again resumes the file, identical
#   5. array      slurm/array.sbatch as a 3-task job array (one task signalled mid-run) and
#                 a dependent `patchgrid merge` job == the mpirun run, bitwise
# Every process it started is stopped by PID at the end, whatever happened.
#
# Exit status: 0 all passed, 1 something failed, 77 Slurm is not installed and cannot be
# installed here (not root, or no apt-get). PATCHGRID_SLURM_KEEP=1 keeps the directory;
# PATCHGRID_SLURM_ONLY="sweep array" runs only those scenarios.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

SKIP=77
build=${1:?usage: test_slurm.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
# shellcheck source=tests/slurm/cluster.sh
. tests/slurm/cluster.sh

case $build in /*) ;; *) build=$root/$build ;; esac
export PATCHGRID=$build/patchgrid
PY=/usr/bin/python3
N_PAIRS=${PATCHGRID_SLURM_PAIRS:-600}   # pairs of the sweep to start with
MIN_SECONDS=10                          # ... doubled until a run takes this long
JOB_TIMEOUT=${PATCHGRID_SLURM_TIMEOUT:-300}

# ---- Slurm installed, or installable? ----------------------------------------------------
have_slurm() {
    local c
    for c in slurmctld slurmd srun sbatch scontrol squeue sinfo scancel munged munge unmunge; do
        command -v "$c" >/dev/null 2>&1 || return 1
    done
}
if ! have_slurm; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "SKIPPED: Slurm (slurm-wlm, munge) is not installed, and installing it needs root" \
            "and apt-get (Debian/Ubuntu). Install slurm-wlm and munge, then run again."
        exit $SKIP
    fi
    say "installing slurm-wlm and munge (tools/deps.sh slurm)"
    sh tools/deps.sh slurm || { say "FAILED: could not install slurm-wlm and munge"; exit 1; }
    have_slurm || { say "FAILED: Slurm commands still missing after installing"; exit 1; }
fi
[ -x "$PATCHGRID" ] || { say "FAILED: no $PATCHGRID (run make first)"; exit 1; }
command -v mpirun >/dev/null || { say "FAILED: mpirun not found (openmpi-bin)"; exit 1; }

# Nothing of an enclosing Slurm job (if the test itself runs in one) may leak into ours.
for v in $(env | sed -n 's/^\(SLURM_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

work=$(mktemp -d "${TMPDIR:-/tmp}/patchgrid-slurm.XXXXXX") || exit 1
chmod 755 "$work" # munged wants every directory above its socket traversable
passed=0
failed=0
failures=""

finish() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$failed" != 0 ] || [ "$rc" != 0 ]; then
        say "daemon logs:"
        cluster_logs
    fi
    if ! cluster_stop; then
        say "FAILED: a process of the test cluster is still running"
        rc=1
    fi
    if [ -n "$CLUSTER_DIR" ] && pgrep -f "$work" >/dev/null 2>&1; then
        say "FAILED: processes still refer to $work:"
        pgrep -af "$work"
        rc=1
    fi
    if [ "${PATCHGRID_SLURM_KEEP:-0}" = 1 ]; then
        say "kept $work"
    else
        rm -rf "$work"
    fi
    [ "$rc" = 0 ] && [ "$failed" != 0 ] && rc=1
    exit "$rc"
}
trap finish EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---- jobs ------------------------------------------------------------------------------------
job_field() { # job_field JOBID FIELD: a field of `scontrol show job` (first task of an array)
    scontrol show job -o "$1" 2>/dev/null | head -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
# Ended, or pending for a reason that will not go away (it could never start here).
job_ended() {
    case $(job_field "$1" JobState) in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) return 0 ;;
    esac
    case $(job_field "$1" Reason) in
    PartitionConfig | PartitionNodeLimit | PartitionTimeLimit | BadConstraints) return 0 ;;
    esac
    return 1
}

# wait_job JOBID: until it ends; fails unless it COMPLETED with exit code 0.
wait_job() {
    wait_for "$JOB_TIMEOUT" "job $1 to end" job_ended "$1" || return 1
    local state code
    state=$(job_field "$1" JobState)
    code=$(job_field "$1" ExitCode)
    if [ "$state" != COMPLETED ] || [ "$code" != 0:0 ]; then
        say "job $1 ended $state ($(job_field "$1" Reason)), exit code $code"
        return 1
    fi
}

# units FILE: "DONE TOTAL" done flags of a results file (nothing while it does not exist).
units() {
    "$PATCHGRID" status "$1" 2>/dev/null |
        sed -n 's/.*(\([0-9]*\) of \([0-9]*\) done flags).*/\1 \2/p'
}
# progress_at_least FILE PERCENT
progress_at_least() {
    local u
    u=$(units "$1")
    [ -n "$u" ] && [ $((${u% *} * 100)) -ge $((${u#* } * $2)) ]
}
midrun_or_ended() { progress_at_least "$1" "$2" || job_ended "$3"; }
# wait_midrun FILE PERCENT JOBID: until the job's run has done PERCENT of the sweep; fails if
# the job ended or the run finished first.
wait_midrun() {
    wait_for 120 "$1 to reach $2% done" midrun_or_ended "$1" "$2" "$3" || return 1
    if job_ended "$3"; then
        say "job $3 ended ($(job_field "$3" JobState)) before it could be interrupted"
        return 1
    fi
    local u
    u=$(units "$1")
    say "  $1: ${u% *} of ${u#* } done flags set"
    if [ "${u% *}" = "${u#* }" ]; then
        say "the run finished before it could be interrupted: make the sweep longer" \
            "(PATCHGRID_SLURM_PAIRS)"
        return 1
    fi
}

# A requeued job is PENDING (Reason BeginTime) until the old job's credential has expired:
# cred_expire, 15 s on the test cluster (cluster.sh), 120 s by default.
requeued_pending() {
    [ "$(job_field "$1" JobState)" = PENDING ] && [ "$(job_field "$1" Restarts)" -ge 1 ]
}
wait_requeued() { # wait_requeued JOBID
    wait_for 120 "job $1 to be requeued" requeued_pending "$1" || return 1
    say "  job $1 requeued: $(job_field "$1" JobState) ($(job_field "$1" Reason))"
}

# Three ranks on the two-core test node (--overcommit), small memory, a short limit.
SBATCH_TEST_OPTS=(--overcommit --mem-per-cpu=256M --time=15)

# submit_sweep NAME [RUN-OPTION...]: slurm/sweep.sbatch on the config, its log NAME.log;
# prints the job id.
submit_sweep() {
    local name=$1
    shift
    sbatch --parsable -n 3 "${SBATCH_TEST_OPTS[@]}" -J "pg-$name" -o "$work/$name.log" \
        slurm/sweep.sbatch "$work/sweep.yaml" --sync-interval 1 "$@"
}

compare() { $PY tests/slurm/results.py compare "$work/reference.h5" "$1"; }

log_has() { # log_has LOG TEXT
    grep -qF -- "$2" "$1" || { say "$1 does not say '$2'"; return 1; }
}

scenario() { # scenario NAME: runs scenario_NAME, counts the result
    local name=$1 t0=$SECONDS
    say "=== $name"
    if "scenario_$name"; then
        passed=$((passed + 1))
        say "=== $name: PASSED in $((SECONDS - t0)) s"
    else
        failed=$((failed + 1))
        failures="$failures $name"
        say "=== $name: FAILED after $((SECONDS - t0)) s; its job logs:"
        local f
        for f in "$work"/"$name"*.log; do
            [ -f "$f" ] && { echo "----- $f"; cat "$f"; }
        done
    fi
}

# ---- the scenarios ---------------------------------------------------------------------------
scenario_sweep() {
    local jid
    # No -o: the output is the config's (sweep.h5 beside it), found by `patchgrid status --config`.
    jid=$(submit_sweep sweep) || return 1
    say "  submitted job $jid"
    wait_job "$jid" || return 1
    log_has "$work/sweep.log" "patchgrid-job $jid: done" &&
        log_has "$work/sweep.log" "cells (100.0%)" &&
        compare "$work/sweep.h5"
}

# interrupted_sweep NAME COMMAND...: submits the sweep NAME (output NAME.h5, log NAME.log),
# runs `COMMAND JOBID` once 15% of it is done, then waits until the job has been requeued and
# has completed after at least one restart. Sets jid (declare it local in the caller).
interrupted_sweep() {
    local name=$1 restarts
    shift
    jid=$(submit_sweep "$name" -o "$work/$name.h5") || return 1
    say "  submitted job $jid"
    wait_midrun "$work/$name.h5" 15 "$jid" || return 1
    "$@" "$jid" || return 1
    say "  $* $jid"
    wait_requeued "$jid" || return 1
    wait_job "$jid" || return 1
    restarts=$(job_field "$jid" Restarts)
    say "  job $jid completed after $restarts restart(s)"
    [ "${restarts:-0}" -ge 1 ] || { say "the job was not requeued"; return 1; }
}

scenario_requeue() {
    local jid
    interrupted_sweep requeue scontrol requeue || return 1
    log_has "$work/requeue.log" "SIGTERM" &&
        log_has "$work/requeue.log" "stopped by signal 15" &&
        log_has "$work/requeue.log" "(restart 1)" &&
        log_has "$work/requeue.log" "resuming" &&
        compare "$work/requeue.h5"
}

scenario_usr1() {
    local jid
    interrupted_sweep usr1 scancel --signal=USR1 --batch || return 1
    log_has "$work/usr1.log" "SIGUSR1" &&
        log_has "$work/usr1.log" "stopped by signal 10" &&
        log_has "$work/usr1.log" "requeueing job $jid" &&
        log_has "$work/usr1.log" "resuming" &&
        compare "$work/usr1.h5"
}

scenario_resubmit() {
    local jid jid2 state
    jid=$(submit_sweep resubmit -o "$work/resubmit.h5") || return 1
    say "  submitted job $jid"
    wait_midrun "$work/resubmit.h5" 15 "$jid" || return 1
    scancel "$jid" || return 1
    say "  scancel $jid"
    wait_for "$JOB_TIMEOUT" "job $jid to end" job_ended "$jid" || return 1
    state=$(job_field "$jid" JobState)
    say "  job $jid: $state, $(job_field "$jid" Restarts) restart(s)"
    if [ "$state" != CANCELLED ] || [ "$(job_field "$jid" Restarts)" != 0 ]; then
        say "a cancelled job must stay cancelled"
        return 1
    fi
    "$PATCHGRID" status "$work/resubmit.h5"
    [ $? = 3 ] || { say "the cancelled job's file should be incomplete"; return 1; }
    mv "$work/resubmit.log" "$work/resubmit-first.log"
    jid2=$(submit_sweep resubmit -o "$work/resubmit.h5") || return 1
    say "  submitted the same command again: job $jid2"
    wait_job "$jid2" || return 1
    log_has "$work/resubmit.log" "resuming" && compare "$work/resubmit.h5"
}

scenario_array() {
    local arr mj out=$work/array.h5
    arr=$(sbatch --parsable --array=0-2 -n 2 "${SBATCH_TEST_OPTS[@]}" -J pg-array \
        -o "$work/array-%a.log" slurm/array.sbatch "$work/sweep.yaml" -o "$out" \
        --sync-interval 1) || return 1
    # The merge, as slurm/README.md shows it: a job that starts when every task succeeded.
    mj=$(sbatch --parsable --dependency=afterok:"$arr" -n 1 --mem-per-cpu=256M --time=10 \
        -J pg-merge -o "$work/array-merge.log" \
        --wrap "\"$PATCHGRID\" merge -o \"$out\" \"$work\"/array.part-*-of-3.h5 &&
                \"$PATCHGRID\" status \"$out\"") || return 1
    say "  submitted array job $arr (3 tasks) and merge job $mj (afterok)"
    # Task 1 is preempted mid-run: it must requeue itself and finish its part.
    wait_midrun "$work/array.part-1-of-3.h5" 5 "${arr}_1" || return 1
    scancel --signal=USR1 --batch "${arr}_1" || return 1
    say "  scancel --signal=USR1 --batch ${arr}_1"
    wait_requeued "${arr}_1" || return 1
    wait_job "$mj" || return 1
    local k id state bad=0
    for k in 0 1 2; do
        state=$(job_field "${arr}_$k" JobState)
        say "  task $k: $state, $(job_field "${arr}_$k" Restarts) restart(s)"
        [ "$state" = COMPLETED ] || bad=1
    done
    [ "$bad" = 0 ] || return 1
    id=$(job_field "${arr}_1" JobId)
    [ "$(job_field "${arr}_1" Restarts)" -ge 1 ] || { say "task 1 was not requeued"; return 1; }
    log_has "$work/array-1.log" "(part 1/3)" &&
        log_has "$work/array-1.log" "requeueing job $id" &&
        log_has "$work/array-merge.log" "complete" &&
        compare "$out"
}

# ---- run ---------------------------------------------------------------------------------------
t_start=$SECONDS
say "work directory $work"
say "model"
$PY tools/make_model.py "$work/model" --layers 4 --heads 4 --d-model 128 --vocab 500 \
    --n-ctx 32 --seed 11 >/dev/null || exit 1

# The reference run, on a sweep long enough to be interrupted mid-run: at least
# MIN_SECONDS on 3 ranks, doubling the pairs until it is (machines and engines get faster).
while :; do
    $PY tests/slurm/results.py config "$work/sweep.yaml" "$work/model" "$N_PAIRS" 7 || exit 1
    say "reference: mpirun -np 3 patchgrid run, $N_PAIRS pairs"
    rm -f "$work/reference.h5"
    t0=$SECONDS
    if ! mpirun -np 3 --oversubscribe "$PATCHGRID" run "$work/sweep.yaml" \
        -o "$work/reference.h5" >"$work/reference.out" 2>&1; then
        cat "$work/reference.out"
        say "FAILED: the reference run"
        exit 1
    fi
    took=$((SECONDS - t0))
    say "reference done in $took s: $(tail -n 1 "$work/reference.out")"
    if [ "$took" -ge "$MIN_SECONDS" ] || [ "$N_PAIRS" -ge 10000 ]; then break; fi
    N_PAIRS=$((N_PAIRS * 2))
done

say "starting the cluster"
if ! cluster_start "$work/cluster"; then
    say "FAILED: the cluster did not start"
    exit 1
fi

for s in ${PATCHGRID_SLURM_ONLY:-sweep requeue usr1 resubmit array}; do scenario "$s"; done

say "total $((SECONDS - t_start)) s"
[ "$failed" = 0 ] || say "failed:$failures"
echo "slurm: $passed passed, $failed failed"
