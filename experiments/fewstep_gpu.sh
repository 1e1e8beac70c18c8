#!/usr/bin/env bash
# Few-step generation on Fashion-MNIST in one ~9-minute GPU call (issue 13, "Shown"):
#   experiments/fewstep_gpu.sh <fashion-mnist dir> <FD classifier dir> <out dir>
# writes <out dir>/fewstep_fashion_mnist.md (FD-FMNIST at 1, 2, 4 network calls per method next to
# the EDM teacher at 35 NFE, commands, commit, device), sample grids <name>_<sampler>.png and logs.
#
# Timeline (wall seconds from the start; every training is stopped by SIGTERM at its deadline, the
# loop then saves and exits, and the run is evaluated from its last checkpoint):
#   0   EDM teacher (configs/edm/fashion_mnist.py), alone on the GPU: everything else distils it
#   C   CT, iCT, MeanFlow, shortcut from scratch start (T_SCRATCH): they compile while the teacher
#       trains (first session-7 run: starting all five at 0, the teacher's compile took 100 s and
#       it got 250 steps before its deadline)
#   T   teacher stops (deadline T_TEACHER); its FD at Heun-35, CD, ECT and CTM start from it
#       progressive distillation rounds N = 4, 2, 1 from it, one after the other (deadlines
#       T + k·(S − T)/3), each evaluated while the next trains
#   S   students stop (deadline T_STUDENTS); FD at 1, 2, 4 steps for every student, concurrently
#   E   evaluations are cut at T_END (535 s); then the report (~10 s).
# The shortcut student takes its bootstrap targets from the current parameters (SC_BOOTSTRAP_EMA=0;
# the official 0.999 needs longer runs, fewstep_toy.md); its command in the report shows the value.
# The same small U-Net (configs' fashion_mnist twin, ~6 M parameters) everywhere. The step counts
# are far below the configs' defaults: the FDs show what a few minutes buy, not the papers' numbers.
# SMOKE=1: a CPU try-out (tiny networks, a few steps, 16-sample FDs).
# Two calls, for a teacher worth distilling (session 7: 250 steps in 160 s shared): the first with
# TEACHER_ONLY=1 trains the teacher alone until T_TEACHER (default then 480 s) and evaluates it; the
# next call on the same machine (workdirs/ survives while it stays warm) finds $W/edm/checkpoints,
# skips the teacher's training and starts every student at once (T_SCRATCH = T_TEACHER = 0). On a
# fresh machine the second call trains the teacher as above.
# ONLY="cd ect ctm" (names of CMD below; "pd" for the three PD rounds): train and report only
# those students, e.g. a call per few methods after a TEACHER_ONLY call, each with more of the GPU
# (session 11: 8 students sharing it got 250-4,250 steps in 420 s; CTM 278).
# Compiled programs are shared between this script's runs (and reruns) through the persistent cache.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/diffjax_xla_cache}
set -uo pipefail
data=$1 classifier=$2 out=$3
mkdir -p "$out"
start=$(date +%s)
commit=${DIFFJAX_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
W=${WORKDIRS:-workdirs/fewstep}
quiet="async_checkpointer\|checkpoint_manager\|orbax\|Xla\|cuda_"
if [ "${SMOKE:-0}" = 1 ]; then
  export XLA_PYTHON_CLIENT_MEM_FRACTION=0.2
  T_SCRATCH=${T_SCRATCH:-0} T_TEACHER=${T_TEACHER:-500} T_STUDENTS=${T_STUDENTS:-1500}  # slow CPU
  T_END=${T_END:-3000}
  TEACHER_STEPS=4 STUDENT_STEPS=4 SCRATCH_STEPS=4
  arg=",smoke" extra="--config.train.ckpt_every_steps=2 --config.eval.fd_num_samples=16"
else
  export XLA_PYTHON_CLIENT_MEM_FRACTION=${GPU_FRACTION:-0.1}  # up to 9 processes: 0.9 in all
  T_SCRATCH=${T_SCRATCH:-100} T_TEACHER=${T_TEACHER:-160} T_STUDENTS=${T_STUDENTS:-420}
  T_END=${T_END:-535}
  TEACHER_STEPS=${TEACHER_STEPS:-8000} STUDENT_STEPS=${STUDENT_STEPS:-3000}
  SCRATCH_STEPS=${SCRATCH_STEPS:-6000}
  arg="" extra="--config.train.ckpt_every_steps=250 --config.train.sample_every_steps=0"
  extra+=" --config.train.log_every_steps=100 --config.train.steps_per_jit=4"
fi
teacher_ready=0
if [ -n "$(ls "$W/edm/checkpoints" 2>/dev/null)" ] && [ "${TEACHER_ONLY:-0}" != 1 ]; then
  teacher_ready=1 T_SCRATCH=0 T_TEACHER=0  # trained by an earlier TEACHER_ONLY call
fi
[ "${TEACHER_ONLY:-0}" = 1 ] && [ "${SMOKE:-0}" != 1 ] && T_TEACHER=${T_TEACHER_ONLY:-480}
common="--config.data.path=${data} --config.eval.fd_classifier_dir=${classifier} ${extra}"
# Students: a shorter EMA than the twin's 0.9995 (a 1400-step window) for runs of a few thousand steps.
student="--config.optim.ema.decay=0.999"
declare -A CMD
want() {  # name: is this student in $ONLY (all when ONLY is unset)?
  [ -z "${ONLY:-}" ] && return 0
  local n=$1; [[ $n == pd? ]] && n=pd
  [[ " $ONLY " == *" $n "* ]]
}

train() {  # name deadline(seconds from start) command...: train until done or the deadline
  local name=$1 deadline=$2; shift 2
  local left=$(( deadline - ($(date +%s) - start) ))
  (( left < 20 )) && left=20
  echo "$name: train, at most ${left}s: $*" >> "$out/$name.log"
  timeout --signal=TERM --kill-after=90 "$left" "$@" --mode=train 2>&1 | grep -v "$quiet" >> "$out/$name.log"
  echo "TRAIN_END_SECONDS=$(( $(date +%s) - start ))" >> "$out/$name.log"
}

evaluate() {  # name command...: FD evaluation, cut at T_END (the report is written regardless)
  local name=$1; shift
  local left=$(( T_END - ($(date +%s) - start) ))
  (( left < 10 )) && left=10
  timeout --kill-after=5 "$left" "$@" --mode=eval 2>&1 | grep -v "$quiet" | tail -20 >> "$out/$name.log"
  echo "EVAL_END_SECONDS=$(( $(date +%s) - start ))" >> "$out/$name.log"
}

run() {  # name deadline config-and-overrides...: train, then evaluate (students not in ONLY: skip)
  local name=$1 deadline=$2; shift 2
  want "$name" || return 0
  local cmd="python3 -m diffjax.main $* --workdir=$W/$name $common"
  train "$name" "$deadline" $cmd
  evaluate "$name" $cmd
}

teacher="--config=configs/edm/fashion_mnist.py:size=default${arg} --config.train.num_steps=${TEACHER_STEPS}"
CMD[edm]="python3 -m diffjax.main $teacher --workdir=$W/edm $common"
ct="--config=configs/consistency_models/fashion_mnist.py:variant=ct${arg} $student"
ct+=" --config.train.num_steps=${SCRATCH_STEPS} --config.method.total_steps=${SCRATCH_STEPS}"
ict="--config=configs/ict/fashion_mnist.py:size=default${arg} $student"
ict+=" --config.train.num_steps=${SCRATCH_STEPS} --config.method.total_steps=${SCRATCH_STEPS}"
cd_="--config=configs/consistency_models/fashion_mnist.py:variant=cd${arg} $student"
cd_+=" --config.method.teacher=checkpoint --config.init_from=$W/edm --config.optim.warmup_steps=100"
cd_+=" --config.train.num_steps=${STUDENT_STEPS} --config.method.total_steps=${STUDENT_STEPS}"
ect="--config=configs/ect/fashion_mnist.py:size=default${arg} $student"
ect+=" --config.init_from=$W/edm --config.optim.warmup_steps=100"
ect+=" --config.train.num_steps=${STUDENT_STEPS} --config.method.total_steps=${STUDENT_STEPS}"
ect+=" --config.method.double_every_steps=$(( STUDENT_STEPS / 8 > 0 ? STUDENT_STEPS / 8 : 1 ))"
ctm="--config=configs/ctm/fashion_mnist.py:size=default${arg} $student"
ctm+=" --config.method.teacher=checkpoint --config.init_from=$W/edm --config.optim.warmup_steps=100"
ctm+=" --config.train.num_steps=${STUDENT_STEPS}"
mf="--config=configs/meanflow/fashion_mnist.py:size=default${arg} $student"
mf+=" --config.train.num_steps=${SCRATCH_STEPS}"
sc="--config=configs/shortcut/fashion_mnist.py:size=default${arg} $student"
sc+=" --config.train.num_steps=${SCRATCH_STEPS}"
# Bootstrap targets from the current parameters, not the official EMA (μ = 0.999): each of the 7
# step-size levels waits ~1,000 steps for the EMA of the level below, more than these runs have
# (session 11: 2,600 steps, noise samples; toy at 4,000 steps: 1-call W2 0.43 vs 1.00, fewstep_toy.md).
sc+=" --config.method.bootstrap_ema=${SC_BOOTSTRAP_EMA:-0.0}"
pd="--config=configs/progressive_distillation/fashion_mnist.py:teacher=edm${arg} $student"
pd+=" --config.method.teacher=checkpoint --config.optim.warmup_steps=100"
pd+=" --config.train.num_steps=${STUDENT_STEPS}"
src=$W/edm
for n in 4 2 1; do  # each round distils the previous one (the first: the EDM teacher)
  eval "pd$n=\"\${pd/teacher=edm/steps=$n,teacher=edm} --config.init_from=$src\""
  src=$W/pd$n
done
for name in ct ict mf sc cd ect ctm pd4 pd2 pd1; do
  v=$name; [ $name = cd ] && v=cd_
  CMD[$name]="python3 -m diffjax.main ${!v} --workdir=$W/$name $common"
done

if [ "${TEACHER_ONLY:-0}" = 1 ]; then
  train edm "$T_TEACHER" ${CMD[edm]}
  T_END=$(( T_TEACHER + 60 )) evaluate edm ${CMD[edm]}
  cp "$out/edm.log" "$out/edm_teacher_only.log"
  echo "teacher only: done at $(( $(date +%s) - start ))s"
  exit 0
fi
(
  sleep "$T_SCRATCH"
  run ct "$T_STUDENTS" $ct &
  run ict "$T_STUDENTS" $ict &
  run mf "$T_STUDENTS" $mf &
  run sc "$T_STUDENTS" $sc &
  wait
) &
if [ "$teacher_ready" = 1 ]; then
  echo "edm: teacher trained by the previous (TEACHER_ONLY) call, not trained here" >> "$out/edm.log"
else
  train edm "$T_TEACHER" ${CMD[edm]}
  evaluate edm ${CMD[edm]} &  # (a ready teacher was evaluated by its own call)
fi
run cd "$T_STUDENTS" $cd_ &
run ect "$T_STUDENTS" $ect &
run ctm "$T_STUDENTS" $ctm &
want pd && (
  k=1
  for n in 4 2 1; do
    train pd$n $(( T_TEACHER + k * (T_STUDENTS - T_TEACHER) / 3 )) ${CMD[pd$n]}
    evaluate pd$n ${CMD[pd$n]} &
    k=$(( k + 1 ))
  done
  wait
) &
wait
echo "all runs done at $(( $(date +%s) - start ))s"

args=()
for name in edm cd ct ict ect ctm mf sc pd4 pd2 pd1; do
  [ $name = edm ] || want $name || continue
  args+=("--run=$name=$W/$name" "--command=$name=${CMD[$name]}")
done
python3 experiments/fewstep_report.py --out="$out" --commit="$commit" \
  --wall_seconds=$(( $(date +%s) - start )) "${args[@]}"
