"""Cost of SpatialGAN's pieces in a generator step (paper: training time +30%).

:func:`bench_alignment` times one jitted G step -- G forward, D forward, non-saturating loss,
backward to G's parameters -- for three generators on random weights:

* ``stylegan2``: plain StyleGAN2 (``encoding="none"``), no alignment;
* ``sel``: SpatialGAN generator (SEL_norm at 4, 8, 16 px), no alignment;
* ``sel+align``: the same plus the GradCAM alignment loss (one more D forward, and a D
  backward to the feature taps).

:func:`bench_training_step` times the whole jitted training iteration of the ``demo``
presets (D step, G step, EMA; the plain phase, no lazy regulariser) for StyleGAN2,
SpatialGAN without alignment (``loss.align_weight=0``), SpatialGAN and SpatialGAN with the
heatmap-locality penalty (ours), all at SpatialGAN's width and batch -- the "+30% training
time" of the paper.

    python -m jaxspatial.bench spatialgan --resolution 32 --batch 16
    python -m jaxspatial.bench spatialgan --train-step --repeats 7
    python -m jaxspatial.bench spatialgan --drag runs/sgan-demo --num 20

:func:`bench_drag` compares DragGAN alone with SpatialGAN + DragGAN on a trained model
(paper Table II: 30-200 vs 10-20 optimisation steps).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial import cli, errors
from jaxspatial import families
from jaxspatial.benchmarks import (check_network_args, compile_with_flops, flop_rate,
                                   network_parser, no_flop_rate)
from jaxspatial.losses import spatialgan as align
from jaxspatial.models.spatialgan import spatialgan_model_config

VARIANTS = (("stylegan2", "none", False), ("sel", "norm", False), ("sel+align", "norm", True))


def _g_step(resolution: int, batch: int, encoding: str, with_align: bool, channel_base: int,
            channel_max: int, seed: int):
  # The form docs/spatialgan.md's table was measured in (the demo preset's): SELs at 4-16 px,
  # coarse heatmaps; the official default puts a SEL in every block.
  cfg = spatialgan_model_config(resolution, encoding=encoding, z_dim=channel_max,
                                w_dim=channel_max, n_mlp=4, channel_base=channel_base,
                                channel_max=channel_max, mbstd_group_size=4, coarse=True,
                                sel_resolutions=(4, 8, 16))
  G, D = families.build_generator(cfg), families.build_discriminator(cfg)
  key = jax.random.key(seed)
  z = jax.random.normal(key, (batch, cfg.z_dim))
  h = G.sample_heatmaps(key, batch)
  g_vars = jax.jit(G.init)({"params": key, "noise": key}, z[:1], h.take(slice(0, 1)))
  d_vars = jax.jit(D.init)(key, jnp.zeros((1, resolution, resolution, 3)))
  d_apply = align.discriminator_apply(D)

  def loss(g_params, z, h, key):
    fake = G.apply({**g_vars, "params": g_params}, z, h, noise_mode="random",
                   rngs={"noise": key})
    total = jax.nn.softplus(-D.apply(d_vars, fake)).mean()
    if with_align:
      total = total + align.gradcam_alignment_loss(d_apply, d_vars, fake, h)[0]
    return total

  args = (g_vars["params"], z, h, key)
  step, compile_s, flops = compile_with_flops(jax.jit(jax.grad(loss)), *args)
  return (lambda: step(*args)), compile_s, flops


def bench_alignment(resolution: int = 32, batch: int = 16, *, channel_base: int = 2048,
                    channel_max: int = 128, repeats: int = 5, seed: int = 0) -> list[dict]:
  """Median seconds of one G step (forward + backward) per variant, the variants timed in
  turn ``repeats`` times after one warm-up call each.

  Returns one dict per variant: ``variant``, ``resolution``, ``batch``, ``seconds``,
  ``compile_s``, ``relative`` (to ``stylegan2``), ``platform``, ``devices``.
  """
  runs, compile_s, flops = [], [], []
  for _, encoding, with_align in VARIANTS:
    run, seconds, n = _g_step(resolution, batch, encoding, with_align, channel_base,
                              channel_max, seed)
    jax.block_until_ready(run())                 # warm-up (compiled ahead of time above)
    runs.append(run)
    compile_s.append(seconds)
    flops.append(n)
  times = [[] for _ in VARIANTS]
  for _ in range(repeats):        # interleaved, so load changes on a shared machine hit all
    for run, t in zip(runs, times):
      t0 = time.perf_counter()
      jax.block_until_ready(run())
      t.append(time.perf_counter() - t0)
  rows = []
  for (name, _, _), t, compiling, n in zip(VARIANTS, times, compile_s, flops):
    seconds = statistics.median(t)
    rows.append({"variant": name, "resolution": resolution, "batch": batch,
                 "seconds": seconds, "compile_s": compiling,
                 "platform": jax.devices()[0].platform, "devices": jax.device_count(),
                 **flop_rate(n, seconds)})
  base = rows[0]["seconds"]
  for r in rows:
    r["relative"] = r["seconds"] / base
  return rows


TRAIN_VARIANTS = (("stylegan2", "stylegan2", {}),
                  ("spatialgan, no alignment", "spatialgan", {"align_weight": 0.0}),
                  ("spatialgan", "spatialgan", {}),
                  ("spatialgan + locality", "spatialgan",
                   {"locality_weight": 2.5, "locality_batch_shrink": 2}))
"""(name, family of its config file in configs/, ``config.loss`` overrides); the last adds
the heatmap-locality penalty on half the batch, as ``spatialgan-table1``'s locality rung."""


