"""Benchmarks that print a table (results go to docs/benchmarks.md with the command).

    python -m jaxspatial.bench generator          # StyleGAN2 G forward, 256 px config-f
    python -m jaxspatial.bench train              # train-step images/s: tiny, demo (and at 64 ch), 256 px
    python -m jaxspatial.bench flops              # per-step FLOPs of each family at paper256
    python -m jaxspatial.bench fir                # FIR resampling vs a depthwise-conv baseline
    python -m jaxspatial.bench conv_transpose     # up-sampling conv: sub-pixel vs lhs_dilation
    python -m jaxspatial.bench shapes|inception|ssn|sigma_e|alignment|composite

Figures on a shared CPU are noisy: compare rows measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pathlib
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial import cli


def _time(fn: Callable, *args, iters: int = 3) -> tuple[float, float]:
  """(first call incl. compile, best steady-state call) in seconds; blocks on results."""
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t
  best = float("inf")
  for _ in range(iters):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return first, best


def matmul_peak_gflops(n: int = 2048) -> float:
  """Achieved float32 GFLOP/s of an n x n matmul: the reference 'peak' for this machine."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  _, best = _time(f, a, iters=5)
  return 2 * n ** 3 / best / 1e9


def _compile(jitted, *args) -> tuple[Callable, float, float]:
  """(compiled executable, compile seconds, FLOPs per call from XLA's cost analysis)."""
  t = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  seconds = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return compiled, seconds, float(cost.get("flops", float("nan"))) if cost else float("nan")


def bench_generator(resolution: int = 256, batch: int = 8, channel_multiplier: int = 2,
                    iters: int = 2) -> list[dict]:
  """G forward (mapping + synthesis, const noise) with random weights."""
  from jaxspatial import models
  cfg = models.stylegan2_model_config(resolution, channel_multiplier=channel_multiplier)
  g = models.build_generator(cfg)
  z = jax.random.normal(jax.random.key(0), (batch, cfg.z_dim))
  variables = jax.jit(g.init)(jax.random.key(1), z[:1])
  fwd, compile_s, flops = _compile(jax.jit(lambda v, z: g.apply(v, z)), variables, z)
  _, best = _time(fwd, variables, z, iters=iters)
  peak = matmul_peak_gflops()
  return [{"bench": f"G forward {resolution}px cm={channel_multiplier}", "batch": batch,
           "compile_s": round(compile_s, 2), "step_s": round(best, 3),
           "images_per_s": round(batch / best, 2), "GFLOP/img": round(flops / batch / 1e9, 1),
           "GFLOP/s": round(flops / best / 1e9, 1), "matmul_peak_GFLOP/s": round(peak, 1),
           "utilisation": f"{flops / best / 1e9 / peak:.0%}"}]


