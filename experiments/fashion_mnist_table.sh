#!/usr/bin/env bash
# Trains and evaluates Fashion-MNIST configs concurrently on one GPU for the issue-5 table
# (experiments/results/fashion_mnist.md), then records each run (record_result.py).
#
#   experiments/fashion_mnist_table.sh <data dir> <classifier dir> <out dir> SLOT ...
#   SLOT = NAME=CONFIG[:ARG][+NAME=CONFIG[:ARG]...]   (runs of one slot go one after the other)
#   e.g. ... edm=configs/edm/fashion_mnist.py \
#            kg_elbo=configs/kingma_gao/fashion_mnist.py:weighting=elbo+kg_edm=configs/kingma_gao/fashion_mnist.py:weighting=edm
#
# Slots run concurrently; every run: train (WORKDIRS/NAME), then `--mode=eval` with FD-FMNIST
# (classifier dir) for the config's eval.fd_samplers and, where configured, test-set bits/dim. Runs
# share the GPU (each process may take GPU_FRACTION of its memory), so steps/s and wall times are
# those of concurrent jobs. A reflow run (`:stage=reflow,...,init_from=DIR`) first writes
# PAIRS (default 60000) couples from the 1-RF run in DIR (`--mode=pairs`) unless they exist, training
# that 1-RF run first where needed; PAIRS_ARG adds config args to it (e.g. sampler=heun35).
#
# Restartable: a run whose report <out dir>/NAME_fashion_mnist.md exists is skipped, training
# resumes from the last checkpoint in WORKDIRS/NAME, so the same command can be repeated after a
# time limit. Results (reports, sample grids, logs) are collected as <out dir>/NAME.{md,png,log}.
# Extra `--config.*` overrides for every run: EXTRA="...".
set -uo pipefail
data=$1 classifier=$2 out=$3; shift 3
mkdir -p "$out"
export XLA_PYTHON_CLIENT_MEM_FRACTION=${GPU_FRACTION:-0.18}
commit=${DIFFJAX_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
workdirs=${WORKDIRS:-workdirs/table}
quiet="async_checkpointer\|checkpoint_manager\|orbax\|Xla\|cuda_"
run_one() {
  local name=$1 config=$2 workdir=$workdirs/$1
  if [ -e "$out/${name}_fashion_mnist.md" ]; then echo "$name: done before, skipped"; return; fi
  local datakey=data.path  # a reflow run reads the pairs; its real data are the held-out reference
  [[ $config == *stage=reflow* ]] && datakey=data.reference.path
  local cmd="python3 -m diffjax.main --config=${config} --workdir=${workdir} --config.${datakey}=${data}"
  cmd+=" --config.eval.fd_classifier_dir=${classifier} ${EXTRA:-}"
  local log="$out/${name}.log" start commands=() src
  start=$(date +%s)
  # Killed by a time limit: log the seconds spent, so that a report sums the time over all calls.
  trap 'printf "\nKILLED_SECONDS=%d\n" $(( $(date +%s) - start )) >> "$log"; exit 143' TERM
  echo "START $(date -u +%FT%TZ) commit $commit" >> "$log"
  if [[ $config == *stage=reflow* ]]; then
    src=$(sed -n 's/.*init_from=\([^,]*\).*/\1/p' <<< "$config")
    local scmd="python3 -m diffjax.main --config=${config/stage=reflow/stage=1rf}${PAIRS_ARG:+,$PAIRS_ARG}"
    scmd+=" --workdir=${src} --config.data.path=${data} ${EXTRA:-}"
    local pcmd="$scmd --mode=pairs --config.sample.num_samples=${PAIRS:-60000}"
    commands+=("--command=${scmd} --mode=train" "--command=${pcmd}")
    if ! ls "$src"/reflow/pairs_*.npz >/dev/null 2>&1; then
      $scmd --mode=train 2>&1 | grep -v "$quiet" >> "$log"  # a no-op where the 1-RF run is trained
      $pcmd 2>&1 | grep -v "$quiet" >> "$log"
      echo "PAIRS_SECONDS=$(( $(date +%s) - start ))" >> "$log"
    fi
  fi
  $cmd --mode=train 2>&1 | grep -v "$quiet" >> "$log"
  echo "TRAIN_SECONDS=$(( $(date +%s) - start ))" >> "$log"
  $cmd --mode=eval 2>&1 | grep -v "$quiet" | tail -25 >> "$log"
  echo "WALL_SECONDS=$(( $(date +%s) - start ))" >> "$log"
  local pic
  pic=$(ls "${workdir}"/eval/fd_samples_*_default.png 2>/dev/null | tail -1)
  python3 experiments/record_result.py --name="${name}_fashion_mnist" --workdir="$workdir" \
    "${commands[@]}" --command="${cmd} --mode=train" --command="${cmd} --mode=eval" \
    --train_log="$log" --picture="${pic}" --out="$out" --commit="$commit" >> "$log" 2>&1
  for f in "${workdir}"/eval/metrics_*.json "${workdir}"/eval/fd_samples_*.png; do
    [ -e "$f" ] && cp "$f" "$out/${name}_$(basename "$f")"
  done
}
gpus=(${SLOT_GPUS:-})  # e.g. SLOT_GPUS="0 1 2 2": slot i runs on GPU gpus[i] (default: all visible)
run_slot() {
  local spec
  [ -n "${2:-}" ] && export CUDA_VISIBLE_DEVICES=$2
  IFS='+' read -ra specs <<< "$1"
  for spec in "${specs[@]}"; do run_one "${spec%%=*}" "${spec#*=}"; done
}
# A time limit's TERM reaches every process (`timeout` signals its process group). Wait until the
# runs have logged their KILLED_SECONDS: a run still exiting when the caller's command ended could
# lose that line (the VDM run at 47aa642 did), and its report under-counted the time.
trap 'wait; exit 143' TERM
i=0
for slot in "$@"; do
  run_slot "$slot" "${gpus[i]:-}" &
  i=$((i + 1))
done
wait
