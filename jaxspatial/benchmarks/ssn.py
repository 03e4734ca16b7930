"""Cost of SSN's pieces (random weights; speed does not depend on the values).

* :func:`bench_ssn_vs_stylegan2`: generator images/s, forward and forward+backward, of an
  SSN and a StyleGAN2 of the same size (the paper: comparable cost);
* :func:`bench_sigma_e`: σ_E of one spatially modulated conv layer in closed form (window
  means of s², :func:`jaxspatial.models.spatial_modulation.sigma_e_sq`) vs the naive second
  convolution ``w² * s²`` (:func:`~jaxspatial.models.spatial_modulation.sigma_e_sq_direct`), and
  the whole layer with the closed form for scale.

    python -m jaxspatial.bench ssn --resolution 32 --batch 16
"""

from __future__ import annotations

import functools
import time
from typing import Callable, Hashable

import jax
import jax.numpy as jnp

from jaxspatial import cli
from jaxspatial import families
from jaxspatial.benchmarks import (check_network_args, compile_with_flops, flop_rate,
                                   network_parser)
from jaxspatial import models as models_lib
from jaxspatial.models import spatial_modulation as sm
from jaxspatial.models.ssn import ssn_model_config


def _time(fns: dict[Hashable, Callable[[], object]],
          repeats: int) -> dict[Hashable, tuple[float, float]]:
  """name -> (best seconds per call, compile seconds ~ first call minus the best).

  Calls are interleaved (one of each per round) and the minimum is kept: on a shared
  machine other processes only ever add time, and interleaving spreads their load evenly.
  """
  first, times = {}, {name: [] for name in fns}
  for name, fn in fns.items():
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first[name] = time.perf_counter() - t0
  for _ in range(repeats):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - t0)
  return {name: (min(ts), max(first[name] - min(ts), 0.0)) for name, ts in times.items()}


def _device() -> dict:
  return {"platform": jax.devices()[0].platform, "device": jax.devices()[0].device_kind}


def bench_ssn_vs_stylegan2(resolution: int = 32, batch: int = 16, *, channel_base: int = 2048,
                           channel_max: int = 128, z_dim: int = 128, n_mlp: int = 4,
                           grid: tuple[int, int] = (4, 4), repeats: int = 5,
                           seed: int = 0) -> list[dict]:
  """Generator throughput of StyleGAN2 and SSN at equal size (const noise).

  ``forward``: ``G(z)``; ``train``: gradient of ``sum(G(z))`` w.r.t. G's parameters (the
  generator's share of a training step). Returns one dict per (model, pass): ``model``,
  ``pass``, ``resolution``, ``batch``, ``seconds`` (best of ``repeats``, interleaved),
  ``images_per_s``, ``compile_s``, ``relative`` (seconds over StyleGAN2's for the same
  pass), ``platform``, ``device``.
  """
  kw = dict(z_dim=z_dim, w_dim=z_dim, n_mlp=n_mlp, channel_base=channel_base,
            channel_max=channel_max)
  configs = {"stylegan2": models_lib.stylegan2_model_config(resolution, **kw),
             "ssn": ssn_model_config(resolution, grid=grid, **kw)}
  key = jax.random.key(seed)
  fns, compile_s, flops = {}, {}, {}
  for name, cfg in configs.items():
    g = families.build_generator(cfg)
    shape = (batch, z_dim) if name == "stylegan2" else (batch, *grid, z_dim)
    z = jax.random.normal(key, shape)
    variables = jax.jit(g.init)(key, z[:1])
    fwd = jax.jit(lambda v, z, g=g: g.apply(v, z))
    grad = jax.jit(jax.grad(lambda p, v, z, g=g: jnp.sum(g.apply({**v, "params": p}, z))))
    for pass_name, jitted, args in (("forward", fwd, (variables, z)),
                                    ("train", grad, (variables["params"], variables, z))):
      executable, compile_s[name, pass_name], flops[name, pass_name] = compile_with_flops(
          jitted, *args)
      fns[name, pass_name] = functools.partial(executable, *args)
  rows = []
  for (name, pass_name), (seconds, _) in _time(fns, repeats).items():
    rows.append({"model": name, "pass": pass_name, "resolution": resolution, "batch": batch,
                 "seconds": seconds, "images_per_s": batch / seconds,
                 "compile_s": compile_s[name, pass_name], **_device(),
                 **flop_rate(flops[name, pass_name], seconds)})
  base = {r["pass"]: r["seconds"] for r in rows if r["model"] == "stylegan2"}
  for r in rows:
    r["relative"] = r["seconds"] / base[r["pass"]]
  return rows


