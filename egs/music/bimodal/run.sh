#!/usr/bin/env bash
# egs/music/bimodal: the paper's MUSIC experiments (solo instrument videos) with its frozen
# LAION-CLAP and conditional U-Net, from a local copy of MUSIC. Nothing is downloaded.
#
#   ./run.sh --local_data_opts "--root /data/MUSIC --nj 8" \
#       --clap_checkpoint /models/music_audioset_epoch_15_esc_90.14.pt \
#       --train_args "conditioner_conf.text_model_dir=/models/roberta-base"
#   ./run.sh --stop_stage 2 --local_data_opts "--root /data/MUSIC --nj 8"   # data and plans
#   ./run.sh --help            # every option and its default
#   local/data.sh --help       # what --local_data_opts takes (--root, --metadata, --nj)
#
# --clap_checkpoint is the paper's LAION-CLAP: it replaces stage 3's mini_clap, which needs
# clips this data set does not have. The roberta-base folder is LAION-CLAP's text tower
# (config and tokenizer). Paths in options are relative to this folder. The layout of the
# copy, what each stage writes and the paper's results: docs/datasets.md; the stages:
# recipes/bisep.sh and docs/recipes.md. This file only sets the data set's options.
set -euo pipefail
cd "$(dirname "$0")"

# The default run trains the paper's weakly supervised separator. The four modes:
#   ./run.sh --stage 4 --train_configs "conf/train_unsup.yaml conf/train_weak.yaml conf/train_sup.yaml conf/train_semi.yaml" ...
train_configs="conf/train_weak.yaml"

# --clap_config "": no mini_clap. 45,000 MoMs per epoch: the paper's MUSIC epoch (its ~900
# training videos x 50).
../../../recipes/bisep.sh \
    --data_config conf/data.yaml \
    --clap_config "" \
    --train_configs "${train_configs}" \
    --supervised_fraction 0.05 \
    --mix_args "--num-train-mom 45000" \
    "$@"
