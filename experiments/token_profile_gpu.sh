#!/usr/bin/env bash
# Where the token Transformer's training step spends its GPU time (issue 15: 15-48 steps/s on an
# H200 for a 3 M-parameter model). Runs benchmarks/train_throughput.py with a trace of the
# device-batch steps for MDLM and the AR baseline, plus VARIANTS ("--set k=v ..." per line).
#   experiments/token_profile_gpu.sh <fashion-mnist dir> <fd classifier dir> <out dir>
# Writes <out>/<name>/summary.json (per-step kernel table) and <out>/throughput.md.
set -uo pipefail
out=$3
mkdir -p "$out"
text=${SHAKESPEARE_DIR:-.data/shakespeare}
run() {  # name config extra-args...
  local name=$1 config=$2
  shift 2
  python3 benchmarks/train_throughput.py --config="configs/$config/shakespeare.py" \
    --data_path="$text" --steps="${BENCH_STEPS:-100}" --trace_dir="/tmp/trace_$name" \
    --out="$out/throughput.md" "$@" 2>&1 | grep -v "^WARNING\|^I0000\|^W0000" | tee "$out/$name.log"
  mkdir -p "$out/$name"
  cp "/tmp/trace_$name/summary.json" "$out/$name/" 2>/dev/null
}
run mdlm mdlm
run ar autoregressive
i=0
while read -r line; do
  [ -z "$line" ] && continue
  i=$((i + 1))
  # shellcheck disable=SC2086
  run "mdlm_v$i" mdlm $line
done <<< "${VARIANTS:-}"
