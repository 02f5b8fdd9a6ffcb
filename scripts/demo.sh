#!/usr/bin/env bash
# Quickstart 1: install, then generate with the shipped default model (checkpoints/anyframe-world-s) into
# outputs/ — text-to-video, and text+image-to-video from a keyframe rendered by the shapes world.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
# text-to-video: the prompt alone
anyframe generate --prompt "On a black background, a large red circle moves right. A medium blue square moves up." \
  --seed 0 --out outputs/t2v.mp4
# image-to-video: a world scene's first frame and its caption (the true clip is in outputs/world-7/video.mp4)
[ -d outputs/world-7 ] || anyframe world render --seed 7 --out outputs/world-7 > /dev/null
prompt="$(python -c "import json; print(json.load(open('outputs/world-7/captions.json'))['caption'])")"
anyframe generate --prompt "$prompt" --image outputs/world-7/frames/frame_0000.png@0 --seed 0 --out outputs/ti2v.mp4
echo "videos and filmstrips are in outputs/ (t2v, ti2v; the world's true clip in outputs/world-7)"
