"""Run benchmarks and print their tables (figures and commands: docs/benchmarks.md).

    python -m jaxspatial.bench generator          # StyleGAN2 G forward, 256 px config-f
    python -m jaxspatial.bench train              # train-step images/s: tiny, demo (and at 64 ch), 256 px
    python -m jaxspatial.bench demo               # StyleGAN2, SSN, SpatialGAN demo iterations
    python -m jaxspatial.bench flops              # per-step FLOPs of each family at paper256
    python -m jaxspatial.bench fir conv_transpose # fast layers vs their reference implementations
    python -m jaxspatial.bench shapes|inception|sigma_e|alignment|composite
    python -m jaxspatial.bench projection         # a projection step vs G forward+backward, 32/256 px
    python -m jaxspatial.bench ssn --resolution 32 --batch 16          # a family's own flags
    python -m jaxspatial.bench spatialgan --train-step | --drag CHECKPOINT
    python -m jaxspatial.bench drag-report --checkpoint runs/demo   # drag's uniform-handle warning
    python -m jaxspatial.bench regressor --resolution 256 --opt-steps 200
    python -m jaxspatial.bench studio [--checkpoint DIR ...]        # studio latency per edit
    python -m jaxspatial.bench rosinality --rosinality PATH   # side by side with PyTorch (CPU)
    python -m jaxspatial.bench profile            # kernel time by network, pass and op kind
    python -m jaxspatial.bench device             # paper256 bf16 training on one GPU/TPU chip
    python -m jaxspatial.bench augment            # what ADA's pipe adds to a 256 px iteration

Table benchmarks run at their default sizes and print one markdown table; ``ssn``,
``spatialgan``, ``regressor``, ``studio``, ``rosinality``, ``profile``, ``device`` and ``augment`` take
their own flags (``... ssn --help``).
The benchmarks live in :mod:`jaxspatial.benchmarks`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import jax

from jaxspatial import cli

TABLES: dict[str, str] = {
    "generator": "jaxspatial.benchmarks.stylegan2:bench_generator",
    "train": "jaxspatial.benchmarks.stylegan2:bench_train",
    "demo": "jaxspatial.benchmarks.stylegan2:bench_demo",
    "flops": "jaxspatial.benchmarks.stylegan2:bench_flops",
    "fir": "jaxspatial.benchmarks.layers:bench_fir",
    "conv_transpose": "jaxspatial.benchmarks.layers:bench_conv_transpose",
    "shapes": "jaxspatial.benchmarks.data:bench_shapes",
    "inception": "jaxspatial.benchmarks.metrics:bench_inception",
    "sigma_e": "jaxspatial.benchmarks.ssn:bench_sigma_e",
    "alignment": "jaxspatial.benchmarks.spatialgan:bench_alignment",
    "composite": "jaxspatial.benchmarks.regressor:bench_composite",
    "projection": "jaxspatial.benchmarks.projection:bench_projection",
}
"""name -> ``module:function`` returning table rows (a dict or a list of dicts)."""

COMMANDS: dict[str, str] = {
    "ssn": "jaxspatial.benchmarks.ssn",
    "spatialgan": "jaxspatial.benchmarks.spatialgan",
    "drag-report": "jaxspatial.benchmarks.drag_report",
    "regressor": "jaxspatial.benchmarks.regressor",
    "studio": "jaxspatial.benchmarks.studio",
    "rosinality": "jaxspatial.benchmarks.rosinality",
    "profile": "jaxspatial.benchmarks.profile",
    "device": "jaxspatial.benchmarks.device",
    "augment": "jaxspatial.benchmarks.augment",
}
"""name -> benchmark module whose ``main(argv, prog)`` parses its own flags."""


def run_table(name: str) -> list[dict]:
  """The rows of table benchmark ``name`` at its default sizes."""
  module, fn = TABLES[name].split(":")
  rows = getattr(importlib.import_module(module), fn)()
  return rows if isinstance(rows, list) else [rows]


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else list(argv)
  if argv and argv[0] in COMMANDS:
    importlib.import_module(COMMANDS[argv[0]]).main(
        argv[1:], prog=f"python -m jaxspatial.bench {argv[0]}")
    return
  p = argparse.ArgumentParser(
      prog="python -m jaxspatial.bench",
      description="Run benchmarks and print a markdown table. Family benchmarks with their "
                  f"own flags: {', '.join(COMMANDS)} (python -m jaxspatial.bench ssn --help).")
  p.add_argument("names", nargs="+", choices=sorted(TABLES),
                 help="table benchmarks to run, at their default sizes")
  from jaxspatial.benchmarks import print_table
  args = p.parse_args(argv)
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{jax.device_count()} device(s): {jax.devices()[0].device_kind}")
  rows: list[dict] = []
  for name in args.names:
    rows += run_table(name)
  print_table(rows)


if __name__ == "__main__":
  cli.run(main)