def bench_training_step(preset: str = "demo", repeats: int = 5) -> list[dict]:
  """Median seconds of one plain training iteration (no lazy regulariser: the phase most
  steps run) per :data:`TRAIN_VARIANTS` entry, timed in turn ``repeats`` times after one
  compiling call each.

  Returns dicts: ``variant``, ``batch``, ``seconds``, ``compile_s``, ``relative`` (to
  ``stylegan2``).
  """
  from jaxspatial.training import config_lib, gan_step, loop
  if repeats < 1:
    raise errors.UserError(f"--repeats must be positive, got {repeats}")
  plain = gan_step.Phase(r1=False, path_length=False)
  steps, first_s, flops, batch_size = [], [], [], 0
  reference = config_lib.load("spatialgan", preset)
  for _, family, loss_overrides in TRAIN_VARIANTS:
    config = config_lib.load(family, preset)
    # The StyleGAN2 demo preset is narrower (a fast CPU demo): compare at SpatialGAN's size.
    config.model.update(channel_base=reference.model.channel_base,
                        channel_max=reference.model.channel_max)
    config.batch_size = reference.batch_size
    config.mesh.data = 1
    config.loss.update(loss_overrides)
    trainer = loop.Trainer(config)
    trainer.initialize()
    res, batch_size = config.model.resolution, config.batch_size
    batch = trainer.global_batch({"image": np.zeros((batch_size, res, res, 3), np.float32)})

    train_step, compile_s, n = compile_with_flops(trainer.compiled_step(plain),
                                                  trainer.state, batch)

    def step(trainer=trainer, train_step=train_step, batch=batch):
      trainer.state, metrics = train_step(trainer.state, batch)
      return metrics

    jax.block_until_ready(step())                # warm-up (compiled ahead of time above)
    first_s.append(compile_s)
    flops.append(n)
    steps.append(step)
  times = [[] for _ in TRAIN_VARIANTS]
  for _ in range(repeats):
    for step, t in zip(steps, times):
      t0 = time.perf_counter()
      jax.block_until_ready(step())
      t.append(time.perf_counter() - t0)
  rows = [{"variant": name, "batch": batch_size, "seconds": statistics.median(t),
           "compile_s": compiling, **flop_rate(n, statistics.median(t))}
          for (name, _, _), t, compiling, n in zip(TRAIN_VARIANTS, times, first_s, flops)]
  for r in rows:
    r["relative"] = r["seconds"] / rows[0]["seconds"]
  return rows


DRAG_NOTE = ("a drag is a host-driven loop whose step count varies per image and stops on "
             "convergence: seconds per drag is its measure; a step's FLOP rate is in bench "
             "alignment (a G step with GradCAM) and bench projection")


