#!/usr/bin/env bash
# The loss comparison on the embedded digits: every loss × seed at 1000 generator steps, JOBS runs at a time
# with one thread each (default 2 on a 2-core machine), then the table and the KID curves by gan.compare.
#   bash bench/gan_digits.sh [OUT]        # default OUT=runs/gan_digits; finished runs are skipped
# Environment: LOSSES, SEEDS, JOBS, STEPS. The paper-form SMMD ablation runs as "smmd-paper".
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gan_digits}
LOSSES=${LOSSES:-"smmd sn-smmd mmd-gp wgan-gp sn-gan smmd-paper"}
SEEDS=${SEEDS:-"0 1 2"}
JOBS=${JOBS:-2}
STEPS=${STEPS:-1000}
mkdir -p "$OUT"

run_one() {  # NAME SEED
  local name=$1 seed=$2 folder="$OUT/$1-seed$2" flags=(--loss "$1")
  if [[ $name == smmd-paper ]]; then flags=(--loss smmd --smmd-scale paper); fi
  if [[ -f $folder/metrics.jsonl ]] && grep -q "\"step\": $STEPS," "$folder/metrics.jsonl" && \
     grep "\"step\": $STEPS," "$folder/metrics.jsonl" | grep -q '"kid"'; then
    return 0
  fi
  local resume=()
  [[ -f $folder/checkpoint.pt ]] && resume=(--resume)
  OMP_NUM_THREADS=1 python -m gan.train "${flags[@]}" --seed "$seed" --steps "$STEPS" --out "$folder" \
    --no-progress "${resume[@]}" > "$OUT/$name-seed$seed.log" 2>&1
}
export -f run_one
export OUT STEPS

for seed in $SEEDS; do for name in $LOSSES; do echo "$name $seed"; done; done |
  xargs -P "$JOBS" -n 2 bash -c 'run_one "$0" "$1" && echo "done $0 seed $1" || echo "FAILED $0 seed $1"'

python -m gan.compare "$OUT"/*-seed*/ --group --plot "$OUT/kid_curves.png" > "$OUT/table.md"
cat "$OUT/table.md"
