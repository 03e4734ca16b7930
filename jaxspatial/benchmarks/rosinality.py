"""jaxspatial against rosinality/stylegan2-pytorch on the same CPU, timed side by side.

    python -m jaxspatial.bench rosinality --rosinality ~/src/stylegan2-pytorch

Two rows (issue 20), random weights and the same shapes on both sides:

* ``G forward 256px cm2``: mapping + synthesis of rosinality's config-f at 256 px, batch 8,
  the stored constant noise (``randomize_noise=False`` / ``noise_mode="const"``);
* ``train iter 64px cm1``: one iteration of rosinality's ``train.py`` without regularisers
  (D on fake and real + Adam, G + Adam, EMA; style mixing 0.9, random noise), 64 px,
  channel_multiplier 1, batch 8, against jaxspatial's plain-phase training step of the same
  model (``Trainer.compiled_step(Phase(r1=False, path_length=False))``).

The checkout is the user's (``git clone https://github.com/rosinality/stylegan2-pytorch``);
nothing is downloaded. Its ``op`` package compiles CUDA extensions at import time; the
benchmark replaces ``torch.utils.cpp_extension.load`` while importing it, so the CPU code
paths rosinality ships (``upfirdn2d_native``, ``F.leaky_relu``) run. Torch uses
``--torch-threads`` threads (the CPU's cores by default). The two sides alternate call by
call, so a busy machine slows both alike: quote the ratio of the medians, not the seconds.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pathlib
import statistics
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial.errors import UserError

SKIP_MESSAGE = ("skipped: pass --rosinality PATH, a checkout of "
                "https://github.com/rosinality/stylegan2-pytorch (not downloaded by this command)")


@contextlib.contextmanager
def _without_cuda_extensions():
  """``torch.utils.cpp_extension.load`` returning a placeholder while rosinality's ``op``
  imports: its CUDA kernels are never built, and on CPU tensors its ops take their native
  paths (calling a kernel would raise AttributeError)."""
  from torch.utils import cpp_extension
  original = cpp_extension.load
  cpp_extension.load = lambda name, *args, **kwargs: type(f"unbuilt_{name}", (), {})()
  try:
    yield
  finally:
    cpp_extension.load = original


def import_rosinality(path: str | os.PathLike):
  """rosinality's ``model`` module from a checkout at ``path`` (CUDA op loading bypassed)."""
  root = pathlib.Path(path).expanduser().resolve()
  if not (root / "model.py").is_file() or not (root / "op").is_dir():
    raise UserError(f"--rosinality {path}: not a rosinality/stylegan2-pytorch checkout "
                    "(no model.py and op/ there)")
  try:
    import torch  # noqa: F401
  except ImportError:
    raise UserError("the rosinality benchmark needs torch (pip install torch)") from None
  sys.path.insert(0, str(root))
  try:
    with _without_cuda_extensions():
      for name in [m for m in sys.modules if m == "op" or m.startswith("op.") or m == "model"]:
        del sys.modules[name]
      import model
  finally:
    sys.path.remove(str(root))
  return model


def _seconds(fn: Callable[[], object]) -> float:
  t = time.perf_counter()
  fn()
  return time.perf_counter() - t


def _alternate(torch_fn: Callable[[], object], jax_fn: Callable[[], object],
               repeats: int) -> tuple[list[float], list[float]]:
  """Warm both once, then time them in turns: ``repeats`` seconds per side."""
  torch_fn(), jax_fn()
  torch_s, jax_s = [], []
  for _ in range(repeats):
    torch_s.append(_seconds(torch_fn))
    jax_s.append(_seconds(jax_fn))
  return torch_s, jax_s


def _flops(compiled) -> float:
  from jaxspatial.benchmarks import executable_flops
  return executable_flops(compiled)


