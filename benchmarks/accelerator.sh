#!/usr/bin/env bash
# Paper-config train step in bfloat16 on an NVIDIA GPU: examples/s and model-FLOPs utilization against
# the chip's peak (BENCH_PEAK_TFLOPS, else benchmarks/accelerator.py's table) and a measured bf16 matmul.
# Builds its own venv from the repo's lock file plus jax[cuda12] at the locked jax version; the JSON
# result goes to $OUT if set, else benchmarks/results/. Run from anywhere:
#     bash benchmarks/accelerator.sh [--batch_size=128] [--repeats=20]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${BENCH_VENV:-.venv-gpu}"
PY="$VENV/bin/python"
JAX_VERSION="$(sed -n 's/^jax==//p' requirements-lock.txt)"
if [ -z "$JAX_VERSION" ]; then echo "error: no jax pin in requirements-lock.txt" >&2; exit 1; fi

if [ ! -x "$PY" ] || ! "$PY" -c "import jax, sys; sys.exit(jax.__version__ != '$JAX_VERSION')" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$PY" -m pip install --quiet --upgrade pip
  "$PY" -m pip install --quiet -r requirements-lock.txt "jax[cuda12]==$JAX_VERSION"
  "$PY" -m pip install --quiet --no-deps --no-build-isolation -e .
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
"$PY" -c "import jax; d = jax.devices(); print(d); assert d[0].platform == 'gpu', 'no GPU visible to JAX'"

# The step is compute-bound; let XLA use the whole memory and keep TF (imported by experiments) off it.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
timeout "${BENCH_TIMEOUT_S:-420}" "$PY" -m benchmarks.accelerator --config=paper --dtype=bfloat16 "$@"
