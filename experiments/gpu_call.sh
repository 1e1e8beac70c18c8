#!/usr/bin/env bash
# One device call: runs experiments/<name>_gpu.sh for each NAME, one after the other, and tars the
# small outputs (reports, logs, PNGs; not checkpoints) into $OUT/res_<first name>.tgz.
#   bash experiments/gpu_call.sh NAME...      (from the repo root on the GPU machine)
# Expects, carried beside the working tree (never committed):
#   .whl/   wheels the GPU image lacks (ml_collections, tensorboardX, protobuf), installed here into
#           /tmp/site with --no-index;
#   .data/  fashion-mnist/ (IDX files), classifier/ (the FD-FMNIST classifier,
#           experiments/fd_fmnist/train_classifier.py), shakespeare/ (*_gut.txt), COMMIT (the
#           commit being run: the GPU copy has no .git).
# Run the scripts one per call or one after another, never side by side: sharing the GPU slowed
# each several-fold (experiments/results/*: the session 7 runs). RUN_CAP (s) bounds each script
# so the tar always happens inside the device tool's 600 s limit.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export DIFFJAX_COMMIT=$(cat .data/COMMIT) SHAKESPEARE_DIR=$PWD/.data/shakespeare
nvidia-smi --query-gpu=name,memory.total --format=csv
source experiments/gpu_mps.sh
mkdir -p /tmp/res
for s in "$@"; do
  t0=$(date +%s)
  timeout -k 5 "${RUN_CAP:-550}" bash "experiments/${s}_gpu.sh" .data/fashion-mnist .data/classifier \
    "/tmp/res/$s" > "/tmp/res/${s}_driver.log" 2>&1
  echo "$s rc=$? wall=$(( $(date +%s) - t0 ))s"
  tail -4 "/tmp/res/${s}_driver.log"
done
# The device tool returns files of at most 16 MiB: leave out checkpoints, TensorBoard events and
# sample arrays (session 12's discrete run wrote 1.4 GB of them, and an unfiltered tar of the small
# ones, 17.8 MB, did not come back), and fall back to reports, logs and pictures alone if still big.
(
  cd /tmp
  dirs=()  # only this call's scripts: /tmp can hold an earlier lease's results
  for s in "$@"; do dirs+=("res/$s" "res/${s}_driver.log"); done
  find "${dirs[@]}" -type f -size -3M ! -name '*.gz' ! -name '*.npz' ! -path '*/checkpoints/*' \
    ! -path '*/tb/*' 2>/dev/null | tar czf "$OUT/res_$1.tgz" -T -
  if [ "$(stat -c %s "$OUT/res_$1.tgz")" -gt $((15 * 1024 * 1024)) ]; then
    find "${dirs[@]}" -type f -size -1M \( -name '*.md' -o -name '*.json' -o -name '*.log' \
      -o -name '*.png' \) ! -path '*/checkpoints/*' 2>/dev/null | tar czf "$OUT/res_$1.tgz" -T -
  fi
)
ls -la "$OUT"
