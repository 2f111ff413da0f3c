#!/usr/bin/env bash
# Stage 1 of egs/audiocaps/bimodal: extract the audio of a local AudioCaps copy into
# fixed-length 16 kHz clips, parse the captions into source phrases, compose the test set
# and write the manifests under --data_dir (`bisep prepare audiocaps`, docs/datasets.md).
# Nothing is downloaded; bad or missing clips are listed in
# <data_dir>/skipped.tsv. Run from the recipe folder; run.sh's stage 1 passes
# --python, --data_config and --data_dir, then its --local_data_opts (e.g. "--root
# /data/AudioCaps --nj 8").
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (local/data.sh) $*"; }
fail() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (local/data.sh) ERROR: $*" >&2; exit 1; }

python=python3                  # the python that runs `-m bisep`
data_config=conf/data.yaml      # the dataset's config (rate, duration, splits, ...); "" = defaults
data_dir=data                   # where the manifests and audio go
root=""                         # the local AudioCaps copy
metadata=""                     # the folder of train.csv, val.csv, test.csv; "" = root
nj=4                            # parallel extraction jobs

help_message=$(cat << HELP
Usage: $0 --root /path/to/AudioCaps [options]
  (through run.sh: ./run.sh --local_data_opts "--root /path/to/AudioCaps --nj 8" ...)
  --root         the local AudioCaps copy: <youtube_id>.wav clips (any audio/video type)
                 anywhere below it (default: "${root}")
  --metadata     the folder of train.csv, val.csv and test.csv (default: "${metadata}",
                 i.e. --root)
  --nj           parallel extraction jobs (default: ${nj})
  --python       python that runs bisep (default: ${python})
  --data_config  data config (default: ${data_config})
  --data_dir     output folder (default: ${data_dir})
HELP
)
. utils/parse_options.sh
[ $# -eq 0 ] || fail "unexpected argument '$1' (see --help)"

[ -n "${root}" ] || fail "no AudioCaps copy given: add --root /path/to/AudioCaps (through" \
    "run.sh: --local_data_opts \"--root /path/to/AudioCaps\"), the folder holding the" \
    "<youtube_id>.wav clips and train.csv, val.csv, test.csv; docs/datasets.md shows the" \
    "layout."
[ -d "${root}" ] || fail "--root ${root}: no such folder (relative paths start in $(pwd))." \
    "Give the folder of your AudioCaps copy."
csv_dir=${metadata:-${root}}
for name in train.csv val.csv test.csv; do
    [ -f "${csv_dir}/${name}" ] || fail "no ${name} in ${csv_dir}: add --metadata" \
        "/path/to/audiocaps/dataset, the folder of train.csv, val.csv and test.csv (from" \
        "github.com/cdjkim/audiocaps; through run.sh: --local_data_opts \"--root ${root}" \
        "--metadata /path/to/audiocaps/dataset\")."
done

conf=()
if [ -n "${data_config}" ]; then conf=(--conf "${data_config}"); fi
overrides=("root=${root}" "nj=${nj}")
if [ -n "${metadata}" ]; then overrides+=("metadata_dir=${metadata}"); fi
log "extracting ${root} -> ${data_dir} with ${nj} jobs"
"${python}" -m bisep prepare audiocaps ${conf[@]+"${conf[@]}"} "${data_dir}" "${overrides[@]}"
