"""Latency of compositing with a latent regressor vs optimisation-based inversion.

The paper's point (Chai et al. 2021, Sec. 1 and Tab. 4): a composite costs one forward pass of
E and G, while inverting a collage by optimisation costs hundreds of generator forward and
backward passes. :func:`bench_composite` times both on random weights (latency does not depend
on the values) for one image at a time::

    python -m jaxspatial.bench regressor --resolution 256 --opt-steps 200 --measure-steps 3

Regressor: ResNet-34 on the 256 px (or smaller) input + StyleGAN2 synthesis, one jitted call.
Baseline: Adam (lr 0.01) on W+ minimising the masked L1 of ``G(ws)`` to the collage, started
from ``w_avg``; ``measure_steps`` jitted steps are timed after a warm-up step and the total for
``opt_steps`` is extrapolated from their median (pixel loss only: adding LPIPS, as the official
``invert_lbfgs`` does, would make the baseline slower still).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxspatial import errors
from jaxspatial import families
from jaxspatial.benchmarks import compile_with_flops, flop_rate
from jaxspatial import models as models_lib
from jaxspatial.losses import regressor as regression
from jaxspatial.metrics.masked_l1 import masked_l1
from jaxspatial.models import regressor as regressor_lib


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def bench_composite(resolution: int = 256, *, channel_base: int = 16384, channel_max: int = 512,
                    channel_multiplier: int = 2, w_dim: int = 512, depth: int = 34,
                    width: int = 64,
                    opt_steps: int = 200, measure_steps: int = 3, repeats: int = 5,
                    seed: int = 0) -> list[dict]:
  """Per-image latency of a regressor composite and of an optimisation-based inversion.

  Args:
    resolution: generator resolution (the regressor input is min(256, resolution)).
    channel_base, channel_max, channel_multiplier: the generator's channel table
      (defaults: stylegan2-ada "paper256"; channel_base=0 gives rosinality config-f).
    w_dim: the generator's z and w size (512 in the papers).
    depth, width: the regressor ResNet.
    opt_steps: Adam steps of the baseline (reported, extrapolated).
    measure_steps: baseline steps actually timed.
    repeats: timed composite forwards.
  Returns:
    One dict per method: ``method``, ``resolution``, ``seconds_per_image``, ``measured``
    (what was timed), plus ``speedup`` on the baseline row.
  """
  g_cfg = models_lib.stylegan2_model_config(
      resolution, z_dim=w_dim, w_dim=w_dim, channel_multiplier=channel_multiplier,
      channel_base=channel_base, channel_max=channel_max)
  r_cfg = regressor_lib.regressor_model_config(g_cfg, depth=depth, width=width)
  generator = families.build_generator(g_cfg)
  regressor = regressor_lib.build_regressor(r_cfg)
  k_g, k_e, k_x = jax.random.split(jax.random.key(seed), 3)
  g_vars = jax.jit(generator.init)({"params": k_g}, jnp.zeros((1, g_cfg.z_dim)))
  e_vars = regressor_lib.init_regressor(r_cfg, k_e)

  x = jax.random.uniform(k_x, (1, resolution, resolution, 3), jnp.float32, -1.0, 1.0)
  mask = regression.sample_masks(k_x, 1, resolution, (0.7, 0.7))

  @jax.jit
  def composite(e_vars, g_vars, x, m):
    return regression.generator_fns(generator, g_vars).synthesize(regressor.apply(e_vars, x, m))

  composite, compile_composite, composite_flops = compile_with_flops(
      composite, e_vars, g_vars, x, mask)
  jax.block_until_ready(composite(e_vars, g_vars, x, mask))     # warm-up
  composite_s = _median_seconds(lambda: composite(e_vars, g_vars, x, mask), repeats)

  optimizer = optax.adam(0.01)
  ws0 = jnp.broadcast_to(g_vars["buffers"]["w_avg"], (1, r_cfg.num_ws, r_cfg.w_dim))

  @jax.jit
  def opt_step(ws, opt_state, g_vars, x, m):
    synthesize = regression.generator_fns(generator, g_vars).synthesize
    loss, grad = jax.value_and_grad(lambda ws: masked_l1(synthesize(ws), x, m)[0])(ws)
    updates, opt_state = optimizer.update(grad, opt_state, ws)
    return optax.apply_updates(ws, updates), opt_state, loss

  state = (ws0, optimizer.init(ws0))
  opt_step, compile_opt, step_flops = compile_with_flops(opt_step, *state, g_vars, x, mask)
  state = jax.block_until_ready(opt_step(*state, g_vars, x, mask)[:2])     # warm-up
  step_times = []
  for _ in range(measure_steps):
    t0 = time.perf_counter()
    state = jax.block_until_ready(opt_step(*state, g_vars, x, mask)[:2])
    step_times.append(time.perf_counter() - t0)
  step_s = statistics.median(step_times)

  log_res = int(np.log2(resolution))
  common = dict(resolution=resolution,
                generator_channels=[generator.channels(2 ** k) for k in range(2, log_res + 1)],
                regressor=f"resnet-{depth} width {width} input {r_cfg.input_size}",
                backend=jax.default_backend())
  return [
      dict(method="regressor composite: one forward of E and G", seconds_per_image=composite_s,
           measured=f"median of {repeats} forwards (after {compile_composite:.1f} s compile)",
           **flop_rate(composite_flops, composite_s), **common),
      dict(method=f"optimisation: {opt_steps} Adam steps on W+ (masked L1)",
           seconds_per_image=step_s * opt_steps, seconds_per_step=step_s,
           measured=f"median of {measure_steps} steps x {opt_steps}, extrapolated (after "
                    f"{compile_opt:.1f} s compile)",
           speedup=step_s * opt_steps / composite_s, **flop_rate(step_flops, step_s),
           **common),
  ]


def main(argv: list[str] | None = None,
         prog: str = "python -m jaxspatial.bench regressor") -> None:
  p = argparse.ArgumentParser(prog=prog,
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--resolution", type=int, default=256)
  p.add_argument("--channel-base", type=int, default=16384,
                 help="generator channel base (0 = rosinality config-f table)")
  p.add_argument("--channel-max", type=int, default=512)
  p.add_argument("--depth", type=int, default=34, choices=sorted(regressor_lib.STAGES))
  p.add_argument("--opt-steps", type=int, default=200)
  p.add_argument("--measure-steps", type=int, default=3)
  p.add_argument("--repeats", type=int, default=5)
  args = p.parse_args(argv)
  if args.measure_steps < 1 or args.repeats < 1:
    raise errors.UserError("--measure-steps and --repeats must be >= 1")
  rows = bench_composite(args.resolution, channel_base=args.channel_base,
                         channel_max=args.channel_max, depth=args.depth,
                         opt_steps=args.opt_steps, measure_steps=args.measure_steps,
                         repeats=args.repeats)
  for row in rows:
    extra = f", speedup {row['speedup']:.0f}x" if "speedup" in row else ""
    print(f"{row['method']}: {row['seconds_per_image']:.3f} s/image ({row['measured']}{extra}); "
          f"{row['GFLOP/s']:.4g} GFLOP/s, {row['% of peak']} of peak")
  print(f"[{rows[0]['backend']}, {rows[0]['resolution']} px, G channels "
        f"{rows[0]['generator_channels']}, {rows[0]['regressor']}]")

