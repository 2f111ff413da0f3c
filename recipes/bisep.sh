#!/usr/bin/env bash
# The stages every bisep recipe shares, in the style of ESPnet's enh.sh. A recipe's run.sh
# (egs/<dataset>/<recipe>/run.sh) sets its dataset's options and calls this script from
# the recipe folder, which holds local/data.sh, conf/ and the utils -> recipes/utils link.
#
#   stage 1  data preparation        local/data.sh           ${data_dir}/*.jsonl
#   stage 2  mixture-of-mixtures     bisep mix               ${dump_dir}/mom_{train,valid}.jsonl
#   stage 3  mini_clap query model   bisep train-clap        ${exp_dir}/mini_clap/mini_clap.pth
#   stage 4  separator training      bisep train (each conf) ${exp_dir}/<tag>/model.pth
#   stage 5  test-set separation     bisep separate --list   ${exp_dir}/<tag>/separated/
#   stage 6  scoring, model folder   bisep score --list      ${exp_dir}/<tag>/scores/
#                                    bisep export-model      ${exp_dir}/<tag>/model_folder/
#   stage 7  results page            bisep report            ${exp_dir}/RESULTS.{md,png}
#
# Long stages (1, 3, 4, 5, 6) leave a resume script (resume_stageN.sh, next to their
# outputs) that re-runs this command line from that stage. Each stage's output is also
# appended to a log: ${exp_dir}/logs/stageN.log (stages 1-3, 7) or ${exp_dir}/<tag>/logs/
# stageN.log (4-6). Stages 4-6 run their jobs through --cmd (utils/run_jobs.sh on this
# machine, utils/slurm_jobs.sh on SLURM); --ngpu/--num_nodes size training and --nj splits
# stages 5-6 into parallel jobs. docs/recipes.md has the details.
set -euo pipefail

