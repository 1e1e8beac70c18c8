#!/usr/bin/env bash
# Flows and bridges "Shown" results on one GPU (shared): 2-D toys (I-CFM / OT-CFM / SB-CFM: W2,
# path length, straightness), DSBM-IMF vs the closed-form Gaussian SB (d = 5, 20, 50, per IMF
# iteration), Fashion-MNIST OT-CFM vs I-CFM FD-FMNIST at 1, 4 and 35 NFE, DSBM class-group transfer.
#   experiments/bridges_gpu.sh <fashion-mnist dir> <fd classifier dir> <out dir>
# Writes <out>/bridges.md, bridges.json, PNGs. One Python process (one set of imports/compiles);
# every section stops training at its share of BUDGET_S (default 360 s of the 8-minute slot: start-up, compiles and the last evaluations fit in the rest).
# SMOKE=1 runs tiny settings (CPU try-out). SECTIONS=gaussian,transfer and GAUSSIAN_DIMS=50 rerun
# a part (the section shares of the budget are renormalised over the sections run); TRANSFER_STEPS
# sets the DSBM transfer's steps per IMF iteration (400).
# Compiled programs are shared between this script's runs (and reruns) through the persistent cache.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/diffjax_xla_cache}
set -euo pipefail
fmnist=$1 classifier=$2 out=$3
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.2}
mkdir -p "$out"
start=$(date +%s)
python3 experiments/bridges/run_all.py --fmnist="$fmnist" --classifier="$classifier" \
  --out_dir="$out" --budget_s="${BUDGET_S:-360}" \
  --sections="${SECTIONS:-toys,gaussian,fmnist,transfer}" --gaussian_dims="${GAUSSIAN_DIMS:-5,20,50}" \
  --transfer_steps="${TRANSFER_STEPS:-400}" 2>&1 \
  | grep -v "async_checkpointer\|checkpoint_manager\|orbax" | tee "$out/bridges.log"
echo "WALL_SECONDS=$(( $(date +%s) - start ))" | tee -a "$out/bridges.log"
