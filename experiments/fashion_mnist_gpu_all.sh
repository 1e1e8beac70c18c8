#!/usr/bin/env bash
# Runs experiments/fashion_mnist_gpu.sh for EDM, DDPM and flow matching concurrently on one GPU
# (each process takes 30 % of the GPU memory; these small models leave the GPU mostly idle, so
# wall times and steps/s are those of three jobs sharing one device).
#   experiments/fashion_mnist_gpu_all.sh <data dir> <out dir>
set -uo pipefail
data=$1 out=$2
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.3
for paper in ${PAPERS:-edm ddpm flow_matching}; do
  bash experiments/fashion_mnist_gpu.sh "$paper" "$data" "$out" > "/tmp/${paper}_stdout.txt" 2>&1 &
done
wait
tail -n 4 /tmp/*_stdout.txt
(cd "$out" && tar czf logs.tgz *.log && rm -f *.log)
