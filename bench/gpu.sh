#!/usr/bin/env bash
# The GPU run, prepared: training targets/s (CPU batch, GPU batch in float32 and mixed,
# --devices all), generation words/s (numpy step against a jitted step, 1 and 64 streams)
# and peak device memory, on the jax backend, in under 10 minutes. Figures: bench/gpu.py.
#
#   bash bench/gpu.sh [--require-gpu]      # on the GPU machine (GPU_SH_REQUIRE_GPU=1 too)
#   GPU_SH_STEPS=2 bash bench/gpu.sh --cpu # CI: a small network on the CPU, tests the script
#
# It never falls back to the CPU silently: the first line names the platform and devices;
# without a GPU it says so, and with --require-gpu it stops there (exit 3). JAX with CUDA is
# installed only when GPU_SH_INSTALL=1 asks for it (pip install 'jax[cuda12]').
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=jax PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
cpu=0
for a in "$@"; do [ "$a" = "--cpu" ] && cpu=1; done
if [ "$cpu" = 0 ] && [ "${GPU_SH_INSTALL:-0}" = 1 ] && \
   ! "$PY" -c 'import jax, sys; sys.exit(not any(d.platform == "gpu" for d in jax.devices()))' 2>/dev/null; then
  "$PY" -m pip install -q 'jax[cuda12]' || echo "could not install jax[cuda12]" >&2
fi
if [ "$cpu" = 0 ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/gpu: /'
fi
exec timeout "${GPU_SH_TIMEOUT:-570}" "$PY" bench/gpu.py "$@"
