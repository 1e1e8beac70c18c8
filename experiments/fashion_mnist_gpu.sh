#!/usr/bin/env bash
# Trains, evaluates and samples one Fashion-MNIST config on a GPU machine and records the result.
#   experiments/fashion_mnist_gpu.sh <paper: edm|ddpm|flow_matching> <data dir> <out dir> [overrides...]
# Needs diffjax's dependencies importable (the device tool's image plus carried wheels).
set -euo pipefail
paper=$1 data=$2 out=$3; shift 3
workdir=workdirs/${paper}_fmnist
cmd="python3 -m diffjax.main --config=configs/${paper}/fashion_mnist.py --workdir=${workdir} --config.data.path=${data} $*"
mkdir -p "$out"
start=$(date +%s)
$cmd --mode=train 2>&1 | grep -v "async_checkpointer\|checkpoint_manager\|orbax" | tee "$out/${paper}_train.log"
$cmd --mode=eval 2>&1 | tail -5 | tee -a "$out/${paper}_train.log"
$cmd --mode=sample --config.sample.num_samples=1000 2>&1 | tail -2 | tee -a "$out/${paper}_train.log"
echo "WALL_SECONDS=$(( $(date +%s) - start ))" | tee -a "$out/${paper}_train.log"
python3 experiments/record_result.py --name="${paper}_fashion_mnist" --workdir="$workdir" \
  --command="${cmd} --mode=train" --command="${cmd} --mode=eval" --train_log="$out/${paper}_train.log" \
  --picture="$(ls ${workdir}/samples/final_*.png | tail -1)" --out="$out" --commit="${DIFFJAX_COMMIT:-}"
