#!/usr/bin/env bash
# The package works when installed, not only from the checkout: builds the wheel, installs it with
# requirements-lock.txt into a fresh venv in a temp dir, and from a temp cwd outside the checkout builds
# the small world, trains the tiny teacher and students, and serves their event files with TensorBoard.
# Needs python3 >= 3.11 and pip access (the lock's packages: a few minutes). Not part of `make test`.
#     bash benchmarks/install_check.sh                # configs by name: --config=tiny
#     bash benchmarks/install_check.sh --config-file  # the installed tiny.py's path instead
# The temp dir (INSTALL_CHECK_TMPDIR, default: mktemp -d) is removed on success and kept on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
CONFIG_FORM="name"
case "${1:-}" in
  "") ;;
  --config-file) CONFIG_FORM="file" ;;
  *) echo "usage: $0 [--config-file]" >&2; exit 2 ;;
esac

WORK="${INSTALL_CHECK_TMPDIR:-$(mktemp -d -t shr-install-check-XXXXXX)}"
case "$WORK/" in "$ROOT"/*) echo "error: $WORK is inside the checkout" >&2; exit 1 ;; esac
TB_PID=""
finish() {
  local rc=$?
  if [ -n "$TB_PID" ]; then kill "$TB_PID" 2>/dev/null || true; fi
  if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "install check FAILED (rc $rc); files kept in $WORK" >&2; fi
}
trap finish EXIT
step() { echo "== $*"; }

step "wheel"
# Built from a copy of the working tree (tracked and unignored files), so the checkout gets no build/.
mkdir -p "$WORK/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$WORK/src"
"$PYTHON" -m pip wheel --quiet --no-deps -w "$WORK/dist" "$WORK/src"
WHEEL="$(ls "$WORK"/dist/see_hear_read-*.whl)"
echo "$WHEEL"

step "fresh venv: requirements-lock.txt + the wheel"
"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install --quiet --upgrade pip
# One resolve: the wheel's install_requires must be met by the lock's pins, or pip refuses.
"$PY" -m pip install --quiet -r requirements-lock.txt "$WHEEL"
"$PY" -m pip check

mkdir -p "$WORK/cwd"
cd "$WORK/cwd"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
CONFIGS="$("$PY" -c 'import experiments.configs.tiny, os; print(os.path.dirname(experiments.configs.tiny.__file__))')"
echo "configs: $CONFIGS"
if [ "$CONFIGS" != "$SITE/experiments/configs" ]; then
  echo "error: experiments.configs resolves to $CONFIGS, not inside $SITE" >&2
  exit 1
fi
if [ "$CONFIG_FORM" = "file" ]; then CONFIG="$CONFIGS/tiny.py"; else CONFIG="tiny"; fi
DATA="$WORK/data"

step "build_data, train_teacher, train (--config=$CONFIG, cwd $PWD)"
"$PY" -m experiments.build_data --config="$CONFIG" --config.data.data_dir="$DATA"
"$PY" -m experiments.train_teacher --config="$CONFIG" --workdir=runs/x --config.data.data_dir="$DATA"
"$PY" -m experiments.train --config="$CONFIG" --workdir=runs/x --config.data.data_dir="$DATA"
ls runs/x/events.out.tfevents.* runs/x/metrics.jsonl

step "tensorboard --logdir runs"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$WORK/venv/bin/tensorboard" --logdir runs --host 127.0.0.1 --port "$PORT" >"$WORK/tensorboard.log" 2>&1 &
TB_PID=$!
TAGS=""
for _ in $(seq 1 90); do
  TAGS="$(curl -sf "http://127.0.0.1:$PORT/data/plugin/scalars/tags" || true)"
  case "$TAGS" in *'"x"'*loss*) break ;; esac
  kill -0 "$TB_PID" 2>/dev/null || { cat "$WORK/tensorboard.log" >&2; exit 1; }
  sleep 1
done
echo "runs: $(curl -sf "http://127.0.0.1:$PORT/data/runs")"
echo "scalar tags: $TAGS"
case "$TAGS" in *'"x"'*loss*) ;; *) echo "error: TensorBoard shows no loss scalars of run x" >&2; exit 1 ;; esac

echo "install check passed (--config=$CONFIG)"
