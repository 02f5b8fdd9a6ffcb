# shellcheck shell=bash
# Sourced by the experiment scripts: run OUTPUT_DIR CONFIG [--set ...] trains one run of a recipe, resumed from
# its newest checkpoint if it has one (a run already finished only re-exports), quietly, one line per start/end
# on stderr; a failure prints FAILED and returns 1.
run() {
  local out=$1 config=$2; shift 2
  local resume=()
  compgen -G "$out/checkpoints/step-*" > /dev/null && resume=(--resume latest)
  echo "$(date -u +%FT%TZ) start $out" >&2
  anyframe train --config "$config" --set "output_dir=$out" "$@" "${resume[@]}" --quiet || { echo "FAILED: $out" >&2; return 1; }
  echo "$(date -u +%FT%TZ) done $out" >&2
}

two_lanes() {  # two_lanes FN_A FN_B: run two shell functions side by side; fails if either does
  "$1" & local a=$!
  "$2" & local b=$!
  local ra rb
  wait "$a"; ra=$?
  wait "$b"; rb=$?
  [ "$ra" -eq 0 ] && [ "$rb" -eq 0 ]
}
