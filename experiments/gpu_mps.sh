#!/usr/bin/env bash
# Starts CUDA MPS so that concurrent training processes share the GPU's SMs instead of
# time-slicing it; checks that JAX still initialises and stops MPS again if it does not.
#   source experiments/gpu_mps.sh   (sets MPS_ON=1 or 0)
MPS_ON=0
if command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  # A daemon left by an earlier call on the same machine is reused (`-d` refuses a second one).
  if { nvidia-cuda-mps-control -d || echo get_server_list | nvidia-cuda-mps-control >/dev/null; } &&
     timeout 120 python3 -c "import jax, jax.numpy as j; print(j.ones(3).sum(), jax.devices())"; then
    MPS_ON=1
  else
    echo quit | nvidia-cuda-mps-control 2>/dev/null
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  fi
fi
echo "MPS_ON=$MPS_ON"
