"""StyleGAN2 benchmarks: generator forward, the whole training iteration, per-step FLOPs.

    python -m jaxspatial.bench generator          # StyleGAN2 G forward, 256 px config-f
    python -m jaxspatial.bench train              # train-step images/s: tiny, demo (and at 64 ch), 256 px
    python -m jaxspatial.bench demo               # the three families' demo iterations, images/s
    python -m jaxspatial.bench flops              # per-step FLOPs of each family at paper256
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial.benchmarks import compile_with_flops, flop_rate, no_flop_rate, time_call
from jaxspatial.training import config_lib


def bench_generator(resolution: int = 256, batch: int = 8, channel_multiplier: int = 2,
                    iters: int = 2) -> list[dict]:
  """G forward (mapping + synthesis, const noise) with random weights."""
  from jaxspatial import families
  from jaxspatial import models
  cfg = models.stylegan2_model_config(resolution, channel_multiplier=channel_multiplier)
  g = families.build_generator(cfg)
  z = jax.random.normal(jax.random.key(0), (batch, cfg.z_dim))
  variables = jax.jit(g.init)(jax.random.key(1), z[:1])
  fwd, compile_s, flops = compile_with_flops(jax.jit(lambda v, z: g.apply(v, z)), variables, z)
  _, best = time_call(fwd, variables, z, iters=iters)
  return [{"bench": f"G forward {resolution}px cm={channel_multiplier}", "batch": batch,
           "compile_s": round(compile_s, 2), "step_s": float(f"{best:.4g}"),
           "images_per_s": round(batch / best, 2), "GFLOP/img": round(flops / batch / 1e9, 1),
           **flop_rate(flops, best)}]


def train_config(preset: str):
  """``configs/stylegan2.py`` at ``preset``, on one device. ``demo64``: the demo at the other
  families' width (``channel_max`` 64, batch 16); ``256``: 256 px with thin channels, so a CPU
  step takes seconds, not minutes; ``FAMILY:PRESET``: ``configs/FAMILY.py`` at ``PRESET``."""
  if ":" in preset:
    family, preset = preset.split(":")
    config = config_lib.load(family, preset)
    config.mesh.data = 1
    return config
  config = config_lib.load("stylegan2", {"256": "tiny", "demo64": "demo"}.get(preset, preset))
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

  Steps through two full lazy-regularisation periods (``lcm`` of the active ``r1_every``,
  ``pl_every`` and SpatialGAN's ``align_every``); each phase's first step compiles it, later
  ones are timed. ``images_per_s``
  is amortised over the schedule: what a long run achieves, compile and data aside; so is
  ``GFLOP/s``, from each phase's FLOPs (:func:`train_step_flops`) and its best time.
  """
  from jaxspatial.training import gan_step, loop
  rows = []
  for preset in presets:
    config = train_config(preset)
    trainer = loop.Trainer(config)
    trainer.initialize()
    res = config.model.resolution
    batch = trainer.global_batch({"image": np.zeros((config.batch_size, res, res, 3), np.float32)})
    period = gan_step.schedule_period(config)
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
    flops = {phase: train_step_flops(config, phase) for phase in best}
    amortised_flops = sum(flops[gan_step.phase_at(config, i)] for i in range(period)) / period
    rows.append({"bench": f"train step {preset} ({res}px)", "batch": config.batch_size,
                 "compile_s": round(sum(first[p] - best[p] for p in first), 1),
                 "plain_step_s": round(best[plain], 3),
                 "regularised_step_s": round(best[full], 3),
                 "reg_every": period,
                 "images_per_s": round(config.batch_size / amortised, 1),
                 **flop_rate(amortised_flops, amortised)})
  return rows


def bench_demo() -> list[dict]:
  """:func:`bench_train` on each family's ``demo`` preset (``configs/stylegan2.py``, ``ssn.py``,
  ``spatialgan.py`` at their own widths and batches): the 32 px iterations the results ledger
  (``python -m jaxspatial.reproduce``) trains, images/s amortised over R1 every 16 steps."""
  return bench_train(("demo", "ssn:demo", "spatialgan:demo"))


def train_step_flops(config, phase) -> float:
  """FLOPs of one compiled GAN iteration of ``phase`` (XLA's HLO cost analysis)."""
  from jaxspatial.training import gan_step, loop
  from jaxspatial.training import state as state_lib
  plugin = loop.make_plugin(config)
  opt_g, opt_d = state_lib.make_optimizers(config)
  step = gan_step.make_train_step(config, plugin, opt_g, opt_d, phase)
  abstract = jax.eval_shape(lambda k: gan_step.init_state(config, plugin, opt_g, opt_d, k),
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
    if not (config_lib.CONFIGS_DIR / f"{family}.py").exists():
      continue
    config = config_lib.load(family, preset)
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
                 "GFLOP/image": round(amortised / config.batch_size / 1e9, 1),
                 **no_flop_rate("bench flops counts FLOPs and times nothing: the rates are in "
                                "bench train and bench device")})
  return rows