def _depthwise_upfirdn2d(x, kernel, up: int = 1, down: int = 1, pad=(0, 0)):
  """Baseline for ``bench_fir``: ``ops.upfirdn2d`` as a depthwise (grouped) convolution."""
  c = x.shape[-1]
  w = jnp.tile(jnp.flip(jnp.asarray(kernel, x.dtype), (0, 1))[:, :, None, None], (1, 1, 1, c))
  p0, p1 = pad
  return jax.lax.conv_general_dilated(
      x, w, (down, down), ((p0, p1 + up - 1), (p0, p1 + up - 1)), lhs_dilation=(up, up),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


def bench_fir(batch: int = 16, size: int = 32, channels: int = 64) -> list[dict]:
  """The [1,3,3,1] resampling of the demo's 32 px layers, forward and gradient:
  ``ops.upfirdn2d`` (shifted slices) against the same filter as a depthwise convolution."""
  from jaxspatial import ops
  x = jax.random.normal(jax.random.key(0), (batch, size, size, channels))
  cases = {"blur (G up-conv)": dict(pad=(2, 1)), "2x down (D)": dict(down=2, pad=(1, 1)),
           "2x up": dict(up=2, pad=(2, 1))}
  rows = []
  for case, kw in cases.items():
    kernel = ops.fir_kernel(gain=4.0 if kw.get("up") else 1.0)
    timings = {}
    for impl, f in (("depthwise conv", _depthwise_upfirdn2d), ("shifted slices", ops.upfirdn2d)):
      fwd = jax.jit(lambda x, f=f: f(x, kernel, **kw))
      grad = jax.jit(jax.grad(lambda x, f=f: jnp.sum(jnp.sin(f(x, kernel, **kw)))))
      timings[impl] = (_time(fwd, x, iters=10)[1], _time(grad, x, iters=10)[1])
    base = timings["depthwise conv"]
    for impl, (t_fwd, t_grad) in timings.items():
      rows.append({"bench": f"{case} {tuple(x.shape)}", "impl": impl,
                   "fwd_ms": round(t_fwd * 1e3, 2), "grad_ms": round(t_grad * 1e3, 2),
                   "fwd_speedup": round(base[0] / t_fwd, 1),
                   "grad_speedup": round(base[1] / t_grad, 1)})
  return rows


def _dilated_conv_transpose(x, weight):
  """Baseline for ``bench_conv_transpose``: ``ops.conv_transpose_2x`` as one convolution of
  the zero-stuffed input (``lhs_dilation=2``) with the flipped kernel."""
  k = weight.shape[0]
  return jax.lax.conv_general_dilated(
      x, jnp.flip(weight, (0, 1)), (1, 1), [(k - 1, k - 1)] * 2, lhs_dilation=(2, 2),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def bench_conv_transpose(batch: int = 16) -> list[dict]:
  """The demo generator's 3x3 up-sampling convs (8->16 and 16->32 px): forward and the
  gradients w.r.t. weight and input, sub-pixel phases against ``lhs_dilation``."""
  from jaxspatial import ops
  rows = []
  for size, cin, cout in ((8, 64, 64), (16, 64, 32)):
    x = jax.random.normal(jax.random.key(0), (batch, size, size, cin))
    w = jax.random.normal(jax.random.key(1), (3, 3, cin, cout))
    timings = {}
    for impl, f in (("lhs_dilation", _dilated_conv_transpose),
                    ("sub-pixel phases", ops.conv_transpose_2x)):
      loss = lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w)))
      timings[impl] = [_time(jax.jit(fn), x, w, iters=10)[1]
                       for fn in (f, jax.grad(loss, 1), jax.grad(loss, 0))]
    base = timings["lhs_dilation"]
    for impl, t in timings.items():
      rows.append({"bench": f"up-conv {tuple(x.shape)} -> {cout} ch", "impl": impl,
                   "fwd_ms": round(t[0] * 1e3, 2), "grad_w_ms": round(t[1] * 1e3, 2),
                   "grad_x_ms": round(t[2] * 1e3, 2),
                   "grad_w_speedup": round(base[1] / t[1], 1)})
  return rows


def _train_config(preset: str):
  """``configs/stylegan2.py`` at ``preset``, on one device. ``demo64``: the demo at the other
  families' width (``channel_max`` 64, batch 16); ``256``: 256 px with thin channels, so a CPU
  step takes seconds, not minutes."""
  config = load_config_file(CONFIGS_DIR / "stylegan2.py",
                            {"256": "tiny", "demo64": "demo"}.get(preset, preset))
  config.mesh.data = 1
  if preset == "demo64":
    config.model.channel_max = 64
    config.batch_size = 16
  if preset == "256":
    config.model.update(resolution=256, channel_base=4096, channel_max=64, z_dim=128,
                        w_dim=128, n_mlp=4)
    config.data.resolution = 256
    config.batch_size = 4
  return config


def bench_train(presets=("tiny", "demo", "demo64", "256")) -> list[dict]:
  """One GAN iteration (D, R1, G, path length as scheduled, EMA) per preset, as training runs it.

  Steps through two full lazy-regularisation periods (``lcm`` of the active ``r1_every`` and
  ``pl_every``); each phase's first step compiles it, later ones are timed. ``images_per_s``
  is amortised over the schedule: what a long run achieves, compile and data aside.
  """
  from jaxspatial.training import gan_step, loop
  rows = []
  for preset in presets:
    config = _train_config(preset)
    trainer = loop.Trainer(config)
    trainer.initialize()
    res = config.model.resolution
    batch = trainer.global_batch({"image": np.zeros((config.batch_size, res, res, 3), np.float32)})
    loss = config.loss
    period = math.lcm(loss.r1_every if loss.r1_gamma > 0 else 1,
                      loss.pl_every if loss.pl_weight > 0 else 1)
    first: dict[gan_step.Phase, float] = {}
    steady: dict[gan_step.Phase, list[float]] = {}
    for step in range(2 * period):
      phase = gan_step.phase_at(config, step)
      t = time.perf_counter()
      jax.block_until_ready(trainer.step(batch))
      seconds = time.perf_counter() - t
      if phase in first:
        steady.setdefault(phase, []).append(seconds)
      else:
        first[phase] = seconds
    best = {phase: min(times) for phase, times in steady.items()}
    plain, full = gan_step.phase_at(config, 1 if period > 1 else 0), gan_step.phase_at(config, 0)
    amortised = sum(best[gan_step.phase_at(config, i)] for i in range(period)) / period
    rows.append({"bench": f"train step {preset} ({res}px)", "batch": config.batch_size,
                 "compile_s": round(sum(first[p] - best[p] for p in first), 1),
                 "plain_step_s": round(best[plain], 3),
                 "regularised_step_s": round(best[full], 3),
                 "reg_every": period,
                 "images_per_s": round(config.batch_size / amortised, 1)})
  return rows


