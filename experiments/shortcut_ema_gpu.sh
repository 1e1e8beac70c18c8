#!/usr/bin/env bash
# Shortcut models on Fashion-MNIST: are the noise samples of fewstep_fashion_mnist.md (session 11)
# the EMA lag of the bootstrap targets? Trains configs/shortcut/fashion_mnist.py twice side by side
# for T_TRAIN seconds, bootstrap targets from the EMA θ⁻ (μ = 0.999, the default and the official
# code's) and from the current parameters (bootstrap_ema = 0), then FD-FMNIST at 1, 2, 4 steps.
#   experiments/shortcut_ema_gpu.sh <fashion-mnist dir> <FD classifier dir> <out dir>
# Writes <out>/<name>.log and <name>_metrics.json (the last eval) and prints them.
# Session 12's call with T_TRAIN=125 measured nothing: the two processes spent ~90 s compiling the
# shortcut step (three U-Net passes per step, 4 steps per jit) and stopped at step 4. Give
# T_TRAIN several minutes (default 400 s; with T_EVAL, RUN_CAP >= 500 in gpu_call.sh).
set -uo pipefail
data=$1 classifier=$2 out=$3
mkdir -p "$out"
T=${T_TRAIN:-400}
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 JAX_COMPILATION_CACHE_DIR=/tmp/diffjax_xla_cache
common="--config.data.path=$data --config.eval.fd_classifier_dir=$classifier"
common+=" --config.train.ckpt_every_steps=250 --config.train.sample_every_steps=0"
common+=" --config.train.log_every_steps=100 --config.train.steps_per_jit=4"
common+=" --config.optim.ema.decay=0.999 --config.train.num_steps=${STEPS:-20000}"
quiet="async_checkpointer\|checkpoint_manager\|orbax\|Xla\|cuda_"
for v in sc:0.999 sc_ema0:0.0; do
  name=${v%%:*} mu=${v##*:}
  (
    cmd="python3 -m diffjax.main --config=configs/shortcut/fashion_mnist.py${SMOKE:+:smoke}"
    cmd+=" --workdir=${WORKDIRS:-workdirs}/$name $common --config.method.bootstrap_ema=$mu"
    echo "$cmd" > "$out/$name.log"
    timeout --signal=TERM --kill-after=60 "$T" $cmd --mode=train 2>&1 | grep -v "$quiet" >> "$out/$name.log"
    timeout "${T_EVAL:-75}" $cmd --mode=eval 2>&1 | grep -v "$quiet" | tail -8 >> "$out/$name.log"
    last=$(ls "${WORKDIRS:-workdirs}/$name/eval/"metrics_*.json 2>/dev/null | sort | tail -1)
    [ -n "$last" ] && cp "$last" "$out/${name}_metrics.json"
  ) &
done
wait
for f in "$out"/*_metrics.json; do echo "$(basename "$f"): $(cat "$f")"; done
