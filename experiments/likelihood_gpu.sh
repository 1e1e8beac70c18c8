#!/usr/bin/env bash
# Issue 16 (second half) on one GPU: PF-ODE bits/dim of briefly trained EDM, v-prediction and flow
# Fashion-MNIST twins; post-hoc EMA (EDM2) FD-FMNIST vs σ_rel from one EDM run; memorization of
# that run (n = 60k) and, if time is left, of a run on the first 1k training images.
#
#   experiments/likelihood_gpu.sh <fashion-mnist dir> <fd classifier dir> <out dir>
#   SMOKE=1 experiments/likelihood_gpu.sh /usr/share/datasets/fashion-mnist/ CLASSIFIER /tmp/out  # CPU
#
# Writes <out>/likelihood.md, posthoc_ema.md, memorization.md and PNGs. Budget: BUDGET_SECONDS
# (default 440, for an 8-minute limit) on a GPU shared with other jobs. Two lanes run at once, each
# process with XLA_PYTHON_CLIENT_MEM_FRACTION=0.1 (0.2 in all), so that one lane's start-up and
# compilation (CPU) overlap the other's GPU work: lane A is the EDM run (train with post-hoc EMA
# tracks, reconstruction + FD, bits/dim, memorization at 60k), lane B the v-prediction and flow
# runs' bits/dim, then the 1k-subset memorization run. Every stage runs under `timeout` with what is
# left of the budget, in priority order; a stage that does not fit is named in the reports.
# Compiled programs are shared between this script's runs (and reruns) through the persistent cache.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/diffjax_xla_cache}
set -uo pipefail
data=$1 classifier=$2 out=$3
mkdir -p "$out"
export XLA_PYTHON_CLIENT_MEM_FRACTION=${GPU_FRACTION:-0.1}  # per process; two at a time
commit=${DIFFJAX_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
start=$(date +%s)
budget=${BUDGET_SECONDS:-440}
W=${WORKDIRS:-workdirs/likelihood}
if [ "${SMOKE:-0}" = 1 ]; then
  smoke="--smoke"
  : "${EDM_STEPS:=4}" "${SNAP:=2}" "${OTHER_STEPS:=2}" "${BPD_N:=8}" "${ODE_STEPS:=4}"
  : "${FD_N:=16}" "${MEM_N:=16}" "${SUBSET_STEPS:=2}"
else
  smoke=""
fi
EDM_STEPS=${EDM_STEPS:-1200}     # one EDM run: post-hoc EMA, its bits/dim, memorization at n = 60k
SNAP=${SNAP:-100}                # snapshot interval (2 tracks each)
# Measured alone on one H200 (GPU_FRACTION=0.4, 2026-12-03, OTHER_STEPS=500): lane A 270 s (EDM
# training 124 s with compilation), lane B 300 s; the 1k-subset run is cut first when slower.
OTHER_STEPS=${OTHER_STEPS:-1200} # v-prediction and flow runs, for their bits/dim only (= EDM's)
# The v-prediction and flow twins' constant EMA 0.9995 is still 78% the initial network after 500
# steps (the first GPU run's ~8.5 bits/dim were those of an untrained model): EDM's ramped
# half-life for all three, so the rows differ only in the parametrisation and loss.
OTHER_EMA="--ema_halflife_images=${OTHER_EMA_HALFLIFE:-50000}"
BPD_N=${BPD_N:-250}              # test images per PF-ODE bits/dim
ODE_STEPS=${ODE_STEPS:-16}       # RK4 steps (4 jvp evaluations each); EDM also at half of them
FD_N=${FD_N:-1000}               # samples per FD-FMNIST value
SIGMA_RELS=${SIGMA_RELS:-0.03,0.05,0.08,0.12,0.17,0.25}
MEM_N=${MEM_N:-1000}             # samples for the memorization metrics
SUBSET_STEPS=${SUBSET_STEPS:-800}
rm -f "$out/skipped.txt"
run() {  # run NAME ARGS...: one stage under the time left; records a skip when it does not finish
  local name=$1 left
  shift
  left=$(( budget - ($(date +%s) - start) ))
  if [ "$left" -lt 30 ]; then echo "$name" >> "$out/skipped.txt"; echo "SKIP $name"; return 1; fi
  echo "=== $name ($left s left)"
  # TERM 10 s before the end (training stops at the next step and saves: a preemption), KILL at it.
  timeout -k 10 "$(( left - 10 ))" python3 experiments/likelihood/run.py --name="$name" --out="$out" \
    --data="$data" $smoke "$@" 2>&1 | grep -v "async_checkpointer\|checkpoint_manager\|orbax\|Xla\|cuda_" \
    >> "$out/log_$name.txt"
  if [ ! -e "$out/stages/$name.json" ]; then echo "$name" >> "$out/skipped.txt"; echo "CUT $name"; return 1; fi
}
edm="--config=configs/edm/fashion_mnist.py:posthoc_ema --workdir=$W/edm"
lane_a() {
  # EDM with post-hoc EMA tracks; the reconstruction + FD; its PF-ODE bits/dim (at 1/2 and all of
  # ODE_STEPS: the difference shows the discretisation error); memorization against all 60k.
  run train_edm --stage=train $edm --steps="$EDM_STEPS" --snapshot_every="$SNAP" || return
  run bpd_edm --stage=pfode_bpd $edm --num_examples="$BPD_N" \
    --ode_steps="$(( ODE_STEPS / 2 )),$ODE_STEPS"
  run posthoc_edm --stage=reconstruct $edm --classifier="$classifier" --sigma_rels="$SIGMA_RELS" \
    --fd_num_samples="$FD_N"
  run mem_60k --stage=memorization $edm --num_samples="$MEM_N"
}
lane_b() {
  # v-prediction and flow matching, briefly trained, bits/dim; then a run on 1k training images.
  local key k cfg
  for key in vpred:v_prediction flow:flow_matching; do
    k=${key%%:*} cfg="--config=configs/${key#*:}/fashion_mnist.py --workdir=$W/${key%%:*} $OTHER_EMA"
    run "train_$k" --stage=train $cfg --steps="$OTHER_STEPS" &&
      run "bpd_$k" --stage=pfode_bpd $cfg --num_examples="$BPD_N" --ode_steps="$ODE_STEPS"
  done
  local sub="--config=configs/edm/fashion_mnist.py --workdir=$W/edm_1k --subset=1000"
  run train_mem_1k --stage=train $sub --steps="$SUBSET_STEPS" &&
    run mem_1k --stage=memorization $sub --num_samples="$MEM_N" --num_train=1000
}
lane_a &
lane_b &
wait
wall=$(( $(date +%s) - start ))
skip_args=()
[ -e "$out/skipped.txt" ] && while read -r s; do skip_args+=("--skipped=$s"); done < "$out/skipped.txt"
python3 experiments/likelihood/report.py --out="$out" --commit="$commit" --wall_seconds="$wall" \
  --command="experiments/likelihood_gpu.sh $*" ${smoke:+--smoke} "${skip_args[@]}"
echo "WALL_SECONDS=$wall skipped: ${skip_args[*]:-none}"
