#!/usr/bin/env bash
# Stage 1 of egs/music/bimodal: extract the audio of a local MUSIC copy into fixed-length
# 16 kHz clips, 2-source compositions and manifests under --data_dir (`bisep prepare music`,
# docs/datasets.md). Nothing is downloaded; bad or missing videos are listed in
# <data_dir>/skipped.tsv. Run from the recipe folder; run.sh's stage 1 passes
# --python, --data_config and --data_dir, then its --local_data_opts (e.g. "--root
# /data/MUSIC --nj 8").
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (local/data.sh) $*"; }
fail() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (local/data.sh) ERROR: $*" >&2; exit 1; }

python=python3                  # the python that runs `-m bisep`
data_config=conf/data.yaml      # the dataset's config (rate, duration, splits, ...); "" = defaults
data_dir=data                   # where the manifests and audio go
root=""                         # the local MUSIC copy
metadata=""                     # MUSIC21_solo_videos.json or MUSIC_solo_videos.json; "" = in root
nj=4                            # parallel extraction jobs

help_message=$(cat << HELP
Usage: $0 --root /path/to/MUSIC [options]
  (through run.sh: ./run.sh --local_data_opts "--root /path/to/MUSIC --nj 8" ...)
  --root         the local MUSIC copy: <root>/<instrument>/<youtube id>.mp4 (any
                 audio/video type) and the metadata json (default: "${root}")
  --metadata     MUSIC21_solo_videos.json or MUSIC_solo_videos.json (default: "${metadata}",
                 i.e. the first found in --root)
  --nj           parallel extraction jobs (default: ${nj})
  --python       python that runs bisep (default: ${python})
  --data_config  data config (default: ${data_config})
  --data_dir     output folder (default: ${data_dir})
HELP
)
. utils/parse_options.sh
[ $# -eq 0 ] || fail "unexpected argument '$1' (see --help)"

[ -n "${root}" ] || fail "no MUSIC copy given: add --root /path/to/MUSIC (through run.sh:" \
    "--local_data_opts \"--root /path/to/MUSIC\"), the folder holding" \
    "<instrument>/<youtube id>.mp4 and MUSIC21_solo_videos.json; docs/datasets.md shows the" \
    "layout."
[ -d "${root}" ] || fail "--root ${root}: no such folder (relative paths start in $(pwd))." \
    "Give the folder of your MUSIC copy."
if [ -n "${metadata}" ]; then
    [ -f "${metadata}" ] || fail "--metadata ${metadata}: no such file (relative paths start" \
        "in $(pwd))."
elif [ ! -f "${root}/MUSIC21_solo_videos.json" ] && [ ! -f "${root}/MUSIC_solo_videos.json" ]; then
    fail "no MUSIC21_solo_videos.json or MUSIC_solo_videos.json in ${root}: add --metadata" \
        "/path/to/MUSIC21_solo_videos.json (from github.com/roudimit/MUSIC_dataset; through" \
        "run.sh: --local_data_opts \"--root ${root} --metadata" \
        "/path/to/MUSIC21_solo_videos.json\")."
fi

conf=()
if [ -n "${data_config}" ]; then conf=(--conf "${data_config}"); fi
overrides=("root=${root}" "nj=${nj}")
if [ -n "${metadata}" ]; then overrides+=("metadata=${metadata}"); fi
log "extracting ${root} -> ${data_dir} with ${nj} jobs"
"${python}" -m bisep prepare music ${conf[@]+"${conf[@]}"} "${data_dir}" "${overrides[@]}"
