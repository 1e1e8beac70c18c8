#!/usr/bin/env bash
# Recipe search for the FD-FMNIST classifier on a GPU (the record run is on CPU, results.md):
#   experiments/fd_fmnist/sweep_gpu.sh <fashion-mnist dir> <out dir> <sweep: 1|2>
set -uo pipefail
data=$1 out=$2 sweep=$3
mkdir -p "$out"
if [[ $sweep == 1 ]]; then  # width 16: epochs x GroupNorm x learning rate
  runs=()
  for e in 3 4; do for gn in false true; do for lr in 1e-3 2e-3 4e-3; do
    runs+=("e${e}_gn${gn}_lr${lr}:--width=16 --epochs=$e --group_norm=$gn --learning_rate=$lr")
  done; done; done
else  # 4 epochs, 256 features: width x learning rate
  runs=()
  for w in 16 24 32; do for lr in 2e-3 4e-3; do
    runs+=("w${w}_lr${lr}:--width=$w --feature_dim=256 --epochs=4 --learning_rate=$lr")
  done; done
fi
for run in "${runs[@]}"; do
  name=${run%%:*} flags=${run#*:}
  python3 experiments/fd_fmnist/train_classifier.py --data_path="$data" --out_dir="$out/$name" \
    $flags > "$out/$name.log" 2>&1
  echo "$name $(grep -o '"test_accuracy": [0-9.]*' "$out/$name/summary.json") \
    $(grep -o '"fd_train_vs_test": [0-9.]*' "$out/$name/summary.json") \
    $(grep -o '"seconds": [0-9.]*' "$out/$name/summary.json")"
  rm -rf "$out/$name" "$out/$name.log"
done
