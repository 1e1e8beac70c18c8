#!/usr/bin/env bash
# Issue 16 "Other corruptions": IHDM, blurring diffusion and cold diffusion (deblurring) on
# Fashion-MNIST, trained concurrently for a few minutes each on one shared GPU:
#   experiments/corruptions_gpu.sh <fashion-mnist dir> <FD-FMNIST classifier dir> <out dir>
# writes <out dir>/corruptions.md (FD-FMNIST per method, train steps, commands, commit, device),
# sample grids <name>_<sampler>.png and the runs' logs.
#
# Timeline (wall seconds from the start): the three trainings run side by side until T_TRAIN (each
# stopped by SIGTERM; the loop saves and exits), then each is evaluated from its last checkpoint
# (FD-FMNIST of FD_SAMPLES samples, EMA parameters), cut at T_END; then the report (~10 s).
# About 6 minutes in all, compiles included. Every run: the small U-Net twin (~6 M parameters),
# batch 256, EMA 0.999 (a shorter window than the twin's 0.9995, for runs of a few thousand steps).
# The step counts are far below the configs' 6000: the FDs show what a few minutes buy.
# GPU memory: XLA_PYTHON_CLIENT_MEM_FRACTION (default 0.2) is split over the three processes.
# SMOKE=1: a CPU try-out (tiny networks, a few steps, 16-sample FDs).
set -uo pipefail
data=$1 classifier=$2 out=$3
mkdir -p "$out"
start=$(date +%s)
commit=${DIFFJAX_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
W=${WORKDIRS:-workdirs/corruptions}
export PYTHONPATH=${PYTHONPATH:-$PWD}
quiet="async_checkpointer\|checkpoint_manager\|orbax\|Xla\|cuda_"
total_fraction=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.2}
export XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(round($total_fraction / 3, 3))")
if [ "${SMOKE:-0}" = 1 ]; then
  T_TRAIN=${T_TRAIN:-400} T_END=${T_END:-900}  # slow CPU
  arg=",smoke" steps=4 fd=16
  extra="--config.train.ckpt_every_steps=2"
else
  T_TRAIN=${T_TRAIN:-215} T_END=${T_END:-345}
  arg="" steps=${TRAIN_STEPS:-20000} fd=${FD_SAMPLES:-5000}
  extra="--config.train.ckpt_every_steps=500 --config.train.log_every_steps=100"
  extra+=" --config.train.steps_per_jit=4"
fi
common="--config.data.path=${data} --config.eval.fd_classifier_dir=${classifier}"
common+=" --config.train.num_steps=${steps} --config.train.sample_every_steps=0"
common+=" --config.train.eval_every_steps=0 --config.eval.num_samples=0"
common+=" --config.eval.fd_num_samples=${fd} --config.optim.ema.decay=0.999 ${extra}"
declare -A CMD
CMD[ihdm]="python3 -m diffjax.main --config=configs/ihdm/fashion_mnist.py:size=default${arg}"
CMD[blurring]="python3 -m diffjax.main --config=configs/blurring_diffusion/fashion_mnist.py:size=default${arg}"
[ "${SMOKE:-0}" = 1 ] || CMD[blurring]+=" --config.sample.num_steps=${BLUR_STEPS:-250}"  # paper: 1000
CMD[cold]="python3 -m diffjax.main --config=configs/cold_diffusion/fashion_mnist.py:size=default${arg}"
for name in ihdm blurring cold; do
  CMD[$name]+=" --workdir=$W/$name $common"
done

run() {  # name: train until done or T_TRAIN, then FD evaluation cut at T_END
  local name=$1 cmd=${CMD[$1]} left
  left=$(( T_TRAIN - ($(date +%s) - start) ))
  (( left < 20 )) && left=20
  echo "$name: train, at most ${left}s: $cmd --mode=train" >> "$out/$name.log"
  timeout --signal=TERM --kill-after=60 "$left" $cmd --mode=train 2>&1 | grep -v "$quiet" >> "$out/$name.log"
  echo "TRAIN_END_SECONDS=$(( $(date +%s) - start ))" >> "$out/$name.log"
  left=$(( T_END - ($(date +%s) - start) ))
  (( left < 10 )) && left=10
  timeout --kill-after=5 "$left" $cmd --mode=eval 2>&1 | grep -v "$quiet" | tail -20 >> "$out/$name.log"
  echo "EVAL_END_SECONDS=$(( $(date +%s) - start ))" >> "$out/$name.log"
}

for name in ihdm blurring cold; do
  run $name &
done
wait
echo "all runs done at $(( $(date +%s) - start ))s"

args=()
for name in ihdm blurring cold; do
  args+=("--run=$name=$W/$name" "--command=$name=${CMD[$name]}")
done
python3 experiments/corruptions_report.py --out="$out" --commit="$commit" --fd_samples="$fd" \
  --wall_seconds=$(( $(date +%s) - start )) --smoke="${SMOKE:-0}" "${args[@]}"
