#!/usr/bin/env bash
# Omniglot (Vinyals split) accuracy of the gradient-based methods on a short CPU budget:
# train with `kshot train`, then `kshot eval` on the 1,000 fixed test episodes (seed 0, 15 queries).
#   KSHOT_DATA=/path/to/data bash benchmarks/images/omniglot_gradient.sh WAY METHOD [EPISODES] [META_BATCH]
# EPISODES counts tasks. Meta-training tasks have QUERY query examples per class (default 1, the MAML
# paper's Omniglot protocol: as many as support examples); evaluation always uses 15. The Adam learning
# rate (1e-3) halves every LR_STEP tasks (default 2000, for the short runs; the long runs use a third of
# EPISODES); VAL_EVERY tasks between validations (default: once, at the end), the best one is evaluated.
# PARAMS adds kshot train options, e.g. PARAMS="-p precision=bf16" or PARAMS="-b downsample=stride" (MAML's
# Omniglot network). FOMAML's inner lr is 0.1 (session 2's rows used 0.4), the others' 0.4; INNER_STEPS,
# INNER_LR and TEST_STEPS override the inner loop of any method (the MAML paper's 20-way runs: 5 steps at 0.1).
# Prints the eval JSON line (accuracy, ci95) and the training summary line.
set -euo pipefail
WAY=${1:?way}; METHOD=${2:?method}; EPISODES=${3:-800}; T=${4:-8}; QUERY=${QUERY:-1}
LR_STEP=${LR_STEP:-2000}; VAL_EVERY=${VAL_EVERY:-$EPISODES}; read -ra EXTRA <<< "${PARAMS:-}"
OUT=${OUT:-runs/omniglot-${METHOD}-${WAY}way}
case "$METHOD" in
  reptile) STEPS=3; ILR=0.1; TEST=10 ;;
  fomaml)  STEPS=1; ILR=0.1; TEST=3 ;;  # 0.4 levels off at 86.8
  *)       STEPS=1; ILR=0.4; TEST=3 ;;
esac
INNER=(--inner-steps "${INNER_STEPS:-$STEPS}" --inner-lr "${INNER_LR:-$ILR}" --test-inner-steps "${TEST_STEPS:-$TEST}")
/usr/bin/time -f "wall %e s" kshot train --method "$METHOD" --dataset omniglot --way "$WAY" --shot 1 --query "$QUERY" \
  --meta-batch "$T" --episodes "$EPISODES" --lr 0.001 --lr-step "$LR_STEP" --val-way "$WAY" --val-every "$VAL_EVERY" \
  --val-episodes 100 "${INNER[@]}" "${EXTRA[@]}" --no-progress --out "$OUT"
/usr/bin/time -f "wall %e s" kshot eval "$OUT" --way "$WAY" --shot 1 --json --no-progress