CONFIGS_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
"""The repository's ``configs/`` (next to the package in a source checkout)."""


def load_config_file(path: str | pathlib.Path, preset: str):
  """``get_config(preset)`` of a config file (configs/<family>.py)."""
  import importlib.util
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


def train_step_flops(config, phase) -> float:
  """FLOPs of one compiled GAN iteration of ``phase`` (XLA's HLO cost analysis)."""
  from jaxspatial.training import gan_step, loop
  from jaxspatial.training import state as state_lib
  family = loop.make_family(config)
  opt_g, opt_d = state_lib.make_optimizers(config)
  step = gan_step.make_train_step(config, family, opt_g, opt_d, phase)
  abstract = jax.eval_shape(lambda k: gan_step.init_state(config, family, opt_g, opt_d, k),
                            jax.random.key(0))
  res = config.model.resolution
  batch = {"image": jax.ShapeDtypeStruct((config.batch_size, res, res, 3), jnp.float32)}
  cost = jax.jit(step).lower(abstract, batch).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"])


def bench_flops(families=("stylegan2", "ssn", "spatialgan"), preset: str = "paper256") -> list[dict]:
  """Per-iteration FLOPs of each family's ``paper256`` step, split into the always-on part
  and the lazy regularisers, amortised over their intervals (docs/scaling.md)."""
  from jaxspatial.training.gan_step import Phase
  rows = []
  for family in families:
    path = CONFIGS_DIR / f"{family}.py"
    if not path.exists():
      continue
    config = load_config_file(str(path), preset)
    loss = config.loss
    base = train_step_flops(config, Phase(r1=False, path_length=False))
    r1 = pl = 0.0
    if loss.r1_gamma > 0:
      r1 = train_step_flops(config, Phase(r1=True, path_length=False)) - base
    if loss.pl_weight > 0:
      pl = train_step_flops(config, Phase(r1=False, path_length=True)) - base
    amortised = base + r1 / loss.r1_every + pl / loss.pl_every
    rows.append({"bench": f"{family} {preset} step FLOPs", "batch": config.batch_size,
                 "resolution": config.model.resolution, "main_TFLOP": round(base / 1e12, 2),
                 "r1_TFLOP": round(r1 / 1e12, 2), "pl_TFLOP": round(pl / 1e12, 2),
                 "amortised_TFLOP/step": round(amortised / 1e12, 2),
                 "GFLOP/image": round(amortised / config.batch_size / 1e9, 1)})
  return rows


def _external(module: str, fn: str) -> Callable[[], list[dict]]:
  def run():
    out = getattr(importlib.import_module(module), fn)()
    return out if isinstance(out, list) else [out]
  return run


BENCHES: dict[str, Callable[[], list[dict]]] = {
    "generator": bench_generator,
    "train": bench_train,
    "flops": bench_flops,
    "fir": bench_fir,
    "conv_transpose": bench_conv_transpose,
    "shapes": _external("jaxspatial.data.bench", "bench_shapes"),
    "inception": _external("jaxspatial.metrics.bench", "bench_inception"),
    "ssn": _external("jaxspatial.bench_ssn", "bench_ssn_vs_stylegan2"),
    "sigma_e": _external("jaxspatial.bench_ssn", "bench_sigma_e"),
    "alignment": _external("jaxspatial.bench_spatialgan", "bench_alignment"),
    "composite": _external("jaxspatial.bench_regressor", "bench_composite"),
}


def print_table(rows: list[dict]) -> None:
  """Markdown table of the union of the rows' keys."""
  keys: list[str] = []
  for r in rows:
    keys += [k for k in r if k not in keys]
  print("| " + " | ".join(keys) + " |")
  print("|" + "---|" * len(keys))
  for r in rows:
    print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


def main(argv=None) -> None:
  p = argparse.ArgumentParser(prog="python -m jaxspatial.bench",
                              description="Run a benchmark and print a markdown table.")
  p.add_argument("names", nargs="+", choices=sorted(BENCHES), help="benchmarks to run")
  args = p.parse_args(argv)
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{jax.device_count()} device(s): {jax.devices()[0].device_kind}")
  rows: list[dict] = []
  for name in args.names:
    rows += BENCHES[name]()
  print_table(rows)


if __name__ == "__main__":
  cli.run(main)
