#!/usr/bin/env bash
# Paper-config train step in bfloat16 on an NVIDIA GPU: examples/s and model-FLOPs utilization against
# the chip's peak (BENCH_PEAK_TFLOPS, else benchmarks/accelerator.py's table) and a measured bf16 matmul.
# The JSON result goes to $OUT if set, else benchmarks/results/. Run from anywhere:
#     bash benchmarks/accelerator.sh [--batch_size=128] [--repeats=20]
#
# Python: the machine's python3 when it already has a GPU jax with flax and optax (an offline image),
# else a venv built from the repo's lock file plus jax[cuda12] at the locked jax version (needs pip access).
# The step needs only jax, flax, optax and ml_collections; wheels in .whl/ are installed first, offline,
# so a machine without ml_collections and without internet can be given it:
#     pip download --no-deps -d .whl ml_collections==<the version in requirements-lock.txt>
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -d .whl ] && compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target /tmp/bench-site .whl/*.whl
  export PYTHONPATH="/tmp/bench-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

HAS_GPU_JAX="import jax, flax, optax, sys; sys.exit(jax.default_backend() != 'gpu')"
if [ -z "${BENCH_VENV:-}" ] && python3 -c "$HAS_GPU_JAX" 2>/dev/null; then
  PY=python3
else
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
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
"$PY" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
"$PY" -c "import jax; assert jax.default_backend() == 'gpu', 'no GPU visible to JAX'"
"$PY" -c "import ml_collections" 2>/dev/null || {
  MLC="ml_collections==$(sed -n 's/^ml_collections==//p' requirements-lock.txt)"
  echo "error: ml_collections is missing; put its wheel in .whl/ (pip download --no-deps -d .whl $MLC)" >&2
  exit 1
}

# The step is compute-bound; let XLA use most of the memory and keep TF (if installed) off the GPU.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
timeout "${BENCH_TIMEOUT_S:-420}" "$PY" -m benchmarks.accelerator --config=paper --dtype=bfloat16 "$@"