def bench_sigma_e(resolutions: tuple[int, ...] = (16, 64), channels: int = 128,
                  batch: int = 16, *, repeats: int = 5, seed: int = 0) -> list[dict]:
  """σ_E of a 3×3 layer (Cin = Cout = ``channels``), closed form vs second convolution.

  Returns one dict per (resolution, up): ``resolution`` (input side), ``up``, ``channels``,
  ``batch``, ``closed_s``, ``direct_s``, ``speedup`` (direct / closed), ``layer_s`` (the
  whole spatially modulated conv with the closed form), ``max_rel_diff`` between the two
  σ_E², ``platform``, ``device``.
  """
  rows = []
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  weight = jax.random.normal(k1, (3, 3, channels, channels)) / (3 * channels ** 0.5)
  closed = jax.jit(sm.sigma_e_sq, static_argnames=("up", "border"))
  direct = jax.jit(sm.sigma_e_sq_direct, static_argnames=("up", "border"))
  layer = jax.jit(sm.spatially_modulated_conv, static_argnames=("demodulate", "up", "border"))
  for res in resolutions:
    s = jax.random.normal(k2, (batch, res, res, channels)) + 1.0
    x = jax.random.normal(k3, (batch, res, res, channels))
    for up in (False, True):
      timed = _time({"closed": lambda: closed(weight, s, up=up),
                     "direct": lambda: direct(weight, s, up=up),
                     "layer": lambda: layer(x, weight, s, up=up)}, repeats)
      (c_s, _), (d_s, _), (l_s, _) = timed["closed"], timed["direct"], timed["layer"]
      a, b = closed(weight, s, up=up), direct(weight, s, up=up)
      layer_flops = compile_with_flops(layer, x, weight, s, up=up)[2]
      rows.append({"resolution": res, "up": up, "channels": channels, "batch": batch,
                   "closed_s": c_s, "direct_s": d_s, "speedup": d_s / c_s, "layer_s": l_s,
                   "max_rel_diff": float(jnp.max(jnp.abs(a - b) / jnp.abs(b))), **_device(),
                   **flop_rate(layer_flops, l_s, prefix="layer ")})
  return rows


def main(argv: list[str] | None = None,
         prog: str = "python -m jaxspatial.bench ssn") -> None:
  p = network_parser(prog, "Time SSN vs StyleGAN2 generators and closed-form vs naive sigma_E "
                     "(random weights).")
  p.add_argument("--z-dim", type=int, default=128)
  p.add_argument("--n-mlp", type=int, default=4)
  p.add_argument("--sigma-resolutions", default="16,64",
                 help="input sides for the sigma_E benchmark (default 16,64)")
  p.add_argument("--sigma-channels", type=int, default=128)
  p.add_argument("--repeats", type=int, default=5)
  args = p.parse_args(argv)
  check_network_args(args)
  rows = bench_ssn_vs_stylegan2(args.resolution, args.batch, channel_base=args.channel_base,
                                channel_max=args.channel_max, z_dim=args.z_dim,
                                n_mlp=args.n_mlp, repeats=args.repeats)
  print(f"{'model':<10} {'pass':<8} {'images/s':>10} {'relative':>8} {'compile_s':>9} "
        f"{'GFLOP/s':>9} {'% of peak':>9}")
  for r in rows:
    print(f"{r['model']:<10} {r['pass']:<8} {r['images_per_s']:10.1f} {r['relative']:8.2f} "
          f"{r['compile_s']:9.1f} {r['GFLOP/s']:9.4g} {r['% of peak']:>9}")
  rows = bench_sigma_e(tuple(cli.parse_int_ranges(args.sigma_resolutions)), args.sigma_channels,
                       args.batch, repeats=args.repeats)
  print(f"\n{'res':>4} {'up':>5} {'closed_ms':>9} {'direct_ms':>9} {'speedup':>7} "
        f"{'layer_ms':>8} {'layer GFLOP/s':>13} {'% of peak':>9}")
  for r in rows:
    print(f"{r['resolution']:4d} {str(r['up']):>5} {1e3 * r['closed_s']:9.3f} "
          f"{1e3 * r['direct_s']:9.3f} {r['speedup']:7.1f} {1e3 * r['layer_s']:8.3f} "
          f"{r['layer GFLOP/s']:13.4g} {r['layer % of peak']:>9}")
  print(f"({rows[0]['platform']}: {rows[0]['device']}, batch {args.batch})")

