"""What ADA costs: one training iteration with and without the augmentation pipe (issue 34).

    python -m jaxspatial.bench augment                      # StyleGAN2 paper256, batch 4
    python -m jaxspatial.bench augment --preset 256 --batch 4   # bench train's thin 256 px

Both runs use the same config except ``augment.kind`` (``none`` vs ``fixed`` at ``--p``: every
image D sees goes through the ``bgc`` pipe; its cost does not depend on p, since each op is
computed for every image and gated per image, as the official pipe does). Each lazy
regularisation phase of the schedule is compiled once and timed in turn with its counterpart
(one call of each per round, best of ``--rounds``), so load on a shared machine lands on both
sides alike; the iteration time is amortised over the schedule as ``bench train`` does, and
the overhead is ``with / without − 1``.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from jaxspatial import errors
from jaxspatial.benchmarks import flop_rate, print_table
from jaxspatial.benchmarks.stylegan2 import train_config, train_step_flops
from jaxspatial.training import config_lib

PRESETS = ("paper256", "256")
"""``paper256``: StyleGAN2's paper preset (stylegan2-ada's, where ADA is on by default);
``256``: ``bench train``'s thin 256 px network (the pipe's share is larger there)."""


def _config(preset: str, batch: int, kind: str, p: float):
  config = (config_lib.load("stylegan2", "paper256") if preset == "paper256"
            else train_config(preset))
  config.mesh.data = 1
  config.batch_size = batch
  config.augment.kind = kind
  config.augment.p = p if kind != "none" else 0.0
  return config


def bench_augment(preset: str = "paper256", batch: int = 4, p: float = 0.6,
                  rounds: int = 3) -> list[dict]:
  """Amortised iteration seconds without and with the pipe, and the overhead."""
  from jaxspatial.training import gan_step, loop
  configs = {kind: _config(preset, batch, kind, p) for kind in ("none", "fixed")}
  period = gan_step.schedule_period(configs["none"])
  schedule = [gan_step.phase_at(configs["none"], i) for i in range(period)]
  phases = list(dict.fromkeys(schedule))
  trainers, compile_s = {}, {}
  for kind, config in configs.items():
    trainer = loop.Trainer(config)
    trainer.initialize()
    res = config.model.resolution
    images = trainer.global_batch({"image": np.zeros((batch, res, res, 3), np.float32)})
    trainers[kind] = (trainer, images)
    t = time.perf_counter()
    for phase in phases:
      trainer.state, _ = jax.block_until_ready(trainer.compiled_step(phase)(trainer.state, images))
    compile_s[kind] = time.perf_counter() - t
  best = {(kind, phase): float("inf") for kind in configs for phase in phases}
  for _ in range(rounds):
    for phase in phases:
      for kind, (trainer, images) in trainers.items():
        t = time.perf_counter()
        trainer.state, _ = jax.block_until_ready(trainer.compiled_step(phase)(trainer.state, images))
        best[kind, phase] = min(best[kind, phase], time.perf_counter() - t)
  rows = []
  amortised = {kind: sum(best[kind, ph] for ph in schedule) / period for kind in configs}
  for kind, config in configs.items():
    flops = sum(train_step_flops(config, ph) for ph in schedule) / period
    rows.append({"bench": f"train iteration {preset}, augment={kind}"
                          + (f" (p={p})" if kind != "none" else ""),
                 "batch": batch, "compile_s (all phases)": round(compile_s[kind], 1),
                 **{f"{_name(ph)}_s": round(best[kind, ph], 3) for ph in phases},
                 "amortised_s": round(amortised[kind], 3),
                 "overhead": "" if kind == "none"
                 else f"{100 * (amortised[kind] / amortised['none'] - 1):+.1f}%",
                 **flop_rate(flops, amortised[kind])})
  return rows


def _name(phase) -> str:
  return "+".join(n for n, on in (("r1", phase.r1), ("pl", phase.path_length)) if on) or "plain"


def main(argv: list[str] | None = None, prog: str = "python -m jaxspatial.bench augment") -> None:
  ap = argparse.ArgumentParser(prog=prog, description=(
      "A training iteration with and without ADA's augmentation pipe, timed in turn."))
  ap.add_argument("--preset", choices=PRESETS, default="paper256")
  ap.add_argument("--batch", type=int, default=4)
  ap.add_argument("--p", type=float, default=0.6, help="augmentation probability (default "
                  "0.6, ADA's target; the cost does not depend on it)")
  ap.add_argument("--rounds", type=int, default=3)
  args = ap.parse_args(argv)
  if args.batch < 1 or args.rounds < 1 or not 0 <= args.p <= 1:
    raise errors.UserError("--batch and --rounds must be positive and --p lie in [0, 1]")
  rows = bench_augment(args.preset, args.batch, args.p, args.rounds)
  print_table(rows)
  print(f"({jax.devices()[0].device_kind}; each phase's best of {args.rounds} calls, amortised "
        "over one lazy-regularisation period as bench train does)")
