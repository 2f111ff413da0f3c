#!/usr/bin/env bash
# Stage 1 of egs/synth_music/bimodal: render the synthetic music data set (manifests,
# single-source stems and mixtures) into --data_dir. Run from the recipe folder.
set -euo pipefail

python=python3              # the python that runs `-m bisep`
data_config=conf/data.yaml  # the data set's config (instruments, counts, seed, ...); "" = defaults
data_dir=data               # where the manifests and audio go

help_message=$(cat << HELP
Usage: $0 [options]
  --python       python that runs bisep (default: ${python})
  --data_config  data config (default: ${data_config})
  --data_dir     output folder (default: ${data_dir})
HELP
)
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }

conf=()
if [ -n "${data_config}" ]; then conf=(--conf "${data_config}"); fi
"${python}" -m bisep prepare synth_music ${conf[@]+"${conf[@]}"} "${data_dir}"
