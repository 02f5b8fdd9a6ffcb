# shellcheck shell=bash
# Sourced by the experiment scripts: run OUTPUT_DIR CONFIG [--set ...] trains one run of a recipe, resumed from
# its newest checkpoint if it has one (a run that has already trained its train.steps, or more, counts as done:
# train refuses it with "nothing to do" or "past train.steps"; a run given more steps continues), quietly, one
# line per start/end on stderr; a failure prints FAILED and returns 1. The repository's .venv is used when there
# is one.
# shellcheck disable=SC1091
[ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ] && . .venv/bin/activate

run() {
  local out=$1 config=$2; shift 2
  local resume=() err rc
  compgen -G "$out/checkpoints/step-*" > /dev/null && resume=(--resume latest)
  echo "$(date -u +%FT%TZ) start $out" >&2
  err=$(mktemp)
  anyframe train --config "$config" --set "output_dir=$out" "$@" "${resume[@]}" --quiet 2> "$err"; rc=$?
  cat "$err" >&2
  # A run whose newest checkpoint is at or past train.steps has trained what was asked (a run extended later
  # keeps its earlier stages re-runnable).
  if [ "$rc" -ne 0 ] && grep -qE "nothing to do: the run finished training|past train.steps" "$err"; then
    rm -f "$err"; echo "$(date -u +%FT%TZ) finished already: $out" >&2; return 0
  fi
  rm -f "$err"
  [ "$rc" -eq 0 ] || { echo "FAILED: $out" >&2; return 1; }
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
