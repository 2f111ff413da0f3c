#!/usr/bin/env bash
# The local job backend of the recipes' --cmd option (the role of Kaldi/ESPnet's run.pl):
# runs a command, or an array of N jobs of it, on this machine, each job's output in its log.
#
#   utils/run_jobs.sh [options] LOG COMMAND [ARG...]               one job
#   utils/run_jobs.sh [options] JOB=1:N LOG COMMAND [ARG...]       N jobs
#
# With JOB=1:N, each "JOB" in LOG and in the arguments is replaced by the job's number
# (1..N), so `JOB=1:4 split/log/separate.JOB.log bisep separate --list split/items.JOB.jsonl`
# runs four separations, each with its own list and log. At most --max_jobs_run jobs run at
# once; the others wait for a free slot. A single job (no JOB=) also shows its output here,
# as it runs. Every log starts with the command line and ends with its exit code and time.
# Exit status: 0 when every job succeeded; 1 otherwise, after naming the failed jobs' logs.
#
# Options (accepted by every backend, so a recipe can pass them whichever --cmd is used):
#   --max_jobs_run N   jobs at a time (default: the number of CPUs)
#   --gpu N            GPUs a job uses (here: not reserved; the job's own program picks them)
#   --num_nodes N      nodes a job spans (here: must be 1)
#   --num_threads N    CPU threads a job uses (here: informational)
# utils/slurm_jobs.sh takes the same arguments and submits the jobs to SLURM instead.
set -euo pipefail

max_jobs_run=$(nproc 2> /dev/null || echo 1)
gpu=0
num_nodes=1
num_threads=1
help_message="Usage: $0 [--max_jobs_run N] [--gpu N] [--num_nodes 1] [--num_threads N] [JOB=1:N] LOG COMMAND [ARG...]"
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"

fail() { echo "$0: $*" >&2; exit 1; }
for value in "${max_jobs_run}" "${gpu}" "${num_nodes}" "${num_threads}"; do
    [[ ${value} =~ ^[0-9]+$ ]] || fail "options take whole numbers, not '${value}'"
done
[ "${max_jobs_run}" -ge 1 ] || fail "--max_jobs_run must be at least 1"
[ "${num_nodes}" -eq 1 ] || fail "--num_nodes ${num_nodes}: the local backend runs on this" \
                                 "machine only; use --cmd utils/slurm_jobs.sh for several nodes"

first=1 last=0
if [[ ${1:-} =~ ^JOB=([0-9]+):([0-9]+)$ ]]; then
    first=${BASH_REMATCH[1]} last=${BASH_REMATCH[2]}
    [ "${first}" -le "${last}" ] || fail "$1: empty range of jobs"
    shift
fi
[ $# -ge 2 ] || fail "give a log file and a command (${help_message#Usage: })"
log_pattern=$1
shift

# run_one NUMBER: the job, its arguments and log with JOB replaced (NUMBER 0: no array).
run_one() {
    local number=$1 logfile=${log_pattern} status start
    local -a args=("${@:2}")
    if [ "${number}" -gt 0 ]; then
        logfile=${log_pattern//JOB/${number}}
        args=("${args[@]//JOB/${number}}")
    fi
    mkdir -p "$(dirname "${logfile}")"
    start=${SECONDS}
    {
        echo "# $(printf '%q ' "${args[@]}")"
        echo "# Started at $(date '+%Y-%m-%dT%H:%M:%S') on $(hostname)"
    } > "${logfile}"
    status=0
    if [ "${number}" -eq 0 ]; then
        "${args[@]}" 2>&1 | tee -a "${logfile}" || status=$?
    else
        "${args[@]}" >> "${logfile}" 2>&1 || status=$?
    fi
    echo "# Ended (code ${status}) at $(date '+%Y-%m-%dT%H:%M:%S'), elapsed $((SECONDS - start)) s" \
        >> "${logfile}"
    return "${status}"
}

if [ "${last}" -eq 0 ]; then
    run_one 0 "$@" || { echo "$0: the job failed (exit code $?); its log: ${log_pattern}" >&2; exit 1; }
    exit 0
fi

# Interrupting this script stops the jobs it started.
trap 'kill $(jobs -pr) 2> /dev/null || true' INT TERM
declare -A pids
for ((number = first; number <= last; number++)); do
    while [ "$(jobs -pr | wc -l)" -ge "${max_jobs_run}" ]; do
        wait -n || true  # a slot is free; each job's status is collected below
    done
    run_one "${number}" "$@" &
    pids[${number}]=$!
done
failed=()
for ((number = first; number <= last; number++)); do
    wait "${pids[${number}]}" || failed+=("${number}")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "$0: ${#failed[@]} of $((last - first + 1)) jobs failed; see their logs:" >&2
    for number in "${failed[@]}"; do echo "  ${log_pattern//JOB/${number}}" >&2; done
    exit 1
fi
echo "$0: jobs ${first}-${last} finished; logs: ${log_pattern}"
