#!/usr/bin/env bash
# benchmarks/throughput.py's rows for one GPU machine in one call (sized for an H200: about 8 min),
# as JSONL in $OUT/throughput.jsonl (each row's stdout/stderr in $OUT/throughput.log), then a table.
#
#   COMMIT=<git sha> bash benchmarks/run_throughput_gpu.sh      # from the repository root
#   EXTRA=--tiny BUDGET=3000 PYTHON=.venv/bin/python OUT=/tmp/tp bash benchmarks/run_throughput_gpu.sh
#                                                        # smoke run of the plumbing on a CPU
#
# Rows, most wanted first; each is one process under `timeout`, and a row that would not fit in
# what is left of BUDGET seconds is skipped, so the whole run ends within about BUDGET + 30 s:
#   c10_bf16          EDM CIFAR-10 DDPM++ (configs/edm/cifar10.py, batch 512), bfloat16:
#                     train, heun18 and dpmpp20 at batch 1024
#   edm               NVlabs/edm's own code (.edm): bf16 autocast, fp32 (TF32 off, as EDM trains),
#                     edm_sampler (Heun 18, batch 1024, bf16), bf16 + torch.compile
#   c10_fp32          the same config, float32 activations: train, heun18
#   c10_bf16_pallas   bfloat16 + model.fused_norm=pallas (skipped with one line if the model has
#                     no fused_norm): train, heun18
#   fmnist_bf16_k4    configs/edm/fashion_mnist.py's small U-Net, bfloat16, steps_per_jit 4: train
#   dit_b2            DiT-B/2 on 32x32x4 latents, EDM preconditioning, batch 256: train, heun18
#   fmnist_bf16_k1    the same U-Net, steps_per_jit 1 (k = 4's baseline): train
# Not in the default ROWS, XLA:GPU flag variants of two rows (the same process, XLA_FLAGS set; a
# flag this jaxlib does not know aborts the row at start-up, costing seconds):
#   fmnist_cmdbuf, c10_cmdbuf   every command type XLA can record into CUDA graphs, from one
#                     kernel up (the small U-Net is launch-bound: ~1800 kernels per step, 73 %
#                     under 5 µs; a graph replays them without one host launch each)
#   c10_notriton      convolution-net GEMMs and fusions without Triton (cuBLAS only)
#   c10_rbg           JAX_DEFAULT_PRNG_IMPL=rbg: dropout 0.13's bits from the rbg generator instead
#                     of threefry (DDPM++ draws a mask for every residual block's activations;
#                     the small U-Net has no dropout)
#
# Carry (the device `run` tool's carry=[".whl", ".edm"]):
#   .whl/ml_collections-1.1.0-py3-none-any.whl  the image has no ml-collections (configs, Experiment)
#   .whl/fallback/*.whl  diffrax 0.7.2, equinox 0.13.8, lineax 0.1.1, optimistix 0.1.0,
#                        wadler_lindig 0.1.8, jaxtyping 0.3.11: installed only if the image's own
#                        diffrax does not import (diffjax.solvers imports it; the image lists it)
#   .edm/                NVlabs/edm (git archive of the commit in .edm/EDM_COMMIT)
# Used from the image: jax/jaxlib (0.11.2, CUDA), flax, optax, orbax-checkpoint, chex, numpy,
# scipy, absl-py, PyYAML, torch (EDM rows), click/tqdm/pillow (EDM's generate.py imports them).
# Not needed: tensorflow_datasets and the data sets (the rows train on synthetic batches).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
mkdir -p "$OUT"
JSONL=$OUT/throughput.jsonl
LOG=$OUT/throughput.log
BUDGET=${BUDGET:-500}
PY=${PYTHON:-python3}
COMMIT=${COMMIT:-unknown}
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
SITE=/tmp/throughput_site
pip_install() {
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$@"
}
pip_install .whl/*.whl || exit 1
export PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! $PY -c "import diffrax" 2>/dev/null; then
  echo "[run] the image's diffrax does not import: installing .whl/fallback" >&2
  pip_install .whl/fallback/*.whl || exit 1
fi
$PY -c "import jax, flax, torch; print('[run]', jax.__version__, jax.devices(), 'flax', flax.__version__, 'torch', torch.__version__)" >&2
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader >&2 2>/dev/null
START=$SECONDS

row() {  # row NEED_S LIMIT_S ARGS...: one throughput.py process, unless fewer than NEED_S s are left
  local need=$1 limit=$2 left rc t0=$SECONDS
  shift 2
  left=$((BUDGET - (SECONDS - START)))
  if ((left < need)); then
    echo "[run] skipped, ${left}s of the budget left: $*" >&2
    return
  fi
  ((limit > left)) && limit=$left
  echo "[run] $* (limit ${limit}s)" >&2
  timeout -k 10 "$limit" $PY benchmarks/throughput.py --out "$JSONL" --commit "$COMMIT" "$@" ${EXTRA:-} \
    >>"$LOG" 2> >(tee -a "$LOG" >&2)
  rc=$?
  ((rc)) && echo "[run] exit $rc after $((SECONDS - t0))s: $*" >&2
}

C10=(--config configs/edm/cifar10.py --expect_params 55733891 --steps 10 --repeats 3 --warmup 2
     --sample_repeats 1)
FM=(--config configs/edm/fashion_mnist.py --set model.dtype=bfloat16 --steps 40 --repeats 3
    --warmup 4 --samplers none)
# ROWS="name ..." runs only those rows (default: all but edm_compile, whose torch.compile of the
# DDPM++ step alone takes minutes: a call of its own).
ROWS=${ROWS:-c10_bf16 edm c10_fp32 c10_bf16_pallas fmnist_bf16_k4 dit_b2 fmnist_bf16_k1}
want() { [[ " $ROWS " == *" $1 "* ]]; }
want c10_bf16 && row 70 180 "${C10[@]}" --name c10_bf16 --set model.dtype=bfloat16
want edm && row 90 190 --name edm --only_edm --compare-edm .edm --edm_modes bf16,fp32,sample \
  --edm_timeout 180 --steps 4 --repeats 3 --warmup 2 --sample_repeats 2
want c10_fp32 && row 70 130 "${C10[@]}" --name c10_fp32 --set model.dtype=float32 --steps 5 \
  --samplers heun18
want c10_bf16_pallas && row 60 120 "${C10[@]}" --name c10_bf16_pallas --set model.dtype=bfloat16 \
  --set model.fused_norm=pallas --samplers heun18
want fmnist_bf16_k4 && row 60 200 "${FM[@]}" --name fmnist_bf16_k4 --steps_per_jit 4
want fmnist_bf16_k1 && row 60 170 "${FM[@]}" --name fmnist_bf16_k1
want dit_b2 && row 50 150 --model dit --variant B/2 --latent 32x32x4 --name dit_b2 \
  --set model.dtype=bfloat16 --steps 10 --repeats 3 --warmup 2 --samplers heun18 --sample_repeats 1
CMDBUF="--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL"
CMDBUF+=" --xla_gpu_graph_min_graph_size=1"
want fmnist_cmdbuf && XLA_FLAGS="$CMDBUF" row 60 170 "${FM[@]}" --name fmnist_cmdbuf
want c10_cmdbuf && XLA_FLAGS="$CMDBUF" row 70 180 "${C10[@]}" --name c10_cmdbuf \
  --set model.dtype=bfloat16 --samplers heun18
want c10_notriton && XLA_FLAGS="--xla_gpu_enable_triton_gemm=false" row 70 180 "${C10[@]}" \
  --name c10_notriton --set model.dtype=bfloat16 --samplers heun18
want c10_rbg && JAX_DEFAULT_PRNG_IMPL=rbg row 70 180 "${C10[@]}" --name c10_rbg \
  --set model.dtype=bfloat16 --samplers none
want edm_compile && row 120 420 --name edm --only_edm --compare-edm .edm --edm_modes bf16_compile \
  --edm_timeout 400 --steps 4 --repeats 3 --warmup 2

echo "[run] rows took $((SECONDS - START))s" >&2
$PY benchmarks/throughput.py --summary "$JSONL"
