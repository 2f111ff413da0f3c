#!/usr/bin/env bash
# Stage 1 of egs/vggsound/bimodal: extract the audio of a local VGGSound copy into
# fixed-length 16 kHz clips, 2-source compositions and manifests under --data_dir (`bisep
# prepare vggsound`, docs/datasets.md). Nothing is downloaded; bad or missing clips are in
# <data_dir>/skipped.tsv. Run from the recipe folder; run.sh's stage 1 passes
# --python, --data_config and --data_dir, then its --local_data_opts (e.g. "--root
# /data/VGGSound --nj 8").
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (local/data.sh) $*"; }
fail() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (local/data.sh) ERROR: $*" >&2; exit 1; }

python=python3                  # the python that runs `-m bisep`
data_config=conf/data.yaml      # the dataset's config (rate, duration, splits, ...); "" = defaults
data_dir=data                   # where the manifests and audio go
root=""                         # the local VGGSound copy
metadata=""                     # vggsound.csv; "" = <root>/vggsound.csv
nj=4                            # parallel extraction jobs

help_message=$(cat << HELP
Usage: $0 --root /path/to/VGGSound [options]
  (through run.sh: ./run.sh --local_data_opts "--root /path/to/VGGSound --nj 8" ...)
  --root         the local VGGSound copy: <id>_<start:06d>.mp4 clips (any audio/video type)
                 anywhere below it (default: "${root}")
  --metadata     vggsound.csv (default: "${metadata}", i.e. <root>/vggsound.csv)
  --nj           parallel extraction jobs (default: ${nj})
  --python       python that runs bisep (default: ${python})
  --data_config  data config (default: ${data_config})
  --data_dir     output folder (default: ${data_dir})
HELP
)
. utils/parse_options.sh
[ $# -eq 0 ] || fail "unexpected argument '$1' (see --help)"

[ -n "${root}" ] || fail "no VGGSound copy given: add --root /path/to/VGGSound (through" \
    "run.sh: --local_data_opts \"--root /path/to/VGGSound\"), the folder holding the" \
    "<id>_<start:06d>.mp4 clips and vggsound.csv; docs/datasets.md shows the layout."
[ -d "${root}" ] || fail "--root ${root}: no such folder (relative paths start in $(pwd))." \
    "Give the folder of your VGGSound copy."
if [ -n "${metadata}" ]; then
    [ -f "${metadata}" ] || fail "--metadata ${metadata}: no such file (relative paths start" \
        "in $(pwd))."
elif [ ! -f "${root}/vggsound.csv" ]; then
    fail "no vggsound.csv in ${root}: add --metadata /path/to/vggsound.csv (from" \
        "https://www.robots.ox.ac.uk/~vgg/data/vggsound/; through run.sh: --local_data_opts" \
        "\"--root ${root} --metadata /path/to/vggsound.csv\")."
fi

conf=()
if [ -n "${data_config}" ]; then conf=(--conf "${data_config}"); fi
overrides=("root=${root}" "nj=${nj}")
if [ -n "${metadata}" ]; then overrides+=("metadata=${metadata}"); fi
log "extracting ${root} -> ${data_dir} with ${nj} jobs"
"${python}" -m bisep prepare vggsound ${conf[@]+"${conf[@]}"} "${data_dir}" "${overrides[@]}"
