#!/usr/bin/env bash
# Review each stack in $TRAINSTACK_STACKS against $BASE_REF, one comment body per stack:
#   examples/ci/review.sh OUT_DIR
# writes OUT_DIR/<stack>.md (`trainstack review --format github`), OUT_DIR/pr-number
# ($PR_NUMBER) and OUT_DIR/status: 0, or the first non-zero exit of a review (1: a mandatory
# policy is broken, 2: a stack or the base cannot be read). Needs no Azure credentials.
set -uo pipefail
out=${1:?usage: review.sh OUT_DIR}
mkdir -p "$out"
status=0
for stack in ${TRAINSTACK_STACKS:?set TRAINSTACK_STACKS, e.g. "dev prod"}; do
  trainstack review --stack "$stack" --base-ref "${BASE_REF:?set BASE_REF, e.g. origin/main}" \
    --format github ${TRAINSTACK_REVIEW_ARGS:-} > "$out/$stack.md"
  code=$?
  echo "review of $stack against $BASE_REF: exit $code" >&2
  if [ "$status" -eq 0 ]; then status=$code; fi
done
echo "${PR_NUMBER:-}" > "$out/pr-number"
echo "$status" > "$out/status"