def _row(work: str, batch: int, torch_s: list[float], jax_s: list[float],
         compile_s: float, flops: float) -> dict:
  """Medians, their ratio, and the FLOP rate both sides reach on jaxspatial's FLOP count
  (XLA's cost analysis; rosinality does at least that work), each with its share of the
  peak measured in this run."""
  from jaxspatial.benchmarks import flop_rate
  t, j = statistics.median(torch_s), statistics.median(jax_s)
  return {"work": work, "batch": batch, "repeats": len(torch_s),
          "rosinality_s": round(t, 3), "jaxspatial_s": round(j, 3),
          "rosinality_img/s": round(batch / t, 3), "jaxspatial_img/s": round(batch / j, 3),
          "ratio": f"{t / j:.2f}x", "jax_compile_s": round(compile_s, 1),
          "GFLOP/call": round(flops / 1e9, 1), **flop_rate(flops, t, prefix="rosinality_"),
          **flop_rate(flops, j, prefix="jaxspatial_")}


def generator_forward(rosinality, resolution: int = 256, channel_multiplier: int = 2,
                      batch: int = 8, repeats: int = 3) -> dict:
  """Row 1: G forward with constant noise, both sides on the same random latents."""
  import torch
  from jaxspatial import families
  from jaxspatial import models
  torch.manual_seed(0)
  g_torch = rosinality.Generator(resolution, 512, 8, channel_multiplier=channel_multiplier).eval()
  z = np.random.default_rng(0).standard_normal((batch, 512)).astype(np.float32)
  z_torch = torch.from_numpy(z)

  def torch_fn():
    with torch.no_grad():
      return g_torch([z_torch], randomize_noise=False)[0]

  g = families.build_generator(models.stylegan2_model_config(
      resolution, channel_multiplier=channel_multiplier))
  variables = g.init(jax.random.key(1), jnp.zeros((1, 512)))   # eager: its jit took minutes
  z_jax = jnp.asarray(z)
  t = time.perf_counter()
  fwd = jax.jit(lambda v, z: g.apply(v, z)).lower(variables, z_jax).compile()
  compile_s = time.perf_counter() - t
  torch_s, jax_s = _alternate(torch_fn, lambda: jax.block_until_ready(fwd(variables, z_jax)),
                              repeats)
  return _row(f"G forward {resolution}px cm{channel_multiplier} const noise", batch,
              torch_s, jax_s, compile_s, _flops(fwd))


def _rosinality_iteration(rosinality, resolution: int, channel_multiplier: int, batch: int):
  """One iteration of rosinality's ``train.py`` loop with ``--r1 0`` and no path length:
  returns a zero-argument callable that runs it (D step, G step, EMA accumulate)."""
  import torch
  from torch.nn import functional as F
  torch.manual_seed(0)
  latent, mixing = 512, 0.9
  g = rosinality.Generator(resolution, latent, 8, channel_multiplier=channel_multiplier)
  d = rosinality.Discriminator(resolution, channel_multiplier=channel_multiplier)
  g_ema = copy.deepcopy(g).eval()
  g_ratio, d_ratio = 4 / 5, 16 / 17
  g_optim = torch.optim.Adam(g.parameters(), lr=0.002 * g_ratio, betas=(0.0, 0.99 ** g_ratio))
  d_optim = torch.optim.Adam(d.parameters(), lr=0.002 * d_ratio, betas=(0.0, 0.99 ** d_ratio))
  real = torch.rand(batch, 3, resolution, resolution) * 2 - 1
  decay = 0.5 ** (32 / (10 * 1000))

  def requires_grad(module, flag):
    for p in module.parameters():
      p.requires_grad = flag

  def noise():
    if np.random.random() < mixing:
      return list(torch.randn(2, batch, latent).unbind(0))
    return [torch.randn(batch, latent)]

  def iteration():
    requires_grad(g, False)
    requires_grad(d, True)
    fake, _ = g(noise())
    d_loss = F.softplus(d(fake)).mean() + F.softplus(-d(real)).mean()
    d.zero_grad()
    d_loss.backward()
    d_optim.step()
    requires_grad(g, True)
    requires_grad(d, False)
    fake, _ = g(noise())
    g_loss = F.softplus(-d(fake)).mean()
    g.zero_grad()
    g_loss.backward()
    g_optim.step()
    with torch.no_grad():
      ema, new = dict(g_ema.named_parameters()), dict(g.named_parameters())
      for k in ema:
        ema[k].data.mul_(decay).add_(new[k].data, alpha=1 - decay)

  return iteration


