#!/usr/bin/env bash
# Trains and evaluates Fashion-MNIST configs concurrently on one GPU for the issue-5 table
# (experiments/results/fashion_mnist.md), then records each run (record_result.py).
#
#   experiments/fashion_mnist_table.sh <data dir> <classifier dir> <out dir> NAME=CONFIG[:ARG] ...
#   e.g. ... edm=configs/edm/fashion_mnist.py kg_elbo=configs/kingma_gao/fashion_mnist.py:weighting=elbo
#
# Every run: train (workdirs/table/NAME), then `--mode=eval` with FD-FMNIST (classifier dir) for the
# config's eval.fd_samplers and, where configured, test-set bits/dim. Runs share the GPU (each process
# may take GPU_FRACTION of its memory), so steps/s and wall times are those of concurrent jobs.
# Results (reports, sample grids, logs) are collected as <out dir>/NAME.{md,png,log} and eval/.
# Extra `--config.*` overrides for every run: EXTRA="...".
set -uo pipefail
data=$1 classifier=$2 out=$3; shift 3
mkdir -p "$out"
export XLA_PYTHON_CLIENT_MEM_FRACTION=${GPU_FRACTION:-0.18}
commit=${DIFFJAX_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
run_one() {
  local name=$1 config=$2 workdir=workdirs/table/$1
  local cmd="python3 -m diffjax.main --config=${config} --workdir=${workdir} --config.data.path=${data}"
  cmd+=" --config.eval.fd_classifier_dir=${classifier} ${EXTRA:-}"
  local log="$out/${name}.log" start
  start=$(date +%s)
  $cmd --mode=train 2>&1 | grep -v "async_checkpointer\|checkpoint_manager\|orbax\|Xla\|cuda_" > "$log"
  echo "TRAIN_SECONDS=$(( $(date +%s) - start ))" >> "$log"
  $cmd --mode=eval 2>&1 | grep -v "async_checkpointer\|checkpoint_manager\|orbax" | tail -25 >> "$log"
  echo "WALL_SECONDS=$(( $(date +%s) - start ))" >> "$log"
  local pic
  pic=$(ls "${workdir}"/eval/fd_samples_*_default.png 2>/dev/null | tail -1)
  python3 experiments/record_result.py --name="${name}_fashion_mnist" --workdir="$workdir" \
    --command="${cmd} --mode=train" --command="${cmd} --mode=eval" --train_log="$log" \
    --picture="${pic}" --out="$out" --commit="$commit" >> "$log" 2>&1
  for f in "${workdir}"/eval/metrics_*.json "${workdir}"/eval/fd_samples_*.png; do
    [ -e "$f" ] && cp "$f" "$out/${name}_$(basename "$f")"
  done
}
for spec in "$@"; do
  run_one "${spec%%=*}" "${spec#*=}" &
done
wait
