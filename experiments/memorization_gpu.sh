#!/usr/bin/env bash
# Issue 16, memorization along training: the EDM Fashion-MNIST twin on the first n = 1k and 5k
# training images, side by side, with the memorization metrics (nearest-neighbour ratio, copy
# fraction, train vs held-out denoising loss) every MEM_EVERY steps; writes
# <out>/memorization_curve.md and two plots (copy fraction and median NN ratio vs step).
#   experiments/memorization_gpu.sh <fashion-mnist dir> <unused> <out dir>
# Both trainings stop at TRAIN_SECONDS (SIGTERM: the loop saves and returns); the curves hold the
# evaluations made until then. SMOKE=1: a CPU try-out (tiny network, a few steps).
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/diffjax_xla_cache}
set -uo pipefail
data=$1 out=$3
mkdir -p "$out"
export XLA_PYTHON_CLIENT_MEM_FRACTION=${GPU_FRACTION:-0.3}  # per process; two at a time
commit=${DIFFJAX_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
W=${WORKDIRS:-workdirs/memorization}
if [ "${SMOKE:-0}" = 1 ]; then
  smoke="--smoke" steps=${STEPS:-4} every=${MEM_EVERY:-2} num=${MEM_N:-16} secs=${TRAIN_SECONDS:-600}
else
  # ~30 steps/s each on a shared H200 (corruptions_gpu.sh's twins): 12k steps = 1.5k epochs of 1k.
  smoke="" steps=${STEPS:-12000} every=${MEM_EVERY:-1500} num=${MEM_N:-1000} secs=${TRAIN_SECONDS:-420}
fi
start=$(date +%s)
for n in 1000 5000; do
  name="curve_$(( n / 1000 ))k"
  timeout -s TERM -k 30 "$secs" python3 experiments/likelihood/run.py --stage=train --name="$name" \
    --out="$out" --data="$data" $smoke --config=configs/edm/fashion_mnist.py \
    --workdir="$W/$name" --subset="$n" --steps="$steps" --memorization_every="$every" \
    --num_samples="$num" 2>&1 | grep -v "async_checkpointer\|checkpoint_manager\|orbax\|Xla\|cuda_" \
    > "$out/log_$name.txt" &
done
wait
wall=$(( $(date +%s) - start ))
python3 experiments/likelihood/report.py --out="$out" --commit="$commit" --wall_seconds="$wall" \
  --command="experiments/memorization_gpu.sh $*" ${smoke:+--smoke} --reports=curve
echo "WALL_SECONDS=$wall"