def bench_drag(model, num: int = 20, seed: int = 0, distance: tuple[float, float] = (0.15, 0.3),
               max_steps: int = 100) -> list[dict]:
  """DragGAN alone vs SpatialGAN + DragGAN (paper Table II) on a trained SpatialGAN.

  For ``num`` images (latent and heatmap seed ``seed + i``): the handle is the pixel under the
  first root heatmap centre, the target that point moved by a random vector of length
  ``distance`` × image side. Mode ``draggan``: latent only, no coarse move; ``spatialgan +
  draggan``: coarse centre move, then latent and centres jointly. Returns per mode: mean
  steps, converged fraction, mean final handle-target distance (px) and seconds per drag.
  """
  from jaxspatial.edit import drag as drag_lib
  res = model.resolution
  rng = np.random.default_rng(seed)
  modes = {"draggan": dict(coarse=False, optimise_centers=False),
           "spatialgan + draggan": dict(coarse=True, optimise_centers=True)}
  stats = {name: {"steps": [], "converged": [], "distance": [], "seconds": []} for name in modes}
  config = drag_lib.DragConfig(max_steps=max_steps)
  for i in cli.progress(range(num), desc="drag", unit="image"):
    h = model.sample_heatmaps(seed + i, 1)
    ws = np.repeat(model.mapping(model.sample_z(seed + i, 1), h)[:, None], model.num_ws, axis=1)
    root = h.level_indices(0)[0]
    handle = np.clip(np.round(h.pixel_centers(res)[0, root]), 2, res - 3)
    angle = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(*distance) * res
    target = np.clip(np.round(handle + length * np.array([np.sin(angle), np.cos(angle)])),
                     0, res - 1)
    for name, kw in modes.items():
      t0 = time.perf_counter()
      r = drag_lib.drag(model, ws, handle[None], target[None], heatmaps=h, config=config, **kw)
      st = stats[name]
      st["seconds"].append(time.perf_counter() - t0)
      st["steps"].append(r.steps)
      st["converged"].append(r.converged)
      st["distance"].append(float(np.linalg.norm(r.handles[0] - target)))
  return [{"mode": name, "images": num, "mean_steps": float(np.mean(st["steps"])),
           "converged": float(np.mean(st["converged"])),
           "final_distance_px": float(np.mean(st["distance"])),
           "seconds": float(np.median(st["seconds"])),
           **no_flop_rate(DRAG_NOTE)} for name, st in stats.items()]


def main(argv: list[str] | None = None,
         prog: str = "python -m jaxspatial.bench spatialgan") -> None:
  p = network_parser(prog, "Time a G step with and without SpatialGAN's SEL and GradCAM "
                     "alignment (random weights).")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--drag", metavar="CHECKPOINT",
                 help="instead: DragGAN vs SpatialGAN + DragGAN on this trained SpatialGAN")
  p.add_argument("--num", type=int, default=20, help="--drag: images")
  p.add_argument("--train-step", action="store_true",
                 help="time the whole training iteration of the demo presets instead "
                      "(reads the source checkout's configs/)")
  args = p.parse_args(argv)
  if args.drag:
    import jaxspatial as js
    model = js.load(args.drag)
    if model.kind != "spatialgan":
      raise errors.UserError(f"--drag needs a spatialgan checkpoint, not {model.kind!r}")
    rows = bench_drag(model, num=args.num)
    print(f"{'mode':<22} {'steps':>6} {'converged':>9} {'dist px':>7} {'s/drag':>7} "
          f"{'GFLOP/s':>7} {'% of peak':>9}")
    for r in rows:
      print(f"{r['mode']:<22} {r['mean_steps']:6.1f} {r['converged']:9.2f} "
            f"{r['final_distance_px']:7.2f} {r['seconds']:7.2f} {r['GFLOP/s']:>7} "
            f"{r['% of peak']:>9}")
    print(f"({args.num} drags of {model.resolution} px images, max 100 steps)")
    print(f"note: {DRAG_NOTE}")
    return
  if args.train_step:
    rows = bench_training_step("demo", args.repeats)
    print(f"{'variant':<26} {'seconds':>8} {'relative':>8} {'compile_s':>9} {'GFLOP/s':>9} "
          f"{'% of peak':>9}")
    for r in rows:
      print(f"{r['variant']:<26} {r['seconds']:8.4f} {r['relative']:8.2f} {r['compile_s']:9.1f} "
            f"{r['GFLOP/s']:9.4g} {r['% of peak']:>9}")
    print(f"(training iteration of the demo presets, batch {rows[0]['batch']}, "
          f"{jax.devices()[0].platform})")
    return
  check_network_args(args)
  rows = bench_alignment(args.resolution, args.batch, channel_base=args.channel_base,
                         channel_max=args.channel_max, repeats=args.repeats)
  print(f"{'variant':<10} {'seconds':>8} {'relative':>8} {'compile_s':>9} {'GFLOP/s':>9} "
        f"{'% of peak':>9}")
  for r in rows:
    print(f"{r['variant']:<10} {r['seconds']:8.4f} {r['relative']:8.2f} {r['compile_s']:9.1f} "
          f"{r['GFLOP/s']:9.4g} {r['% of peak']:>9}")
  print(f"({rows[0]['platform']}, {rows[0]['devices']} device(s), resolution "
        f"{args.resolution}, batch {args.batch})")

