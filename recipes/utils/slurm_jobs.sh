#!/usr/bin/env bash
# The SLURM job backend of the recipes' --cmd option (the role of ESPnet's slurm.pl): the
# same arguments as utils/run_jobs.sh, submitted with sbatch as one job or a job array,
# waiting until every job has ended.
#
#   utils/slurm_jobs.sh [options] LOG COMMAND [ARG...]             one job
#   utils/slurm_jobs.sh [options] JOB=1:N LOG COMMAND [ARG...]     an array of N jobs
#
#   ./run.sh --cmd "utils/slurm_jobs.sh --partition gpu --time 12:00:00" --ngpu 4 --nj 32
#
# "JOB" in LOG and in the arguments becomes the array index ($SLURM_ARRAY_TASK_ID) when the
# job runs. The batch script is written next to the logs (q/<log name>.sh) and submitted with
# `sbatch --wait`, so this script returns when the jobs have ended: 0 when all succeeded,
# 1 otherwise, naming the logs. Paths must be on a file system every node sees.
#
# A job with --gpu G > 0 gets G GPUs and G tasks on each of its --num_nodes nodes, and its
# command runs under srun: one process per GPU, which Lightning's SLURM environment turns
# into the ranks of one DDP run (`bisep train ... trainer.devices=G trainer.num_nodes=N`).
# A CPU job is one task with --num_threads CPUs.
#
# Options:
#   --max_jobs_run N   array jobs running at a time (sbatch --array=1-N%M; default: no limit)
#   --gpu N            GPUs per node (default 0)
#   --num_nodes N      nodes per job (default 1)
#   --num_threads N    CPUs per task (default 1)
#   --partition P      sbatch --partition (default: the cluster's)
#   --time T           sbatch --time, e.g. 2-00:00:00 (default: the partition's)
#   --mem M            sbatch --mem, per node, e.g. 32G (default: the partition's)
#   --sbatch_args A    more sbatch options, space-separated, e.g. "--account=x --qos=y"
set -euo pipefail

max_jobs_run=0
gpu=0
num_nodes=1
num_threads=1
partition=""
time=""
mem=""
sbatch_args=""
help_message="Usage: $0 [--max_jobs_run N] [--gpu N] [--num_nodes N] [--num_threads N] [--partition P] [--time T] [--mem M] [--sbatch_args \"...\"] [JOB=1:N] LOG COMMAND [ARG...]"
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"

fail() { echo "$0: $*" >&2; exit 1; }
for value in "${max_jobs_run}" "${gpu}" "${num_nodes}" "${num_threads}"; do
    [[ ${value} =~ ^[0-9]+$ ]] || fail "options take whole numbers, not '${value}'"
done
[ "${num_nodes}" -ge 1 ] && [ "${num_threads}" -ge 1 ] \
    || fail "--num_nodes and --num_threads must be at least 1"
[ "${num_nodes}" -eq 1 ] || [ "${gpu}" -ge 1 ] \
    || fail "--num_nodes ${num_nodes} needs --gpu: only GPU jobs (DDP training) span nodes"
command -v sbatch > /dev/null 2>&1 || fail "sbatch not found: run this on a SLURM login node," \
                                            "or use --cmd utils/run_jobs.sh"

array=""
if [[ ${1:-} =~ ^JOB=([0-9]+):([0-9]+)$ ]]; then
    [ "${BASH_REMATCH[1]}" -le "${BASH_REMATCH[2]}" ] || fail "$1: empty range of jobs"
    array=${BASH_REMATCH[1]}-${BASH_REMATCH[2]}
    if [ "${max_jobs_run}" -gt 0 ]; then array+="%${max_jobs_run}"; fi
    shift
fi
[ $# -ge 2 ] || fail "give a log file and a command (${help_message#Usage: })"
log_pattern=$1
shift

log_dir=$(dirname "${log_pattern}")
mkdir -p "${log_dir}/q"
script=${log_dir}/q/$(basename "${log_pattern//JOB/array}" .log).sh
options=(--wait --job-name "$(basename "${log_pattern//.JOB/}" .log)" --nodes "${num_nodes}")
launcher=""
if [ "${gpu}" -gt 0 ]; then
    options+=(--gres "gpu:${gpu}" --ntasks-per-node "${gpu}" --cpus-per-task "${num_threads}")
    launcher="srun "
else
    options+=(--ntasks 1 --cpus-per-task "${num_threads}")
fi
if [ -n "${array}" ]; then
    options+=(--array "${array}" --output "${log_pattern//JOB/%a}")
else
    options+=(--output "${log_pattern}")
fi
if [ -n "${partition}" ]; then options+=(--partition "${partition}"); fi
if [ -n "${time}" ]; then options+=(--time "${time}"); fi
if [ -n "${mem}" ]; then options+=(--mem "${mem}"); fi
read -r -a extra <<< "${sbatch_args}"

# The arguments are written quoted; JOB is replaced when the job starts.
{
    echo "#!/usr/bin/env bash"
    echo "# Written by $0 on $(date '+%Y-%m-%dT%H:%M:%S'); submitted with sbatch."
    echo "cd $(printf '%q' "$(pwd)")"
    echo "args=($(printf '%q ' "$@"))"
    if [ -n "${array}" ]; then
        echo 'args=("${args[@]//JOB/${SLURM_ARRAY_TASK_ID}}")'
    fi
    echo 'echo "# ${args[*]}"'
    echo 'echo "# Started at $(date "+%Y-%m-%dT%H:%M:%S") on $(hostname) (SLURM job ${SLURM_JOB_ID:-?})"'
    echo "status=0"
    echo "${launcher}\"\${args[@]}\" || status=\$?"
    echo 'echo "# Ended (code ${status}) at $(date "+%Y-%m-%dT%H:%M:%S")"'
    echo 'exit "${status}"'
} > "${script}"
chmod +x "${script}"

if ! sbatch "${options[@]}" ${extra[@]+"${extra[@]}"} "${script}"; then
    echo "$0: a job of ${script} failed; see its log(s): ${log_pattern//JOB/*}" >&2
    exit 1
fi
echo "$0: ${script} finished; logs: ${log_pattern}"
