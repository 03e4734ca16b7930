"""Training throughput of each GAN family on one accelerator chip.

    python -m jaxspatial.bench device                     # paper256, batch 64, bfloat16
    python -m jaxspatial.bench device --families stylegan2 --steps 20
    python -m jaxspatial.bench device --dtype float32 --mixed-precision-res 4   # stylegan2-ada's

For StyleGAN2, SSN and SpatialGAN at ``paper256`` (batch 64, ``model.compute_dtype``
bfloat16, parameters and Adam state float32) on the first device: the plain-phase training
step (D, G, EMA; no lazy regulariser) is compiled once and timed over ``--steps``
steps. Columns: images/s and s/kimg of the plain step; ``s/kimg amortised``, the plain
step scaled by the FLOPs of the lazy-regularisation schedule (R1 every 16, path length every
4, from XLA's cost analysis of each phase: the regularised steps are assumed to run at the
plain step's FLOP rate, not timed); compile seconds; achieved TFLOP/s (XLA's FLOPs of the
step over its time) and its share of the chip's dense bf16 peak (``PEAK_TFLOPS`` by device
kind; on a CPU the measured float32 matmul rate); the same rate as ``GFLOP/s`` with its
``% of peak`` of a large matmul measured in this run (bf16 8192^2 on an accelerator:
:func:`jaxspatial.benchmarks.peak_gflops`); peak device memory (the allocator's
``peak_bytes_in_use`` where the backend reports it, else XLA's memory analysis of the step).

``--mixed-precision-res N`` (with ``--dtype float32``) runs stylegan2-ada's mixed precision:
bfloat16 in the top N resolutions of G and D only, ``conv_clamp`` 256 unless the preset sets
one (its configs pair the two); the ``dtype`` column then reads ``mixed N (bf16 >= R px)``.
``--resolution`` changes the preset's (0: keep it).

Budget: one compile and a few dozen steps per family, under 5 minutes on one GPU/TPU chip.
On a CPU (no accelerator) the default preset is ``tiny`` so that it finishes in minutes.
Anchor (stylegan2-ada, NVlabs stylegan3 docs/configs.md): paper256 at 12.53 s/kimg on one A100.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from jaxspatial.benchmarks import flop_rate
from jaxspatial.errors import UserError

FAMILIES = ("stylegan2", "ssn", "spatialgan")

# Dense (no sparsity) bfloat16 peak TFLOP/s per chip, from the vendors' data sheets. The first
# key contained in ``device_kind`` wins, so longer names come first.
PEAK_TFLOPS = {
    "H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
    "L4": 121.0, "A10G": 70.0, "V100": 125.0,          # V100: float16 tensor cores (no bf16)
    "TPU v6 lite": 918.0, "TPU v5 lite": 197.0, "TPU v5p": 459.0, "TPU v5": 459.0,
    "TPU v4": 275.0, "TPU v3": 123.0, "TPU v2": 45.0,
}


def chip_peak_tflops(device: jax.Device) -> tuple[float, str]:
  """(peak TFLOP/s, where it came from) for ``device``."""
  for key, peak in PEAK_TFLOPS.items():
    if key in device.device_kind:
      return peak, f"{key} bf16 data sheet"
  if device.platform == "cpu":
    from jaxspatial.benchmarks import peak_gflops     # the run's one measurement, cached
    return peak_gflops() / 1e3, "measured f32 2048^2 matmul"
  return float("nan"), f"unknown device kind {device.device_kind!r}"


def family_config(family: str, preset: str, batch: int, dtype: str,
                  mixed_precision_res: int = 0, resolution: int = 0):
  from jaxspatial.training import config_lib
  config = config_lib.load(family, preset)
  config.batch_size = batch or config.batch_size
  config.mesh.data = 1
  config.model.compute_dtype = dtype
  if resolution:
    config.model.resolution = config.data.resolution = resolution
  if mixed_precision_res:
    if dtype != "float32":
      raise UserError("--mixed-precision-res runs the lower resolutions in float32: give "
                      f"--dtype float32, not {dtype}")
    config.model.mixed_precision_res = mixed_precision_res
    if config.model.conv_clamp is None:
      config.model.conv_clamp = 256.0
  return config


def dtype_label(config) -> str:
  """The ``dtype`` column: the compute dtype, or ``mixed N (bf16 >= R px)``."""
  from jaxspatial import models
  from jaxspatial.models import stylegan2
  m = config.model
  n = models.mixed_precision_res(m)
  if not n:
    return str(m.compute_dtype)
  return f"mixed {n} (bf16 >= {stylegan2.mixed_precision_threshold(int(m.resolution), n)} px)"


def amortised_flop_ratio(config) -> float:
  """FLOPs per iteration over the lazy-regularisation schedule / FLOPs of a plain step, all
  three phases from the same analysis (the lowered step, :func:`train_step_flops`): the
  compiled program's count differs from the lowered one's (by ~25% on CPU), so mixing the two
  would misstate what the regularisers add."""
  from jaxspatial.benchmarks.stylegan2 import train_step_flops
  from jaxspatial.training.gan_step import Phase
  loss = config.loss
  plain_flops = train_step_flops(config, Phase(False, False))
  extra = 0.0
  if loss.r1_gamma > 0:
    extra += (train_step_flops(config, Phase(True, False)) - plain_flops) / loss.r1_every
  if loss.pl_weight > 0:
    extra += (train_step_flops(config, Phase(False, True)) - plain_flops) / loss.pl_every
  return (plain_flops + extra) / plain_flops


def _peak_memory_gib(device: jax.Device, compiled) -> float:
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2 ** 30
  m = compiled.memory_analysis()
  if m is None:
    return float("nan")
  used = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
          - m.alias_size_in_bytes)
  return used / 2 ** 30


def bench_family(family: str, preset: str, batch: int, steps: int, dtype: str,
                 peak_tflops: float, mixed_precision_res: int = 0, resolution: int = 0) -> dict:
  """One row: compile, warm up, time ``steps`` plain-phase steps of ``family``."""
  from jaxspatial.training import gan_step, loop
  config = family_config(family, preset, batch, dtype, mixed_precision_res, resolution)
  batch = config.batch_size
  trainer = loop.Trainer(config, loop.make_mesh(config))
  trainer.initialize()
  res = config.model.resolution
  real = np.random.default_rng(0).uniform(-1, 1, (batch, res, res, 3)).astype(np.float32)
  images = trainer.global_batch({"image": real})
  jitted = trainer.compiled_step(gan_step.Phase(r1=False, path_length=False))
  t = time.perf_counter()
  compiled = jitted.lower(trainer.state, images).compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost["flops"])
  seconds = []
  for i in range(steps + 1):
    t = time.perf_counter()
    trainer.state, metrics = compiled(trainer.state, images)
    jax.block_until_ready(metrics)
    if i:                                      # the first call warms allocators and caches
      seconds.append(time.perf_counter() - t)
  step_s = statistics.median(seconds)
  finite = bool(np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"])))
  ratio = amortised_flop_ratio(config)
  tflops = flops / step_s / 1e12
  return {"family": family, "preset": preset, "res": res, "batch": batch,
          "dtype": dtype_label(config),
          "images/s": round(batch / step_s, 1), "s/kimg": round(1000 * step_s / batch, 2),
          "s/kimg amortised": round(1000 * step_s * ratio / batch, 2),
          "compile_s": round(compile_s, 1), "TFLOP/step": float(f"{flops / 1e12:.3g}"),
          "TFLOP/s": float(f"{tflops:.3g}"), "utilisation": f"{tflops / peak_tflops:.1%}",
          **flop_rate(flops, step_s),
          "peak_mem_GiB": float(f"{_peak_memory_gib(jax.devices()[0], compiled):.3g}"),
          "losses_finite": finite}


def bench_device(families=FAMILIES, preset: str = "auto", batch: int = 0, steps: int = 10,
                 dtype: str = "bfloat16", mixed_precision_res: int = 0,
                 resolution: int = 0) -> list[dict]:
  """The device table; ``preset`` "auto" is paper256 on an accelerator, tiny on a CPU, and
  ``batch`` 0 the preset's batch (64 at paper256); ``mixed_precision_res`` and ``resolution``
  as :func:`family_config`."""
  device = jax.devices()[0]
  if preset == "auto":
    preset = "tiny" if device.platform == "cpu" else "paper256"
  unknown = sorted(set(families) - set(FAMILIES))
  if unknown:
    raise UserError(f"--families: unknown {unknown}; choose from {list(FAMILIES)}")
  if steps < 1:
    raise UserError(f"--steps must be >= 1, got {steps}")
  peak, source = chip_peak_tflops(device)
  print(f"device {device.device_kind} ({device.platform}); peak {peak:.3g} TFLOP/s ({source}); "
        f"preset {preset}")
  return [bench_family(family, preset, batch, steps, dtype, peak, mixed_precision_res, resolution)
          for family in families]


def main(argv: list[str] | None = None,
         prog: str = "python -m jaxspatial.bench device") -> None:
  import argparse
  from jaxspatial.benchmarks import print_table
  p = argparse.ArgumentParser(prog=prog, description="Training throughput of StyleGAN2, SSN "
                              "and SpatialGAN on one accelerator chip.")
  p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families")
  p.add_argument("--preset", default="auto",
                 help="config preset (auto: paper256 on GPU/TPU, tiny on CPU)")
  p.add_argument("--batch", type=int, default=0,
                 help="batch on the one device (0: the preset's, 64 at paper256)")
  p.add_argument("--steps", type=int, default=10,
                 help="timed plain-phase steps per family (median reported)")
  p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                 help="model.compute_dtype (parameters and optimiser state stay float32)")
  p.add_argument("--mixed-precision-res", type=int, default=0, metavar="N",
                 help="with --dtype float32: bfloat16 in the top N resolutions of G and D "
                      "(stylegan2-ada's num_fp16_res; conv_clamp 256 unless the preset has one)")
  p.add_argument("--resolution", type=int, default=0,
                 help="model and data resolution (0: the preset's)")
  args = p.parse_args(argv)
  print_table(bench_device(tuple(f for f in args.families.split(",") if f), args.preset,
                           args.batch, args.steps, args.dtype, args.mixed_precision_res,
                           args.resolution))
