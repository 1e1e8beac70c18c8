#!/usr/bin/env bash
# Issue 16 "Shown": guidance, editing and inverse problems on Fashion-MNIST, on one (shared) GPU.
#   experiments/guidance_gpu.sh <fashion-mnist dir> <FD-FMNIST classifier dir> <out dir>
# Writes <out>/guidance_editing.md (+ .json) and PNG grids. SMOKE=1: a tiny CPU try-out.
# Budget: 8 minutes wall on an H200 shared with 3 jobs (XLA_PYTHON_CLIENT_MEM_FRACTION=0.2); stages
# that would start after BUDGET_S seconds are skipped and named in the report.
# Compiled programs are shared between this script's runs (and reruns) through the persistent cache.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/diffjax_xla_cache}
set -euo pipefail
data=$1 fd=$2 out=$3
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.2}
export PYTHONPATH=${PYTHONPATH:-$PWD}
extra=()
if [[ "${SMOKE:-0}" == 1 ]]; then extra+=(--smoke --workdir=/tmp/guidance_smoke_wd); fi
mkdir -p "$out"
python3 experiments/guidance/run.py --data="$data" --fd_dir="$fd" --out="$out" \
  --budget_s="${BUDGET_S:-330}" "${extra[@]}" 2>&1 | grep -v "orbax\|checkpoint_manager\|async_checkpointer" \
  | tee "$out/guidance_run.log"
