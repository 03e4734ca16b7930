#!/usr/bin/env bash
# The GPU check of issue 37 on a bare device machine (Python 3.12, jax 0.11 with CUDA, flax,
# optax, orbax-checkpoint, chex preinstalled; no package registry), in under 8 minutes:
#
#   launch/device_check.sh WHEELS [REFERENCE [OUT]]
#
#   1. install  (<= 90 s)  this checkout with pip --no-index --find-links WHEELS: the wheels the
#                          image lacks (launch/device_wheels.txt, built here by
#                          launch/build_device_wheels.sh) and setuptools for the build
#   2. parity   (<= 150 s) the PyTorch parity tests on the GPU, float32 matmuls at full precision:
#                          stylegan2 (rosinality) and the ADA augment pipe and p schedule;
#                          REFERENCE is the oracles' folder (shared/reference), skipped without
#   3. bench    (<= 150 s) python -m jaxspatial.bench device, paper256, bfloat16, every family
#   4. bench    (<= 80 s)  the same in float32, StyleGAN2 alone
#
# Each phase runs under `timeout`; a phase that fails or runs out is reported and the next one
# still runs. Logs and tables go to OUT (default $OUT, else /tmp/device-check-out); the exit
# status is that of the first phase that failed.
set -uo pipefail

usage() { sed -n '2,19p' "$0"; exit 2; }
[ $# -ge 1 ] || usage

WHEELS="$(cd "$1" 2>/dev/null && pwd)" || { echo "error: no wheel folder $1" >&2; exit 2; }
REFERENCE="${2:-}"
DEST="${3:-${OUT:-/tmp/device-check-out}}"
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
mkdir -p "$DEST"
cd "$REPO_ROOT" || exit 2
export PYTHONUNBUFFERED=1
STATUS=0
SUMMARY="$DEST/summary.txt"
: >"$SUMMARY"

phase() {   # phase NAME SECONDS COMMAND...: run it with a time limit, log to DEST/NAME.log
  local name="$1" limit="$2" start rc
  shift 2
  start=$(date +%s)
  echo "== $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$DEST/$name.log"
  rc=${PIPESTATUS[0]}
  local took=$(( $(date +%s) - start ))
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "$name: TIMED OUT after ${took}s (limit ${limit}s)" | tee -a "$SUMMARY"
  else
    echo "$name: exit $rc after ${took}s" | tee -a "$SUMMARY"
  fi
  if [ "$rc" -ne 0 ] && [ "$STATUS" -eq 0 ]; then STATUS=$rc; fi
  return "$rc"
}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" --version
  "$PY" -m pip list 2>/dev/null | grep -iE '^(jax|jaxlib|jax-cuda|flax|optax|orbax|chex|numpy|protobuf|etils|torch) ' || true
  echo "wheels: $(find "$WHEELS" -name '*.whl' | wc -l) in $WHEELS"
} | tee "$DEST/machine.txt"

# 1. Install: no index, so whatever the wheel folder and the image lack fails here, by name.
if ! phase install 90 "$PY" -m pip install -q --no-index --find-links "$WHEELS" \
    --no-cache-dir --no-compile "$REPO_ROOT"; then
  echo "install failed: nothing else can run" | tee -a "$SUMMARY"
  exit "$STATUS"
fi

# 2. Parity on the GPU. tests/conftest.py defaults JAX_PLATFORMS to cpu: name cuda so that a
# missing GPU fails instead of passing on the CPU. 'highest': float32 matmuls without TF32, the
# precision the oracles' 1e-4 tolerances are set for. No preallocation: the tests start the
# convert command as a second jax process on the same GPU.
if [ -n "$REFERENCE" ] && [ -d "$REFERENCE" ]; then
  JAXSPATIAL_SHARED="$(cd "$REFERENCE/.." && pwd)" JAX_PLATFORMS=cuda \
  JAX_DEFAULT_MATMUL_PRECISION=highest XLA_PYTHON_CLIENT_PREALLOCATE=false \
  phase parity 150 "$PY" -m pytest -q -x -p no:cacheprovider -o addopts="" \
    tests/test_stylegan2_parity.py \
    "tests/test_augment.py::test_augment_pipe_matches_official" \
    "tests/test_augment.py::test_ada_p_update_matches_official_table" \
    --junitxml="$DEST/parity.xml"
else
  echo "parity: skipped (no reference folder given)" | tee -a "$SUMMARY"
fi

# 3-4. bench device: paper256 on the GPU (its preset 'auto'), median of 5 plain steps.
JAX_PLATFORMS=cuda phase bench_bf16 150 "$PY" -m jaxspatial.bench device --steps 5 \
  --dtype bfloat16
JAX_PLATFORMS=cuda phase bench_f32 80 "$PY" -m jaxspatial.bench device --steps 5 \
  --dtype float32 --families stylegan2

echo "== summary"
cat "$SUMMARY"
exit "$STATUS"
