#!/usr/bin/env bash
# Quickstart 1: install, then generate videos into outputs/ — text-to-video, and text+image-to-video
# from a keyframe image. Uses the shipped model; until one ships, an untrained model folder built by
# `anyframe model init` (its videos are noise: the pipeline runs end to end, the model knows nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
model_args=()
if [ ! -d checkpoints/anyframe-world-s ]; then
  [ -d models/anyframe-random ] || anyframe model init --size S --out models/anyframe-random
  model_args=(--model models/anyframe-random)
fi
anyframe generate "${model_args[@]}" --prompt "a red circle moves right" --seed 0 --out outputs/t2v.mp4
anyframe generate "${model_args[@]}" --prompt "a red circle moves right" --image assets/red_circle.png@0 \
  --seed 0 --out outputs/ti2v.mp4
echo "videos and filmstrips are in outputs/"
