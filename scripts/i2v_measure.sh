#!/usr/bin/env bash
# The measurements of the FlashI2V convergence experiment (issue 27), once scripts/i2v_experiment.sh has trained its
# runs to STEP (4000: the protocol's budget; 8000: the extension, configs/world-s-i2v-converge.yaml): the curves,
# FlashI2V's layers, where each model loses its condition image, which noise levels push FlashI2V's shift down, and
# the leakage ablation on every split:
#   OMP_NUM_THREADS=1 nohup scripts/i2v_measure.sh [STEP] > runs/logs/i2v-measure.log 2>&1 &
# Each model is measured at its checkpoint step-STEP, exported once to runs/i2v/exports/<run>-STEP (so a run that
# trains on, and re-exports its pipeline/, does not change what is measured). The curves and the ablation are
# cached per checkpoint / model, so the script can run while runs are still training: it measures what has
# reached STEP, and writes the tables (benchmarks/results/) once every model has (exit 1 and say which is missing).
# Two one-thread lanes (about 45 minutes on two cores for the step-8,000 models).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export OMP_NUM_THREADS=1
# shellcheck disable=SC1091
[ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ] && . .venv/bin/activate
STEP=${1:-4000}
R=runs/i2v CFG=configs/world-s-i2v-converge.yaml
FR="frame replacement=$R/frame-replacement" CC="channel concat=$R/channel-concat" FL="FlashI2V=$R/flashi2v-gamma1"
ZERO="FlashI2V, φ from zero=$R/flashi2v" PHI10="FlashI2V, φ from zero, LR ×10=$R/flashi2v-phi10"
FIXED="FlashI2V, gain fixed at 1=$R/flashi2v-gamma1-fixed"
# shellcheck source=lib/resumable_run.sh
. scripts/lib/resumable_run.sh  # two_lanes
runs=() flash=()
for spec in "$FR" "$CC" "$FL" "$ZERO" "$PHI10" "$FIXED"; do
  [ -d "${spec#*=}/checkpoints" ] && runs+=(--run "$spec")
done
for spec in "$FL" "$ZERO" "$PHI10" "$FIXED"; do
  [ -d "${spec#*=}/checkpoints" ] && flash+=(--run "$spec")
done

# the ablation's models: LABEL=RUN@STEP (the φ-from-zero run stopped at 2,000), each exported once
ZERO_LABEL="FlashI2V, φ from zero (2,000 steps)"
models=("frame replacement=frame-replacement@$STEP" "channel concat=channel-concat@$STEP"
        "FlashI2V=flashi2v-gamma1@$STEP" "$ZERO_LABEL=flashi2v@2000")
specs=() missing=()
for m in "${models[@]}"; do
  label=${m%%=*} rest=${m#*=}; run=${rest%@*} step=${rest#*@}
  ckpt=$R/$run/checkpoints/$(printf 'step-%08d' "$step") export=$R/exports/$run-$step
  if ! [ -f "$export/model_index.json" ]; then
    if [ -d "$ckpt" ]; then
      anyframe model export --checkpoint "$ckpt" --out "$export" || exit 1
    else
      missing+=("$ckpt"); continue
    fi
  fi
  specs+=("$label=$export")
done

# Every measurement is cached per checkpoint or per model (the weights' key), so the work runs in two one-thread
# lanes that fill the caches, and the tables are written from them at the end.
# The fidelity probe: at 4,000 steps every sampler setting; past it the settings that moved FlashI2V by 0.1 dB or
# less at 4,000 (archived in docs/experiments.md) are left out, and so is the φ-from-zero model (the same weights).
FIDELITY=(--n 16)
FIDELITY_MODELS=("frame replacement" "channel concat" FlashI2V "$ZERO_LABEL")
if [ "$STEP" != 4000 ]; then
  FIDELITY+=(--setting "benchmark sampling" --setting "guidance 3" --setting "without the shift"
             --setting "without the Fourier path")
  FIDELITY_MODELS=("frame replacement" "channel concat" FlashI2V)
fi
fidelity() {  # fidelity LABEL...: the fidelity probe of those models (those trained), into its cache
  local label spec
  for label in "$@"; do
    for spec in "${specs[@]}"; do
      [ "${spec%%=*}" = "$label" ] || continue
      python benchmarks/i2v_fidelity_probe.py --model "$spec" "${FIDELITY[@]}" --only-measure || return 1
    done
  done
}
lane_a() {
  python benchmarks/i2v_curves.py "${runs[@]}" --every 250 --n 16 --only-measure || return 1
  python benchmarks/flashi2v_probe.py "${flash[@]}" --every 250 --n 32 || return 1
  fidelity "${FIDELITY_MODELS[@]}"
}
lane_b() {
  local spec
  for spec in "${specs[@]}"; do
    python benchmarks/flashi2v_ablation.py --model "$spec" --n 24 --only-measure || return 1
  done
  # which noise levels push FlashI2V's shift down: from the start of its fine-tune to STEP
  local g=$R/flashi2v-gamma1/checkpoints
  python benchmarks/flashi2v_shift_gradient.py --n 16 \
    --start "FlashI2V @0=$CFG" --set conditioning.shift_init=1.0 \
    --model "FlashI2V @250=$g/step-00000250" --model "FlashI2V @1000=$g/step-00001000" \
    --model "FlashI2V @4000=$g/step-00004000" --model "FlashI2V @$STEP=$g/$(printf 'step-%08d' "$STEP")" \
    --model "FlashI2V, gain fixed at 1 @1000=$R/flashi2v-gamma1-fixed/checkpoints/step-00001000" \
    --model "FlashI2V, φ from zero @2000=$R/flashi2v/checkpoints/step-00002000"
}
two_lanes lane_a lane_b || exit 1
python benchmarks/i2v_curves.py "${runs[@]}" --every 250 --n 16 || exit 1  # the tables, from the cache
[ "${#missing[@]}" -eq 0 ] || { echo "not trained yet: ${missing[*]}" >&2; exit 1; }
args=()
for spec in "${specs[@]}"; do args+=(--model "$spec"); done
fargs=()
for spec in "${specs[@]}"; do
  for label in "${FIDELITY_MODELS[@]}"; do [ "${spec%%=*}" = "$label" ] && fargs+=(--model "$spec"); done
done
python benchmarks/i2v_fidelity_probe.py "${fargs[@]}" "${FIDELITY[@]}" || exit 1
python benchmarks/flashi2v_ablation.py "${args[@]}" --n 24 --reference FlashI2V --detail-sweep FlashI2V \
  --note "Issue 27's protocol (configs/world-s-i2v-converge.yaml): each variant fine-tuned $STEP steps at batch 8 from the shipped model (trained with frame replacement, which favours that variant) on the TI2V task alone, at a constant LR; FlashI2V's shift starts at −s with a learned gain (shift_init 1.0; the protocol change in the config); the φ-from-zero FlashI2V stopped at 2,000 steps. Curves: i2v_curves.md." || exit 1
echo "$(date -u +%FT%TZ) all measured at step $STEP" >&2
