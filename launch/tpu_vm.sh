#!/usr/bin/env bash
# Cloud TPU VM launcher for jaxspatial: create a TPU VM (or pod slice), install the
# project on every worker, run the same training command on all of them, tear down.
#
#   launch/tpu_vm.sh create                 # gcloud compute tpus tpu-vm create
#   launch/tpu_vm.sh setup                  # copy this checkout to every worker, pip install
#   launch/tpu_vm.sh train configs/ssn.py:paper256 gs://BUCKET/runs/ssn-ffhq [--config.K=V ...]
#   launch/tpu_vm.sh ssh 'tail -n 5 ~/train.log'
#   launch/tpu_vm.sh delete
#
# Settings come from the environment: TPU_NAME (jaxspatial), ZONE (us-central2-b),
# ACCELERATOR (v4-8), RUNTIME (tpu-ubuntu2204-base), PROJECT (gcloud's default).
set -euo pipefail

TPU_NAME="${TPU_NAME:-jaxspatial}"
ZONE="${ZONE:-us-central2-b}"
ACCELERATOR="${ACCELERATOR:-v4-8}"
RUNTIME="${RUNTIME:-tpu-ubuntu2204-base}"
PROJECT_FLAG=()
if [ -n "${PROJECT:-}" ]; then PROJECT_FLAG=(--project "$PROJECT"); fi
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"

tpu() { gcloud compute tpus tpu-vm "$@" --zone "$ZONE" "${PROJECT_FLAG[@]}"; }
on_all_workers() { tpu ssh "$TPU_NAME" --worker=all --command "$1"; }

usage() { sed -n '2,13p' "$0"; exit 2; }

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift

case "$cmd" in
  create)
    tpu create "$TPU_NAME" --accelerator-type "$ACCELERATOR" --version "$RUNTIME"
    ;;
  setup)
    tar -C "$REPO_ROOT" --exclude .git --exclude runs -czf /tmp/jaxspatial.tgz .
    tpu scp /tmp/jaxspatial.tgz "$TPU_NAME":~/jaxspatial.tgz --worker=all
    on_all_workers 'mkdir -p ~/jaxspatial && tar -xzf ~/jaxspatial.tgz -C ~/jaxspatial &&
      python3 -m venv ~/venv && . ~/venv/bin/activate && pip install -q -U pip &&
      pip install -q "jax[tpu]" && pip install -q -e ~/jaxspatial'
    ;;
  train)
    [ $# -ge 2 ] || usage
    config="$1"; workdir="$2"; shift 2
    extra=""
    for arg in "$@"; do extra+=" $(printf '%q' "$arg")"; done
    # Every worker runs the same program; --distributed lets jax find the slice's hosts.
    on_all_workers ". ~/venv/bin/activate && cd ~/jaxspatial &&
      nohup python -m jaxspatial.train --distributed --config $(printf '%q' "$config") \
        --workdir $(printf '%q' "$workdir")$extra > ~/train.log 2>&1 &"
    echo "started on all workers of $TPU_NAME; logs: launch/tpu_vm.sh ssh 'tail ~/train.log'"
    ;;
  ssh)
    on_all_workers "${1:-hostname}"
    ;;
  delete)
    tpu delete "$TPU_NAME" --quiet
    ;;
  *)
    usage
    ;;
esac
