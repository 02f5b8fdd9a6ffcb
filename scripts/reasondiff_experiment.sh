#!/usr/bin/env bash
# Every training run of the ReasonDiff experiment (issue 26; the plan and budgets: configs/world-s-reasondiff.yaml),
# in two lanes of one-thread jobs, each run resumed from its newest checkpoint if it has one (a run already
# finished only re-exports). Then benchmarks/reasondiff.py measures them (see docs/methods/reasondiff.md).
#   OMP_NUM_THREADS=1 nohup scripts/reasondiff_experiment.sh > runs/logs/reasondiff-experiment.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export OMP_NUM_THREADS=1
RD='method: reasondiff, width: 128, heads: 4'
# shellcheck source=lib/resumable_run.sh
. scripts/lib/resumable_run.sh

lane_a() {  # ReasonDiff (stage 1, 2), w/o aux loss (stage 2 with β = 0 from the same stage 1), w/o per-frame text
  run runs/world-s-reasondiff configs/world-s-reasondiff.yaml || return 1
  run runs/world-s-reasondiff-align configs/world-s-reasondiff-align.yaml || return 1
  run runs/world-s-reasondiff-noaux configs/world-s-reasondiff-align.yaml \
    --set "conditioning.addons=[{$RD, aux_weight: 0}]" || return 1
  run runs/world-s-reasondiff-noframe configs/world-s-reasondiff.yaml \
    --set "conditioning.addons=[{$RD, per_frame_text: false}]" || return 1
  run runs/world-s-reasondiff-noframe-align configs/world-s-reasondiff-align.yaml \
    --set model.pretrained=runs/world-s-reasondiff-noframe/pipeline \
    --set "conditioning.addons=[{$RD, aux_weight: 0.2, per_frame_text: false}]"
}

lane_b() {  # the control (no method, same frames), w/o predicted latents (no AlignFormer: one stage)
  run runs/world-s-reasondiff-control configs/world-s-reasondiff.yaml \
    --set 'conditioning.addons=[]' --set train.steps=2000 || return 1
  run runs/world-s-reasondiff-nolatents configs/world-s-reasondiff.yaml \
    --set "conditioning.addons=[{$RD, predicted_latents: false}]" --set train.steps=2000
}

two_lanes lane_a lane_b || exit 1
echo "$(date -u +%FT%TZ) all runs done" >&2