def train_config(resolution: int = 64, channel_multiplier: int = 1, batch: int = 8):
  """``configs/stylegan2.py:paper256`` reshaped to rosinality's model of the comparison:
  ``resolution`` px, rosinality's channel table, mbstd group 4, one device, no regularisers
  scheduled at the timed step (the plain phase is compiled explicitly)."""
  from jaxspatial import models
  from jaxspatial.training import config_lib
  config = config_lib.load("stylegan2", "paper256")
  config.model = models.stylegan2_model_config(resolution, channel_multiplier=channel_multiplier)
  config.data.resolution = resolution
  config.data.source = "shapes"
  config.batch_size = batch
  config.mesh.data = 1
  return config


def train_iteration(rosinality, resolution: int = 64, channel_multiplier: int = 1,
                    batch: int = 8, repeats: int = 3) -> dict:
  """Row 2: one G+D iteration without regularisers (plain phase), EMA included."""
  from jaxspatial.training import gan_step, loop
  config = train_config(resolution, channel_multiplier, batch)
  trainer = loop.Trainer(config)
  trainer.initialize()
  real = np.random.default_rng(0).uniform(-1, 1, (batch, resolution, resolution, 3))
  images = trainer.global_batch({"image": real.astype(np.float32)})
  plain = trainer.compiled_step(gan_step.Phase(r1=False, path_length=False))
  t = time.perf_counter()
  step = plain.lower(trainer.state, images).compile()
  compile_s = time.perf_counter() - t

  def jax_fn():
    trainer.state, metrics = step(trainer.state, images)
    jax.block_until_ready(metrics)

  torch_s, jax_s = _alternate(
      _rosinality_iteration(rosinality, resolution, channel_multiplier, batch), jax_fn, repeats)
  return _row(f"train iter {resolution}px cm{channel_multiplier} (D+G+EMA, no reg)", batch,
              torch_s, jax_s, compile_s, _flops(step))


ROWS = {"generator": generator_forward, "train": train_iteration}


def bench_rosinality(path: str | None, rows: tuple[str, ...] = ("generator", "train"),
                     repeats: int = 3, torch_threads: int | None = None) -> list[dict]:
  """The rows of issue 20's table, or ``[]`` (after printing why) without a checkout."""
  if not path:
    print(SKIP_MESSAGE)
    return []
  unknown = sorted(set(rows) - set(ROWS))
  if unknown:
    raise UserError(f"--rows: unknown {unknown}; choose from {sorted(ROWS)}")
  if repeats < 1:
    raise UserError(f"--repeats must be >= 1, got {repeats}")
  rosinality = import_rosinality(path)
  import torch
  torch.set_num_threads(torch_threads or os.cpu_count() or 1)
  print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"rosinality checkout {path}")
  out = []
  for r in rows:
    out.append(ROWS[r](rosinality, repeats=repeats))
    print(f"{r}: {out[-1]}", flush=True)           # a long run shows each row as it lands
  print("(a 3x row needs 3x rosinality's GFLOP/s on the same FLOPs)")
  return out


def main(argv: list[str] | None = None,
         prog: str = "python -m jaxspatial.bench rosinality") -> None:
  import argparse
  from jaxspatial.benchmarks import print_table
  p = argparse.ArgumentParser(prog=prog, description="Time rosinality/stylegan2-pytorch's CPU "
                              "code and jaxspatial side by side (random weights, same shapes).")
  p.add_argument("--rosinality", metavar="PATH", default=None,
                 help="a checkout of rosinality/stylegan2-pytorch (the benchmark skips "
                      "without it)")
  p.add_argument("--rows", default="generator,train",
                 help="comma-separated rows to time: generator (256 px config-f forward), "
                      "train (64 px cm1 iteration)")
  p.add_argument("--repeats", type=int, default=3,
                 help="timed calls per side after one warm-up call (median reported)")
  p.add_argument("--torch-threads", type=int, default=None,
                 help="torch intra-op threads (default: the number of CPU cores)")
  args = p.parse_args(argv)
  rows = bench_rosinality(args.rosinality, tuple(r for r in args.rows.split(",") if r),
                          args.repeats, args.torch_threads)
  if rows:
    print_table(rows)