# Messages carry the time and the line of the script's top-level command that logs them
# (for a check inside a helper function: the line that called the helper).
stamp() {
    local top=$((${#FUNCNAME[@]} - 2))
    echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[top + 1]##*/}:${BASH_LINENO[top]})"
}
log() { echo "$(stamp) $*"; }
fail() { echo "$(stamp) ERROR: $*" >&2; exit 1; }

# The original command line, replayed by the resume scripts (before parsing shifts it).
_command_line=$(printf '%q ' "$0" "$@")
_recipes_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_repo_root=$(dirname "${_recipes_dir}")

# ---------------------------------------------------------------------- options
# Every variable from here to help_message is an option (tests/test_recipe_shell.py
# checks that --help lists each with its default).
stage=1                 # first stage to run
stop_stage=10000        # last stage to run
python=python3          # the python that runs `-m bisep`: the repo's .venv if there is one
if [ -x "${_repo_root}/.venv/bin/python" ]; then python=${_repo_root}/.venv/bin/python; fi
data_config=conf/data.yaml          # stage 1: the data config given to local/data.sh ("" = none)
local_data_opts=""                  # stage 1: more options for local/data.sh ("--root /data/x")
supervised_fraction=0.05            # stage 2: share of train clips with stems for semi/sup modes
mix_args=""                         # stage 2: more arguments for `bisep mix`
clap_config=conf/mini_clap.yaml     # stage 3: mini_clap training config ("" = built-in defaults)
clap_args=""                        # stage 3: KEY=VALUE overrides for `bisep train-clap`
clap_checkpoint=""                  # stage 4: the query encoder's checkpoint; "" = stage 3's
train_configs=""                    # stages 4-6: training configs, space-separated
train_args=""                       # stage 4: KEY=VALUE overrides for every `bisep train`
tag_suffix=""                       # stages 4-6: appended to every experiment tag
test_set="test"                     # stage 5: separates ${data_dir}/${test_set}.jsonl
separate_args=""                    # stage 5: more arguments for `bisep separate`
score_args=""                       # stage 6: more arguments for `bisep score`
ngpu=""                             # stage 4: GPUs per node ("" = the config's trainer section)
num_nodes=1                         # stage 4: nodes per training run (DDP; needs --ngpu)
nj=1                                # stages 5-6: parallel jobs, each on a shard of the list
gpu_inference=false                 # stage 5: separate on a GPU (one per job)
cmd=utils/run_jobs.sh               # stages 4-6: job backend (utils/slurm_jobs.sh: SLURM)
data_dir=data                       # manifests (stage 1)
dump_dir=dump                       # mixture-of-mixtures plans (stage 2)
exp_dir=exp                         # models, separations, scores, results (stages 3-7)

help_message=$(cat << EOF
Usage: $0 [options]    (run from a recipe folder, usually through its run.sh)

Stages: 1 data (local/data.sh), 2 mixture-of-mixtures plans (bisep mix), 3 mini_clap
(bisep train-clap), 4 training (bisep train), 5 separation of the test set (bisep
separate), 6 scoring (bisep score), 7 RESULTS.md/RESULTS.png (bisep report).

Options (--name value, --name=value; - and _ are the same):
  --stage                first stage to run (default: ${stage})
  --stop_stage           last stage to run (default: ${stop_stage})
  --python               python that runs bisep (default: ${python})
  --data_config          stage 1: data config for local/data.sh, "" for none
                         (default: ${data_config})
  --local_data_opts      stage 1: more options for local/data.sh, e.g. "--root
                         /data/MUSIC --nj 8" (local/data.sh --help lists them)
                         (default: "${local_data_opts}")
  --supervised_fraction  stage 2: share of training clips whose stems the semi and
                         supervised modes may use (default: ${supervised_fraction})
  --mix_args             stage 2: more arguments for bisep mix (default: "${mix_args}")
  --clap_config          stage 3: mini_clap training config, "" for the built-in
                         defaults (default: ${clap_config})
  --clap_args            stage 3: KEY=VALUE overrides for bisep train-clap
                         (default: "${clap_args}")
  --clap_checkpoint      stage 4: the query encoder's checkpoint: a trained mini_clap, or
                         the LAION-CLAP .pt of a laion_clap config; when given, stage 3
                         is skipped (default: "${clap_checkpoint}", i.e.
                         \${exp_dir}/mini_clap/mini_clap.pth from stage 3)
  --train_configs        stages 4-6: training configs, space-separated; the tag of each is
                         its file name without .yaml and a train_ prefix
                         (default: "${train_configs}")
  --train_args           stage 4: KEY=VALUE overrides for every bisep train
                         (default: "${train_args}")
  --tag_suffix           stages 4-6: appended to every tag (default: "${tag_suffix}")
  --test_set             stage 5: separates \${data_dir}/<test_set>.jsonl
                         (default: ${test_set})
  --separate_args        stage 5: more arguments for bisep separate, e.g. "--device cuda"
                         (default: "${separate_args}")
  --score_args           stage 6: more arguments for bisep score, e.g. "--backend
                         mir_eval" (default: "${score_args}")
  --ngpu                 stage 4: GPUs per node: 0 trains on CPU, 1 on one GPU, N > 1
                         with DDP on N GPUs; "" leaves the config's trainer section
                         as it is (default: "${ngpu}")
  --num_nodes            stage 4: nodes per training run, each with --ngpu GPUs; needs a
                         --cmd that spans nodes (default: ${num_nodes})
  --nj                   stages 5-6: split the list into this many shards, one job each,
                         and merge the results (default: ${nj})
  --gpu_inference        stage 5: separate with --device cuda, one GPU per job
                         (default: ${gpu_inference})
  --cmd                  stages 4-6: the job backend and its options, e.g.
                         "utils/run_jobs.sh --max_jobs_run 4" or "utils/slurm_jobs.sh
                         --partition gpu --time 1-00:00:00" (default: ${cmd})
  --data_dir             manifests written by stage 1 (default: ${data_dir})
  --dump_dir             mixture-of-mixtures plans written by stage 2 (default: ${dump_dir})
  --exp_dir              models, separations, scores and results (default: ${exp_dir})
  --help                 print this message
EOF
)

if [ ! -f utils/parse_options.sh ]; then
    echo "$0: run it from a recipe folder that links utils -> recipes/utils, through the" \
         "recipe's run.sh (e.g. egs/synth_music/bimodal/run.sh)." >&2
    exit 1
fi
. utils/parse_options.sh

[ $# -eq 0 ] || fail "unexpected argument '$1': options are --name value (see --help)"
for number in "${stage}" "${stop_stage}"; do
    [[ ${number} =~ ^[0-9]+$ ]] \
        || fail "--stage and --stop_stage take stage numbers, not '${number}'"
done
[[ ${nj} =~ ^[1-9][0-9]*$ ]] || fail "--nj takes a number of jobs (1 or more), not '${nj}'"
[[ ${num_nodes} =~ ^[1-9][0-9]*$ ]] \
    || fail "--num_nodes takes a number of nodes (1 or more), not '${num_nodes}'"
[[ -z ${ngpu} || ${ngpu} =~ ^[0-9]+$ ]] \
    || fail "--ngpu takes a number of GPUs (0 for CPU), not '${ngpu}'"
if [ "${num_nodes}" -gt 1 ] && [ "${ngpu:-0}" -lt 1 ]; then
    fail "--num_nodes ${num_nodes} trains with DDP on GPUs: give --ngpu (GPUs per node) too"
fi
command -v "${python}" > /dev/null 2>&1 \
    || fail "--python ${python}: not found. Run tools/install.sh (it makes ${_repo_root}/.venv)" \
            "or pass --python /path/to/python."
# Every model the recipe uses is local; offline mode keeps library imports (e.g. of
# laion_clap) from retrying the model hub for minutes on a machine without network.
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
# OpenMP threads that spin while waiting make a 2-thread job several times slower when
# other jobs share the cores (benchmarks/train_step.py measured 6.1 s instead of 1.0 s per
# weak step on a loaded 2-core machine); passive waiting costs little on an idle one.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

bisep=("${python}" -m bisep)
read -r -a local_data_extra <<< "${local_data_opts}"
read -r -a mix_extra <<< "${mix_args}"
read -r -a clap_extra <<< "${clap_args}"
read -r -a train_extra <<< "${train_args}"
read -r -a separate_extra <<< "${separate_args}"
read -r -a score_extra <<< "${score_args}"
read -r -a configs <<< "${train_configs}"
read -r -a job_cmd <<< "${cmd}"
[ ${#job_cmd[@]} -gt 0 ] || fail "--cmd is empty: give a job backend, e.g. utils/run_jobs.sh"
[ -x "${job_cmd[0]}" ] || command -v "${job_cmd[0]}" > /dev/null 2>&1 \
    || fail "--cmd ${job_cmd[0]}: not found (paths are relative to $(pwd)); use" \
            "utils/run_jobs.sh or utils/slurm_jobs.sh"
# --ngpu/--num_nodes as trainer overrides, before --train_args (which win).
trainer_opts=()
case "${ngpu}" in
    "") ;;
    0) trainer_opts=(trainer.accelerator=cpu trainer.devices=1) ;;
    1) trainer_opts=(trainer.accelerator=gpu trainer.devices=1) ;;
    *) trainer_opts=(trainer.accelerator=gpu "trainer.devices=${ngpu}" trainer.strategy=ddp) ;;
esac
if [ "${num_nodes}" -gt 1 ]; then
    trainer_opts+=("trainer.num_nodes=${num_nodes}" trainer.strategy=ddp)
fi
separate_device=()
separate_gpu=0
if [ "${gpu_inference}" = true ]; then separate_device=(--device cuda); separate_gpu=1; fi
clap_ckpt=${clap_checkpoint:-${exp_dir}/mini_clap/mini_clap.pth}

# The experiment tag of a training config: conf/train_weak.yaml -> weak.
tag_of() {
    local name
    name=$(basename "$1")
    name=${name%.yaml}
    name=${name%.yml}
    echo "${name#train_}${tag_suffix}"
}

# logged LOG COMMAND...: run it with its output (stdout and stderr) shown and appended to LOG.
logged() {
    local logfile=$1
    shift
    mkdir -p "$(dirname "${logfile}")"
    echo "$(date '+%Y-%m-%dT%H:%M:%S') $(printf '%q ' "$@")" >> "${logfile}"
    "$@" 2>&1 | tee -a "${logfile}"
}

# say LOG MESSAGE: log the message, and append it to LOG.
say() {
    local logfile=$1
    shift
    mkdir -p "$(dirname "${logfile}")"
    log "$@" | tee -a "${logfile}"
}

# shard_count LIST: how many shards --nj gives for LIST (no more than its items).
shard_count() {
    local lines
    lines=$(grep -c '[^[:space:]]' "$1" || true)
    echo $((lines < nj ? lines : nj))
}

# job_dirs FOLDER COUNT: sets job_dirs to FOLDER/1 .. FOLDER/COUNT.
job_dirs() {
    local n
    job_dirs=()
    for ((n = 1; n <= $2; n++)); do job_dirs+=("$1/${n}"); done
}

runs() {  # runs N: is stage N within --stage..--stop_stage?
    [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]
}

# need STAGE FILE PRODUCER WHAT: stop unless FILE, written by stage PRODUCER, exists.
need() {
    [ -e "$2" ] && return 0
    fail "stage $1 needs $2 ($4), which does not exist. Run stage $3 first: add" \
         "--stage $3 to the command line (e.g. ./run.sh --stage $3)."
}

# need_file STAGE OPTION FILE: stop unless the file an option names exists.
need_file() {
    [ -f "$3" ] && return 0
    fail "stage $1: --$2 $3: no such file (paths are relative to $(pwd)). Fix the option."
}

need_configs() {
    [ ${#configs[@]} -gt 0 ] \
        || fail "stage $1 needs --train_configs (e.g. \"conf/train_weak.yaml\"): none given."
    local conf tag seen=" "
    for conf in "${configs[@]}"; do
        need_file "$1" train_configs "${conf}"
        tag=$(tag_of "${conf}")
        if [[ ${seen} == *" ${tag} "* ]]; then
            fail "--train_configs: two configs give the tag '${tag}'; rename one of them."
        fi
        seen+="${tag} "
    done
}

# write_resume STAGE FOLDER [OPTION VALUE...]: FOLDER/resume_stageSTAGE.sh re-runs this
# command line (plus the options) from STAGE; arguments given to it are appended.
write_resume() {
    local stage_number=$1 folder=$2 script tmp extra=""
    shift 2
    if [ $# -gt 0 ]; then extra=$(printf '%q ' "$@"); fi
    mkdir -p "${folder}"
    script=${folder}/resume_stage${stage_number}.sh
    tmp=${script}.$$.tmp
    {
        echo "#!/usr/bin/env bash"
        echo "# Written by recipes/bisep.sh on $(date '+%Y-%m-%dT%H:%M:%S'): runs the recipe"
        echo "# again from stage ${stage_number} with the options of that run. More options"
        echo "# may follow, e.g. --stop_stage ${stage_number}."
        echo "cd $(printf '%q' "$(pwd)") &&"
        echo "    exec ${_command_line}${extra}--stage ${stage_number} \"\$@\""
    } > "${tmp}"
    chmod +x "${tmp}"
    mv "${tmp}" "${script}"
}

log "$0 ${_command_line#* }"

if runs 1; then
    say "${exp_dir}/logs/stage1.log" "Stage 1: data preparation: local/data.sh -> ${data_dir}"
    [ -x local/data.sh ] || fail "stage 1 needs local/data.sh (executable) in $(pwd): the" \
                                 "recipe's data preparation."
    if [ -n "${data_config}" ]; then need_file 1 data_config "${data_config}"; fi
    write_resume 1 "${exp_dir}"
    logged "${exp_dir}/logs/stage1.log" \
        local/data.sh --python "${python}" --data_config "${data_config}" --data_dir "${data_dir}" \
        ${local_data_extra[@]+"${local_data_extra[@]}"}
fi

if runs 2; then
    say "${exp_dir}/logs/stage2.log" "Stage 2: mixture-of-mixtures plans: ${data_dir} -> ${dump_dir}"
    need 2 "${data_dir}/train.jsonl" 1 "the training manifest"
    need 2 "${data_dir}/valid.jsonl" 1 "the validation manifest"
    logged "${exp_dir}/logs/stage2.log" "${bisep[@]}" mix --data-dir "${data_dir}" --dump-dir "${dump_dir}" \
        --supervised-fraction "${supervised_fraction}" ${mix_extra[@]+"${mix_extra[@]}"}
fi

if runs 3; then
    if [ -n "${clap_checkpoint}" ]; then
        log "Stage 3: skipped: --clap_checkpoint ${clap_checkpoint} is used"
    else
        say "${exp_dir}/logs/stage3.log" "Stage 3: mini_clap training: ${data_dir} -> ${exp_dir}/mini_clap"
        # Stage 1 has run (train.jsonl is there) but wrote no clap_pool.jsonl: the data set
        # (MUSIC, VGGSound, AudioCaps) has no clips for mini_clap, so re-running stage 1
        # cannot help; a trained query encoder can.
        if [ -e "${data_dir}/train.jsonl" ] && [ ! -e "${data_dir}/clap_pool.jsonl" ]; then
            fail "stage 3 trains mini_clap on ${data_dir}/clap_pool.jsonl, which this data" \
                 "set does not prepare (its stage 1 wrote ${data_dir}/train.jsonl but no" \
                 "clap_pool.jsonl). Give --clap_checkpoint to skip stage 3, e.g. the paper's" \
                 "LAION-CLAP music_audioset_epoch_15_esc_90.14.pt (from" \
                 "https://huggingface.co/lukewys/laion_clap, copied to this machine): add" \
                 "--clap_checkpoint /path/to/music_audioset_epoch_15_esc_90.14.pt --stage 3" \
                 "to the command line."
        fi
        need 3 "${data_dir}/clap_pool.jsonl" 1 "mini_clap's training clips"
        need 3 "${data_dir}/clap_heldout.jsonl" 1 "mini_clap's evaluation clips"
        clap_opts=()
        if [ -n "${clap_config}" ]; then
            need_file 3 clap_config "${clap_config}"
            clap_opts=(--conf "${clap_config}")
        fi
        write_resume 3 "${exp_dir}/mini_clap"
        logged "${exp_dir}/logs/stage3.log" "${bisep[@]}" train-clap --data-dir "${data_dir}" --out-dir "${exp_dir}/mini_clap" \
            ${clap_opts[@]+"${clap_opts[@]}"} ${clap_extra[@]+"${clap_extra[@]}"}
    fi
fi

if runs 4; then
    need_configs 4
    need 4 "${data_dir}/train.jsonl" 1 "the training manifest"
    need 4 "${data_dir}/valid.jsonl" 1 "the validation manifest"
    need 4 "${dump_dir}/mom_train.jsonl" 2 "the training mixture-of-mixtures plan"
    need 4 "${dump_dir}/mom_valid.jsonl" 2 "the validation mixture-of-mixtures plan"
    if [ -n "${clap_checkpoint}" ]; then
        need_file 4 clap_checkpoint "${clap_checkpoint}"
    else
        need 4 "${clap_ckpt}" 3 "the trained mini_clap query encoder"
    fi
    # model.pth records the conditioner's arguments: an absolute path keeps it usable from
    # any folder (bisep separate, Separator.from_pretrained).
    clap_ckpt=$(cd "$(dirname "${clap_ckpt}")" && pwd)/$(basename "${clap_ckpt}")
    for conf in "${configs[@]}"; do
        tag=$(tag_of "${conf}")
        stage_log=${exp_dir}/${tag}/logs/stage4.log
        say "${stage_log}" "Stage 4: training ${tag}: ${conf} -> ${exp_dir}/${tag}"
        write_resume 4 "${exp_dir}/${tag}" --train_configs "${conf}"
        logged "${stage_log}" "${job_cmd[@]}" --gpu "${ngpu:-0}" --num_nodes "${num_nodes}" \
            "${exp_dir}/${tag}/logs/train.log" \
            "${bisep[@]}" train --config "${conf}" --data-dir "${data_dir}" --dump-dir "${dump_dir}" \
            --exp-dir "${exp_dir}/${tag}" "conditioner_conf.checkpoint=${clap_ckpt}" \
            ${trainer_opts[@]+"${trainer_opts[@]}"} ${train_extra[@]+"${train_extra[@]}"}
    done
fi

if runs 5; then
    need_configs 5
    need 5 "${data_dir}/${test_set}.jsonl" 1 "the test manifest"
    for conf in "${configs[@]}"; do
        tag=$(tag_of "${conf}")
        need 5 "${exp_dir}/${tag}/model.pth" 4 "the trained ${tag} model"
    done
    for conf in "${configs[@]}"; do
        tag=$(tag_of "${conf}")
        stage_log=${exp_dir}/${tag}/logs/stage5.log
        separated=${exp_dir}/${tag}/separated
        manifest=${data_dir}/${test_set}.jsonl
        say "${stage_log}" "Stage 5: separating ${manifest} with ${tag}"
        write_resume 5 "${exp_dir}/${tag}" --train_configs "${conf}"
        separate=("${bisep[@]}" separate "${exp_dir}/${tag}"
                  ${separate_device[@]+"${separate_device[@]}"})
        if [ "${nj}" -eq 1 ]; then
            logged "${stage_log}" "${job_cmd[@]}" --gpu "${separate_gpu}" \
                "${exp_dir}/${tag}/logs/separate.log" "${separate[@]}" --list "${manifest}" \
                -o "${separated}" ${separate_extra[@]+"${separate_extra[@]}"}
        else
            # One job per shard, each into its own folder (bisep separate locks it and
            # resumes in it); the merged items.jsonl lists them all, in manifest order.
            shards=$(shard_count "${manifest}")
            split=${separated}/split${nj}
            rm -f "${separated}/items.jsonl"  # stage 6 never scores an old merge
            logged "${stage_log}" "${bisep[@]}" shards split "${manifest}" --nj "${nj}" \
                --out-dir "${split}"
            logged "${stage_log}" "${job_cmd[@]}" --gpu "${separate_gpu}" "JOB=1:${shards}" \
                "${exp_dir}/${tag}/logs/separate.JOB.log" "${separate[@]}" \
                --list "${split}/${test_set}.JOB.jsonl" -o "${split}/JOB" --no-progress \
                ${separate_extra[@]+"${separate_extra[@]}"}
            job_dirs "${split}" "${shards}"
            logged "${stage_log}" "${bisep[@]}" shards merge-separated --manifest "${manifest}" \
                --out-dir "${separated}" "${job_dirs[@]}"
        fi
    done
fi

if runs 6; then
    need_configs 6
    for conf in "${configs[@]}"; do
        tag=$(tag_of "${conf}")
        need 6 "${exp_dir}/${tag}/separated/items.jsonl" 5 "the separated test set of ${tag}"
    done
    for conf in "${configs[@]}"; do
        tag=$(tag_of "${conf}")
        stage_log=${exp_dir}/${tag}/logs/stage6.log
        items=${exp_dir}/${tag}/separated/items.jsonl
        scores=${exp_dir}/${tag}/scores
        say "${stage_log}" "Stage 6: scoring ${tag}"
        write_resume 6 "${exp_dir}/${tag}" --train_configs "${conf}"
        # Always split (one shard for --nj 1) and merged: the summary is computed from the
        # merged per_item.csv, so it is the same for every --nj.
        shards=$(shard_count "${items}")
        split=${scores}/split${nj}
        logged "${stage_log}" "${bisep[@]}" shards split "${items}" --nj "${nj}" --out-dir "${split}"
        logged "${stage_log}" "${job_cmd[@]}" "JOB=1:${shards}" "${exp_dir}/${tag}/logs/score.JOB.log" \
            "${bisep[@]}" score --list "${split}/items.JOB.jsonl" --out-dir "${split}/JOB" \
            ${score_extra[@]+"${score_extra[@]}"}
        job_dirs "${split}" "${shards}"
        logged "${stage_log}" "${bisep[@]}" shards merge-scores --out-dir "${scores}" \
            "${job_dirs[@]}"
        # The reference-free proxy beside SDR (the report shows their agreement), and the
        # portable model folder, whose card carries the scores just written.
        logged "${stage_log}" "${bisep[@]}" score --reference-free --model "${exp_dir}/${tag}" \
            --list "${items}" --out-dir "${exp_dir}/${tag}/scores_reference_free"
        logged "${stage_log}" "${bisep[@]}" export-model "${exp_dir}/${tag}" \
            "${exp_dir}/${tag}/model_folder" --overwrite --skip-unportable
    done
fi

if runs 7; then
    say "${exp_dir}/logs/stage7.log" "Stage 7: results: ${exp_dir}/RESULTS.md"
    for conf in ${configs[@]+"${configs[@]}"}; do
        need 7 "${exp_dir}/$(tag_of "${conf}")/scores/summary.json" 6 \
            "the scores of $(tag_of "${conf}")"
    done
    logged "${exp_dir}/logs/stage7.log" "${bisep[@]}" report --exp-dir "${exp_dir}" \
        -o "${exp_dir}/RESULTS.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
