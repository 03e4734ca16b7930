#!/usr/bin/env bash
# Prepare what launch/device_check.sh needs on a device machine, here (pip reaches PyPI):
#
#   launch/build_device_wheels.sh DIR      # DIR/wheels and DIR/reference (e.g. build/device)
#
# DIR/wheels: the wheels the GPU image lacks, exactly as pinned in launch/device_wheels.txt
# (CPython 3.12 manylinux x86-64 or pure Python), plus setuptools for building this package
# there; first an offline check that the pins cover pyproject.toml's runtime dependencies.
# DIR/reference: the oracles the GPU parity tests read (stylegan2_rosinality and the ADA
# augment records of shared/reference, ~14 MB), when shared/ is found ($JAXSPATIAL_SHARED, else
# ../shared beside the checkout). To change the pins: python launch/device_wheels.py lock.
# Then, with a device lent: run(carry=["DIR"], command="bash launch/device_check.sh
# DIR/wheels DIR/reference") -- docs/benchmarks.md has the exact call.
set -euo pipefail

usage() { sed -n '2,14p' "$0"; exit 2; }
[ $# -eq 1 ] || usage

DIR="$1"
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"

"$PY" "$REPO_ROOT/launch/device_wheels.py" check
"$PY" "$REPO_ROOT/launch/device_wheels.py" download "$DIR/wheels"

SHARED="${JAXSPATIAL_SHARED:-$REPO_ROOT/../shared}"
if [ -d "$SHARED/reference/stylegan2_rosinality" ]; then
  mkdir -p "$DIR/reference/stylegan2_ada"
  cp -r "$SHARED/reference/stylegan2_rosinality" "$DIR/reference/"
  cp -r "$SHARED/reference/stylegan2_ada/augment" "$DIR/reference/stylegan2_ada/"
  echo "$DIR/reference: $(du -sh "$DIR/reference" | cut -f1)"
else
  echo "warning: no shared/reference at $SHARED: the GPU parity phase will be skipped" >&2
fi
du -sh "$DIR"
