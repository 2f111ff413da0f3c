#!/usr/bin/env bash
# The whole reproduction experiment (conf/full.yaml, docs/results.md) after stages 1-3:
#
#   ./run.sh --stop_stage 3 && local/full.sh
#
# Steps: extra data sets (stage 1), extra plans (stage 2), extra query encoders (claps:
# bisep train-clap), every run's stages 4-6 in --jobs parallel jobs, then stage 7
# (exp/RESULTS.md); with validation or out_of_domain in the list, every model also
# separates and scores that set into the set's exp folder (stages 5-6, --jobs at a time)
# and stage 7 reports each folder. Each step and run resumes where it stopped (run.sh's
# stages do), so a stopped experiment is finished by running this again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

conf=conf/full.yaml     # the experiment list
jobs=2                  # runs at a time
threads=1               # CPU threads per run (trainer.num_threads)
exp_dir=exp             # where every run's <tag>/ and RESULTS.md go
python=python3          # the python that reads the list: the repo's .venv if there is one
if [ -x ../../../.venv/bin/python ]; then python=../../../.venv/bin/python; fi

help_message=$(cat << HELP
Usage: $0 [options]    (after ./run.sh --stop_stage 3)
  --conf     experiment list (default: ${conf})
  --jobs     runs at a time (default: ${jobs})
  --threads  CPU threads per run (default: ${threads})
  --exp_dir  output folder (default: ${exp_dir})
  --python   python that reads the list (default: ${python})
HELP
)
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }
[[ ${jobs} =~ ^[1-9][0-9]*$ ]] || { echo "$0: --jobs takes a positive number" >&2; exit 1; }
for needed in data/train.jsonl dump/mom_train.jsonl "${exp_dir}/mini_clap/mini_clap.pth"; do
    [ -e "${needed}" ] || { echo "$0: ${needed} is missing: run ./run.sh --stop_stage 3" \
                                 "first" >&2; exit 1; }
done

plan=$("${python}" local/full_plan.py --conf "${conf}" --threads "${threads}" \
                                     --exp_dir "${exp_dir}" --python "${python}")
start=$(date +%s)
while IFS=$'\t' read -r kind command; do
    log "${kind}: ${command}"
    bash -c "${command}" | tail -n 1
done < <(grep -P '^(data|plan|clap)\t' <<< "${plan}" || true)

logs=${exp_dir}/full_logs
mkdir -p "${logs}"
runs=$(grep -P '^run\t' <<< "${plan}" | cut -f 2,3)
log "$(wc -l <<< "${runs}") runs, ${jobs} at a time; logs in ${logs}/<tag>.log"
status=0
while IFS=$'\t' read -r tag command; do
    printf '%s\n' "if ${command} > ${logs}/${tag}.log 2>&1; then echo '  done ${tag}'; else echo '  FAILED ${tag}: see ${logs}/${tag}.log'; exit 1; fi"
done <<< "${runs}" | xargs -d '\n' -P "${jobs}" -n 1 bash -c || status=$?

# Stage 7 reports every run in the folder; an empty --train_configs stops it from also
# requiring the recipe's default run, which the list need not contain.
./run.sh --stage 7 --train_configs "" --exp_dir "${exp_dir}" | tail -n 2

# Extra test sets (validation, out of domain), one exp folder each: every finished model is
# linked into the folder with what the report reads, then separates and scores the set there.
evals=$(grep -P '^eval\t' <<< "${plan}" | cut -f 2- || true)
for eval_exp in $(cut -f 1 <<< "${evals}" | awk 'NF && !seen[$0]++'); do
    log "every model on $(grep -P "^\Q${eval_exp}\E\t" <<< "${evals}" | head -n 1 \
        | grep -oP -- '--(data_dir|test_set) \S+' | paste -sd ' '), into ${eval_exp}/"
    while IFS=$'\t' read -r set_exp tag command; do
        [ "${set_exp}" = "${eval_exp}" ] || continue
        [ -f "${exp_dir}/${tag}/model.pth" ] || continue   # its training failed (above)
        mkdir -p "${eval_exp}/${tag}"
        for file in model.pth config.yaml data.json; do
            ln -sfn "$(cd "${exp_dir}/${tag}" && pwd)/${file}" "${eval_exp}/${tag}/${file}"
        done
        set_log=${logs}/${tag}.${eval_exp//\//_}.log
        printf '%s\n' "if ${command} > ${set_log} 2>&1; then echo '  done ${tag} (${eval_exp})'; else echo '  FAILED ${tag} in ${eval_exp}: see ${set_log}'; exit 1; fi"
    done <<< "${evals}" | xargs -d '\n' -P "${jobs}" -n 1 bash -c || status=$?
    ./run.sh --stage 7 --train_configs "" --exp_dir "${eval_exp}" | tail -n 2
done
log "finished in $(( ($(date +%s) - start) / 60 )) min"
[ "${status}" -eq 0 ] || { echo "$0: some runs failed (listed above); fix and re-run" \
                                 "$0 to continue" >&2; exit 1; }
